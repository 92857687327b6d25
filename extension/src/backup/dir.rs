//! Backup and export directories: every file vigil reads, writes, renames or deletes in one goes through
//! here, so the rules hold for every caller at once.
//!
//! - A destination is a directory when it ends in `/` (created when missing) or is an existing directory;
//!   otherwise it is a file whose name says what it holds (`destination`).
//! - Files are written under a temporary name (`.<name>.vigil-tmp-<pid>-<n>`) beside their final name, with the
//!   source database's permission bits (and owner, where allowed), and renamed without replacing anything.
//! - Temporary files left by a crash are removed only when their name is exactly vigil's pattern, no process
//!   holds them and they are over a minute old; what was removed is reported (`sweep`).
//! - Only regular files are read (`open_regular`): a FIFO or a device never hangs a read.
//! - A manifest names a plain file name in its own directory, and is named after it (`artifact_name`).
//! - Paths are UTF-8 (`utf8_path`): a path SQLite or the CLI could only pass by replacing bytes is refused.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};

use super::options::Compression;
use crate::error::{Error, Result};

/// Marks temporary files; a crash can leave them behind, never under a final name.
pub const TEMP_MARK: &str = ".vigil-tmp-";

/// A temporary file nobody holds and older than this was left by a crash.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Longest file name vigil generates, in bytes (file systems allow 255).
pub const MAX_NAME_BYTES: usize = 200;

pub use crate::args::{not_utf8, utf8_path};

/// Permission bits and owner that a database's backups, manifests, restored copies and exports get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Perms {
    /// Those of an existing regular file (None for in-memory databases or when it cannot be read).
    pub fn of(path: &Path) -> Option<Perms> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(Perms { mode: meta.mode() & 0o777, uid: meta.uid(), gid: meta.gid() })
    }

    /// Gives an open file these bits whatever the umask; the owner only where the process may (root, or a
    /// group it belongs to).
    pub fn apply(&self, file: &File, path: &Path) -> Result<()> {
        use std::os::unix::fs::fchown;
        if fchown(file, Some(self.uid), Some(self.gid)).is_err() {
            let _ = fchown(file, None, Some(self.gid));
        }
        file.set_permissions(Permissions::from_mode(self.mode))
            .map_err(|e| io_error("cannot set the permissions of", path, e))
    }

    /// Directory bits: each class that may read may also enter (0600 → 0700).
    fn directory_mode(&self) -> u32 {
        let read = self.mode & 0o444;
        self.mode | (read >> 2) | 0o700
    }
}

/// Where `backup_to` writes, from its `dest` argument.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination {
    /// A directory to generate a unique name in.
    Directory(PathBuf),
    /// A file the user named.
    File(PathBuf),
}

/// The one rule for a backup destination: a path ending in `/` is a directory, created when missing; an
/// existing directory is a directory; anything else is a file, which must have an extension matching the
/// compression (`.gz`, `.zst`; none of those without), and whose directory must exist. A missing path without
/// an extension is refused as ambiguous.
pub fn destination(dest: &str, compression: Compression, perms: Option<Perms>) -> Result<Destination> {
    let path = Path::new(dest);
    if dest.ends_with('/') || path.is_dir() {
        create_directory(path, perms)?;
        return Ok(Destination::Directory(path.to_path_buf()));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    check_file_name(path, name, compression)?;
    let dir = parent_of(path);
    if !dir.is_dir() {
        return Err(Error::new(format!(
            "directory {} does not exist; create it first (only a destination ending in '/' is created)",
            dir.display()
        )));
    }
    Ok(Destination::File(path.to_path_buf()))
}

/// A backup file's name says what it holds: `.gz` for gzip, `.zst` for zstd, neither without compression; a
/// name with no extension at all might have meant a directory.
fn check_file_name(path: &Path, name: &str, compression: Compression) -> Result<()> {
    let shown = path.display();
    let suffix = compression.suffix();
    let lower = name.to_ascii_lowercase();
    let problem = if !name.trim_start_matches('.').contains('.') {
        Some(format!(
            "{shown} has no extension, so it is unclear whether it is meant as a directory or a file: end it with \
             '/' for a directory (created when missing), or name a file such as {shown}.db{suffix}"
        ))
    } else if let Some(other) = [".gz", ".zst"].into_iter().find(|s| lower.ends_with(s) && *s != suffix) {
        let what = if suffix.is_empty() { "not compressed" } else { compression.as_str() };
        let whole = path.to_string_lossy();
        let renamed = format!("{}{suffix}", &whole[..whole.len() - other.len()]);
        Some(format!("{shown} ends in {other} but the backup is {what}: name it {renamed}"))
    } else if !suffix.is_empty() && !lower.ends_with(suffix) {
        Some(format!(
            "{shown} lacks the {suffix} extension of a {}-compressed backup: name it {shown}{suffix} (or pass a \
             directory ending in '/') so nobody opens it as a database",
            compression.as_str()
        ))
    } else {
        None
    };
    problem.map_or(Ok(()), |p| Err(Error::new(p).context("bad arguments")))
}

/// The directory an export writes into: created when missing (with the database's bits), refused when it is
/// anything but a directory.
pub fn export_directory(dir: &str, perms: Option<Perms>) -> Result<PathBuf> {
    let path = Path::new(dir);
    if path.exists() && !path.is_dir() {
        return Err(Error::new(format!(
            "{} is not a directory: export_to writes one or more files into a directory",
            dir
        )));
    }
    create_directory(path, perms)?;
    Ok(path.to_path_buf())
}

fn create_directory(path: &Path, perms: Option<Perms>) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    if let Some(perms) = perms {
        builder.mode(perms.directory_mode());
    }
    builder.create(path).map_err(|e| io_error("cannot create the directory", path, e))
}

