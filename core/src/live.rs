//! What a running compaction knows to be live: its mark set, and the marks of critical-section
//! writers that have not settled yet.
//!
//! # Settled and unsettled marks
//!
//! Before the critical section only the compaction marks, and each of its marks is followed,
//! before the purge record is written, by the durable deletion of the object's dead-list entry
//! (invariant I1 in `docs/design.md`). In the critical section foreground writers (`put_many`,
//! `head_change`) mark too, and a writer marks its DAG *before* its batch lands: the purge must
//! see those marks while the batch is in flight. A writer's future can be dropped, or its write
//! fail, at any await, so a mark in the set does not prove that the dead-list deletion it
//! stands for will ever land, nor even that the writer's walk below it finished. Such marks are
//! **unsettled**: the object is in [`Live::unsettled`] from the moment it is marked until a
//! write that deletes its dead-list entry, together with those of its whole unsettled DAG, has
//! landed.
//!
//! Rules that make this safe (each enforced where the code marks):
//!
//! * A critical-section walk treats an unsettled object as unmarked for everything but the
//!   mark itself: it descends into it and deletes its dead-list entry in its own batch. So a
//!   second writer linking a block that a dropped writer marked still makes that block's
//!   dead-list deletion durable together with its own block.
//! * A writer settles the objects its walk reported only after its batch has landed. Writes
//!   land in order, so a later writer that stops at a settled object relies on an earlier
//!   batch, which no crash can lose without losing the later one too.
//! * The purge, holding the exclusive lock (so no writer is in flight), first walks every
//!   object still unsettled (left by a writer that was dropped or failed), writes their
//!   dead-list deletions and settles them; only then does it delete anything. So a marked
//!   object is never purged below, nor kept with its DAG cut short by a writer that vanished.
//! * Reads in the critical section answer an unsettled object as absent from hot: it becomes
//!   visible once a landed write protects it, as after the reference's write-then-mark.
//!
//! # Deletions in flight
//!
//! The purge decides a batch under the exclusive lock but writes it after releasing the lock,
//! so no reader waits on the disk for it. From the decision until the write has returned, the
//! batch's hot blocks are in [`Live::purging`] and count as deleted already:
//!
//! * reads answer them as absent from hot: they are unmarked ([`Live::settled`] is false),
//!   and stay so;
//! * a walk neither marks nor descends into one (it treats the block as missing, as it will be
//!   once the write lands): a mark would make the block visible again, and promise a block the
//!   write is about to delete;
//! * a writer of one of those blocks waits for the purge's write before its own is issued, so
//!   its block lands after the deletion.
//!
//! The set is emptied when the purge's write returns, fails or is dropped: backends apply
//! writes in the order they were issued (a native write runs within its call; IndexedDB orders
//! transactions on one store), so a write issued afterwards lands after the deletion.

use alloc::{sync::Arc, vec::Vec};
use core::hash::BuildHasherDefault;

use crate::sync::Mutex;
use cid::Cid;
use hashbrown::{HashMap, HashSet};
use siphasher::sip::SipHasher13;

use crate::{
    key::{BlockKey, KeyBuf},
    markset::{AnyMarks, MarkSetKind, Marks},
};

/// A compaction's mark set and its unsettled critical-section marks, under one lock so a
/// walker's test of both is atomic with another walker's mark.
#[derive(Debug)]
pub(crate) struct Live {
    /// Every object found live.
    pub marks: AnyMarks,
    /// Objects marked in the critical section whose dead-list deletion (and walk below them)
    /// is not known to have landed, by key, with the CID to walk them again.
    pub unsettled: HashMap<Vec<u8>, Cid, BuildHasherDefault<SipHasher13>>,
    /// Keys of hot blocks the purge's write in flight deletes (see [Deletions in
    /// flight](self#deletions-in-flight)); empty whenever the purge holds no write.
    pub purging: HashSet<Vec<u8>, BuildHasherDefault<SipHasher13>>,
}

/// The shared handle a compaction and its writers hold.
pub(crate) type LiveRef = Arc<Mutex<Live>>;

impl Live {
    /// An empty set of `kind` with room for `capacity` objects.
    pub fn new(kind: MarkSetKind, capacity: usize, seed: u128) -> Self {
        Self { marks: AnyMarks::new(kind, capacity, seed), unsettled: HashMap::default(), purging: HashSet::default() }
    }

    /// A shared empty set.
    pub fn shared(kind: MarkSetKind, capacity: usize, seed: u128) -> LiveRef {
        Arc::new(Mutex::new(Self::new(kind, capacity, seed)))
    }

    /// True when `key` is marked and settled: a read in the critical section may find it hot.
    /// (A block being purged is never marked: the purge chose it unmarked, and no walk marks it.)
    pub fn settled(&self, key: &[u8]) -> bool {
        self.marks.contains(key) && !self.unsettled.contains_key(key)
    }

    /// True when the purge's write in flight deletes `cid`'s block.
    pub fn purging_cid(&self, cid: &Cid) -> bool {
        !self.purging.is_empty() && self.purging.contains(KeyBuf::of(cid).as_bytes())
    }

    /// True when the purge's write in flight deletes the block of `key`.
    pub fn purging_key(&self, key: &KeyBuf) -> bool {
        !self.purging.is_empty() && self.purging.contains(key.as_bytes())
    }

    /// Records that the dead-list deletions of `keys` have landed.
    pub fn settle<'a>(&mut self, keys: impl IntoIterator<Item = &'a BlockKey>) {
        for k in keys {
            self.unsettled.remove(k.as_bytes());
        }
    }

    /// The CIDs of every unsettled object.
    pub fn unsettled_cids(&self) -> Vec<Cid> {
        self.unsettled.values().copied().collect()
    }
}
