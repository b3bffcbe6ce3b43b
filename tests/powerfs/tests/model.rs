//! The durability model, fault injection and unmounting, checked through real syscalls on a
//! mounted PowerFs.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use splitstore_powerfs::{ImageStats, PowerFs};
use tempfile::TempDir;

/// A PowerFs mounted on its own temporary directory, plus a scratch directory for images.
struct Fixture {
    // Field order is drop order: unmount before the mountpoint directory is removed.
    fs: PowerFs,
    _mnt: TempDir,
    scratch: TempDir,
}

fn mount() -> Fixture {
    let mnt = tempfile::tempdir().unwrap();
    let fs = PowerFs::mount(mnt.path()).unwrap_or_else(|e| panic!("{e}"));
    Fixture { fs, _mnt: mnt, scratch: tempfile::tempdir().unwrap() }
}

impl Fixture {
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.fs.mountpoint().join(rel)
    }

    /// The durable image, written to a fresh directory, read back as (relative path, contents).
    fn durable(&self, tag: &str) -> Image {
        let dest = self.scratch.path().join(format!("durable-{tag}"));
        let stats = self.fs.write_durable_image(&dest).unwrap();
        Image { root: dest, stats }
    }

    fn live(&self, tag: &str) -> Image {
        let dest = self.scratch.path().join(format!("live-{tag}"));
        let stats = self.fs.write_live_image(&dest).unwrap();
        Image { root: dest, stats }
    }
}

struct Image {
    root: std::path::PathBuf,
    stats: ImageStats,
}

impl Image {
    fn read(&self, rel: &str) -> Option<Vec<u8>> {
        match fs::read(self.root.join(rel)) {
            Ok(data) => Some(data),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("{rel}: {e}"),
        }
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.root.join(rel).is_dir()
    }
}

fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(path.to_str().unwrap()))
}

#[test]
fn file_contents_are_durable_only_as_of_the_last_fsync() {
    let fx = mount();
    let mut f = File::create(fx.path("data")).unwrap();
    f.write_all(b"hello").unwrap();

    // Written, not synced: the name is durable (directory op), the contents are not.
    assert_eq!(fx.live("1").read("data").as_deref(), Some(&b"hello"[..]));
    assert_eq!(fx.durable("1").read("data").as_deref(), Some(&b""[..]));

    let before = fx.fs.counters();
    f.sync_all().unwrap();
    assert_eq!(fx.fs.counters().fsyncs, before.fsyncs + 1, "the fsync must reach the filesystem");
    assert_eq!(fx.durable("2").read("data").as_deref(), Some(&b"hello"[..]));

    // An unsynced append: the durable image keeps the synced prefix only.
    f.write_all(b" world").unwrap();
    assert_eq!(fx.durable("3").read("data").as_deref(), Some(&b"hello"[..]));
    assert_eq!(fx.live("3").read("data").as_deref(), Some(&b"hello world"[..]));

    // Unsynced truncation is not durable either.
    f.set_len(2).unwrap();
    assert_eq!(fx.live("4").read("data").as_deref(), Some(&b"he"[..]));
    assert_eq!(fx.durable("4").read("data").as_deref(), Some(&b"hello"[..]));

    // fdatasync counts like fsync: the truncation and a write past the end (a hole) are durable.
    f.write_all(b"!").unwrap(); // at offset 11 (the cursor), leaving zeros in 2..11
    f.sync_data().unwrap();
    let expected = b"he\0\0\0\0\0\0\0\0\0!";
    assert_eq!(fx.durable("5").read("data").as_deref(), Some(&expected[..]));

    // Closing makes nothing durable.
    f.write_all(b"?").unwrap();
    drop(f);
    assert_eq!(fx.durable("6").read("data").as_deref(), Some(&expected[..]));
}

