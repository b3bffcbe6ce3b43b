//! An in-memory FUSE filesystem that models a power loss, for crash-consistency tests.
//!
//! [`PowerFs::mount`] mounts an empty filesystem on a directory. Processes use it like any other
//! (through the kernel: `std::fs`, fjall, ...). Beside the *live* state that every process sees,
//! it keeps the *durable image*: what a disk would hold after a power cut at this instant.
//! [`PowerFs::write_durable_image`] writes that image out as real files and directories, so a
//! test can reopen its store there and check what survived; [`PowerFs::write_live_image`] does
//! the same for the live state (what a process crash, rather than a power cut, leaves).
//!
//! # The durability model
//!
//! These invariants hold at every instant, and so in every image:
//!
//! 1. **Directory operations are durable at once, in order** (a journaling filesystem's ordered
//!    metadata): create/mknod, mkdir, unlink, rmdir and rename — including a rename that replaces
//!    an existing target — are in the durable image as soon as they return, and an image never
//!    shows a later one without an earlier one. So the durable tree of names always equals the
//!    live tree. `fsyncdir` succeeds and changes nothing (there is nothing pending).
//! 2. **A regular file's contents — its bytes and its size — are durable only as of its last
//!    `fsync` or `fdatasync`.** Every inode holds `live` and `durable` contents; fsync copies
//!    live to durable. Writes, extensions, `set_len`/truncation (setattr of the size, `O_TRUNC`)
//!    and `fallocate` change only `live`. A file created and never fsynced exists in the durable
//!    image with empty contents. `close` (FUSE `flush`/`release`) makes nothing durable.
//! 3. **Contents belong to inodes, names to directories.** A rename moves the inode, so the
//!    durable image maps each path to the durable contents of the inode that the path names
//!    now: an fsynced temporary file renamed over a target makes the target's durable contents
//!    the temporary file's fsynced ones, at once; an unsynced file renamed over a target leaves
//!    the target with the (possibly empty) durable contents of the renamed inode.
//! 4. **An image is atomic** with respect to filesystem operations: it is copied under the
//!    lock that every operation takes, and written out after that lock is released.
//!
//! What the kernel could otherwise hide is kept out of the way: no writeback cache (every
//! `write` reaches this filesystem before the syscall returns; the page cache is write-through
//! and is dropped on each open), attribute and entry TTLs are zero, and `fsync` is implemented
//! (so the kernel never stops sending it). [`Counters`] shows what arrived.
//!
//! Not modelled (a real disk may do these; this model never does): torn or reordered writes
//! within a file's unsynced data (a power cut here loses *all* of a file's unsynced changes,
//! never part of them), lost directory operations, and fsync failures. Hard links and symlinks
//! are not supported (`ENOSYS`), nor are device nodes, FIFOs or sockets; permissions are stored
//! but not enforced; extended attributes are unsupported; file contents live in memory, twice
//! (files are limited to 4 GiB). Images keep names, directories and contents, not modes or times.
//!
//! # Faults
//!
//! [`PowerFs::fail_writes`] makes writes to chosen files fail with an errno (for instance
//! `ENOSPC`), [`PowerFs::delay_writes`] slows them down; both take a predicate on the path
//! relative to the mount root (an unlinked but still open file keeps the path it last had).
//! A "write" is a `write`, an `fallocate`, or a setattr that grows the size.
//! [`PowerFs::hold`] stops chosen writes or fsyncs until the test lets them go, to force an
//! interleaving of the threads under test rather than hope for it.
//!
//! # Mounting
//!
//! fuser's pure-Rust mount is used (no libfuse, no `fusermount`): it opens `/dev/fuse` and calls
//! `mount(2)` itself, which needs root (`CAP_SYS_ADMIN`). Failures come back as [`MountError`];
//! nothing is skipped silently. Dropping the [`PowerFs`] unmounts it (lazily, with
//! `MNT_DETACH`, if files are still open there). The filesystem is served by a few threads of
//! the test process itself.

mod fs;
mod hold;

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fs::{Action, FsyncHook, ImageEntry, Ops, Rule, Shared};
pub use hold::Held;
use hold::{Gate, HoldRule};

/// Event-loop threads serving the filesystem: a delayed write blocks only its own thread.
const THREADS: usize = 4;

/// A mounted power-loss filesystem. Unmounts on drop.
pub struct PowerFs {
    session: Option<fuser::BackgroundSession>,
    shared: Arc<Shared>,
    mountpoint: PathBuf,
}

/// Operations stopped by [`PowerFs::hold`]; dropping it lets them through.
pub struct Hold {
    shared: Arc<Shared>,
    gate: Arc<Gate>,
}