/// A generated name: `<stem>-<UTC time><rest>`, and `<stem>-<UTC time>-<n><rest>` when taken.
pub fn numbered(name: &str, stamp_end: usize, n: u32) -> String {
    if n <= 1 {
        name.to_string()
    } else {
        format!("{}-{n}{}", &name[..stamp_end], &name[stamp_end..])
    }
}

/// A file being written; removed on drop unless published. It holds a flock while it exists, which is how a
/// later run tells a crashed run's leftovers from a file another process is writing.
pub struct TempFile {
    pub path: PathBuf,
    published: bool,
    _held: Option<Flock<File>>,
}

/// A number no other temporary name of this process has.
fn next_unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

impl TempFile {
    /// Creates a new, empty temporary file in `dir` for a final file named `name` (after removing crashed
    /// runs' leftovers there), with `perms` when given.
    pub fn create(dir: &Path, name: &str, perms: Option<Perms>) -> Result<(TempFile, File)> {
        sweep(dir);
        let path = dir.join(temp_name(name, std::process::id(), next_unique()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error("cannot create a temporary file in", dir, e))?;
        let held = file.try_clone().ok().and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok());
        let temp = TempFile { path, published: false, _held: held };
        if let Some(perms) = perms {
            perms.apply(&file, &temp.path)?;
        }
        Ok((temp, file))
    }

    /// Moves the file to `destination`; fails when it exists, unless `overwrite`.
    pub fn publish(mut self, destination: &Path, overwrite: bool) -> Result<()> {
        rename(&self.path, destination, overwrite)?;
        self.published = true;
        Ok(())
    }

