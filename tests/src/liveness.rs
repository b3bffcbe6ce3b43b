//! What must be, and what may be, in each store after a compaction that ran beside a
//! foreground, stated as the reference's rules over what the foreground did, never as what
//! this implementation happened to mark.
//!
//! The rules (`docs/design.md`, "Live set"), for a compaction from head `H` with boundaries `b`:
//!
//! * **Chain**: the live set of `H` under `b` ([`Universe::live_set`]), among the blocks there
//!   when the compaction began, stays hot.
//! * **Touch**: every block written during the compaction, every tipset applied, and every
//!   block a read found before the critical section stays hot with its DAG. The DAG is walked
//!   as the reference walks a transactional reference: it stops at the chain's live set (an
//!   old header is kept by the chain rule, its old state is not). A block the store had
//!   already deleted when the touch began is not brought back by it (the reference cannot
//!   either), so the walk skips blocks deleted before the touch; tipsets applied are the
//!   exception: with sync checks on, the purge waits for a fresh head, so the state a node
//!   computed from the compaction's head before a header named it must still be there.
//!   A read in the critical section is answered from the mark set (an unmarked hot block is
//!   as good as purged), so a block it found stays, with its DAG, in hot or cold.
//! * **Nothing else stays hot**: the hot store holds only the chain's live set and the DAGs
//!   of what the foreground touched or tried to write (a write whose future was dropped may
//!   land, so its DAG may be kept).
//! * **Modes**: discard leaves cold as it was; universal loses no block (what leaves hot is in
//!   cold); messages copies every block of an old message or receipt DAG that leaves hot to
//!   cold, and nothing else.
//! * **No holes**: no kept block links a block the store deleted, unless the block was
//!   written after that deletion (a node may link what it knew of earlier).
//!
//! "Deleted" comes from the store's own deletions, logged by [`crate::wrap::DeletesKv`] on an
//! [`Events`] clock shared with the foreground, so a block the store deleted is told apart
//! from one that was never written or that a crash lost. Blocks are never written twice.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use cid::Cid;
use splitstore_core::{config::Boundaries, Mode};

use crate::oracle::{header, key_of, links, Universe};

/// Keys, by the multihash the stores key blocks by.
pub type Keys = HashSet<Vec<u8>>;

/// A logical clock shared by the foreground and the deletion log: every touch and every
/// deleting write takes a tick before it starts.
#[derive(Clone, Debug, Default)]
pub struct Events {
    now: Arc<AtomicU64>,
    deleted: Arc<Mutex<HashMap<Vec<u8>, u64>>>,
}

impl Events {
    /// The next tick.
    pub fn tick(&self) -> u64 {
        self.now.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Forgets the deletions seen so far: those of a compaction before the recorded one, whose
    /// result is the record's base.
    pub fn forget_deletions(&self) {
        self.deleted.lock().expect("events").clear();
    }

    /// The last tick taken (for traces: reading it changes nothing).
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    /// Logs the deletion of `keys` at a new tick (the first deletion of a key counts).
    pub fn deleting(&self, keys: impl IntoIterator<Item = Vec<u8>>) {
        let at = self.tick();
        let mut d = self.deleted.lock().expect("deletion log");
        for k in keys {
            trace(|| format!("[{at}] delete {}", short(&k)));
            d.entry(k).or_insert(at);
        }
    }

    /// The tick at which the store first deleted `key`.
    pub fn deleted_at(&self, key: &[u8]) -> Option<u64> {
        self.deleted.lock().expect("deletion log").get(key).copied()
    }
}

/// When a call began and when it returned, in ticks.
///
/// A call that began after the transaction opened is tracked by it. The purge decides each
/// batch under the exclusive lock and issues its write in the step that releases the lock
/// (where the deletion is logged), and a call holds the lock shared from its check to its
/// return, so a deletion logged before a call returned was decided before the call could
/// act: the call could not have saved that block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// Before the call.
    pub start: u64,
    /// After it returned.
    pub end: u64,
}

/// A write of one block.
#[derive(Clone, Debug)]
pub struct Written {
    /// The block.
    pub cid: Cid,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The write's call.
    pub span: Span,
}

