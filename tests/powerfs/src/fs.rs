//! The in-memory tree (live and durable contents per inode) and the FUSE operations on it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::hold::{Gate, Held, HoldRule};
use crate::Counters;

const ROOT: u64 = 1;
/// Attribute and entry TTL: zero, so the kernel asks again on every access and caches nothing
/// that could hide an operation.
const TTL: Duration = Duration::ZERO;
/// Largest file size accepted (EFBIG beyond): contents live in memory, twice.
const MAX_FILE_SIZE: u64 = 4 << 30;
const NAME_MAX: usize = 255;
const BLOCK: u64 = 4096;
/// Capacity reported by statfs (nothing enforces it).
const REPORTED_BLOCKS: u64 = 1 << 30;
const REPORTED_INODES: u64 = 1 << 24;

/// A regular file's contents: what processes see, and what the disk holds as of the last fsync.
#[derive(Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Hull of the byte range where `live` may differ from `durable`; `None` means they are equal.
    /// Keeps fsync cheap on large, mostly unchanged files (fjall preallocates 64 MiB journals).
    dirty: Option<(usize, usize)>,
}

impl FileData {
    fn mark(&mut self, lo: usize, hi: usize) {
        self.dirty = Some(match self.dirty {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if end > self.live.len() {
            let old = self.live.len();
            self.live.resize(end, 0);
            // Bytes between the old end and `offset` became zeros.
            self.mark(old.min(offset), end);
        }
        self.live[offset..end].copy_from_slice(data);
        self.mark(offset, end);
    }

    fn set_len(&mut self, len: usize) {
        let old = self.live.len();
        if len != old {
            self.live.resize(len, 0);
            self.mark(old.min(len), old.max(len));
        }
    }

    /// fsync: the durable contents become the live contents.
    fn sync(&mut self) {
        if let Some((lo, hi)) = self.dirty.take() {
            self.durable.resize(self.live.len(), 0);
            let hi = hi.min(self.live.len());
            if lo < hi {
                self.durable[lo..hi].copy_from_slice(&self.live[lo..hi]);
            }
        }
    }
}

/// A directory. Entries carry a cookie (the readdir offset) that never changes while the entry
/// exists, so removing entries during a listing skips nothing.
struct Dir {
    by_name: BTreeMap<OsString, (u64, u64)>,
    by_cookie: BTreeMap<u64, OsString>,
    next_cookie: u64,
}

impl Dir {
    fn new() -> Dir {
        // Cookies 1 and 2 are "." and "..".
        Dir { by_name: BTreeMap::new(), by_cookie: BTreeMap::new(), next_cookie: 3 }
    }

    fn get(&self, name: &OsStr) -> Option<u64> {
        self.by_name.get(name).map(|&(ino, _)| ino)
    }

    fn insert(&mut self, name: OsString, ino: u64) {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        self.by_cookie.insert(cookie, name.clone());
        if let Some((_, old)) = self.by_name.insert(name, (ino, cookie)) {
            self.by_cookie.remove(&old);
        }
    }

    fn remove(&mut self, name: &OsStr) -> Option<u64> {
        let (ino, cookie) = self.by_name.remove(name)?;
        self.by_cookie.remove(&cookie);
        Some(ino)
    }
}

enum Body {
    File(FileData),
    Dir(Dir),
}

/// Where an inode is: its one directory entry (no hard links), or, once unlinked, the path it
/// had (fault predicates still see that path while it is open).
enum Link {
    Linked { parent: u64, name: OsString },
    Orphan(PathBuf),
}

struct Node {
    body: Body,
    link: Link,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    crtime: SystemTime,
    /// The kernel's lookup count; an unlinked inode is freed when it reaches zero.
    nlookup: u64,
}

impl Node {
    fn new(body: Body, link: Link, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node { body, link, perm, uid, gid, atime: now, mtime: now, ctime: now, crtime: now, nlookup: 0 }
    }

    fn file(&mut self) -> Result<&mut FileData, Errno> {
        match &mut self.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }
}

/// One entry of an image: a directory, or a file with its contents (trailing zeros cut off) and
/// its length. Paths are relative to the root; the root itself is not listed.
pub(crate) enum ImageEntry {
    Dir(PathBuf),
    File(PathBuf, Vec<u8>, u64),
}

pub(crate) struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
}

impl State {
    pub(crate) fn new() -> State {
        let mut root = Node::new(Body::Dir(Dir::new()), Link::Orphan(PathBuf::new()), 0o755, 0, 0);
        root.nlookup = 1;
        // SAFETY: getuid/getgid cannot fail.
        (root.uid, root.gid) = unsafe { (libc::getuid(), libc::getgid()) };
        State { nodes: HashMap::from([(ROOT, root)]), next_ino: ROOT + 1 }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&Dir, Errno> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut Dir, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?.get(name).ok_or(Errno::ENOENT)
    }

