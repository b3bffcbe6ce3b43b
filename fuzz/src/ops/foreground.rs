//! Foreground operations of the `ops` target: each runs one store call and updates the model.

use std::cell::RefCell;

use splitstore_conformance::chain::node;
use splitstore_core::{Cid, Error, PendingCompaction};

use super::{model::Model, tracing, Op, Store};

/// Runs one foreground operation. Returns the compaction an applied head decided. A failure
/// is allowed only once the fuse has blown (the caller then reopens).
pub(super) async fn fg(store: &Store, m: &RefCell<Model>, op: Op) -> Option<PendingCompaction> {
    let blown = |e: &Error, what: &str| {
        assert!(store_fuse_blown(e), "{what} failed without a crash: {e}");
    };
    match op {
        Op::Apply { .. } => {
            let (chain, epoch) = {
                let m = m.borrow();
                (m.chain, m.chain.epochs.get(m.applied)?)
            };
            let mut blocks = epoch.blocks.clone();
            blocks.extend(chain.absent_ancestry(epoch, store).await);
            if let Err(e) = store.put_many(blocks.clone()).await {
                blown(&e, "put_many of an epoch");
                return None;
            }
            m.borrow_mut().wrote(&blocks, &epoch.tipset);
            match store.head_change(&[], std::slice::from_ref(&epoch.tipset)).await {
                Ok(pending) => {
                    let mut m = m.borrow_mut();
                    m.applied += 1;
                    trace!(
                        "applied epoch {} (height {}), compaction decided: {}",
                        m.applied,
                        epoch.height,
                        pending.is_some()
                    );
                    if pending.is_some() {
                        m.transaction_opened();
                    }
                    pending
                }
                Err(e) => {
                    blown(&e, "head change");
                    None
                }
            }
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
        Op::Get { sel } | Op::Has { sel } => {
            let cid = m.borrow().pick(sel)?;
            let found = if let Op::Get { .. } = op {
                match store.get(&cid).await {
                    Ok(got) => {
                        if let Some(got) = &got {
                            assert_eq!(
                                Some(got.as_slice()),
                                m.borrow().bytes_of(&cid),
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
                match store.has(&cid).await {
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
            } else {
                assert!(!m.required(&cid), "a required block {cid} is not found");
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
        if !children.contains(&c) && store.has(&c).await.unwrap_or(false) {
            children.push(c);
        }
    }
    let nonce = {
        let mut m = m.borrow_mut();
        m.nonce += 1;
        m.nonce
    };
    node(&children, nonce)
}