/// A read (`get`, `has`, `get_size`) that found its block.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    /// The block.
    pub cid: Cid,
    /// The read's call.
    pub span: Span,
    /// The critical section may have begun when the read began.
    pub critical: bool,
}

/// What the foreground did during one compaction.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Blocks the stores held when the compaction began.
    pub base: Universe,
    /// Of those, the ones only the cold store held (an earlier compaction moved them): no
    /// rule asks a compaction to bring a block back into the hot store, so those a rule keeps
    /// must stay in one store or the other.
    pub cold_only: Keys,
    /// Writes that completed.
    pub written: Vec<Written>,
    /// Writes whose outcome is unknown: dropped futures and failed calls (`span.end`: when
    /// dropped or failed).
    pub attempted: Vec<Written>,
    /// Reads that found their block.
    pub read: Vec<Read>,
    /// Tipsets applied as head after the compaction's.
    pub applied: Vec<(Vec<Cid>, Span)>,
    /// The tick at which the compaction's transaction opened: touches that began before it
    /// are not the compaction's to protect.
    pub opened: u64,
}

impl Record {
    /// The touches a crash that left `image` kept: writes whose batch is in it (a batch is
    /// told by a block it brought that was not there before; a batch that only rewrote blocks
    /// of the base cannot be told, and is left out), tipsets whose headers are in it, and
    /// every read (a read protects through the compaction's own writes, which the purge
    /// record makes durable before anything is deleted).
    pub fn surviving(&self, image: &Universe) -> Record {
        let landed: HashSet<Span> = self
            .written
            .iter()
            .filter(|w| {
                let k = key_of(&w.cid);
                !self.base.blocks.contains_key(&k) && image.blocks.contains_key(&k)
            })
            .map(|w| w.span)
            .collect();
        Record {
            base: self.base.clone(),
            cold_only: self.cold_only.clone(),
            written: self.written.iter().filter(|w| landed.contains(&w.span)).cloned().collect(),
            attempted: self.attempted.clone(),
            read: self.read.clone(),
            applied: self
                .applied
                .iter()
                .filter(|(ts, _)| ts.iter().all(|c| image.blocks.contains_key(&key_of(c))))
                .cloned()
                .collect(),
            opened: self.opened,
        }
    }
}

fn unitary(c: &Cid) -> bool {
    c.hash().code() == 0 || matches!(c.codec(), 0xf101 | 0xf102)
}

/// Blocks of `u` reached from `roots`, not descending into (nor counting) blocks of `stop`, nor
/// blocks other than the roots for which `there` does not hold.
pub fn closure_beside(u: &Universe, roots: &[Cid], stop: &Keys, there: impl Fn(&[u8]) -> bool) -> Keys {
    let mut out = Keys::new();
    let mut seen = Keys::new();
    let mut stack: Vec<(Cid, bool)> = roots.iter().map(|c| (*c, true)).collect();
    while let Some((c, root)) = stack.pop() {
        let k = key_of(&c);
        if unitary(&c) || stop.contains(&k) || (!root && !there(&k)) || !seen.insert(k.clone()) {
            continue;
        }
        if let Some(b) = u.blocks.get(&k) {
            out.insert(k);
            if c.codec() == 0x71 {
                stack.extend(links(b).unwrap_or_default().into_iter().map(|l| (l, false)));
            }
        }
    }
    out
}

/// How a touch binds the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// Its DAG stays hot.
    Hot,
    /// A read in the critical section, answered from the mark set: what it found stays, with
    /// its DAG, in hot or cold.
    Anywhere,
    /// A write whose outcome is unknown and that landed: what of its DAG is kept must keep
    /// its own DAG (no block kept with a cut DAG), but nothing of it has to stay.
    Kept,
}