    /// Moves the file to the first free name of `names` (1, 2, …): for generated names, which must never
    /// collide with another run's. Returns the name taken.
    pub fn publish_unique(mut self, dir: &Path, names: impl Fn(u32) -> String) -> Result<PathBuf> {
        for n in 1..=1000 {
            let candidate = dir.join(names(n));
            if manifest_beside(&candidate) {
                continue;
            }
            match rename(&self.path, &candidate, false) {
                Ok(()) => {
                    self.published = true;
                    return Ok(candidate);
                }
                Err(_) if candidate.symlink_metadata().is_ok() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(format!("no free name for a backup in {}", dir.display())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn manifest_beside(artifact: &Path) -> bool {
    super::manifest::path_for(artifact).symlink_metadata().is_ok()
}

/// Files written together and published together (an export): written into a hidden directory inside the
/// destination (`.export.vigil-tmp-<pid>-<n>`, flocked while it exists), then each renamed to its final
/// name. A failure before publication (a full disk) leaves nothing under a final name; dropping it removes
/// what it wrote.
pub struct Staging {
    dir: PathBuf,
    path: PathBuf,
    /// The destination and the staging directory, open: files are created, renamed and removed relative to
    /// them, so that someone who can write in the destination and swaps the staging directory's name for a
    /// symlink never leads an export elsewhere.
    dir_fd: File,
    staging_fd: File,
    perms: Option<Perms>,
    names: Vec<String>,
    _held: Option<Flock<File>>,
}

impl Staging {
    pub fn create(dir: &Path, perms: Option<Perms>) -> Result<Staging> {
        sweep(dir);
        let path = dir.join(temp_name("export", std::process::id(), next_unique()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| io_error("cannot create a temporary directory in", dir, e))?;
        let opened = File::open(dir).and_then(|dir_fd| Ok((dir_fd, open_staging(&path)?)));
        let (dir_fd, staging_fd) = match opened {
            Ok(fds) => fds,
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                return Err(io_error("cannot open the temporary directory", &path, e));
            }
        };
        let held = staging_fd.try_clone().ok().and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok());
        Ok(Staging { dir: dir.to_path_buf(), path, dir_fd, staging_fd, perms, names: Vec::new(), _held: held })
    }

    /// A new file to be published as `dir/name`.
    pub fn file(&mut self, name: &str) -> Result<(File, PathBuf)> {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::Mode;
        let path = self.path.join(name);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = openat(&self.staging_fd, name, flags, Mode::from_bits_truncate(0o600))
            .map(File::from)
            .map_err(|e| io_error("cannot create", &path, std::io::Error::from(e)))?;
        self.names.push(name.to_string());
        if let Some(perms) = self.perms {
            perms.apply(&file, &path)?;
        }
        Ok((file, path))
    }

    /// Renames every file to its final name (none replaced unless `overwrite`); when one cannot be, those
    /// already renamed go back and nothing is published.
    pub fn publish(self, overwrite: bool) -> Result<()> {
        for (i, name) in self.names.iter().enumerate() {
            if let Err(e) = rename_at(&self.staging_fd, &self.dir_fd, name, &self.dir.join(name), overwrite) {
                for done in &self.names[..i] {
                    let _ = rename_at(&self.dir_fd, &self.staging_fd, done, &self.path.join(done), false);
                }
                return Err(e);
            }
        }
        sync_dir(&self.dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = nix::unistd::unlinkat(&self.staging_fd, name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Removes a crashed export's staging directory, given open (see `open_staging`): the regular files in it,
/// each looked at and unlinked relative to that open directory, never through a path someone could swap for a
/// symlink meanwhile; then the directory itself (which fails harmlessly if the name no longer is one).
fn remove_staging(staging: &File, path: &Path) -> std::io::Result<()> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::{fstatat, SFlag};
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let mut listing = nix::dir::Dir::from_fd(staging.try_clone()?.into())?;
    let names: Vec<std::ffi::CString> = listing
        .iter()
        .flatten()
        .map(|entry| entry.file_name().to_owned())
        .filter(|name| name.as_bytes() != b"." && name.as_bytes() != b"..")
        .collect();
    for name in names {
        let stat = fstatat(staging, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG {
            unlinkat(staging, name.as_c_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    std::fs::remove_dir(path)
}

/// Opens a directory without following a symlink in its last component.
fn open_staging(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path)
}

/// The temporary name of a file named `name`.
fn temp_name(name: &str, pid: u32, unique: u64) -> String {
    format!(".{name}{TEMP_MARK}{pid}-{unique}")
}

/// Whether `name` is exactly what `temp_name` makes: `.<name>.vigil-tmp-<digits>-<digits>`.
pub fn is_temp_name(name: &str) -> bool {
    let Some(at) = name.rfind(TEMP_MARK) else { return false };
    let (head, tail) = (&name[..at], &name[at + TEMP_MARK.len()..]);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let numbered = tail.split_once('-').is_some_and(|(pid, n)| digits(pid) && digits(n));
    head.len() > 1 && head.starts_with('.') && numbered
}

/// Removes vigil's temporary files in `dir` that no process holds and that are over a minute old (a run takes
/// its lock right after creating the file); returns their paths. Only regular files whose name is exactly
/// vigil's pattern are candidates (and an export's staging directory of that name, with the files in it). Best effort: what cannot be removed stays.
pub fn sweep(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        let old = meta.modified().ok().and_then(|t| t.elapsed().ok());
        if !(meta.is_file() || meta.is_dir()) || old.is_none_or(|age| age < STALE_AFTER) {
            continue;
        }
        let opened = if meta.is_dir() { open_staging(&entry.path()) } else { open_regular_with(&entry.path(), false) };
        let Ok(file) = opened else { continue };
        if let Ok(unheld) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let gone =
                if meta.is_dir() { remove_staging(&unheld, &entry.path()) } else { std::fs::remove_file(entry.path()) };
            if gone.is_ok() {
                removed.push(entry.path().to_string_lossy().into_owned());
            }
        }
    }
    removed.extend(sweep_sidecars(dir));
    removed
}

/// SQLite's files beside a temporary database vigil opened (a restore's working copy): its rollback journal,
/// WAL and shared-memory file.
const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Removes the SQLite sidecar files of vigil temporary files that are gone (a run killed while SQLite had
/// them open; vigil closes its connection to a temporary database before it renames or removes it, so a
/// sidecar without its database is always an orphan). Left there, a journal would be rolled back into a
/// later temporary file that happened to get the same name.
fn sweep_sidecars(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(base) = SIDECARS.iter().find_map(|s| name.strip_suffix(s)).filter(|b| is_temp_name(b)) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_file() && dir.join(base).symlink_metadata().is_err() && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path().to_string_lossy().into_owned());
        }
    }
    removed
}

/// Removes SQLite files left beside a temporary file vigil has just created (its name is new to this run, so
/// anything there is stale) before SQLite opens it: a journal of the same name would be rolled back into it.
pub fn clear_sidecars(temp: &Path) {
    for suffix in SIDECARS {
        let mut name = temp.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Opens a file for reading only when it is a regular file: FIFOs and devices are opened without blocking
/// and refused (they would hang a hash or never end), and so are symlinks when `follow` is false.
pub fn open_regular_with(path: &Path, follow: bool) -> std::io::Result<File> {
    let flags = libc::O_NONBLOCK | libc::O_NOCTTY | if follow { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            std::io::Error::other("is a symbolic link, and vigil reads only regular files here")
        } else {
            e
        }
    })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(std::io::Error::other(format!("is {}, not a regular file", kind_name(&kind))));
    }
    Ok(file)
}

/// Opens a regular file for reading (following symlinks).
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    open_regular_with(path, true)
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads a small regular file (a manifest) whole, refusing anything over `limit` bytes.
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = open_regular(path)?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::other(format!("is over {limit} bytes, too large for a vigil manifest")));
    }
    Ok(text)
}

/// What a regular file is, for a size check: refuses FIFOs, devices and directories.
pub fn regular_metadata(path: &Path) -> std::io::Result<std::fs::Metadata> {
    open_regular(path)?.metadata()
}

/// The artifact a manifest in `manifest_path` may name: a plain file name in the manifest's own directory, and
/// the manifest must be named after it (`<file>.vigil.json`). Anything else is refused with the reason.
pub fn artifact_name(manifest_path: &Path, file: &str) -> std::result::Result<PathBuf, String> {
    let plain = !file.is_empty()
        && file != "."
        && file != ".."
        && !file.contains(['/', '\\', '\0'])
        && !file.ends_with(super::manifest::SUFFIX);
    if !plain {
        return Err(format!("its \"file\" {} is not a plain file name in its own directory", shown(file)));
    }
    let expected = format!("{file}{}", super::manifest::SUFFIX);
    if manifest_path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(format!("it is not named after its \"file\" {} (expected {})", shown(file), shown(&expected)));
    }
    Ok(parent_of(manifest_path).join(file))
}

/// User text in a message, quoted and cut to a readable length.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    serde_json::Value::String(format!("{cut}{more}")).to_string()
}