impl Hold {
    /// Waits until `n` matching operations have arrived at this hold (each is then waiting
    /// there), or `timeout` passed; true if they did.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        self.gate.wait_arrived(n, timeout)
    }

    /// Lets every held operation through and holds no more.
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.shared.release_hold(&self.gate);
    }
}

/// What was written out by [`PowerFs::write_durable_image`] or [`PowerFs::write_live_image`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageStats {
    /// Directories written, not counting the root.
    pub dirs: u64,
    /// Regular files written.
    pub files: u64,
    /// Sum of the files' lengths.
    pub bytes: u64,
}

/// Operations seen since the mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `fsync`/`fdatasync` requests on regular files.
    pub fsyncs: u64,
    /// `fsyncdir` requests (an `fsync` on an open directory).
    pub dir_fsyncs: u64,
    /// `write` requests, including those that failed.
    pub writes: u64,
    /// Bytes accepted by successful writes.
    pub bytes_written: u64,
    /// Writes, fallocates and size growths failed by a [`PowerFs::fail_writes`] rule.
    pub faults_injected: u64,
}

/// Why [`PowerFs::mount`] failed.
#[derive(Debug)]
pub struct MountError {
    mountpoint: PathBuf,
    source: io::Error,
}

impl MountError {
    /// The underlying error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot mount powerfs at {}: {}", self.mountpoint.display(), self.source)?;
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            f.write_str(" (the pure-Rust FUSE mount calls mount(2) itself, which needs root; without it fuser falls back to a fusermount binary)")?;
        } else if !Path::new("/dev/fuse").exists() {
            f.write_str(" (/dev/fuse is missing: load the fuse module or pass the device to the container)")?;
        }
        Ok(())
    }
}

impl std::error::Error for MountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl PowerFs {
    /// Mounts a fresh, empty filesystem at `mountpoint`, an existing empty directory. When this
    /// returns, the filesystem is serving requests.
    pub fn mount(mountpoint: &Path) -> Result<PowerFs, MountError> {
        let error = |source| MountError { mountpoint: mountpoint.to_owned(), source };
        let canonical = mountpoint.canonicalize().map_err(error)?;
        if canonical.read_dir().map_err(error)?.next().is_some() {
            return Err(error(io::Error::new(io::ErrorKind::DirectoryNotEmpty, "the mountpoint must be empty")));
        }
        let shared = Arc::new(Shared::new());
        let mut config = fuser::Config::default();
        config.mount_options =
            vec![fuser::MountOption::FSName("powerfs".into()), fuser::MountOption::NoAtime, fuser::MountOption::NoExec];
        config.n_threads = Some(THREADS);
        let session = fuser::spawn_mount(Ops(shared.clone()), &canonical, &config).map_err(error)?;
        Ok(PowerFs { session: Some(session), shared, mountpoint: canonical })
    }

    /// The (canonical) mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Writes the durable image — what a power cut now would leave — under `dest` as real
    /// directories and files. `dest` is created if missing and must otherwise be empty.
    pub fn write_durable_image(&self, dest: &Path) -> io::Result<ImageStats> {
        let image = self.shared.state().image(true);
        write_image(image, dest)
    }

    /// Writes the live state — what a process crash, not a power cut, would leave — under
    /// `dest`, like [`PowerFs::write_durable_image`]. Useful as a control.
    pub fn write_live_image(&self, dest: &Path) -> io::Result<ImageStats> {
        let image = self.shared.state().image(false);
        write_image(image, dest)
    }

    /// From now on, writes (`write`, `fallocate`, a setattr that grows the size) to files whose
    /// path relative to the mount root matches `pred` fail with `errno` (e.g. `libc::ENOSPC`).
    /// Rules accumulate; the first matching one decides. [`PowerFs::clear_faults`] removes them.
    /// `pred` runs on a filesystem thread and must not touch the mount, nor panic.
    pub fn fail_writes(&self, pred: impl Fn(&Path) -> bool + Send + Sync + 'static, errno: i32) {
        self.shared.add_rule(Rule { pred: Box::new(pred), action: Action::Fail(errno) });
    }

    /// From now on, each write (as for [`PowerFs::fail_writes`]) to a path matching `pred`
    /// sleeps `delay` before it is applied, to widen races in the code under test. Only the
    /// filesystem thread serving that write sleeps. [`PowerFs::clear_faults`] removes it.
    pub fn delay_writes(&self, pred: impl Fn(&Path) -> bool + Send + Sync + 'static, delay: Duration) {
        self.shared.add_rule(Rule { pred: Box::new(pred), action: Action::Delay(delay) });
    }

