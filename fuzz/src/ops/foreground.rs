//! Foreground operations of the `ops` target: each runs one store call and updates the model.

use std::cell::RefCell;

use splitstore_conformance::{
    chain::node,
    oracle,
    workload::{header_first, PollLimit},
};
use splitstore_core::{Cid, Error, PendingCompaction};

use super::{model::Model, tracing, Op, Store};

/// Runs one foreground operation. Returns the compaction an applied head decided. A failure
/// is allowed only once the fuse has blown (the caller then reopens).
pub(super) async fn fg(store: &Store, m: &RefCell<Model>, op: Op) -> Option<PendingCompaction> {
    let blown = |e: &Error, what: &str| {
        assert!(store_fuse_blown(e), "{what} failed without a crash: {e}");
    };
    match op {
        Op::Apply { .. } | Op::ApplyHeaderFirst { .. } => {
            let (chain, epoch, prefetched) = {
                let m = m.borrow();
                (m.chain, m.chain.epochs.get(m.applied)?, m.prefetched == Some(m.applied))
            };
            let (mut blocks, later) = match op {
                Op::ApplyHeaderFirst { keep, .. } => {
                    // Headers and the state they name now; of the messages and receipts, the
                    // part `keep` picks now, the rest pending.
                    let (first, rest) = header_first(epoch);
                    let (now, later): (Vec<_>, Vec<_>) =
                        rest.into_iter().enumerate().partition(|(i, _)| keep & (1 << (i % 8)) != 0);
                    let now: Vec<_> = first.into_iter().chain(now.into_iter().map(|(_, b)| b)).collect();
                    (now, later.into_iter().map(|(_, b)| b).collect())
                }
                _ => (epoch.blocks.clone(), Vec::new()),
            };
            if prefetched {
                // The body came first: fetch again only what is gone.
                blocks = gone_from(store, m, blocks, &epoch.tipset).await;
            }
            blocks.extend(ancestry(store, m, chain, epoch).await);
            if let Err(e) = store.put_many(blocks.clone()).await {
                blown(&e, "put_many of an epoch");
                return None;
            }
            m.borrow_mut().wrote(&blocks, &epoch.tipset);
            match store.head_change(&[], std::slice::from_ref(&epoch.tipset)).await {
                Ok(pending) => {
                    let mut m = m.borrow_mut();
                    m.applied += 1;
                    m.pending.extend(later);
                    m.applied_tipset(&epoch.tipset);
                    trace!(
                        "applied epoch {} (height {}), compaction decided: {}",
                        m.applied,
                        epoch.height,
                        pending.is_some()
                    );
                    if pending.is_some() {
                        m.transaction_opened(&epoch.tipset);
                    }
                    pending
                }
                Err(e) => {
                    blown(&e, "head change");
                    None
                }
            }
        }
        Op::Prefetch => {
            let (chain, epoch) = {
                let m = m.borrow();
                (m.chain, m.chain.epochs.get(m.applied)?)
            };
            let mut body: Vec<_> = epoch.blocks.iter().filter(|(c, _)| !epoch.tipset.contains(c)).cloned().collect();
            body.extend(ancestry(store, m, chain, epoch).await);
            match store.put_many(body.clone()).await {
                Ok(()) => {
                    let mut m = m.borrow_mut();
                    m.wrote(&body, &[]);
                    m.prefetched = Some(m.applied);
                }
                Err(e) => blown(&e, "put_many of a prefetched body"),
            }
            None
        }
        Op::PutParentFirst { links, count } => {
            // The child is known, not written yet: the parent is written first.
            let child = new_block(store, m, &links[..usize::from(count % 4)]).await;
            let parent = node(&[child.0], next_nonce(m));
            match store.put(&parent.0, parent.1.clone()).await {
                Ok(()) => {
                    let mut m = m.borrow_mut();
                    m.wrote(&[parent], &[]);
                    m.pending.push(child);
                }
                Err(e) => blown(&e, "put"),
            }
            None
        }
        Op::WritePending { sel } => {
            // The block stays pending until its write returns: a write that fails or is
            // dropped leaves it for the node to fetch again.
            let block = {
                let mut m = m.borrow_mut();
                if m.pending.is_empty() {
                    return None;
                }
                let block = m.pending[usize::from(sel) % m.pending.len()].clone();
                m.writing.insert(oracle::key_of(&block.0));
                block
            };
            // A node asks for what the block links before writing it; what is gone cannot be
            // brought back by writing it (its DAG was cut before).
            let mut gone = Vec::new();
            for l in oracle::links(&block.1).unwrap_or_default() {
                if l.codec() == 0x71 && has(store, m, &l).await == Some(false) {
                    gone.push(l);
                }
            }
            match store.put(&block.0, block.1.clone()).await {
                Ok(()) => {
                    let mut m = m.borrow_mut();
                    let k = oracle::key_of(&block.0);
                    m.pending.retain(|(c, _)| oracle::key_of(c) != k);
                    m.excuse(&gone);
                    m.wrote(&[block], &[]);
                }
                Err(e) => blown(&e, "put of a pending block"),
            }
            None
        }
        Op::ReadPending { sel, how } => {
            let cid = {
                let m = m.borrow();
                if m.pending.is_empty() {
                    return None;
                }
                m.pending[usize::from(sel) % m.pending.len()].0
            };
            let found = match how % 2 {
                0 => match store.get(&cid).await {
                    Ok(got) => got.is_some(),
                    Err(e) => {
                        blown(&e, "get");
                        return None;
                    }
                },
                _ => match store.has(&cid).await {
                    Ok(h) => h,
                    Err(e) => {
                        blown(&e, "has");
                        return None;
                    }
                },
            };
            // Another writer may have begun to write it meanwhile.
            let never = { m.borrow().bytes_of(&cid).is_none() && !m.borrow().writing.contains(&oracle::key_of(&cid)) };
            assert!(!(found && never), "a block never written, {cid}, is found");
            if found {
                // Written before (by a prefetch, say) and pending again: a read that finds it
                // touches it.
                m.borrow_mut().read(&cid);
            }
            None
        }
        Op::Delete { sel } => {
            let cid = m.borrow().deletable(sel)?;
            m.borrow_mut().deleting.insert(oracle::key_of(&cid));
            match store.delete(&cid).await {
                Ok(()) => {
                    m.borrow_mut().deleted(&cid);
                    match store.get(&cid).await {
                        Ok(got) => assert_eq!(got, None, "{cid} is readable after its deletion returned"),
                        Err(e) => blown(&e, "get"),
                    }
                }
                Err(e) => blown(&e, "delete"),
            }
            None
        }
        Op::PutDropped { links, polls } => {
            let block = new_block(store, m, &links[..1 + usize::from(polls / 86)]).await;
            let outcome = PollLimit::new(store.put(&block.0, block.1.clone()), 1 + usize::from(polls % 4)).await;
            match outcome {
                Some(Ok(())) => m.borrow_mut().wrote(&[block], &[]),
                Some(Err(e)) => {
                    blown(&e, "put");
                    m.borrow_mut().attempted(block);
                }
                None => m.borrow_mut().attempted(block),
            }
            None
        }
        Op::Put { links, count } => {
            let block = new_block(store, m, &links[..usize::from(count % 4)]).await;
            match store.put(&block.0, block.1.clone()).await {
                Ok(()) => m.borrow_mut().wrote(&[block], &[]),
                Err(e) => blown(&e, "put"),
            }
            None
        }
        Op::PutMany { count, sel } => {
            let mut blocks = Vec::new();
            for i in 0..1 + count % 6 {
                blocks.push(new_block(store, m, &[sel.wrapping_add(i.wrapping_mul(37))]).await);
            }
            match store.put_many(blocks.clone()).await {
                Ok(()) => m.borrow_mut().wrote(&blocks, &[]),
                Err(e) => blown(&e, "put_many"),
            }
            None
        }
        Op::Get { sel } | Op::Has { sel } | Op::ReadInUse { sel, .. } => {
            let cid = m.borrow().pick(sel)?;
            // Reads in use go through the hot view: a cold hit queues its DAG for reify.
            let (get, in_use) = match op {
                Op::ReadInUse { how, .. } => (how % 2 == 0, true),
                _ => (matches!(op, Op::Get { .. }), false),
            };
            let view = store.hot_view();
            let found = if get {
                let got = if in_use { view.get(&cid).await } else { store.get(&cid).await };
                match got {
                    Ok(got) => {
                        if let Some(got) = &got {
                            // A get that raced a deletion may still find the block.
                            let m = m.borrow();
                            let raced = m.deleted.get(&oracle::key_of(&cid)).map(|(_, b)| b.as_slice());
                            assert_eq!(
                                Some(got.as_slice()),
                                m.bytes_of(&cid).or(raced),
                                "get of {cid} returned other bytes"
                            );
                        }
                        got.is_some()
                    }
                    Err(e) => {
                        blown(&e, "get");
                        return None;
                    }
                }
            } else {
                match if in_use { view.has(&cid).await } else { store.has(&cid).await } {
                    Ok(h) => h,
                    Err(e) => {
                        blown(&e, "has");
                        return None;
                    }
                }
            };
            let mut m = m.borrow_mut();
            if found {
                m.read(&cid);
                if in_use {
                    m.in_use.push(cid);
                }
            } else {
                assert!(!m.required(&cid), "a required block {cid} is not found");
            }
            None
        }
        Op::Reify => {
            match store.reify_pending().await {
                Ok(report) => {
                    trace!("reify: {report:?}");
                    m.borrow_mut().reified();
                }
                Err(e) => blown(&e, "reify_pending"),
            }
            None
        }
        Op::GetAbsent { nonce } => {
            let (cid, _) = node(&[], u64::MAX - u64::from(nonce));
            match store.get(&cid).await {
                Ok(got) => assert_eq!(got, None, "a block that was never written is found"),
                Err(e) => blown(&e, "get"),
            }
            match store.has(&cid).await {
                Ok(h) => assert!(!h, "has() finds a block that was never written"),
                Err(e) => blown(&e, "has"),
            }
            None
        }
        _ => None,
    }
}