#[test]
fn set_len_growth_is_not_durable_until_fsync() {
    // fjall preallocates its journals with set_len; the size itself is file contents here.
    let fx = mount();
    let f = File::create(fx.path("journal")).unwrap();
    f.set_len(1 << 20).unwrap();
    assert_eq!(fx.durable("1").read("journal").unwrap().len(), 0);
    f.sync_all().unwrap();
    let durable = fx.durable("2");
    let data = durable.read("journal").unwrap();
    assert_eq!(data.len(), 1 << 20);
    assert!(data.iter().all(|&b| b == 0));
    assert_eq!(durable.stats, ImageStats { dirs: 0, files: 1, bytes: 1 << 20 });

    // fallocate (mode 0) extends the live size only, like set_len.
    // SAFETY: a valid open descriptor.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 3 << 20) }, 0);
    assert_eq!(f.metadata().unwrap().len(), 3 << 20);
    assert_eq!(fx.durable("3").read("journal").unwrap().len(), 1 << 20);
    assert_eq!(fx.live("3").read("journal").unwrap().len(), 3 << 20);
}

#[test]
fn rename_over_a_target_is_durable_at_once_and_carries_the_renamed_inode() {
    let fx = mount();
    fs::create_dir(fx.path("db")).unwrap();
    let mut cur = File::create(fx.path("db/current")).unwrap();
    cur.write_all(b"old").unwrap();
    cur.sync_all().unwrap();
    drop(cur);

    // The atomic-rewrite pattern: write a temp file, fsync it, rename it over the target.
    let mut tmp = File::create(fx.path("db/current.tmp")).unwrap();
    tmp.write_all(b"new").unwrap();
    tmp.sync_all().unwrap();
    drop(tmp);
    fs::rename(fx.path("db/current.tmp"), fx.path("db/current")).unwrap();

    // No fsync of the directory: the rename is durable anyway, with the fsynced contents.
    let img = fx.durable("1");
    assert_eq!(img.read("db/current").as_deref(), Some(&b"new"[..]));
    assert_eq!(img.read("db/current.tmp"), None);

    // Renaming an unsynced file over the target replaces it with that inode's durable contents:
    // empty. (The model has no rename-replace heuristics.)
    let mut tmp = File::create(fx.path("db/current.tmp")).unwrap();
    tmp.write_all(b"newer").unwrap();
    drop(tmp);
    fs::rename(fx.path("db/current.tmp"), fx.path("db/current")).unwrap();
    assert_eq!(fx.durable("2").read("db/current").as_deref(), Some(&b""[..]));
    assert_eq!(fx.live("2").read("db/current").as_deref(), Some(&b"newer"[..]));

    // Directory renames move whole subtrees.
    fs::rename(fx.path("db"), fx.path("db2")).unwrap();
    let img = fx.durable("3");
    assert!(!img.is_dir("db"));
    assert_eq!(img.read("db2/current").as_deref(), Some(&b""[..]));
}

#[test]
fn directory_operations_are_durable_at_once() {
    let fx = mount();
    fs::create_dir_all(fx.path("a/b")).unwrap();
    let mut f = File::create(fx.path("a/b/gone")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    File::create(fx.path("a/kept")).unwrap();
    let img = fx.durable("1");
    assert!(img.is_dir("a/b"));
    assert_eq!(img.read("a/b/gone").as_deref(), Some(&b"x"[..]));
    assert_eq!(img.stats, ImageStats { dirs: 2, files: 2, bytes: 1 });

    fs::remove_file(fx.path("a/b/gone")).unwrap();
    fs::remove_dir(fx.path("a/b")).unwrap();
    let img = fx.durable("2");
    assert_eq!(img.read("a/b/gone"), None);
    assert!(!img.is_dir("a/b"));
    assert_eq!(img.read("a/kept").as_deref(), Some(&b""[..]));

    // The unlinked file is still usable through its open descriptor, and still absent.
    f.write_all(b"y").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fx.durable("3").read("a/b/gone"), None);
    assert_eq!(fx.live("3").stats, ImageStats { dirs: 1, files: 1, bytes: 0 });
}