    /// The inode's path relative to the root (for an unlinked inode: the path it last had).
    pub(crate) fn path_of(&self, ino: u64) -> PathBuf {
        let mut names = Vec::new();
        let mut cur = ino;
        let mut base = PathBuf::new();
        while let Some(node) = self.nodes.get(&cur) {
            match &node.link {
                Link::Linked { parent, name } => {
                    names.push(name.clone());
                    cur = *parent;
                }
                Link::Orphan(path) => {
                    base.clone_from(path);
                    break;
                }
            }
        }
        names.into_iter().rev().fold(base, |p, n| p.join(n))
    }

    fn is_ancestor(&self, ancestor: u64, mut ino: u64) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.link) {
                Some(Link::Linked { parent, .. }) => ino = *parent,
                _ => return false,
            }
        }
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File(f) => {
                (FileType::RegularFile, f.live.len() as u64, u32::from(matches!(node.link, Link::Linked { .. })))
            }
            Body::Dir(d) => {
                let subdirs = d.by_name.values().filter(|(c, _)| self.nodes.get(c).is_some_and(Node::is_dir)).count();
                (FileType::Directory, BLOCK, 2 + subdirs as u32)
            }
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.atime,
            mtime: node.mtime,
            ctime: node.ctime,
            crtime: node.crtime,
            kind,
            perm: node.perm,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    /// Creates a node under `parent` (directory operations are durable at once: nothing else to do).
    fn create(&mut self, parent: u64, name: &OsStr, body: Body, perm: u16, req: &Request) -> Result<u64, Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.dir(parent)?.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let link = Link::Linked { parent, name: name.to_owned() };
        self.nodes.insert(ino, Node::new(body, link, perm, req.uid(), req.gid()));
        self.dir_mut(parent)?.insert(name.to_owned(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    fn touch_dir(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    /// Marks an inode whose entry was just removed as unlinked; frees it if the kernel holds no
    /// reference.
    fn orphan(&mut self, ino: u64, path: PathBuf) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.link = Link::Orphan(path);
            n.ctime = SystemTime::now();
            if n.nlookup == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    fn lookup_ref(&mut self, ino: u64) -> Result<FileAttr, Errno> {
        self.node_mut(ino)?.nlookup += 1;
        self.attr(ino)
    }

    fn remove_entry(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let node = self.node(ino)?;
        match (&node.body, want_dir) {
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            (Body::Dir(d), true) if !d.by_name.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let path = self.path_of(ino);
        self.dir_mut(parent)?.remove(name);
        self.touch_dir(parent);
        self.orphan(ino, path);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        if newname.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let src = self.child(parent, name)?;
        let src_is_dir = self.node(src)?.is_dir();
        let dst = self.dir(newparent)?.get(newname);
        if let Some(dst) = dst {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            match (&self.node(dst)?.body, src_is_dir) {
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (Body::File(_), true) => return Err(Errno::ENOTDIR),
                (Body::Dir(d), true) if !d.by_name.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        if src_is_dir && self.is_ancestor(src, newparent) {
            return Err(Errno::EINVAL);
        }
        if let Some(dst) = dst {
            let path = self.path_of(dst);
            self.dir_mut(newparent)?.remove(newname);
            self.orphan(dst, path);
        }
        self.dir_mut(parent)?.remove(name);
        self.dir_mut(newparent)?.insert(newname.to_owned(), src);
        let node = self.node_mut(src)?;
        node.link = Link::Linked { parent: newparent, name: newname.to_owned() };
        node.ctime = SystemTime::now();
        self.touch_dir(parent);
        self.touch_dir(newparent);
        Ok(())
    }

    /// The whole tree, each file with its durable or its live contents, directories before their
    /// entries.
    pub(crate) fn image(&self, durable: bool) -> Vec<ImageEntry> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, PathBuf::new())];
        while let Some((ino, path)) = stack.pop() {
            let Some(node) = self.nodes.get(&ino) else { continue };
            match &node.body {
                Body::Dir(d) => {
                    if ino != ROOT {
                        out.push(ImageEntry::Dir(path.clone()));
                    }
                    for (name, &(child, _)) in d.by_name.iter().rev() {
                        stack.push((child, path.join(name)));
                    }
                }
                Body::File(f) => {
                    let data = if durable { &f.durable } else { &f.live };
                    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    out.push(ImageEntry::File(path, data[..end].to_vec(), data.len() as u64));
                }
            }
        }
        out
    }

    fn used_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) => f.live.len().max(f.durable.len()) as u64,
                Body::Dir(_) => BLOCK,
            })
            .sum()
    }
}

