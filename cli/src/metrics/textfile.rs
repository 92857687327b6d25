//! `--textfile DIR`: DIR/vigil.prom for node_exporter's textfile collector, replaced atomically so that the
//! collector never reads half a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Failure;

pub const FILE_NAME: &str = "vigil.prom";

/// `--textfile-name`: a plain file name ending in `.prom` (the collector reads only those), so that several
/// commands can write into one textfile directory without replacing each other's file.
pub fn parse_name(text: &str) -> Result<String, String> {
    let stem = text.strip_suffix(".prom").unwrap_or("");
    let plain = !stem.is_empty() && !text.starts_with('.') && !text.contains(['/', '\\', '\0']);
    if plain {
        Ok(text.to_string())
    } else {
        Err("expected a plain file name ending in .prom, such as vigil-shop.prom".to_string())
    }
}

/// Writes a temporary file in DIR (its name does not end in `.prom`, so the collector ignores it), fsyncs it,
/// renames it over DIR/NAME (vigil.prom unless `--textfile-name`) and fsyncs DIR. The temporary file is created exclusively and without following
/// symlinks, so nothing planted at its name is written through; rename replaces a symlink planted at
/// DIR/vigil.prom itself, never the file it points to.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Failure> {
    let target = dir.join(name);
    let fail = |what: &str, e: std::io::Error| {
        Failure::unknown(format!("--textfile: cannot {what} in {}: {e}", dir.display()))
    };
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "--textfile {}: not a directory; create it or name node_exporter's textfile directory",
            dir.display()
        )));
    }
    remove_leftovers(dir);
    let (temp, mut file) = create_temp(dir).map_err(|e| fail("create a temporary file", e))?;
    let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|_| std::fs::rename(&temp, &target)) {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(&format!("write {name}"), e));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("sync the directory", e))?;
    Ok(target)
}

/// A temporary file older than this is a killed run's: a run writes and renames its own within moments.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files killed runs left in DIR (best effort: a leftover that cannot be removed only
/// takes room). Only regular files (lstat: a symlink or FIFO is never touched) named exactly as `create_temp`
/// names them and older than a minute (a concurrent run's temporary file is younger); nothing else.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > LEFTOVER_AGE);
        if meta.file_type().is_file() && old {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `.vigil.prom.<pid>.<nanoseconds>.<attempt>.tmp`, digits only, as `create_temp` makes them.
fn is_temp_name(name: &str) -> bool {
    let Some(middle) = name.strip_prefix(".vigil.prom.").and_then(|n| n.strip_suffix(".tmp")) else { return false };
    let parts: Vec<&str> = middle.split('.').collect();
    let widths = [10, 9, 2]; // a pid, a second's nanoseconds, an attempt under 100
    parts.len() == 3
        && parts.iter().zip(widths).all(|(p, w)| !p.is_empty() && p.len() <= w && p.bytes().all(|b| b.is_ascii_digit()))
}

fn create_temp(dir: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for attempt in 0..100u32 {
        let temp = dir.join(format!(".vigil.prom.{}.{}.{attempt}.tmp", std::process::id(), nanos()));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp);
        match opened {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

fn nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_vigil_gives_its_temporary_files_match() {
        assert!(is_temp_name(".vigil.prom.12345.999999999.0.tmp"));
        assert!(is_temp_name(".vigil.prom.1.0.99.tmp"));
        for other in [
            "vigil.prom",
            ".vigil.prom.tmp",
            ".vigil.prom.12345.999.tmp",
            ".vigil.prom.12345.999.0.tmp.bak",
            "x.vigil.prom.12345.999.0.tmp",
            ".vigil.prom.12345.999.0.0.tmp",
            ".vigil.prom.12a45.999.0.tmp",
            ".vigil.prom.12345..0.tmp",
            ".vigil.prom.12345.1000000000.0.tmp",
            ".vigil.prom.12345.999.100.tmp",
            ".vigil.prom.+1.999.0.tmp",
            ".vigil.prom.1/2.999.0.tmp",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
    }
}
