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
//!
//! The next graph is built from what the walk loaded and from the nodes of this one it marked
//! (*reused*): those keep their place in sorted order, so a build sorts only what was loaded.

use alloc::vec::Vec;
use core::future::Future;

use cid::Cid;

use crate::{
    chunked::Chunked,
    pace::{sort_paced, Pace},
};

use crate::key::{is_unitary, may_have_links, KeyBuf, BLAKE2B_256, DAG_CBOR};

/// A link edge's flag: the index is into [`KeptGraph::external`].
const EXTERNAL: u32 = 1 << 31;
/// A link edge's flag: the link's codec has no links, so the child is marked, not walked.
const LEAF: u32 = 1 << 30;
/// The index bits of an edge.
const INDEX: u32 = LEAF - 1;

/// Bytes a node costs at most in a built graph: its digest, its entry in the link offsets, the
/// radix table's share, its bit, and one link.
const NODE_BYTES: usize = 32 + 4 + 4 + 1 + 4;
/// Occurrences of digests in a build: this flag marks a node of the graph built from.
const BASE: u32 = 1 << 31;

/// The BLAKE2b-256 digest of `cid`'s key, if it has one.
fn digest_of(cid: &Cid) -> Option<&[u8; 32]> {
    let mh = cid.hash();
    if mh.code() != BLAKE2B_256 {
        return None;
    }
    mh.digest().try_into().ok()
}

/// A DAG-CBOR CID naming the block of `digest`.
fn dag_cbor_cid(digest: &[u8; 32]) -> Cid {
    // A 32-byte digest always fits a 64-byte multihash.
    let mh = multihash::Multihash::<64>::wrap(BLAKE2B_256, digest).expect("32-byte digest fits");
    Cid::new_v1(DAG_CBOR, mh)
}

/// The leading eight bytes of a digest, as a number.
fn lead(d: &[u8; 32]) -> u64 {
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn get(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// What a walk does with one link of a node the graph knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// A node whose links the graph holds: mark it and go on to its links from the graph.
    Known(u32),
    /// A node linked under a codec without links: mark it, no more.
    Leaf(u32),
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
        get(&self.loaded, i as usize).then_some(i)
    }

    /// The key of node `i`.
    pub fn key(&self, i: u32) -> KeyBuf {
        KeyBuf::of_blake2b_256(&self.digests[i as usize])
    }

    fn edges_of(&self, i: u32) -> &[u32] {
        &self.edges[self.first[i as usize] as usize..self.first[i as usize + 1] as usize]
    }

    /// The links of loaded node `i`.
    pub fn links(&self, i: u32) -> impl Iterator<Item = Link> + '_ {
        self.edges_of(i).iter().map(move |&e| {
            if e & EXTERNAL != 0 {
                return Link::Cid(self.external[(e & !EXTERNAL) as usize]);
            }
            let j = e & INDEX;
            if e & LEAF != 0 {
                Link::Leaf(j)
            } else if get(&self.loaded, j as usize) {
                Link::Known(j)
            } else {
                Link::Cid(dag_cbor_cid(&self.digests[j as usize]))
            }
        })
    }
}

/// The links of DAG-CBOR blocks about to be written, read before their bytes go into the write
/// and recorded ([`WrittenLinks::record_into`]) once it returned. A malformed block is
/// recorded with the links readable before the damage, as a walk that loads it records it.
#[derive(Debug, Default)]
pub(crate) struct WrittenLinks {
    /// Each object, with the start of its links in `links`.
    objects: Vec<(Cid, u32)>,
    links: Vec<Cid>,
}

impl WrittenLinks {
    pub fn of(blocks: &[(Cid, Vec<u8>)]) -> Self {
        let mut w = WrittenLinks::default();
        for (cid, bytes) in blocks.iter().filter(|(c, _)| c.codec() == DAG_CBOR && digest_of(c).is_some()) {
            w.objects.push((*cid, w.links.len() as u32));
            let _ = crate::links::for_each_link(bytes, |l| w.links.push(l));
        }
        w
    }

    pub fn record_into(&self, builder: &mut GraphBuilder) {
        for (i, (cid, start)) in self.objects.iter().enumerate() {
            let end = self.objects.get(i + 1).map_or(self.links.len(), |o| o.1 as usize);
            builder.record(cid, &self.links[*start as usize..end]);
        }
    }
}

