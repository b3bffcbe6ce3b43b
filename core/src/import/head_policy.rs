//! Whether an import's roots may become the head.
//!
//! A head is trusted input: the compaction keeps what the head's chain needs and lets the rest
//! age out, so a head that is not the real chain's makes the real chain's data look dead. The
//! store cannot validate consensus, so it cannot tell a forged header from a real one. What it
//! can refuse, under [`HeadPolicy::Extend`], is a head that does not continue the one it has:
//! an older snapshot (which would move the head back and drop newer state), another network's
//! chain, or a tipset whose headers disagree. Input from peers that are not trusted is imported
//! under [`HeadPolicy::Keep`], and the embedder moves the head with
//! [`SplitStore::head_change`] once its own validation accepted the tipset.
//!
//! The ancestry walk reads one header per parent generation, only headers the store holds, with
//! heights strictly decreasing: it ends after at most `new height - current height` reads.

use alloc::vec::Vec;
use core::fmt;

use cid::Cid;

use crate::{clock::Clock, error::Error, header::BlockHeader, kv::Kv, store::SplitStore};

/// What an import does with roots that are block headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadPolicy {
    /// Apply them when the store has no head yet, or when they extend the current head: their
    /// parents lead, through headers the store holds, to the current head's tipset.
    #[default]
    Extend,
    /// Apply them whatever the current head is (a file from a trusted source).
    Apply,
    /// Never move the head (a file from a source that is not trusted).
    Keep,
}

impl HeadPolicy {
    /// The policy's name, as the CLI and the JS API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadPolicy::Extend => "extend",
            HeadPolicy::Apply => "apply",
            HeadPolicy::Keep => "keep",
        }
    }

    /// Parses [`HeadPolicy::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [HeadPolicy::Extend, HeadPolicy::Apply, HeadPolicy::Keep].into_iter().find(|p| p.as_str() == s)
    }
}

/// Why an import left the head where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadSkip {
    /// The file has no roots.
    NoRoots,
    /// A root is not a block header, or the roots are headers of different heights or parents.
    NotATipset,
    /// The import ran under [`HeadPolicy::Keep`].
    Kept,
    /// The roots do not extend the current head.
    DoesNotExtend {
        /// The current head's height.
        current: i64,
        /// The roots' height.
        imported: i64,
        /// Where the ancestry walk stopped.
        why: &'static str,
    },
}

impl fmt::Display for HeadSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadSkip::NoRoots => f.write_str("the file has no roots"),
            HeadSkip::NotATipset => f.write_str("the roots are not the block headers of one tipset"),
            HeadSkip::Kept => f.write_str("the import was asked to keep the head"),
            HeadSkip::DoesNotExtend { current, imported, why } => {
                write!(f, "the roots (epoch {imported}) do not extend the current head (epoch {current}): {why}")
            }
        }
    }
}

/// Sorted copy, for comparing tipsets as sets.
fn sorted(cids: &[Cid]) -> Vec<Cid> {
    let mut v = cids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// The header of `cid` when the store holds it and it decodes; `None` otherwise.
    async fn header_if_present(&self, cid: &Cid) -> Result<Option<BlockHeader>, Error> {
        match self.read_header(cid).await {
            Ok(h) => Ok(Some(h)),
            Err(Error::MissingBlock { .. } | Error::BadHeader { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Decides whether `roots` may become the head under `policy`.
    pub(crate) async fn head_verdict(&self, roots: &[Cid], policy: HeadPolicy) -> Result<Result<(), HeadSkip>, Error> {
        let Some(first) = roots.first() else { return Ok(Err(HeadSkip::NoRoots)) };
        let Some(top) = self.header_if_present(first).await? else { return Ok(Err(HeadSkip::NotATipset)) };
        let parents = sorted(&top.parents);
        for r in &roots[1..] {
            match self.header_if_present(r).await? {
                Some(h) if h.height == top.height && sorted(&h.parents) == parents => {}
                _ => return Ok(Err(HeadSkip::NotATipset)),
            }
        }
        match policy {
            HeadPolicy::Keep => return Ok(Err(HeadSkip::Kept)),
            HeadPolicy::Apply => return Ok(Ok(())),
            HeadPolicy::Extend => {}
        }
        let Some(current) = self.shared.lock().head.clone() else { return Ok(Ok(())) };
        let target = sorted(&current.tipset);
        if sorted(roots) == target {
            return Ok(Ok(()));
        }
        let skip = |why| Ok(Err(HeadSkip::DoesNotExtend { current: current.height, imported: top.height, why }));
        if top.height <= current.height {
            return skip("it is not higher");
        }
        let (mut height, mut parents) = (top.height, parents);
        loop {
            if parents == target {
                return Ok(Ok(()));
            }
            let Some(p) = parents.first() else { return skip("its chain ends before the current head") };
            let Some(h) = self.header_if_present(p).await? else {
                return skip("a header between them is not in the store");
            };
            if h.height >= height {
                return skip("its chain's heights do not decrease");
            }
            if h.height <= current.height {
                return skip("its chain passes the current head's epoch on another tipset");
            }
            height = h.height;
            parents = sorted(&h.parents);
        }
    }
}
