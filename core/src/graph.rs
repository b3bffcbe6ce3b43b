//! The kept graph: the links of every object the last compaction's chain walk loaded, kept in
//! memory so that the next one marks those objects without reading their blocks again.
//!
//! A DAG-CBOR block's links are a pure function of its bytes, and its bytes of its key (the
//! block is content-addressed). So an object the previous walk loaded has the same children
//! now, and the walk can mark it and go on to its children from here instead of from a read.
//! What this may change, against a walk that reads every block, is one thing: an object is
//! marked whether or not its block is still present. That marks more, never less (its whole
//! DAG as recorded is marked with it), and the store keeps it from mattering: every deletion
//! through the API and every cold prune drops the graph, and a walk that began before such a
//! deletion does not keep what it recorded (`docs/design.md`, "The kept graph").
//!
//! Nodes are BLAKE2b-256 keys (every Filecoin block's), held as their 32-byte digests, sorted,
//! found through a radix table over their leading bits. A node is *loaded* when its block was
//! loaded and its links recorded; other nodes are objects the loaded ones link to. A link to a
//! block under another hash is kept as its CID.

use alloc::vec::Vec;

use cid::Cid;

use crate::key::{is_unitary, may_have_links, BLAKE2B_256, DAG_CBOR, RAW};

/// A link edge's flag: the index is into [`KeptGraph::external`].
const EXTERNAL: u32 = 1 << 31;
/// A link edge's flag: the link's codec has no links, so the child is marked, not walked.
const LEAF: u32 = 1 << 30;
/// The index bits of an edge.
const INDEX: u32 = LEAF - 1;

/// Bytes a node costs at most in a built graph: its digest, its entry in the link offsets, the
/// radix table's share, its bit, and one link.
const NODE_BYTES: usize = 32 + 4 + 4 + 1 + 4;
/// Bytes a recorded loaded object or link costs the builder.
const RECORD_BYTES: usize = 36;

/// The BLAKE2b-256 digest of `cid`'s key, if it has one.
fn digest_of(cid: &Cid) -> Option<&[u8; 32]> {
    let mh = cid.hash();
    if mh.code() != BLAKE2B_256 {
        return None;
    }
    mh.digest().try_into().ok()
}

/// A CID naming the block of `digest` under `codec`.
fn cid_of(digest: &[u8; 32], codec: u64) -> Cid {
    // A 32-byte digest always fits a 64-byte multihash.
    let mh = multihash::Multihash::<64>::wrap(BLAKE2B_256, digest).expect("32-byte digest fits");
    Cid::new_v1(codec, mh)
}

/// What a walk does with one link of a node the graph knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// A node whose links the graph holds: mark it and go on to its links from the graph.
    Known(u32),
    /// Anything else: the link as a CID, for the walk to take in as if it had read it.
    Cid(Cid),
}

/// The links of the objects a compaction's walk loaded. Immutable once built.
#[derive(Debug, Default)]
pub(crate) struct KeptGraph {
    /// Node digests, sorted, distinct.
    digests: Vec<[u8; 32]>,
    /// `radix[p]` is the first node whose leading `bits` bits are at least `p`.
    radix: Vec<u32>,
    bits: u32,
    /// The links of node `i` are `edges[first[i]..first[i + 1]]`.
    first: Vec<u32>,
    /// One bit per node: its block was loaded and its links recorded.
    loaded: Vec<u64>,
    /// `EXTERNAL | i` (a CID of `external`), else `LEAF`-flagged node index.
    edges: Vec<u32>,
    /// Linked CIDs that are not BLAKE2b-256.
    external: Vec<Cid>,
}