/// A recorded link: a BLAKE2b-256 digest with [`LEAF`], or [`EXTERNAL`] and an index.
#[derive(Clone, Copy)]
struct Child {
    digest: [u8; 32],
    flags: u32,
}

/// Records what a walk loaded and which nodes of the graph it marked, and builds the next
/// [`KeptGraph`] from them. Also records the blocks the store writes between two walks
/// (`SplitStore::written`), which the next walk's graph then holds.
pub(crate) struct GraphBuilder {
    /// Most bytes the builder, then the built graph, may hold; past it nothing is kept.
    limit: usize,
    over: bool,
    /// Loaded objects, each with the start of its links in `children`.
    parents: Chunked<([u8; 32], u32)>,
    children: Chunked<Child>,
    external: Vec<Cid>,
    /// One bit per node of the graph walked from: marked from it.
    reused: Vec<u64>,
    reused_count: usize,
}

impl GraphBuilder {
    /// A builder that gives up once it would hold more than `limit` bytes, for a walk that
    /// marks from `base` (if any).
    pub fn new(limit: usize, base: Option<&KeptGraph>) -> Self {
        GraphBuilder {
            limit,
            over: limit == 0,
            parents: Chunked::default(),
            children: Chunked::default(),
            external: Vec::new(),
            reused: alloc::vec![0; base.map_or(0, |b| b.len().div_ceil(64))],
            reused_count: 0,
        }
    }

    /// Objects recorded.
    pub fn recorded(&self) -> usize {
        self.parents.len()
    }

    /// Empties this builder (its limit stays).
    pub fn clear(&mut self) {
        *self = GraphBuilder::new(self.limit, None);
    }

    /// What this builder recorded, leaving it empty.
    pub fn take(&mut self) -> GraphBuilder {
        core::mem::replace(self, GraphBuilder::new(self.limit, None))
    }

    /// This builder (made with no graph), to be built on `base` whole: every loaded node of
    /// `base` goes into the graph with its links, beside what was recorded.
    pub fn keeping_all(mut self, base: &KeptGraph) -> Self {
        self.reused = base.loaded.clone();
        self.reused_count = base.loaded.iter().map(|w| w.count_ones() as usize).sum();
        self.check();
        self
    }

    /// Heap bytes the records hold. Past the limit by at most a chunk of each kind (a push
    /// that starts a chunk allocates it whole), and only until the next record finds it over.
    pub fn held(&self) -> usize {
        self.parents.bytes() + self.children.bytes() + self.external.capacity() * core::mem::size_of::<Cid>()
    }

    fn check(&mut self) -> bool {
        if !self.over {
            let records = self.parents.len() + self.children.len();
            let held = self.held();
            let built = (records + 2 * self.reused_count) * NODE_BYTES;
            if held.max(built) > self.limit {
                self.over = true;
                (self.parents, self.children, self.external) = Default::default();
            }
        }
        !self.over
    }

    /// Records that DAG-CBOR object `cid` was loaded and links to `links`.
    pub fn record(&mut self, cid: &Cid, links: &[Cid]) {
        let Some(d) = digest_of(cid) else { return };
        if !self.check() {
            return;
        }
        self.parents.push((*d, self.children.len() as u32));
        for l in links.iter().filter(|l| !is_unitary(l)) {
            let child = match digest_of(l) {
                Some(d) => Child { digest: *d, flags: if may_have_links(l) { 0 } else { LEAF } },
                None => {
                    self.external.push(*l);
                    Child { digest: [0; 32], flags: EXTERNAL | (self.external.len() - 1) as u32 }
                }
            };
            self.children.push(child);
        }
    }

    /// True when loaded node `i` of the graph walked from was marked from it.
    pub fn is_reused(&self, i: u32) -> bool {
        get(&self.reused, i as usize)
    }

    /// Records that loaded node `i` of the graph walked from was marked from it: it goes into
    /// the next graph with its links.
    pub fn reuse(&mut self, i: u32) {
        if !self.is_reused(i) {
            set(&mut self.reused, i as usize);
            self.reused_count += 1;
            self.check();
        }
    }