/// What a fault rule does to a matching write.
pub(crate) enum Action {
    Fail(i32),
    Delay(Duration),
}

pub(crate) struct Rule {
    pub(crate) pred: Box<dyn Fn(&Path) -> bool + Send + Sync>,
    pub(crate) action: Action,
}

#[derive(Default)]
pub(crate) struct AtomicCounters {
    fsyncs: AtomicU64,
    dir_fsyncs: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
    faults_injected: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn get(&self) -> Counters {
        Counters {
            fsyncs: self.fsyncs.load(Ordering::SeqCst),
            dir_fsyncs: self.dir_fsyncs.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            bytes_written: self.bytes_written.load(Ordering::SeqCst),
            faults_injected: self.faults_injected.load(Ordering::SeqCst),
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::SeqCst);
}

/// Called after an fsync of a matching file took effect, with the durable image of that
/// instant, before the fsync returns to the process that asked for it.
pub(crate) struct FsyncHook {
    pub(crate) pred: Box<dyn Fn(&Path) -> bool + Send + Sync>,
    pub(crate) hook: Box<dyn Fn(Vec<ImageEntry>) + Send + Sync>,
}

/// Everything the FUSE threads and the `PowerFs` handle share.
pub(crate) struct Shared {
    state: Mutex<State>,
    rules: RwLock<Vec<Rule>>,
    holds: RwLock<Vec<HoldRule>>,
    after_fsync: RwLock<Option<FsyncHook>>,
    pub(crate) counters: AtomicCounters,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            state: Mutex::new(State::new()),
            rules: RwLock::new(Vec::new()),
            holds: RwLock::new(Vec::new()),
            after_fsync: RwLock::new(None),
            counters: AtomicCounters::default(),
        }
    }

    pub(crate) fn set_after_fsync(&self, hook: Option<FsyncHook>) {
        *self.after_fsync.write().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add_rule(&self, rule: Rule) {
        self.rules.write().unwrap_or_else(PoisonError::into_inner).push(rule);
    }

    pub(crate) fn clear_rules(&self) {
        self.rules.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    pub(crate) fn add_hold(&self, rule: HoldRule) {
        self.holds.write().unwrap_or_else(PoisonError::into_inner).push(rule);
    }

    /// Removes the hold whose gate is `gate` and lets everything waiting there through.
    pub(crate) fn release_hold(&self, gate: &Arc<Gate>) {
        self.holds.write().unwrap_or_else(PoisonError::into_inner).retain(|h| !Arc::ptr_eq(&h.gate, gate));
        gate.release();
    }

    /// Waits at the first hold on `what` whose predicate matches `ino`'s path, until it is
    /// released. Runs without the state lock held while waiting.
    fn hold_point(&self, what: Held, ino: u64) {
        let holds = self.holds.read().unwrap_or_else(PoisonError::into_inner);
        if holds.iter().all(|h| h.what != what) {
            return;
        }
        let path = self.state().path_of(ino);
        let gate = holds.iter().find(|h| h.what == what && (h.pred)(&path)).map(|h| h.gate.clone());
        drop(holds);
        if let Some(gate) = gate {
            gate.pass();
        }
    }

    /// Applies the fault rules to a write to `ino`: sleeps for the first matching delay, then
    /// fails with the first matching errno. Runs without the state lock held while sleeping.
    fn gate(&self, ino: u64) -> Result<(), Errno> {
        self.hold_point(Held::Writes, ino);
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        if rules.is_empty() {
            return Ok(());
        }
        let path = self.state().path_of(ino);
        let (mut delay, mut fail) = (None, None);
        for rule in rules.iter() {
            if !(rule.pred)(&path) {
                continue;
            }
            match rule.action {
                Action::Delay(d) if delay.is_none() => delay = Some(d),
                Action::Fail(e) if fail.is_none() => fail = Some(e),
                _ => {}
            }
        }
        drop(rules);
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        match fail {
            Some(e) => {
                bump(&self.counters.faults_injected, 1);
                Err(Errno::from_i32(e))
            }
            None => Ok(()),
        }
    }

    fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        bump(&self.counters.writes, 1);
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.state().node(ino)?;
        self.gate(ino)?;
        let mut st = self.state();
        let node = st.node_mut(ino)?;
        node.file()?.write(offset as usize, data);
        let now = SystemTime::now();
        node.mtime = now;
        node.ctime = now;
        bump(&self.counters.bytes_written, data.len() as u64);
        Ok(data.len() as u32)
    }

    /// Sets a file's live size; growth is a write as far as faults are concerned.
    fn set_size(&self, ino: u64, size: u64) -> Result<(), Errno> {
        if size > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let grows = size > self.state().node_mut(ino)?.file()?.live.len() as u64;
        if grows {
            self.gate(ino)?;
        }
        let mut st = self.state();
        let node = st.node_mut(ino)?;
        node.file()?.set_len(size as usize);
        let now = SystemTime::now();
        node.mtime = now;
        node.ctime = now;
        Ok(())
    }

    fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> Result<(), Errno> {
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.state().node_mut(ino)?.file()?;
        self.gate(ino)?;
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            // Reserving blocks without changing the size changes nothing this model keeps.
            return Ok(());
        }
        let mut st = self.state();
        let f = st.node_mut(ino)?.file()?;
        if end as usize > f.live.len() {
            f.set_len(end as usize);
        }
        Ok(())
    }
}

