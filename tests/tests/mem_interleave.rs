//! Interleavings of a compaction with a node's foreground (a chain syncing in every order,
//! several writers, dropped writes), on the in-memory backend. `SPLITSTORE_SEEDS` sets the
//! number of seeds (default 1000).

use splitstore_conformance::{executor::block_on, interleave::many_seeds};

fn seeds() -> u64 {
    std::env::var("SPLITSTORE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000)
}

#[test]
fn foreground_survives_every_interleaving() {
    let seeds = seeds();
    let t = block_on(many_seeds(1, seeds));
    println!(
        "interleavings: {seeds} seeds, {} scheduling steps; during compactions {} reads found, {} writes, \
         {} writes dropped, {} heads applied; {} blocks purged; {} compactions marked the old chain from its index, {} from the kept graph; \
         {} next compactions collected from the hot key list",
        t.steps, t.reads, t.writes, t.dropped, t.heads, t.purged, t.indexed, t.from_graph, t.listed
    );
    assert!(t.reads > seeds && t.writes > seeds && t.dropped > 0 && t.heads > seeds && t.purged > 0);
    // Even seeds compact once before; messages mode (a third of them) walks without the index.
    assert!(t.indexed > seeds / 5, "the chain index was used by {} compactions of {seeds}", t.indexed);
    // Likewise the graph the first compaction kept.
    assert!(t.from_graph > seeds / 5, "the kept graph was used by {} compactions of {seeds}", t.from_graph);
    // Every next compaction, but one after a dropped list (past a deletion or its limit).
    assert!(t.listed > seeds * 9 / 10, "the hot key list was used by {} compactions of {seeds}", t.listed);
}

#[test]
fn crashes_during_interleavings_lose_nothing_touched() {
    let seeds = seeds() / 2;
    let crashed = (1..=seeds).filter(|&s| block_on(splitstore_conformance::interleave::one_seed_with_crash(s))).count();
    println!("crash interleavings: {seeds} seeds, {crashed} crashed mid-compaction");
    assert!(crashed as u64 > seeds / 4);
}
