//! What vigil knows of the volumes files live on: free space before it writes (backup, vacuum, salvage, the
//! drill) and the disk checks of health. A shared room below the capabilities, so that none imports another
//! for it.

use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Disk {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// Share of the volume in use, in percent with two decimals.
    pub used_pct: f64,
}

/// The directory holding a file ("." for a bare file name).
pub fn parent_dir(path: &str) -> &Path {
    Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Free space and use of the volume holding a file.
pub fn disk_of(path: &str) -> Option<Disk> {
    volume_of(parent_dir(path))
}

/// Free space (for unprivileged writers) and use of the volume holding a directory.
pub fn volume_of(dir: &Path) -> Option<Disk> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    let fragment = stat.fragment_size() as u64;
    let available = stat.blocks_available() as u64 * fragment;
    let used = (stat.blocks() as u64).saturating_sub(stat.blocks_free() as u64) * fragment;
    let whole = (used + available) as f64;
    let used_pct = if whole > 0.0 { (used as f64 * 100.0 / whole * 100.0).round() / 100.0 } else { 0.0 };
    Some(Disk { free: available, used_pct })
}