/// Refuses a restore target that is not a regular file, that is the backup itself, or that is any vigil
/// backup (a file with a manifest beside it) or manifest: restoring there would break a backup.
pub fn check_restore_target(target: &Path, artifact: &Path) -> Result<()> {
    if let Ok(meta) = target.symlink_metadata() {
        let kind = std::fs::metadata(target).map(|m| m.file_type()).unwrap_or(meta.file_type());
        if !kind.is_file() {
            return Err(Error::new(format!(
                "cannot restore into {}: it is {}; vigil restores only into a regular database file or a new path",
                target.display(),
                kind_name(&kind)
            )));
        }
        if same_file(target, artifact) {
            return Err(Error::new(format!(
                "cannot restore {} onto itself: name another target file",
                artifact.display()
            )));
        }
    }
    let text = target.to_string_lossy();
    if manifest_beside(target) || text.ends_with(super::manifest::SUFFIX) {
        return Err(Error::new(format!(
            "cannot restore into {}: it is a vigil backup (it has a manifest); restoring there would break that \
             backup, so name another target file",
            target.display()
        )));
    }
    Ok(())
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Removes a file vigil created, in a directory it manages: only a regular file (a symlink is removed as a
/// link, never followed).
pub fn remove_own(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => std::fs::remove_file(path),
        Ok(meta) => Err(std::io::Error::other(format!("is {}, not removed", kind_name(&meta.file_type())))),
        Err(e) => Err(e),
    }
}

pub fn io_error(what: &str, path: &Path, error: std::io::Error) -> Error {
    let hint = match error.kind() {
        std::io::ErrorKind::NotFound => ": the directory does not exist; create it first",
        std::io::ErrorKind::PermissionDenied => ": permission denied; choose a directory this process may write",
        _ if error.raw_os_error() == Some(28) => ": the disk is full; free space or choose another volume",
        _ => "",
    };
    let place = if path.as_os_str().is_empty() { String::new() } else { format!(" {}", path.display()) };
    Error::new(format!("{what}{place}: {error}{hint}"))
}

pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    file.sync_all().map_err(|e| io_error("cannot fsync", path, e))
}