#[test]
fn posix_errors_for_bad_directory_operations() {
    let fx = mount();
    fs::create_dir_all(fx.path("d/sub")).unwrap();
    File::create(fx.path("f")).unwrap();
    assert_eq!(fs::remove_dir(fx.path("d")).unwrap_err().kind(), ErrorKind::DirectoryNotEmpty);
    assert_eq!(fs::remove_dir(fx.path("f")).unwrap_err().kind(), ErrorKind::NotADirectory);
    assert_eq!(fs::remove_file(fx.path("d")).unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(fs::rename(fx.path("f"), fx.path("d")).unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(fs::rename(fx.path("d"), fx.path("d/sub/x")).unwrap_err().kind(), ErrorKind::InvalidInput);
    let err = OpenOptions::new().write(true).create_new(true).open(fx.path("f")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(std::os::unix::fs::symlink("f", fx.path("link")).is_err());
}

#[test]
fn removing_entries_while_listing_skips_none() {
    // lsm-tree deletes files while iterating read_dir; readdir offsets must survive that.
    let fx = mount();
    fs::create_dir(fx.path("many")).unwrap();
    for i in 0..500 {
        File::create(fx.path(&format!("many/file-with-a-longish-name-{i:04}"))).unwrap();
    }
    let mut seen = 0;
    for entry in fs::read_dir(fx.path("many")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
        seen += 1;
    }
    assert_eq!(seen, 500);
    assert_eq!(fs::read_dir(fx.path("many")).unwrap().count(), 0);
}

#[test]
fn injected_enospc_reaches_the_writer_until_cleared() {
    let fx = mount();
    fx.fs.fail_writes(|p| p.extension().is_some_and(|e| e == "jnl"), libc::ENOSPC);
    let mut jnl = File::create(fx.path("0.jnl")).unwrap();
    let err = jnl.write_all(b"batch").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    let err = jnl.set_len(4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    // Other files are unaffected.
    File::create(fx.path("other")).unwrap().write_all(b"ok").unwrap();
    assert_eq!(fx.fs.counters().faults_injected, 2);
    assert_eq!(fs::read(fx.path("0.jnl")).unwrap(), b"");

    fx.fs.clear_faults();
    jnl.write_all(b"batch").unwrap();
    jnl.sync_all().unwrap();
    assert_eq!(fx.durable("1").read("0.jnl").as_deref(), Some(&b"batch"[..]));
    assert_eq!(fx.fs.counters().faults_injected, 2);
}

#[test]
fn delayed_writes_are_slow_and_still_applied() {
    let fx = mount();
    let delay = Duration::from_millis(300);
    fx.fs.delay_writes(|p| p.starts_with("slow"), delay);
    fs::create_dir(fx.path("slow")).unwrap();
    let mut f = File::create(fx.path("slow/x")).unwrap();
    let start = Instant::now();
    f.write_all(b"abc").unwrap();
    assert!(start.elapsed() >= delay, "the write returned after {:?}", start.elapsed());
    assert_eq!(fs::read(fx.path("slow/x")).unwrap(), b"abc");
    fx.fs.clear_faults();
    let start = Instant::now();
    f.write_all(b"d").unwrap();
    assert!(start.elapsed() < delay);
}

#[test]
fn unmounts_on_drop_even_with_open_files_and_on_panic() {
    let mnt = tempfile::tempdir().unwrap();
    let fs = PowerFs::mount(mnt.path()).unwrap();
    let mountpoint = fs.mountpoint().to_owned();
    assert!(is_mounted(&mountpoint));
    let open = File::create(mountpoint.join("held-open")).unwrap();
    drop(fs);
    assert!(!is_mounted(&mountpoint), "still mounted with a file open");
    drop(open);

    let result = std::panic::catch_unwind(|| {
        let fs = PowerFs::mount(mnt.path()).unwrap();
        File::create(fs.mountpoint().join("x")).unwrap();
        panic!("test failure inside a mount");
    });
    assert!(result.is_err());
    assert!(!is_mounted(&mountpoint), "still mounted after a panic");
}

#[test]
fn mount_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    File::create(dir.path().join("occupied")).unwrap();
    let err = PowerFs::mount(dir.path()).unwrap_err();
    assert_eq!(err.io_error().kind(), ErrorKind::DirectoryNotEmpty);
    assert!(err.to_string().contains("cannot mount powerfs"), "{err}");
    let err = PowerFs::mount(&dir.path().join("missing")).unwrap_err();
    assert_eq!(err.io_error().kind(), ErrorKind::NotFound);
}