    /// The graph of everything recorded and reused from `base` (the graph walked from), or
    /// `None` when it would exceed the limit (or holds nothing). Awaits `pause()` after about
    /// every `every` elements of work, so that no stretch between two pauses grows with the
    /// graph (the browser's one thread must not be held for a long task).
    ///
    /// Every digest is an *occurrence*: each loaded object's, each link's, and each node of
    /// `base` that stays (a reused node, or one a reused node links to). Sorted as (leading
    /// eight bytes, occurrence) pairs, whole digests compared only when those bytes tie, they
    /// number the nodes and tell each occurrence its node at once. `base`'s nodes are in
    /// order already: only the recorded occurrences are sorted, then merged with them.
    pub async fn build<P, F>(self, base: Option<&KeptGraph>, every: usize, pause: P) -> Option<KeptGraph>
    where
        P: FnMut() -> F,
        F: Future<Output = ()>,
    {
        if self.over || (self.parents.is_empty() && self.reused_count == 0) {
            return None;
        }
        let mut pace = Pace::new(every, pause);
        let GraphBuilder { limit, parents, children, external, reused, .. } = self;
        let empty = KeptGraph::default();
        let base = base.filter(|_| !reused.is_empty()).unwrap_or(&empty);
        let (np, nc) = (parents.len(), children.len());
        if np + nc >= INDEX as usize {
            return None;
        }
        // Nodes of `base` that stay: the reused ones and what they link to.
        let mut stays = reused.clone();
        for i in 0..base.len() {
            if get(&reused, i) {
                for &e in base.edges_of(i as u32) {
                    if e & EXTERNAL == 0 {
                        set(&mut stays, (e & INDEX) as usize);
                    }
                }
            }
            pace.step(1).await;
        }
        let digest = |occ: u32| -> &[u8; 32] {
            let o = occ as usize;
            if occ & BASE != 0 {
                &base.digests[(occ & !BASE) as usize]
            } else if o < np {
                &parents[o].0
            } else {
                &children[o - np].digest
            }
        };
        let mut fresh: Vec<(u64, u32)> = Vec::with_capacity(np + nc);
        for (i, (d, _)) in parents.iter().enumerate() {
            fresh.push((lead(d), i as u32));
            pace.step(1).await;
        }
        for (i, c) in children.iter().enumerate() {
            if c.flags & EXTERNAL == 0 {
                fresh.push((lead(&c.digest), (np + i) as u32));
            }
            pace.step(1).await;
        }
        let fresh = sort_paced(fresh, |p| p.0, &mut pace).await;
        let mut occs: Vec<(u64, u32)> = Vec::with_capacity(fresh.len() + base.len());
        {
            let mut staying = (0..base.len())
                .filter(|&i| get(&stays, i))
                .map(|i| (lead(&base.digests[i]), BASE | i as u32))
                .peekable();
            for f in fresh {
                while let Some(s) = staying.next_if(|s| s.0 <= f.0) {
                    occs.push(s);
                    pace.step(1).await;
                }
                occs.push(f);
                pace.step(1).await;
            }
            for s in staying {
                occs.push(s);
                pace.step(1).await;
            }
        }
        // Node of each occurrence (recorded ones, then `base`'s); digests in node order. A run
        // of equal leading bytes with other digests among them is sorted by whole digest.
        let mut node_of = alloc::vec![u32::MAX; np + nc];
        let mut base_node = alloc::vec![u32::MAX; base.len()];
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
                let node = (digests.len() - 1) as u32;
                if occ & BASE != 0 {
                    base_node[(occ & !BASE) as usize] = node;
                } else {
                    node_of[occ as usize] = node;
                }
            }
            pace.step(end - at).await;
            at = end;
        }
        drop(occs);
        digests.shrink_to_fit();
        let n = digests.len();
        if n > INDEX as usize {
            return None;
        }
        let bits = (usize::BITS - 1 - n.leading_zeros()).min(24);
        let mut graph = KeptGraph { digests, radix: Vec::new(), bits, ..KeptGraph::default() };
        let mut radix = alloc::vec![0u32; (1usize << bits) + 1];
        for (i, d) in graph.digests.iter().enumerate() {
            radix[graph.top(d) + 1] = i as u32 + 1;
            pace.step(1).await;
        }
        for p in 1..radix.len() {
            radix[p] = radix[p].max(radix[p - 1]);
            pace.step(1).await;
        }
        graph.radix = radix;
        // Where each loaded node's links come from: a record, or `base`. One source per
        // node (a walk marks each object once; a second record of a node is ignored).
        #[derive(Clone, Copy)]
        enum Source {
            None,
            Record(u32),
            Base(u32),
        }
        let mut source = alloc::vec![Source::None; n];
        for (i, &node) in base_node.iter().enumerate() {
            if get(&reused, i) {
                source[node as usize] = Source::Base(i as u32);
            }
            pace.step(1).await;
        }
        for (k, &node) in node_of[..np].iter().enumerate() {
            if matches!(source[node as usize], Source::None) {
                source[node as usize] = Source::Record(k as u32);
            }
            pace.step(1).await;
        }
        let mut loaded = alloc::vec![0u64; n.div_ceil(64)];
        let mut first = Vec::with_capacity(n + 1);
        let mut edges = Vec::with_capacity(nc);
        let mut external = external;
        for (i, s) in source.iter().enumerate() {
            first.push(edges.len() as u32);
            let from = edges.len();
            match *s {
                Source::None => {}
                Source::Record(k) => {
                    let k = k as usize;
                    let end = parents.get(k + 1).map_or(nc, |p| p.1 as usize);
                    for c in parents[k].1 as usize..end {
                        let flags = children[c].flags;
                        edges.push(if flags & EXTERNAL != 0 { flags } else { node_of[np + c] | (flags & LEAF) });
                    }
                    set(&mut loaded, i);
                }
                Source::Base(b) => {
                    for &e in base.edges_of(b) {
                        edges.push(if e & EXTERNAL != 0 {
                            external.push(base.external[(e & !EXTERNAL) as usize]);
                            EXTERNAL | (external.len() - 1) as u32
                        } else {
                            base_node[(e & INDEX) as usize] | (e & LEAF)
                        });
                    }
                    set(&mut loaded, i);
                }
            }
            pace.step(1 + edges.len() - from).await;
        }
        first.push(edges.len() as u32);
        if edges.len() >= INDEX as usize || external.len() >= INDEX as usize {
            return None;
        }
        graph.first = first;
        graph.loaded = loaded;
        graph.edges = edges;
        graph.external = external;
        (graph.bytes() <= limit).then_some(graph)
    }
}