impl KeptGraph {
    /// Nodes held.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.digests.capacity() * 32
            + (self.radix.capacity() + self.first.capacity() + self.edges.capacity()) * 4
            + self.loaded.capacity() * 8
            + self.external.capacity() * core::mem::size_of::<Cid>()
    }

    fn top(&self, digest: &[u8; 32]) -> usize {
        if self.bits == 0 {
            return 0;
        }
        (u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> (32 - self.bits)) as usize
    }

    fn index_of(&self, digest: &[u8; 32]) -> Option<u32> {
        let p = self.top(digest);
        let (lo, hi) = (self.radix[p] as usize, self.radix[p + 1] as usize);
        self.digests[lo..hi].binary_search(digest).ok().map(|i| (lo + i) as u32)
    }

    /// The loaded node `cid` names, if any: a DAG-CBOR CID whose block's links the graph
    /// holds.
    pub fn find(&self, cid: &Cid) -> Option<u32> {
        if cid.codec() != DAG_CBOR {
            return None;
        }
        let i = self.index_of(digest_of(cid)?)?;
        self.is_loaded(i).then_some(i)
    }

    fn is_loaded(&self, i: u32) -> bool {
        self.loaded[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// A DAG-CBOR CID naming node `i`.
    pub fn cid(&self, i: u32) -> Cid {
        cid_of(&self.digests[i as usize], DAG_CBOR)
    }

    /// The links of loaded node `i`.
    pub fn links(&self, i: u32) -> impl Iterator<Item = Link> + '_ {
        let (a, b) = (self.first[i as usize] as usize, self.first[i as usize + 1] as usize);
        self.edges[a..b].iter().map(move |&e| {
            if e & EXTERNAL != 0 {
                return Link::Cid(self.external[(e & !EXTERNAL) as usize]);
            }
            let j = e & INDEX;
            let d = &self.digests[j as usize];
            if e & LEAF != 0 {
                Link::Cid(cid_of(d, RAW))
            } else if self.is_loaded(j) {
                Link::Known(j)
            } else {
                Link::Cid(cid_of(d, DAG_CBOR))
            }
        })
    }
}

/// A recorded link: a BLAKE2b-256 digest with [`LEAF`], or [`EXTERNAL`] and an index.
#[derive(Clone, Copy)]
struct Child {
    digest: [u8; 32],
    flags: u32,
}

/// Records what a walk loaded, and builds the next [`KeptGraph`] from it.
pub(crate) struct GraphBuilder {
    /// Most bytes the builder, then the built graph, may hold; past it nothing is kept.
    limit: usize,
    over: bool,
    /// Loaded objects, each with the start of its links in `children`.
    parents: Vec<([u8; 32], u32)>,
    children: Vec<Child>,
    external: Vec<Cid>,
}