/// Calls `f` with what each touch of the compaction's transaction protects: the blocks of its
/// DAG that were there when it ran (written before it began, or not deleted before it
/// returned: see [`Span`]), walked as the reference walks a transactional reference, stopping
/// at `chain`; how it binds the store; when it returned; and what it was. Tipsets applied
/// protect their whole DAG: with sync checks on the purge waits for them.
pub fn for_each_touch(
    rec: &Record,
    events: &Events,
    u: &Universe,
    chain: &Keys,
    mut f: impl FnMut(Keys, Bind, u64, &dyn Fn() -> String),
) {
    let written = written_at(rec);
    let there = |span: Span| {
        let written = &written;
        move |k: &[u8]| {
            written.get(k).is_none_or(|w| w.end < span.start) && events.deleted_at(k).is_none_or(|d| d > span.end)
        }
    };
    let tracked = |span: &Span| span.start > rec.opened;
    for (ts, span) in &rec.applied {
        let reached = closure_beside(u, ts, chain, |_| true);
        f(reached, Bind::Hot, span.end, &|| format!("the DAG of tipset {ts:?}, applied {span:?}"));
    }
    for w in rec.written.iter().filter(|w| tracked(&w.span)) {
        let reached = closure_beside(u, &[w.cid], chain, there(w.span));
        f(reached, Bind::Hot, w.span.end, &|| format!("the DAG of {}, written {:?}", w.cid, w.span));
    }
    for r in rec.read.iter().filter(|r| tracked(&r.span)) {
        let reached = closure_beside(u, &[r.cid], chain, there(r.span));
        let bind = if r.critical { Bind::Anywhere } else { Bind::Hot };
        let what = || format!("the DAG of {}, read {:?} (critical: {})", r.cid, r.span, r.critical);
        f(reached, bind, r.span.end, &what);
    }
    let mut own = Universe::default();
    own.extend(rec.attempted.iter().map(|w| (key_of(&w.cid), w.bytes.clone())));
    for w in rec.attempted.iter().filter(|w| u.blocks.contains_key(&key_of(&w.cid))) {
        let was_there = there(w.span);
        let children: Vec<Cid> = own_links(&own, &w.cid).into_iter().filter(|c| was_there(&key_of(c))).collect();
        let mut reached = closure_beside(u, &children, chain, there(w.span));
        reached.extend(u.blocks.contains_key(&key_of(&w.cid)).then(|| key_of(&w.cid)));
        f(reached, Bind::Kept, w.span.end, &|| format!("the DAG of {}, whose write was dropped {:?}", w.cid, w.span));
    }
}

/// The links of an attempted block (its bytes are known though it may never have landed).
fn own_links(own: &Universe, cid: &Cid) -> Vec<Cid> {
    own.blocks.get(&key_of(cid)).and_then(|b| links(b)).unwrap_or_default()
}

/// The tick from which each block had to stay: 0 for `chain`, else the return of the first
/// touch that protects it ([`for_each_touch`]; a deletion before a touch returned came before
/// it acted, see [`Span`]).
pub fn required_since(rec: &Record, events: &Events, u: &Universe, chain: &Keys) -> HashMap<Vec<u8>, u64> {
    let mut since: HashMap<Vec<u8>, u64> = chain.iter().map(|k| (k.clone(), 0)).collect();
    for_each_touch(rec, events, u, chain, |reached, _, end, _| {
        for k in reached {
            let s = since.entry(k).or_insert(end);
            *s = (*s).min(end);
        }
    });
    since
}

/// The chain rule: the live set of `head` under `b` among the blocks there when the compaction
/// walked: the base, and every write that began before the transaction opened (the
/// transaction waits for those before the walk). What the live set links and only arrives
/// later is protected by the write that brings it, from then on ([`for_each_touch`]): a block
/// connected to the chain only by a later write is not the walk's to find.
pub fn chain_rule(rec: &Record, head: &[Cid], b: Boundaries) -> Keys {
    let mut walked = rec.base.clone();
    walked.extend(rec.written.iter().filter(|w| w.span.start < rec.opened).map(|w| (key_of(&w.cid), w.bytes.clone())));
    walked.live_set(head, b.boundary, b.include_messages).present
}

/// The expectations of one compaction.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Every block that was in a store at some point: the base and the completed writes.
    pub present_ever: Keys,
    /// Must be hot.
    pub hot: Keys,
    /// Must be in hot or cold.
    pub anywhere: Keys,
    /// May be hot; nothing else may.
    pub allowed_hot: Keys,
    /// Blocks of old message and receipt DAGs (messages mode sends these, and only these, to
    /// cold).
    pub old_messages: Keys,
    /// When each block written during the compaction was written.
    written_at: HashMap<Vec<u8>, Span>,
    /// Why each block must be hot, for messages.
    why: HashMap<Vec<u8>, String>,
    /// From when each block had to stay.
    since: HashMap<Vec<u8>, u64>,
}

