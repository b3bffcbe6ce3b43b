//! The reference model of the `ops` target: what was written, what was touched when, and the
//! checks that compare it with what the backends hold.
//!
//! A compaction may delete a block only if the block was neither read nor written after that
//! compaction's transaction opened. So the model counts *generations*: one starts each time a
//! transaction opens. Every successful read, `has` or write tags its block with the current
//! generation, and the blocks tagged with the current one are *required*: present in hot or
//! cold with their whole DAG. Earlier tags are not required (a later compaction may legally
//! remove a dead block). In universal mode nothing ever leaves hot ∪ cold except writes a
//! crash lost and what a cold prune removes, so everything present at one check must be
//! present at the next unless a prune ran between them. In every mode cold is closed:
//! whatever a cold block links is in hot or cold (after a prune, whatever a cold block other
//! than a header links: an old header stays while its state goes).
//!
//! The checks read the in-memory backends directly (never through the store, so they neither
//! touch blocks nor count down the fault fuse) and decode links with the conformance oracle,
//! not the engine's scanner.

use std::collections::{HashMap, HashSet};

use splitstore_conformance::{
    chain,
    liveness::closure_beside,
    oracle::{self, key_of},
};
use splitstore_core::{
    kv::{Kv, Space},
    mem::MemKv,
    synth::Epoch,
    Cid, CompactionReport, Mode,
};

/// A precomputed chain and an index of its blocks.
#[derive(Debug)]
pub struct Chain {
    /// The epochs, genesis first.
    pub epochs: Vec<Epoch>,
    /// Every block of every epoch, by key.
    pub blocks: HashMap<Vec<u8>, (Cid, Vec<u8>)>,
    /// Keys of every header.
    pub headers: HashSet<Vec<u8>>,
}

impl Chain {
    /// Indexes `epochs`.
    pub fn new(epochs: Vec<Epoch>) -> Self {
        let mut blocks = HashMap::new();
        let mut headers = HashSet::new();
        for e in &epochs {
            headers.extend(e.tipset.iter().map(key_of));
            blocks.extend(e.blocks.iter().map(|(c, b)| (key_of(c), (*c, b.clone()))));
        }
        Self { epochs, blocks, headers }
    }

    /// Where a block comes from, for messages: its epoch and height, or "not a chain block".
    pub fn locate(&self, c: &Cid) -> String {
        let k = key_of(c);
        match self.epochs.iter().position(|e| e.blocks.iter().any(|(b, _)| key_of(b) == k)) {
            Some(i) => format!("{c} (epoch {i}, height {})", self.epochs[i].height),
            None => format!("{c} (not a chain block)"),
        }
    }