/// Makes renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("cannot fsync the directory", dir, e))
}

/// Renames without replacing an existing file (renameat2 NOREPLACE; a check before the rename where the
/// file system lacks it).
pub fn rename(from: &Path, to: &Path, overwrite: bool) -> Result<()> {
    let flags = if overwrite { RenameFlags::empty() } else { RenameFlags::RENAME_NOREPLACE };
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(exists(to)),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            if !overwrite && to.symlink_metadata().is_ok() {
                return Err(exists(to));
            }
            std::fs::rename(from, to).map_err(|e| io_error("cannot rename a temporary file to", to, e))
        }
        Err(errno) => Err(io_error("cannot rename a temporary file to", to, std::io::Error::from(errno))),
    }
}

/// Renames `name` from one open directory to another (none replaced unless `overwrite`); `to` names the
/// destination in messages.
fn rename_at(from_dir: &File, to_dir: &File, name: &str, to: &Path, overwrite: bool) -> Result<()> {
    let flags = if overwrite { RenameFlags::empty() } else { RenameFlags::RENAME_NOREPLACE };
    match renameat2(from_dir, name, to_dir, name, flags) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => Err(exists(to)),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            let taken = nix::sys::stat::fstatat(to_dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
            if !overwrite && taken {
                return Err(exists(to));
            }
            nix::fcntl::renameat(from_dir, name, to_dir, name)
                .map_err(|e| io_error("cannot rename a temporary file to", to, std::io::Error::from(e)))
        }
        Err(errno) => Err(io_error("cannot rename a temporary file to", to, std::io::Error::from(errno))),
    }
}

pub fn exists(path: &Path) -> Error {
    Error::new(format!(
        "{} already exists: vigil never overwrites a file unless asked; choose another name, a directory, or \
         '{{\"overwrite\":true}}'",
        path.display()
    ))
}