impl Expect {
    /// The expectations of a compaction from `head` with `b`, given what the foreground did
    /// and what the store deleted.
    pub fn of(rec: &Record, events: &Events, head: &[Cid], b: Boundaries) -> Expect {
        let mut present = rec.base.clone();
        present.extend(rec.written.iter().map(|w| (key_of(&w.cid), w.bytes.clone())));
        let mut all = present.clone();
        all.extend(rec.attempted.iter().map(|w| (key_of(&w.cid), w.bytes.clone())));

        let chain = chain_rule(rec, head, b);
        let mut why: HashMap<Vec<u8>, String> =
            chain.iter().map(|k| (k.clone(), "the chain's live set when the compaction began".into())).collect();
        let mut hot = chain.clone();
        let mut anywhere = Keys::new();
        for_each_touch(rec, events, &present, &chain, |reached, bind, _, reason| {
            let into = match bind {
                Bind::Hot => &mut hot,
                Bind::Anywhere => &mut anywhere,
                Bind::Kept => return,
            };
            for k in &reached {
                why.entry(k.clone()).or_insert_with(reason);
            }
            into.extend(reached);
        });

        // A block only cold when the compaction began, and not written since, is kept where
        // it is.
        let written: Keys = rec.written.iter().map(|w| key_of(&w.cid)).collect();
        let stays_cold: Vec<Vec<u8>> =
            hot.iter().filter(|k| rec.cold_only.contains(*k) && !written.contains(*k)).cloned().collect();
        for k in stays_cold {
            hot.remove(&k);
            anywhere.insert(k);
        }

        let chain_all = all.live_set(head, b.boundary, b.include_messages).present;
        let mut any_touch: Vec<Cid> = rec.written.iter().map(|w| w.cid).collect();
        any_touch.extend(rec.attempted.iter().map(|w| w.cid));
        any_touch.extend(rec.read.iter().map(|r| r.cid));
        any_touch.extend(rec.applied.iter().flat_map(|(ts, _)| ts.iter().copied()));
        let mut allowed_hot = closure_beside(&all, &any_touch, &chain_all, |_| true);
        allowed_hot.extend(chain_all);

        let old_roots = all.old_message_roots(head, b.include_messages);
        let old_messages = closure_beside(&all, &old_roots, &Keys::new(), |_| true);
        Expect {
            present_ever: present.blocks.keys().cloned().collect(),
            hot,
            anywhere,
            allowed_hot,
            old_messages,
            written_at: written_at(rec),
            why,
            since: required_since(rec, events, &present, &chain),
        }
    }