    /// From now on, every operation of kind `what` on a file whose path matches `pred` waits
    /// on its filesystem thread (before it takes effect) until the returned [`Hold`] is
    /// released or dropped: a test can stop a process inside a chosen write or fsync, do
    /// something else meanwhile, and let it go on. Holds are checked before fault rules.
    /// Each blocked operation occupies one of the filesystem's few threads.
    pub fn hold(&self, what: Held, pred: impl Fn(&Path) -> bool + Send + Sync + 'static) -> Hold {
        let gate = Arc::new(Gate::default());
        self.shared.add_hold(HoldRule { what, pred: Box::new(pred), gate: gate.clone() });
        Hold { shared: self.shared.clone(), gate }
    }

    /// Removes every rule added by [`PowerFs::fail_writes`] and [`PowerFs::delay_writes`].
    pub fn clear_faults(&self) {
        self.shared.clear_rules();
    }

    /// From now on, after each `fsync`/`fdatasync` of a file whose path matches `pred` has
    /// taken effect, `hook` receives the durable image of that instant, before the fsync
    /// returns to the process that asked for it (which waits meanwhile): a test sees every
    /// state a power cut right after such an fsync would leave. Replaces an earlier hook.
    /// Both run on a filesystem thread and must not touch the mount.
    pub fn after_fsync(
        &self,
        pred: impl Fn(&Path) -> bool + Send + Sync + 'static,
        hook: impl Fn(Image) + Send + Sync + 'static,
    ) {
        let hook = move |entries| hook(Image(entries));
        self.shared.set_after_fsync(Some(FsyncHook { pred: Box::new(pred), hook: Box::new(hook) }));
    }

    /// Removes the hook of [`PowerFs::after_fsync`].
    pub fn clear_after_fsync(&self) {
        self.shared.set_after_fsync(None);
    }

    /// Operations seen since the mount.
    pub fn counters(&self) -> Counters {
        self.shared.counters.get()
    }
}

impl fmt::Debug for PowerFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerFs").field("mountpoint", &self.mountpoint).finish_non_exhaustive()
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        let device = std::fs::metadata(&self.mountpoint).ok().map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        // A plain umount(2) fails with EBUSY while files are open on the mount (a store that a
        // panicking test never closed, a thread of it still running). Then the connection is
        // aborted, so every request still waiting, and every later one, fails at once instead
        // of waiting for serving threads that die with the process (which would leave it
        // unable to exit), and the mount is detached, so nothing stays mounted.
        if session.umount_and_join().is_err() && is_mounted(&self.mountpoint) {
            if let Some(dev) = device {
                abort_connection(dev);
            }
            if let Ok(path) = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
                // SAFETY: `path` is a valid NUL-terminated string.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Aborts the FUSE connection of the filesystem on device `dev` through fusectl (mounted at
/// its usual place first if it is not), as `echo 1 > /sys/fs/fuse/connections/N/abort` does.
fn abort_connection(dev: u64) {
    let dir = Path::new("/sys/fs/fuse/connections");
    if dir.read_dir().is_ok_and(|mut d| d.next().is_none()) {
        let (src, target, fstype) = (c"fusectl", c"/sys/fs/fuse/connections", c"fusectl");
        // SAFETY: all arguments are valid NUL-terminated strings; no data is passed.
        unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    }
    // The connection is named by the device's minor number.
    let minor = libc::minor(dev);
    let _ = std::fs::write(dir.join(minor.to_string()).join("abort"), "1");
}

/// Whether `path` is a mount point of a FUSE filesystem, per /proc/self/mounts.
fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return true };
    let escaped = path.to_string_lossy().replace(' ', "\\040").replace('\t', "\\011").replace('\n', "\\012");
    mounts.lines().any(|line| {
        let mut fields = line.split(' ');
        let (_source, target, fstype) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
        target == Some(escaped.as_str()) && fstype.starts_with("fuse")
    })
}

/// A durable image taken by [`PowerFs::after_fsync`].
pub struct Image(Vec<ImageEntry>);

impl Image {
    /// Writes the image under `dest` as [`PowerFs::write_durable_image`] does.
    pub fn write_to(self, dest: &Path) -> io::Result<ImageStats> {
        write_image(self.0, dest)
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image").field("entries", &self.0.len()).finish()
    }
}

fn write_image(image: Vec<ImageEntry>, dest: &Path) -> io::Result<ImageStats> {
    std::fs::create_dir_all(dest)?;
    if dest.read_dir()?.next().is_some() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not empty", dest.display())));
    }
    let mut stats = ImageStats::default();
    for entry in image {
        match entry {
            ImageEntry::Dir(path) => {
                std::fs::create_dir(dest.join(path))?;
                stats.dirs += 1;
            }
            ImageEntry::File(path, data, len) => {
                // Only the contents up to the last non-zero byte are written; the rest is a hole.
                let mut file = File::create(dest.join(path))?;
                file.write_all(&data)?;
                file.set_len(len)?;
                stats.files += 1;
                stats.bytes += len;
            }
        }
    }
    Ok(stats)
}
