//! Where a compressed backup's raw intermediate copy is written. It is as large as the database, while the
//! backup itself may be a hundredth of that: the destination volume may hold the backup but not the
//! intermediate. So it goes to the first place with room for it: the destination directory (room for the
//! intermediate and the backup), the source database's directory, or a private directory of vigil's in the
//! system temp dir (created with mkdir 0700 under a fresh name: never a predictable name in a shared,
//! world-writable place).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use super::digest::hex;
use super::dir::sweep;
use super::dir::{io_error, parent_of};
use crate::error::Result;
use crate::volume::volume_of;

/// Free space kept beyond what a file needs: file system overhead and other writers.
const MARGIN: u64 = 16 << 20;

/// A directory for intermediate files; a private one is removed (when empty) on drop.
pub struct Scratch {
    pub dir: PathBuf,
    /// "destination", "source" or "temp".
    pub place: &'static str,
    private: bool,
}

impl Scratch {
    /// The directory for the raw intermediate of a compressed backup of a `need`-byte database.
    pub fn for_intermediate(dest_dir: &Path, source: Option<&Path>, need: u64) -> Result<Scratch> {
        let room = |dir: &Path, bytes: u64| volume_of(dir).is_none_or(|disk| disk.free >= bytes.saturating_add(MARGIN));
        let shared = |dir: &Path, place| Scratch { dir: dir.to_path_buf(), place, private: false };
        // The destination also receives the compressed backup, at worst as large as the database.
        if room(dest_dir, need.saturating_mul(2)) {
            return Ok(shared(dest_dir, "destination"));
        }
        if let Some(source_dir) = source.map(parent_of).filter(|dir| room(dir, need) && writable(dir)) {
            return Ok(shared(&source_dir, "source"));
        }
        let temp = std::env::temp_dir();
        if room(&temp, need) {
            return Scratch::private_in(&temp);
        }
        Ok(shared(dest_dir, "destination")) // nowhere has room: the destination's "disk is full" says so
    }

    /// A new private directory (mode 0700) in `parent`, under a name nobody can have taken for us.
    pub fn private_in(parent: &Path) -> Result<Scratch> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut attempt = 0;
        loop {
            let mut hasher = Sha256::new();
            hasher.update(std::process::id().to_le_bytes());
            hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            hasher.update(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos().to_le_bytes());
            let dir = parent.join(format!("vigil-{}", &hex(&hasher.finalize())[..16]));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    remove_abandoned(parent, &dir);
                    return Ok(Scratch { dir, place: "temp", private: true });
                }
                // Taken (by chance or by someone else): mkdir never reuses it, so try another name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
                Err(e) => return Err(io_error("cannot create a private directory in", parent, e)),
            }
        }
    }

    pub fn to_json(&self) -> Json {
        json!({"place": self.place, "dir": self.dir.to_string_lossy()})
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.private {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Private directories that killed runs left in `parent`: only ours (vigil's name, this user's, mode 0700),
/// only the temporary files no process holds any more (dir::sweep), then the directory if empty
/// and untouched for a minute. `own` is the directory just made: its owner is this user.
fn remove_abandoned(parent: &Path, own: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(uid) = own.metadata().map(|m| m.uid()) else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours =
            name.strip_prefix("vigil-").is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Ok(metadata) = entry.path().symlink_metadata() else { continue };
        if ours && metadata.is_dir() && metadata.uid() == uid && metadata.permissions().mode() & 0o777 == 0o700 {
            // A directory changed in the last minute may be a live run's, between its mkdir and its file.
            let settled = metadata.modified().ok().and_then(|t| t.elapsed().ok());
            if settled.is_some_and(|age| age.as_secs() >= 60) {
                sweep(&entry.path());
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

fn writable(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK).is_ok()
}