/// The directory of a file path ("." for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed by the caller.
    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-dir-test-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Someone who can write in the backup directory swaps a stale staging directory for a symlink to a victim
    /// directory between the sweep's look and its removal: only the staging directory's own regular files go.
    #[test]
    fn a_staging_directory_swapped_for_a_symlink_never_leads_the_sweep_elsewhere() {
        let root = scratch("swap");
        let (staging, moved, victim) = (root.join(".e.vigil-tmp-1-1"), root.join("moved"), root.join("victim"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(staging.join("t.csv"), "left by a crash").unwrap();
        std::fs::write(victim.join("t.csv"), "precious").unwrap();
        std::os::unix::fs::symlink(victim.join("t.csv"), staging.join("link.csv")).unwrap();
        let opened = open_staging(&staging).unwrap();
        std::fs::rename(&staging, &moved).unwrap();
        std::os::unix::fs::symlink(&victim, &staging).unwrap();
        let _ = remove_staging(&opened, &staging);
        assert_eq!(std::fs::read_to_string(victim.join("t.csv")).unwrap(), "precious");
        assert!(!moved.join("t.csv").exists(), "the staging directory's own file is removed");
        assert!(open_staging(&staging).is_err(), "a symlink is never opened as a staging directory");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The staging directory's name swapped for a symlink to a victim directory after its creation: the export
    /// still publishes its own files into the destination, and dropping an unpublished one removes only them.
    #[test]
    fn an_export_staging_directory_swapped_for_a_symlink_never_touches_the_victim() {
        for publish in [true, false] {
            let root = scratch(if publish { "publish" } else { "drop" });
            let victim = root.join("victim");
            std::fs::create_dir(&victim).unwrap();
            std::fs::write(victim.join("t.csv"), "precious").unwrap();
            let mut staging = Staging::create(&root, None).unwrap();
            let (mut file, _) = staging.file("t.csv").unwrap();
            std::io::Write::write_all(&mut file, b"exported").unwrap();
            std::fs::rename(&staging.path, root.join("moved")).unwrap();
            std::os::unix::fs::symlink(&victim, &staging.path).unwrap();
            if publish {
                staging.publish(false).unwrap();
                assert_eq!(std::fs::read_to_string(root.join("t.csv")).unwrap(), "exported");
            } else {
                drop(staging);
                assert!(!root.join("moved").join("t.csv").exists(), "its own file is removed");
            }
            assert_eq!(std::fs::read_to_string(victim.join("t.csv")).unwrap(), "precious");
            std::fs::remove_dir_all(&root).unwrap();
        }
    }

    #[test]
    fn only_vigils_own_temporary_names_are_swept() {
        assert!(is_temp_name(&temp_name("b.db", 42, 7)));
        assert!(is_temp_name(".x.vigil.json.vigil-tmp-1-0"));
        for user in ["report.vigil-tmp-draft", ".x.vigil-tmp-", ".x.vigil-tmp-1", ".x.vigil-tmp-1-a", "x.vigil-tmp-1-2"]
        {
            assert!(!is_temp_name(user), "{user}");
        }
    }

    #[test]
    fn manifests_name_plain_files_after_themselves() {
        let m = Path::new("/b/x.db.vigil.json");
        assert_eq!(artifact_name(m, "x.db"), Ok(PathBuf::from("/b/x.db")));
        for bad in ["/etc/passwd", "../x.db", "a/x.db", "..", "", "y.db", "x.db.vigil.json"] {
            assert!(artifact_name(m, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destination_names_say_what_they_hold() {
        let dir = std::env::temp_dir();
        let file = |name: &str, c| destination(&dir.join(name).to_string_lossy(), c, None);
        assert!(matches!(file("a.db", Compression::None), Ok(Destination::File(_))));
        assert!(matches!(file("a.db.gz", Compression::Gzip), Ok(Destination::File(_))));
        assert!(file("a.db.gz", Compression::Zstd).is_err());
        assert!(file("a.db.zst", Compression::Gzip).is_err());
        assert!(file("a.db.zst", Compression::None).is_err());
        assert!(file("a.db", Compression::Zstd).is_err());
        assert!(file("nodir-vigil-test", Compression::None).is_err());
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("a-T1Z.db.gz", 5, 1), "a-T1Z.db.gz");
        assert_eq!(numbered("a-T1Z.db.gz", 5, 2), "a-T1Z-2.db.gz");
    }
}

#[cfg(test)]
mod sidecar_tests {
    use super::*;

    #[test]
    fn orphaned_sqlite_files_of_a_temporary_database_are_swept() {
        let path = std::env::temp_dir().join(format!("vigil-sidecar-test-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        struct Dir(PathBuf);
        impl Dir {
            fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Dir(path);
        for name in
            [".a.db.vigil-tmp-999-0-wal", ".a.db.vigil-tmp-998-0-journal", ".a.db.vigil-tmp-997-0-shm", "a.db-wal"]
        {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::write(dir.path().join(".a.db.vigil-tmp-997-0"), b"").unwrap();
        let removed = sweep(dir.path());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(dir.path().join("a.db-wal").exists(), "not vigil's");
        assert!(dir.path().join(".a.db.vigil-tmp-997-0-shm").exists(), "its database is still there");
    }
}