    /// Checks the stores after the compaction (`cold_before`: cold when it began). Returns the
    /// first violation, described.
    pub fn check(
        &self,
        mode: Mode,
        hot: &Universe,
        cold: &Universe,
        cold_before: &Keys,
        events: &Events,
    ) -> Result<(), String> {
        let in_hot = |k: &Vec<u8>| hot.blocks.contains_key(k);
        let in_any = |k: &Vec<u8>| in_hot(k) || cold.blocks.contains_key(k);
        let lost: Vec<_> = self.hot.iter().filter(|k| !in_hot(k)).collect();
        if !lost.is_empty() {
            let explain: Vec<String> = lost
                .iter()
                .take(3)
                .map(|k| {
                    let at = events.deleted_at(k).map_or("never deleted".into(), |t| format!("deleted at tick {t}"));
                    let written = self.written_at.get(*k).map_or(String::new(), |t| format!(", written {t:?}"));
                    format!("{} ({}; {at}{written})", hex(k), self.why.get(*k).map_or("?", |s| s.as_str()))
                })
                .collect();
            return Err(format!("{} live blocks are not hot: {explain:?}", lost.len()));
        }
        let lost: Vec<_> = self.anywhere.iter().filter(|k| !in_any(k)).collect();
        if !lost.is_empty() {
            return Err(format!("{} blocks read in the critical section are gone: {:?}", lost.len(), few(lost)));
        }
        let extra: Vec<_> = hot.blocks.keys().filter(|k| !self.allowed_hot.contains(*k)).collect();
        if !extra.is_empty() {
            return Err(format!("{} dead blocks stayed hot: {:?}", extra.len(), few(extra)));
        }
        let cold_keys: Keys = cold.blocks.keys().cloned().collect();
        let left_hot: Vec<&Vec<u8>> = self.present_ever.iter().filter(|k| !in_hot(k)).collect();
        match mode {
            Mode::Discard => {
                if &cold_keys != cold_before {
                    return Err("discard mode changed the cold store".into());
                }
            }
            Mode::Universal => {
                let lost: Vec<_> = left_hot.into_iter().filter(|k| !cold_keys.contains(*k)).collect();
                if !lost.is_empty() {
                    return Err(format!("universal mode lost {} blocks: {:?}", lost.len(), few(lost)));
                }
            }
            Mode::Messages => {
                let lost: Vec<_> = left_hot
                    .into_iter()
                    .filter(|k| self.old_messages.contains(*k) && !cold_keys.contains(*k))
                    .collect();
                if !lost.is_empty() {
                    return Err(format!("old message blocks left hot without a cold copy: {:?}", few(lost)));
                }
                let stray: Vec<_> =
                    cold_keys.iter().filter(|k| !cold_before.contains(*k) && !self.old_messages.contains(*k)).collect();
                if !stray.is_empty() {
                    return Err(format!("messages mode copied other blocks to cold: {:?}", few(stray)));
                }
            }
        }
        let holes = holes(hot, cold, events, &self.since);
        if !holes.is_empty() {
            return Err(format!("kept blocks link deleted blocks: {:?}", &holes[..holes.len().min(3)]));
        }
        Ok(())
    }
}

/// When each block written during a run was written.
pub fn written_at(rec: &Record) -> HashMap<Vec<u8>, Span> {
    rec.written.iter().map(|w| (key_of(&w.cid), w.span)).collect()
}

/// Links from a kept non-header block (hot or cold) to a DAG-CBOR block in neither store that
/// the store deleted while the linking block had to stay (`since`: from [`required_since`]).
/// A block that had to stay only from a touch after the deletion was brought back by a node
/// that linked it (it was as good as purged, its DAG already cut), which the store cannot
/// undo. Headers are skipped: an old header stays while its state and messages go, by design.
pub fn holes(hot: &Universe, cold: &Universe, events: &Events, since: &HashMap<Vec<u8>, u64>) -> Vec<String> {
    let present = |k: &Vec<u8>| hot.blocks.contains_key(k) || cold.blocks.contains_key(k);
    let mut out = Vec::new();
    for (key, bytes) in hot.blocks.iter().chain(&cold.blocks) {
        if header(bytes).is_some() {
            continue;
        }
        let Some(&needed) = since.get(key) else { continue };
        for l in links(bytes).unwrap_or_default() {
            let k = key_of(&l);
            if l.codec() != 0x71 || unitary(&l) || present(&k) {
                continue;
            }
            let Some(deleted) = events.deleted_at(&k) else { continue };
            if needed < deleted {
                let store = if hot.blocks.contains_key(key) { "hot" } else { "cold" };
                out.push(format!(
                    "{} ({store}, needed from tick {needed}) links {l}, deleted at tick {deleted}",
                    hex(key)
                ));
            }
        }
    }
    out
}

/// True when `SPLITSTORE_TRACE` is set: the suites print every touch and deletion to stderr,
/// for reading a failing seed.
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SPLITSTORE_TRACE").is_some())
}

/// Prints `line()` when [`tracing`].
pub fn trace(line: impl FnOnce() -> String) {
    if tracing() {
        eprintln!("{}", line());
    }
}

/// A block key, shortened for traces (the digest's first bytes).
pub fn short(k: &[u8]) -> String {
    hex(&k[k.len().saturating_sub(32)..][..6.min(k.len())])
}

fn few(v: Vec<&Vec<u8>>) -> Vec<String> {
    v.iter().take(3).map(|k| hex(k)).collect()
}

fn hex(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}
