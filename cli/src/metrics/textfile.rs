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