/// Errors a blown fuse produces: the backend's crash, or the poisoned store after it.
pub(super) fn store_fuse_blown(e: &Error) -> bool {
    matches!(e, Error::Poisoned | Error::Kv { source: splitstore_core::KvError::Crashed, .. })
}

/// A new block linking the present blocks `sels` pick.
async fn new_block(store: &Store, m: &RefCell<Model>, sels: &[u8]) -> (Cid, Vec<u8>) {
    let candidates: Vec<Cid> = {
        let m = m.borrow();
        sels.iter().filter_map(|s| m.pick(*s)).collect()
    };
    let mut children = Vec::new();
    for c in candidates {
        // Only blocks the store says it has: a new block's DAG is complete when it is written,
        // and asking is a touch, which keeps a compaction running meanwhile from purging the
        // child before the write (a look past the store would not).
        if !children.contains(&c) && has(store, m, &c).await == Some(true) {
            children.push(c);
        }
    }
    node(&children, next_nonce(m))
}

/// A nonce no block of the run has used.
fn next_nonce(m: &RefCell<Model>) -> u64 {
    let mut m = m.borrow_mut();
    m.nonce += 1;
    m.nonce
}

/// `blocks` without those the store has, but for `always`.
async fn gone_from(
    store: &Store,
    m: &RefCell<Model>,
    blocks: Vec<(Cid, Vec<u8>)>,
    always: &[Cid],
) -> Vec<(Cid, Vec<u8>)> {
    let mut out = Vec::new();
    for b in blocks {
        if always.contains(&b.0) || has(store, m, &b.0).await != Some(true) {
            out.push(b);
        }
    }
    out
}

/// `has`, as a node asks before writing what links a block: a block found is touched, in the
/// model as in the store. `None` when the call failed (the fuse blew).
async fn has(store: &Store, m: &RefCell<Model>, c: &Cid) -> Option<bool> {
    let found = store.has(c).await.ok()?;
    if found {
        m.borrow_mut().read(c);
    }
    Some(found)
}

/// Blocks of earlier epochs `epoch` links that the store lacks ([`Chain::absent_ancestry`]);
/// those found present are touched.
async fn ancestry(
    store: &Store,
    m: &RefCell<Model>,
    chain: &super::model::Chain,
    epoch: &splitstore_core::synth::Epoch,
) -> Vec<(Cid, Vec<u8>)> {
    let (absent, found) = chain.absent_ancestry(epoch, store).await;
    let mut m = m.borrow_mut();
    for c in &found {
        m.read(c);
    }
    absent
}