/// The `fuser::Filesystem` over the shared state.
pub(crate) struct Ops(pub(crate) Arc<Shared>);

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for Ops {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.0.state();
        match st.child(parent.0, name).and_then(|ino| st.lookup_ref(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut st = self.0.state();
        if ino.0 == ROOT {
            return;
        }
        if let Some(n) = st.nodes.get_mut(&ino.0) {
            n.nlookup = n.nlookup.saturating_sub(nlookup);
            if n.nlookup == 0 && matches!(n.link, Link::Orphan(_)) {
                st.nodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.state().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if let Some(size) = size {
            if let Err(e) = self.0.set_size(ino.0, size) {
                return reply.error(e);
            }
        }
        let mut st = self.0.state();
        let Ok(node) = st.node_mut(ino.0) else { return reply.error(Errno::ENOENT) };
        let resolve = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        node.uid = uid.unwrap_or(node.uid);
        node.gid = gid.unwrap_or(node.gid);
        node.atime = atime.map_or(node.atime, resolve);
        node.mtime = mtime.map_or(node.mtime, resolve);
        node.ctime = SystemTime::now();
        match st.attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
            // Only regular files are modelled.
            return reply.error(Errno::ENOSYS);
        }
        let mut st = self.0.state();
        let body = Body::File(FileData::default());
        match st.create(parent.0, name, body, perm(mode, umask), req).and_then(|ino| st.lookup_ref(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut st = self.0.state();
        let body = Body::Dir(Dir::new());
        match st.create(parent.0, name, body, perm(mode, umask), req).and_then(|ino| st.lookup_ref(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.0.state().remove_entry(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.0.state().remove_entry(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _target: &Path, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.0.state().rename(parent.0, name, newparent.0, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::ENOSYS);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // No FOPEN_DIRECT_IO (page cache stays coherent: every write is write-through, and the
        // cache is dropped on each open) and no FOPEN_KEEP_CACHE.
        match self.0.state().node(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.0.state();
        match st.node_mut(ino.0).and_then(Node::file) {
            Ok(f) => {
                let start = (offset as usize).min(f.live.len());
                let end = start.saturating_add(size as usize).min(f.live.len());
                reply.data(&f.live[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.0.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        bump(&self.0.counters.fsyncs, 1);
        self.0.hold_point(Held::Fsyncs, ino.0);
        let hook = self.0.after_fsync.read().unwrap_or_else(PoisonError::into_inner);
        let mut st = self.0.state();
        match st.node_mut(ino.0) {
            Ok(node) => {
                if let Body::File(f) = &mut node.body {
                    f.sync();
                }
                // The image is taken under the state lock, so it is this fsync's instant; the
                // hook runs after the lock is released and before the fsync returns.
                let image = hook.as_ref().filter(|h| (h.pred)(&st.path_of(ino.0))).map(|h| (h, st.image(true)));
                drop(st);
                if let Some((h, image)) = image {
                    (h.hook)(image);
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.0.state().dir(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let st = self.0.state();
        let (dir, parent) = match (st.dir(ino.0), st.node(ino.0).map(|n| &n.link)) {
            (Ok(d), Ok(Link::Linked { parent, .. })) => (d, *parent),
            (Ok(d), Ok(Link::Orphan(_))) => (d, ROOT),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let dots = [(1, ino.0, OsStr::new(".")), (2, parent, OsStr::new(".."))];
        let entries = dots.into_iter().filter(|&(cookie, _, _)| cookie > offset).chain(
            dir.by_cookie
                .range(offset.max(2) + 1..)
                .filter_map(|(&cookie, name)| dir.get(name).map(|child| (cookie, child, name.as_os_str()))),
        );
        for (cookie, child, name) in entries {
            let kind = match st.nodes.get(&child) {
                Some(n) if n.is_dir() => FileType::Directory,
                _ => FileType::RegularFile,
            };
            if reply.add(INodeNo(child), cookie, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory operations are durable when they return: nothing is pending.
        bump(&self.0.counters.dir_fsyncs, 1);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = self.0.state();
        let used = st.used_bytes().div_ceil(BLOCK).min(REPORTED_BLOCKS);
        let free = REPORTED_BLOCKS - used;
        let ffree = REPORTED_INODES.saturating_sub(st.nodes.len() as u64);
        reply.statfs(REPORTED_BLOCKS, free, free, REPORTED_INODES, ffree, BLOCK as u32, NAME_MAX as u32, BLOCK as u32);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.0.state().node(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.0.state();
        let ino = match st.dir(parent.0).map(|d| d.get(name)) {
            Err(e) => return reply.error(e),
            // Lost a race with another creator: behave like open(2) on the existing file.
            Ok(Some(_)) if flags & libc::O_EXCL != 0 => return reply.error(Errno::EEXIST),
            Ok(Some(ino)) => match st.node_mut(ino).and_then(Node::file) {
                Err(e) => return reply.error(e),
                Ok(f) => {
                    if flags & libc::O_TRUNC != 0 {
                        // Truncation is a change of contents: not durable until fsync.
                        f.set_len(0);
                    }
                    ino
                }
            },
            Ok(None) => {
                let body = Body::File(FileData::default());
                match st.create(parent.0, name, body, perm(mode, umask), req) {
                    Ok(ino) => ino,
                    Err(e) => return reply.error(e),
                }
            }
        };
        match st.lookup_ref(ino) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.0.fallocate(ino.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FileData;

    /// The dirty-range bookkeeping must make `durable` exactly `live` at every fsync.
    #[test]
    fn sync_copies_exactly_the_live_contents() {
        let mut f = FileData::default();
        let check = |f: &mut FileData| {
            f.sync();
            assert_eq!(f.durable, f.live);
            assert!(f.dirty.is_none());
        };
        f.write(0, b"hello");
        check(&mut f);
        f.write(10, b"x");
        check(&mut f);
        f.set_len(3);
        f.set_len(12);
        check(&mut f);
        assert_eq!(f.live, b"hel\0\0\0\0\0\0\0\0\0");
        f.write(2, b"ZZ");
        f.set_len(64 << 10);
        f.write((64 << 10) - 1, b"!");
        check(&mut f);
        f.set_len(0);
        check(&mut f);
        assert!(f.durable.is_empty());
    }

    #[test]
    fn unsynced_changes_leave_durable_alone() {
        let mut f = FileData::default();
        f.write(0, b"abc");
        f.sync();
        f.write(3, b"def");
        f.set_len(1);
        assert_eq!(f.durable, b"abc");
        assert_eq!(f.live, b"a");
    }
}