    /// Blocks of earlier epochs that `epoch`'s blocks link to (through anything but header
    /// parents) and neither backend holds, with their absent descendants.
    ///
    /// The generator emits every block once, but a block a compaction removed as dead (say, the
    /// empty receipts AMT of genesis while the head was genesis) can be linked again by a later
    /// epoch. A syncing node fetches such blocks again; so does the model, with the epoch.
    ///
    /// Presence is asked of the store (`has`), as a syncing node asks it: that is a touch, which
    /// keeps a block found present from being purged by a compaction running meanwhile. (A
    /// look past the store would not protect it, and the epoch would then link a block the
    /// compaction removes as dead.) A failed `has` counts as absent; the write that follows
    /// fails the same way.
    /// Returns the absent blocks, and the blocks found present (each `has` that found its block
    /// is a touch, as any read).
    pub async fn absent_ancestry(&self, epoch: &Epoch, store: &super::Store) -> (Vec<(Cid, Vec<u8>)>, Vec<Cid>) {
        let own: HashSet<Vec<u8>> = epoch.blocks.iter().map(|(c, _)| key_of(c)).collect();
        let mut stack: Vec<Cid> = Vec::new();
        for (c, b) in &epoch.blocks {
            if c.codec() == 0x71 {
                stack.extend(oracle::links(b).unwrap_or_default());
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut found = Vec::new();
        while let Some(c) = stack.pop() {
            let k = key_of(&c);
            if unitary(&c) || own.contains(&k) || self.headers.contains(&k) || !seen.insert(k.clone()) {
                continue;
            }
            let Some((cid, bytes)) = self.blocks.get(&k) else { continue };
            if store.has(cid).await.unwrap_or(false) {
                found.push(*cid);
            } else {
                if cid.codec() == 0x71 {
                    stack.extend(oracle::links(bytes).unwrap_or_default());
                }
                out.push((*cid, bytes.clone()));
            }
        }
        (out, found)
    }
}

/// The model's view of the run.
#[derive(Debug)]
pub struct Model {
    /// The chain the run follows, epoch by epoch.
    pub chain: &'static Chain,
    /// Epochs applied as head so far (the next one to apply is `chain[applied]`).
    pub applied: usize,
    /// Every block ever written: key -> (CID, bytes).
    pub blocks: HashMap<Vec<u8>, (Cid, Vec<u8>)>,
    /// Non-header blocks ever written, in order: what reads and new links pick from.
    pub pickable: Vec<Cid>,
    /// Key -> (CID, generation of its last touch).
    pub touched: HashMap<Vec<u8>, (Cid, u64)>,
    /// Current generation (transactions opened so far).
    pub generation: u64,
    /// Compaction mode.
    pub mode: Mode,
    /// Universal mode: keys that must never disappear.
    pub floor: HashSet<Vec<u8>>,
    /// A cold prune started and has not finished: universal mode's floor is suspended.
    pub pruning: bool,
    /// A cold prune has started in this run.
    pub pruned: bool,
    /// The live hot backend (under the store's wrappers).
    pub hot: MemKv,
    /// The live cold backend.
    pub cold: MemKv,
    /// Counter for new, never-before-seen blocks.
    pub nonce: u64,
    /// Blocks a node knows of and has not written yet: the children of blocks written parent
    /// first, the messages and receipts of tipsets synced header first.
    pub pending: Vec<(Cid, Vec<u8>)>,
    /// Keys absent for reasons that are not the store's: absent when a block linking them was
    /// written (that block's DAG was cut before it came, and writing it cannot bring them
    /// back), or written and lost by a crash before they were durable. Written again, a key is
    /// no longer excused.
    pub excused: HashSet<Vec<u8>>,
    /// Blocks of writes whose futures were dropped (outcome unknown), with their generation.
    pub attempted: Vec<(Cid, Vec<u8>, u64)>,
    /// Tipsets applied as head, with their generation.
    pub applied_in: Vec<(Vec<Cid>, u64)>,
    /// The head and generation of the current transaction.
    pub txn: Option<(Vec<Cid>, u64)>,
    /// The epoch whose state, messages and receipts were written before its headers.
    pub prefetched: Option<usize>,
    /// Keys of pending blocks whose write has begun.
    pub writing: HashSet<Vec<u8>>,
    /// Blocks deleted and not written since: key -> (CID, bytes). Never readable.
    pub deleted: HashMap<Vec<u8>, (Cid, Vec<u8>)>,
    /// Deletions whose call has not returned (in flight, failed or dropped): each has taken
    /// effect or not, as a crash shows.
    pub deleting: HashSet<Vec<u8>>,
    /// Blocks read in use (through the hot view) since the last reify drain ended.
    pub in_use: Vec<Cid>,
    /// Roots of reify drains, with the generation each drain ended in: their DAGs' cold parts
    /// were copied into hot then, by writes a compaction of that generation protects.
    pub reify_roots: Vec<(Cid, u64)>,
}

impl Model {
    /// A model of an empty store over `hot` and `cold`.
    pub fn new(chain: &'static Chain, mode: Mode, hot: MemKv, cold: MemKv) -> Self {
        Self {
            chain,
            applied: 0,
            blocks: HashMap::new(),
            pickable: Vec::new(),
            touched: HashMap::new(),
            generation: 0,
            mode,
            floor: HashSet::new(),
            pruning: false,
            pruned: false,
            hot,
            cold,
            nonce: 0,
            pending: Vec::new(),
            excused: HashSet::new(),
            attempted: Vec::new(),
            applied_in: Vec::new(),
            txn: None,
            prefetched: None,
            writing: HashSet::new(),
            deleted: HashMap::new(),
            deleting: HashSet::new(),
            in_use: Vec::new(),
            reify_roots: Vec::new(),
        }
    }

    /// Records a successful write of `blocks` (`headers` are not pickable).
    pub fn wrote(&mut self, blocks: &[(Cid, Vec<u8>)], headers: &[Cid]) {
        for (c, b) in blocks {
            let k = key_of(c);
            if !self.blocks.contains_key(&k) && !headers.contains(c) {
                self.pickable.push(*c);
            }
            self.blocks.insert(k.clone(), (*c, b.clone()));
            self.excused.remove(&k);
            self.deleted.remove(&k);
            if !headers.contains(c) {
                self.touched.insert(k, (*c, self.generation));
            }
        }
    }

    /// Records a successful read of `cid` that found it (get or has). A read that raced a
    /// deletion of the block (it found the block before the deletion) requires nothing.
    pub fn read(&mut self, cid: &Cid) {
        let k = key_of(cid);
        if !self.deleted.contains_key(&k) {
            self.touched.insert(k, (*cid, self.generation));
        }
    }

    /// Blocks a deletion may pick: written by a put (not chain blocks, which the chain walk
    /// needs, nor pending ones), not dropped writes that may still land, not deleted.
    pub fn deletable(&self, sel: u8) -> Option<Cid> {
        let candidates: Vec<Cid> = self
            .pickable
            .iter()
            .filter(|c| {
                let k = key_of(c);
                !self.chain.blocks.contains_key(&k)
                    && self.blocks.contains_key(&k)
                    && !self.attempted.iter().any(|(a, _, _)| key_of(a) == k)
            })
            .copied()
            .collect();
        (!candidates.is_empty()).then(|| candidates[usize::from(sel) % candidates.len()])
    }

    /// Records a deletion that returned: the block is no longer required, nor in the universal
    /// floor, and must never be readable until written again.
    pub fn deleted(&mut self, cid: &Cid) {
        let k = key_of(cid);
        self.deleting.remove(&k);
        if let Some(v) = self.blocks.remove(&k) {
            self.deleted.insert(k.clone(), v);
        }
        self.touched.remove(&k);
        self.floor.remove(&k);
    }

    /// After a crash: a deletion holds if its record survived or the block is in neither
    /// store; otherwise it did not take effect and the block is there, as a block written
    /// before. That is the rule for a deletion that had not returned; one that returned was
    /// durable, so it holds.
    pub fn deletions_after_crash(&mut self, present: &HashSet<Vec<u8>>) {
        let records: HashSet<Vec<u8>> = self
            .hot
            .keys(Space::Meta)
            .into_iter()
            .filter_map(|k| k.strip_prefix(splitstore_core::meta::DELETED_PREFIX).map(<[u8]>::to_vec))
            .collect();
        for k in core::mem::take(&mut self.deleting) {
            if records.contains(&k) || !present.contains(&k) {
                if let Some((c, _)) = self.blocks.get(&k).cloned() {
                    self.deleted(&c);
                }
            }
        }
        let undone: Vec<String> = self
            .deleted
            .iter()
            .filter(|(k, _)| present.contains(*k) && !records.contains(*k))
            .map(|(_, (c, _))| c.to_string())
            .collect();
        assert!(undone.is_empty(), "a deletion that returned was undone by a crash: {undone:?}");
    }

    /// A transaction opened with `head` as its head: earlier touches stop being required.
    /// A reify drain ended: what was read in use before it was copied into hot (or not, when
    /// a limit said so) in the current generation.
    pub fn reified(&mut self) {
        let g = self.generation;
        let roots: Vec<Cid> = self.in_use.drain(..).collect();
        self.reify_roots.extend(roots.into_iter().map(|c| (c, g)));
    }

    /// Records a cold prune starting: a transaction of its own (nothing touched before it is
    /// required), which in universal mode may remove blocks, so the floor is suspended until
    /// [`Model::prune_ended`].
    pub fn prune_began(&mut self) {
        self.generation += 1;
        self.txn = None;
        self.floor.clear();
        self.pruning = true;
        self.pruned = true;
    }

    /// Records a cold prune finished (or finished by recovery): the next check takes the
    /// floor from what is present.
    pub fn prune_ended(&mut self) {
        self.floor.clear();
        self.pruning = false;
    }

    pub fn transaction_opened(&mut self, head: &[Cid]) {
        self.generation += 1;
        self.txn = Some((head.to_vec(), self.generation));
    }

    /// Records a tipset applied as head.
    pub fn applied_tipset(&mut self, tipset: &[Cid]) {
        self.applied_in.push((tipset.to_vec(), self.generation));
    }

    /// Records `keys` absent when a block linking them was written.
    pub fn excuse(&mut self, gone: &[Cid]) {
        self.excused.extend(gone.iter().map(key_of));
    }

    /// Records a write whose outcome is unknown.
    pub fn attempted(&mut self, (c, b): (Cid, Vec<u8>)) {
        self.attempted.push((c, b, self.generation));
    }

    /// True when a missing block is a loss: it was written, is not linked only since it was
    /// gone, and is not about to be written again (pending).
    pub fn lost(&self, c: &Cid) -> bool {
        let k = key_of(c);
        self.blocks.contains_key(&k)
            && !self.excused.contains(&k)
            && !self.deleting.contains(&k)
            && !self.pending.iter().any(|(p, _)| key_of(p) == k)
    }

    /// The bytes written under `cid`'s key.
    pub fn bytes_of(&self, cid: &Cid) -> Option<&[u8]> {
        self.blocks.get(&key_of(cid)).map(|(_, b)| b.as_slice())
    }

    /// The blocks touched in the current generation, but for those a deletion in flight may
    /// have removed: each must be present with its whole DAG.
    pub fn touched_now(&self) -> Vec<Cid> {
        self.touched
            .values()
            .filter(|(c, g)| *g == self.generation && !self.deleting.contains(&key_of(c)))
            .map(|(c, _)| *c)
            .collect()
    }

    /// True when the block must be readable now.
    pub fn required(&self, cid: &Cid) -> bool {
        let k = key_of(cid);
        self.touched.get(&k).is_some_and(|(_, g)| *g == self.generation) || self.floor.contains(&k)
    }

    /// The pickable CID `sel` names, if any was written.
    pub fn pick(&self, sel: u8) -> Option<Cid> {
        (!self.pickable.is_empty()).then(|| self.pickable[usize::from(sel) % self.pickable.len()])
    }

    /// Checks every required block and the universal floor; `when` names the check point.
    /// Afterwards, in universal mode, the floor is everything present.
    pub async fn check_required(&mut self, when: &str) {
        let required = self.touched_now();
        for c in &required {
            let got = raw_get(&self.hot, &self.cold, &key_of(c)).await;
            match (got, self.bytes_of(c)) {
                (None, _) => panic!("{when}: block {c} was touched since the last compaction began and is gone"),
                (Some(got), Some(want)) => assert_eq!(got, want, "{when}: block {c} holds other bytes"),
                (Some(_), None) => {}
            }
        }
        let missing: Vec<Cid> =
            closure_missing(&self.hot, &self.cold, &required).await.into_iter().filter(|c| self.lost(c)).collect();
        if !missing.is_empty() {
            for c in &required {
                let lost: Vec<Cid> = closure_missing(&self.hot, &self.cold, std::slice::from_ref(c))
                    .await
                    .into_iter()
                    .filter(|c| self.lost(c))
                    .collect();
                if !lost.is_empty() {
                    let lost: Vec<String> = lost.iter().map(|l| self.chain.locate(l)).collect();
                    panic!(
                        "{when}: the DAG of {}, touched since the last compaction began, lost {lost:?}",
                        self.chain.locate(c)
                    );
                }
            }
            panic!("{when}: DAGs of touched blocks lost {missing:?}");
        }
        // Cold is closed; after a prune, below every block but headers (an old header stays
        // while its state goes).
        let holes: Vec<Cid> = if self.pruned {
            chain::hot_holes(&self.cold, &self.hot).await.into_iter().map(|(_, c)| c).filter(|c| self.lost(c)).collect()
        } else {
            chain::cold_holes(&self.hot, &self.cold).await.into_iter().filter(|c| self.lost(c)).collect()
        };
        if !holes.is_empty() {
            let holes: Vec<String> = holes.iter().take(3).map(|c| self.chain.locate(c)).collect();
            panic!("{when}: blocks linked from cold blocks are in neither store: {holes:?}");
        }
        if self.mode == Mode::Universal {
            let present = present_keys(&self.hot, &self.cold);
            let lost: Vec<String> = self
                .floor
                .difference(&present)
                .filter(|k| !self.deleting.contains(*k))
                .take(3)
                .map(|k| match self.blocks.get(k) {
                    Some((c, _)) => self.chain.locate(c),
                    None => format!("{k:02x?} (never written)"),
                })
                .collect();
            assert!(lost.is_empty(), "{when}: universal mode lost blocks {lost:?}");
            // A deleted block's cold copy stays until no compaction runs.
            self.floor = present.into_iter().filter(|k| !self.deleted.contains_key(k)).collect();
        }
    }

    /// Checks that a compaction left nothing hot beyond what the rules keep: the live set of
    /// its head, and the DAGs of what its transaction (`txn`: head and generation) touched,
    /// applied, or tried to write (a dropped write may have landed).
    pub async fn check_retention(&self, txn: &(Vec<Cid>, u64), report: &CompactionReport, when: &str) {
        if report.resumed {
            return;
        }
        let (head, g) = (&txn.0, txn.1);
        let mut all = oracle::Universe::default();
        all.extend(self.blocks.iter().map(|(k, (_, b))| (k.clone(), b.clone())));
        all.extend(self.attempted.iter().map(|(c, b, _)| (key_of(c), b.clone())));
        // Deleted blocks too: a compaction may have marked what they link before the deletion.
        all.extend(self.deleted.iter().map(|(k, (_, b))| (k.clone(), b.clone())));
        let chain = all.live_set(head, report.boundary_epoch, report.include_messages_epoch).present;
        // Later generations too: a later transaction opens only once this compaction ended, so
        // what it touched came after the purge.
        let mut roots: Vec<Cid> = self.touched.values().filter(|(_, t)| *t >= g).map(|(c, _)| *c).collect();
        roots.extend(self.attempted.iter().filter(|(_, _, t)| *t >= g).map(|(c, _, _)| *c));
        roots.extend(self.applied_in.iter().filter(|(_, t)| *t >= g).flat_map(|(ts, _)| ts.iter().copied()));
        roots.extend(self.reify_roots.iter().filter(|(_, t)| *t >= g).map(|(c, _)| *c));
        let mut allowed = closure_beside(&all, &roots, &chain, |_| true);
        allowed.extend(chain);
        let stale: Vec<String> = self
            .hot
            .keys(Space::Blocks)
            .iter()
            .filter(|k| !allowed.contains(*k))
            .take(3)
            .map(|k| {
                let what = self.blocks.get(k).map_or_else(|| format!("{k:02x?}"), |(c, _)| self.chain.locate(c));
                let touched = self.touched.get(k).map(|(_, g)| *g);
                let dropped = self.attempted.iter().filter(|(c, _, _)| key_of(c) == *k).map(|(_, _, g)| *g).next();
                format!("{what}, last touched in generation {touched:?}, dropped write in {dropped:?} (now {g})")
            })
            .collect();
        assert!(stale.is_empty(), "{when}: dead blocks stayed hot: {stale:?}");
    }

    /// Checks the live set of the current head with the independent oracle.
    pub async fn check_live(&self, head: &[Cid], boundary: i64, include_messages: i64, when: &str) {
        let mut u = oracle::Universe::default();
        for kv in [&self.hot, &self.cold] {
            u.extend(kv.scan(Space::Blocks, None, usize::MAX).await.expect("scan memory"));
        }
        let live = u.live_set(head, boundary, include_messages);
        let missing: Vec<&Cid> = live.missing.iter().filter(|c| self.lost(c)).collect();
        assert!(missing.is_empty(), "{when}: live blocks missing: {:?}", &missing[..missing.len().min(4)]);
    }
}

/// The block under `key` in hot, else cold, read from the backends directly.
pub async fn raw_get(hot: &MemKv, cold: &MemKv, key: &[u8]) -> Option<Vec<u8>> {
    match hot.get(Space::Blocks, key).await.expect("read memory") {
        Some(v) => Some(v),
        None => cold.get(Space::Blocks, key).await.expect("read memory"),
    }
}

/// Every block key in hot or cold.
pub fn present_keys(hot: &MemKv, cold: &MemKv) -> HashSet<Vec<u8>> {
    hot.keys(Space::Blocks).into_iter().chain(cold.keys(Space::Blocks)).collect()
}

fn unitary(c: &Cid) -> bool {
    c.hash().code() == 0 || matches!(c.codec(), 0xf101 | 0xf102)
}

/// DAG-CBOR blocks reachable from `roots` (roots included) that neither backend holds.
pub async fn closure_missing(hot: &MemKv, cold: &MemKv, roots: &[Cid]) -> Vec<Cid> {
    let mut seen = HashSet::new();
    let mut stack = roots.to_vec();
    let mut missing = Vec::new();
    while let Some(c) = stack.pop() {
        if unitary(&c) || !seen.insert(key_of(&c)) {
            continue;
        }
        match raw_get(hot, cold, &key_of(&c)).await {
            Some(b) if c.codec() == 0x71 => stack.extend(oracle::links(&b).unwrap_or_default()),
            Some(_) => {}
            None if c.codec() == 0x71 => missing.push(c),
            None => {}
        }
    }
    missing
}