impl core::fmt::Debug for GraphBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GraphBuilder")
            .field("limit", &self.limit)
            .field("over", &self.over)
            .field("recorded", &self.parents.len())
            .field("links", &self.children.len())
            .field("reused", &self.reused_count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{dag_cbor_blake2b_cid, RAW};

    /// `b` built from `base` at once (no pause).
    fn built(b: GraphBuilder, base: Option<&KeptGraph>) -> Option<KeptGraph> {
        futures::executor::block_on(b.build(base, usize::MAX, || async {}))
    }

    /// `b` built from `base` with a pause every `every` elements, and the pauses it took.
    fn built_pausing(b: GraphBuilder, base: Option<&KeptGraph>, every: usize) -> (Option<KeptGraph>, usize) {
        let mut pauses = 0;
        let g = futures::executor::block_on(b.build(base, every, || {
            pauses += 1;
            async {}
        }));
        (g, pauses)
    }

    fn raw(i: u32) -> Cid {
        Cid::new_v1(RAW, *dag_cbor_blake2b_cid(&i.to_be_bytes()).hash())
    }

    /// The CID a walk takes `link` in as.
    fn cid_of(g: &KeptGraph, link: Link) -> Cid {
        match link {
            Link::Known(j) => dag_cbor_cid(&g.digests[j as usize]),
            Link::Leaf(j) => Cid::new_v1(RAW, *dag_cbor_cid(&g.digests[j as usize]).hash()),
            Link::Cid(c) => c,
        }
    }

    /// 500 objects; 0..400 loaded, object `i` linking to `2i + 1` and `2i + 2` (some never
    /// loaded), a raw leaf, and every tenth to a SHA2-256 object and an identity CID.
    fn sample() -> (Vec<Cid>, impl Fn(usize) -> Vec<Cid>) {
        let objs: Vec<Cid> = (0u32..500).map(|i| dag_cbor_blake2b_cid(&i.to_le_bytes())).collect();
        let sha = Cid::new_v1(DAG_CBOR, multihash::Multihash::<64>::wrap(crate::key::SHA2_256, &[9; 32]).unwrap());
        let identity = Cid::new_v1(DAG_CBOR, multihash::Multihash::<64>::wrap(crate::key::IDENTITY, b"x").unwrap());
        let o = objs.clone();
        let links_of = move |i: usize| -> Vec<Cid> {
            let mut l: Vec<Cid> = [2 * i + 1, 2 * i + 2].iter().filter(|&&j| j < 500).map(|&j| o[j]).collect();
            l.push(raw(i as u32));
            if i % 10 == 0 {
                l.push(sha);
                l.push(identity);
            }
            l
        };
        (objs, links_of)
    }

    /// Checks that `g` holds exactly objects `0..400` of [`sample`], each with its links.
    fn holds_sample(g: &KeptGraph, objs: &[Cid], links_of: &dyn Fn(usize) -> Vec<Cid>) {
        for (i, c) in objs.iter().enumerate() {
            let Some(n) = g.find(c) else {
                assert!(i >= 400, "loaded object {i} not found");
                continue;
            };
            assert!(i < 400, "object {i} was never loaded");
            assert_eq!(g.key(n).as_bytes(), c.hash().to_bytes());
            let got: Vec<Cid> = g.links(n).map(|l| cid_of(g, l)).collect();
            let want: Vec<Cid> = links_of(i).into_iter().filter(|c| !is_unitary(c)).collect();
            assert_eq!(got, want, "links of {i}");
            for l in g.links(n) {
                if let Link::Known(j) = l {
                    assert!(g.find(&cid_of(g, l)) == Some(j));
                }
            }
        }
        // Another codec on a loaded object's key is not the object; an unknown key is absent.
        assert_eq!(g.find(&Cid::new_v1(RAW, *objs[3].hash())), None);
        assert_eq!(g.find(&dag_cbor_blake2b_cid(b"unknown")), None);
    }

    #[test]
    fn a_built_graph_answers_each_loaded_object_with_its_links() {
        let (objs, links_of) = sample();
        let mut b = GraphBuilder::new(1 << 20, None);
        for i in (0..400).rev() {
            b.record(&objs[i], &links_of(i));
        }
        let g = built(b, None).expect("within the limit");
        holds_sample(&g, &objs, &links_of);
    }

    #[test]
    fn a_graph_built_from_reused_nodes_and_records_is_the_same_graph() {
        let (objs, links_of) = sample();
        let mut b = GraphBuilder::new(1 << 20, None);
        for (i, c) in objs.iter().enumerate().take(400) {
            b.record(c, &links_of(i));
        }
        let g = built(b, None).unwrap();
        // Every node reused; then every other one reused and the rest recorded again.
        for every in [1, 2, 3] {
            let mut again = GraphBuilder::new(1 << 20, Some(&g));
            for (i, c) in objs.iter().enumerate().take(400) {
                match (i % every == 0, g.find(c)) {
                    (true, Some(n)) => again.reuse(n),
                    _ => again.record(c, &links_of(i)),
                }
            }
            let h = built(again, Some(&g)).unwrap();
            holds_sample(&h, &objs, &links_of);
            // The same nodes with the same links (external links may be numbered otherwise).
            assert!(g.digests == h.digests && g.first == h.first && g.loaded == h.loaded, "every {every}");
        }
        // Only part reused: the graph holds that part, and what it links to as unloaded nodes.
        let mut part = GraphBuilder::new(1 << 20, Some(&g));
        for c in objs.iter().take(100) {
            part.reuse(g.find(c).unwrap());
        }
        let p = built(part, Some(&g)).unwrap();
        for (i, c) in objs.iter().enumerate() {
            assert_eq!(p.find(c).is_some(), i < 100, "object {i}");
        }
        let got: Vec<Cid> = p.links(p.find(&objs[99]).unwrap()).map(|l| cid_of(&p, l)).collect();
        assert_eq!(got, links_of(99));
    }

    #[test]
    fn a_builder_holds_at_most_its_limit_and_a_chunk_of_each_kind() {
        let limit = 3 << 20;
        let mut b = GraphBuilder::new(limit, None);
        let links: Vec<Cid> = (0u32..8).map(|i| dag_cbor_blake2b_cid(&i.to_be_bytes())).collect();
        let most = limit + crate::chunked::CHUNK * (size_of::<([u8; 32], u32)>() + size_of::<Child>());
        let mut i = 0u32;
        while !b.over {
            b.record(&dag_cbor_blake2b_cid(&i.to_le_bytes()), &links);
            assert!(b.held() <= most, "{} bytes held after {i} records", b.held());
            i += 1;
        }
        assert!(i > 5_000, "over after {i} records");
        assert_eq!((b.held(), b.recorded()), (0, 0), "what it held is given back");
        b.record(&links[0], &links[1..]);
        assert_eq!(b.recorded(), 0, "nothing more is recorded");
        b.clear();
        b.record(&links[0], &links[1..]);
        assert_eq!(b.recorded(), 1, "a cleared builder records again");
    }

    #[test]
    fn a_graph_over_its_limit_is_not_kept() {
        let objs: Vec<Cid> = (0u32..1000).map(|i| dag_cbor_blake2b_cid(&i.to_le_bytes())).collect();
        let mut b = GraphBuilder::new(10_000, None);
        for c in &objs {
            b.record(c, &[]);
        }
        assert!(built(b, None).is_none());
        assert!(built(GraphBuilder::new(0, None), None).is_none(), "a limit of 0 keeps nothing");
        let mut small = GraphBuilder::new(10_000, None);
        small.record(&objs[0], &objs[1..3]);
        assert_eq!(built(small, None).map(|g| g.len()), Some(3));
    }

    /// The same records and reuses, built with pauses every `every` elements.
    fn sample_graphs(every: usize) -> (KeptGraph, KeptGraph, usize) {
        let (objs, links_of) = sample();
        let mut b = GraphBuilder::new(1 << 20, None);
        for i in (0..400).rev() {
            b.record(&objs[i], &links_of(i));
        }
        let (g, p1) = built_pausing(b, None, every);
        let g = g.unwrap();
        let mut again = GraphBuilder::new(1 << 20, Some(&g));
        for (i, c) in objs.iter().enumerate().take(400) {
            match (i % 3 == 0, g.find(c)) {
                (true, Some(n)) => again.reuse(n),
                _ => again.record(c, &links_of(i)),
            }
        }
        let (h, p2) = built_pausing(again, Some(&g), every);
        (g, h.unwrap(), p1 + p2)
    }

    #[test]
    fn a_build_pauses_as_often_as_asked_and_builds_the_same_graph() {
        let (g, h, _) = sample_graphs(usize::MAX);
        let same = |a: &KeptGraph, b: &KeptGraph| {
            a.digests == b.digests
                && a.radix == b.radix
                && a.first == b.first
                && a.loaded == b.loaded
                && a.edges == b.edges
                && a.external == b.external
        };
        // Two builds of 400 loaded objects and about 1,300 links each: with a pause after
        // every element, each of them is followed by at least one.
        let (_, _, most) = sample_graphs(1);
        assert!(most >= 2 * 1_700, "{most} pauses");
        let mut fewer = most;
        for every in [2, 7, 64, 1000] {
            let (g2, h2, pauses) = sample_graphs(every);
            assert!(same(&g, &g2) && same(&h, &h2), "every {every}");
            assert!(pauses > 0 && pauses <= fewer, "every {every}: {pauses} pauses");
            fewer = pauses;
        }
    }

    #[test]
    fn a_paced_sort_sorts() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (len, skew) in [(0, 0), (1, 0), (2, 0), (9, 0), (1000, 0), (5000, 0), (5000, 40), (5000, 64)] {
            // `skew` leading bits shared by every lead: one bucket holds them all.
            let pairs: Vec<(u64, u32)> =
                (0..len).map(|i| (next().checked_shr(skew).unwrap_or(0), (next() % 7) as u32 + i as u32 % 3)).collect();
            let mut want = pairs.clone();
            want.sort_unstable();
            for every in [1, 3, 100, usize::MAX] {
                let mut pauses = 0;
                let mut pace = Pace::new(every, || {
                    pauses += 1;
                    async {}
                });
                let got = futures::executor::block_on(sort_paced(pairs.clone(), |p| p.0, &mut pace));
                assert_eq!(got, want, "{len} pairs, skew {skew}, every {every}");
                // Counting the buckets alone steps once per pair.
                assert!(pauses >= len / every, "{len} pairs, every {every}: {pauses} pauses");
            }
        }
    }
}