impl GraphBuilder {
    /// A builder that gives up once it would hold more than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        GraphBuilder { limit, over: limit == 0, parents: Vec::new(), children: Vec::new(), external: Vec::new() }
    }

    fn check(&mut self) -> bool {
        if !self.over {
            let held = (self.parents.len() + self.children.len()) * RECORD_BYTES
                + self.external.len() * core::mem::size_of::<Cid>();
            let built = (self.parents.len() + self.children.len()) * NODE_BYTES;
            if held.max(built) > self.limit {
                self.over = true;
                (self.parents, self.children, self.external) = (Vec::new(), Vec::new(), Vec::new());
            }
        }
        !self.over
    }

    fn link(&mut self, cid: &Cid) {
        if is_unitary(cid) {
            return;
        }
        let child = match digest_of(cid) {
            Some(d) => Child { digest: *d, flags: if may_have_links(cid) { 0 } else { LEAF } },
            None => {
                self.external.push(*cid);
                Child { digest: [0; 32], flags: EXTERNAL | (self.external.len() - 1) as u32 }
            }
        };
        self.children.push(child);
    }

    /// Records that DAG-CBOR object `cid` was loaded and links to `links`.
    pub fn record(&mut self, cid: &Cid, links: &[Cid]) {
        let Some(d) = digest_of(cid) else { return };
        if !self.check() {
            return;
        }
        self.parents.push((*d, self.children.len() as u32));
        for l in links {
            self.link(l);
        }
    }

    /// Records loaded node `i` of `graph` again, with its links.
    pub fn record_known(&mut self, graph: &KeptGraph, i: u32) {
        if !self.check() {
            return;
        }
        self.parents.push((graph.digests[i as usize], self.children.len() as u32));
        let (a, b) = (graph.first[i as usize] as usize, graph.first[i as usize + 1] as usize);
        for &e in &graph.edges[a..b] {
            let child = if e & EXTERNAL != 0 {
                self.external.push(graph.external[(e & !EXTERNAL) as usize]);
                Child { digest: [0; 32], flags: EXTERNAL | (self.external.len() - 1) as u32 }
            } else {
                Child { digest: graph.digests[(e & INDEX) as usize], flags: e & LEAF }
            };
            self.children.push(child);
        }
    }

    /// The graph of everything recorded, or `None` when it would exceed the limit (or
    /// nothing was recorded).
    ///
    /// Every digest recorded (each loaded object's, each link's) is an *occurrence*; sorting
    /// the occurrences as (leading eight bytes, occurrence) pairs, whole digests compared only
    /// when those bytes tie, numbers the nodes and tells each occurrence its node at once.
    pub fn build(self) -> Option<KeptGraph> {
        if self.over || self.parents.is_empty() {
            return None;
        }
        let GraphBuilder { limit, parents, children, external, .. } = self;
        let (np, nc) = (parents.len(), children.len());
        if np + nc >= INDEX as usize {
            return None;
        }
        let digest = |occ: u32| -> &[u8; 32] {
            let o = occ as usize;
            if o < np {
                &parents[o].0
            } else {
                &children[o - np].digest
            }
        };
        let lead = |d: &[u8; 32]| u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let mut occs: Vec<(u64, u32)> = Vec::with_capacity(np + nc);
        occs.extend(parents.iter().enumerate().map(|(i, (d, _))| (lead(d), i as u32)));
        occs.extend(
            children
                .iter()
                .enumerate()
                .filter(|(_, c)| c.flags & EXTERNAL == 0)
                .map(|(i, c)| (lead(&c.digest), (np + i) as u32)),
        );
        occs.sort_unstable();
        // Node of each occurrence; digests in node order. Occurrences of one digest share
        // their leading bytes; a run of equal leading bytes with other digests among them is
        // sorted by whole digest first.
        let mut node_of = alloc::vec![0u32; np + nc];
        let mut digests: Vec<[u8; 32]> = Vec::new();
        let mut at = 0;
        while at < occs.len() {
            let end = at + occs[at..].iter().take_while(|o| o.0 == occs[at].0).count();
            let run = &mut occs[at..end];
            let d0 = digest(run[0].1);
            if run.iter().any(|o| digest(o.1) != d0) {
                run.sort_unstable_by(|a, b| digest(a.1).cmp(digest(b.1)));
            }
            for &(_, occ) in run.iter() {
                let d = digest(occ);
                if digests.last() != Some(d) {
                    digests.push(*d);
                }
                node_of[occ as usize] = (digests.len() - 1) as u32;
            }
            at = end;
        }
        drop(occs);
        digests.shrink_to_fit();
        let n = digests.len();
        let bits = (usize::BITS - 1 - n.leading_zeros()).min(24);
        let mut graph = KeptGraph { digests, radix: Vec::new(), bits, ..KeptGraph::default() };
        let mut radix = alloc::vec![0u32; (1usize << bits) + 1];
        for (i, d) in graph.digests.iter().enumerate() {
            radix[graph.top(d) + 1] = i as u32 + 1;
        }
        for p in 1..radix.len() {
            radix[p] = radix[p].max(radix[p - 1]);
        }
        graph.radix = radix;
        // Each loaded node's links, placed by counting (one record per node: a walk claims
        // each object once; a second record of a node is ignored).
        let links_of = |k: usize| parents[k].1 as usize..parents.get(k + 1).map_or(nc, |p| p.1 as usize);
        let mut loaded = alloc::vec![0u64; n.div_ceil(64)];
        let mut record_of = alloc::vec![u32::MAX; n];
        for (k, &i) in node_of[..np].iter().enumerate() {
            let i = i as usize;
            if record_of[i] == u32::MAX {
                record_of[i] = k as u32;
                loaded[i / 64] |= 1 << (i % 64);
            }
        }
        let mut first = Vec::with_capacity(n + 1);
        let mut edges = Vec::with_capacity(nc);
        for &k in &record_of {
            first.push(edges.len() as u32);
            if k == u32::MAX {
                continue;
            }
            for c in links_of(k as usize) {
                let flags = children[c].flags;
                edges.push(if flags & EXTERNAL != 0 { flags } else { node_of[np + c] | (flags & LEAF) });
            }
        }
        first.push(edges.len() as u32);
        graph.first = first;
        graph.loaded = loaded;
        graph.edges = edges;
        graph.external = external;
        (graph.bytes() <= limit).then_some(graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::dag_cbor_blake2b_cid;

    fn raw(i: u32) -> Cid {
        let mut c = dag_cbor_blake2b_cid(&i.to_be_bytes());
        c = Cid::new_v1(RAW, *c.hash());
        c
    }

    #[test]
    fn a_built_graph_answers_each_loaded_object_with_its_links() {
        let objs: Vec<Cid> = (0u32..500).map(|i| dag_cbor_blake2b_cid(&i.to_le_bytes())).collect();
        let sha = Cid::new_v1(DAG_CBOR, multihash::Multihash::<64>::wrap(crate::key::SHA2_256, &[9; 32]).unwrap());
        let identity = Cid::new_v1(DAG_CBOR, multihash::Multihash::<64>::wrap(crate::key::IDENTITY, b"x").unwrap());
        let mut b = GraphBuilder::new(1 << 20);
        // Objects 0..400 loaded; object i links to 2i+1 and 2i+2 (some never loaded), a raw
        // leaf, and every tenth to a SHA2-256 object and an identity CID.
        let links_of = |i: usize| -> Vec<Cid> {
            let mut l: Vec<Cid> = [2 * i + 1, 2 * i + 2].iter().filter(|&&j| j < 500).map(|&j| objs[j]).collect();
            l.push(raw(i as u32));
            if i % 10 == 0 {
                l.push(sha);
                l.push(identity);
            }
            l
        };
        for i in (0..400).rev() {
            b.record(&objs[i], &links_of(i));
        }
        let g = b.build().expect("within the limit");
        for (i, c) in objs.iter().enumerate() {
            let Some(n) = g.find(c) else {
                assert!(i >= 400, "loaded object {i} not found");
                continue;
            };
            assert!(i < 400, "object {i} was never loaded");
            assert_eq!(g.cid(n), *c);
            let got: Vec<Cid> = g
                .links(n)
                .map(|l| match l {
                    Link::Known(j) => g.cid(j),
                    Link::Cid(c) => c,
                })
                .collect();
            let want: Vec<Cid> = links_of(i).into_iter().filter(|c| !is_unitary(c)).collect();
            assert_eq!(got, want, "links of {i}");
            for l in g.links(n) {
                if let Link::Known(j) = l {
                    assert!(g.find(&g.cid(j)).is_some());
                }
            }
        }
        // Another codec on a loaded object's key is not the object; an unknown key is absent.
        assert_eq!(g.find(&Cid::new_v1(RAW, *objs[3].hash())), None);
        assert_eq!(g.find(&dag_cbor_blake2b_cid(b"unknown")), None);
        assert_eq!(g.find(&sha), None);
    }

    #[test]
    fn a_graph_recorded_again_from_itself_is_the_same() {
        let objs: Vec<Cid> = (0u32..3000).map(|i| dag_cbor_blake2b_cid(&i.to_le_bytes())).collect();
        let mut b = GraphBuilder::new(1 << 24);
        for i in 0..2000 {
            b.record(&objs[i], &[objs[(i * 7 + 1) % 3000], raw(i as u32)]);
        }
        let g = b.build().unwrap();
        let mut again = GraphBuilder::new(1 << 24);
        for c in &objs {
            if let Some(n) = g.find(c) {
                again.record_known(&g, n);
            }
        }
        let h = again.build().unwrap();
        assert_eq!((g.digests.len(), &g.first, &g.edges, &g.loaded), (h.digests.len(), &h.first, &h.edges, &h.loaded));
    }

    #[test]
    fn a_graph_over_its_limit_is_not_kept() {
        let objs: Vec<Cid> = (0u32..1000).map(|i| dag_cbor_blake2b_cid(&i.to_le_bytes())).collect();
        let mut b = GraphBuilder::new(10_000);
        for c in &objs {
            b.record(c, &[]);
        }
        assert!(b.build().is_none());
        assert!(GraphBuilder::new(0).build().is_none(), "a limit of 0 keeps nothing");
        let mut small = GraphBuilder::new(10_000);
        small.record(&objs[0], &objs[1..3]);
        assert_eq!(small.build().map(|g| g.len()), Some(3));
    }
}
