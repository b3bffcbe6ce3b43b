//! Real Filecoin chains: import, compact with a small finality, and compare what stays with
//! the oracle's independent walk over the same file.

use std::collections::HashSet;

use splitstore_core::{
    car,
    kv::{Kv, Space},
    mem::ManualClock,
    Config, Error, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::keys,
    oracle::{key_of, read_car_v1, Universe},
};

/// Settings for a real chain: sync checks off (the data is from 2020), small finality.
pub fn real_config(mode: Mode, finality: i64, lenient_state: bool) -> Config {
    Config {
        mode,
        finality,
        threshold_finalities: 5,
        boundary_finalities: 4,
        message_retention: 1,
        sync_gap_secs: None,
        lenient_state,
        batch_size: 256,
        ..Config::default()
    }
}

/// Imports `car_bytes` through the engine's CAR decoder, applies its roots as the head, runs
/// one compaction and checks the result. Returns (hot before, hot after, cold after).
pub async fn import_and_compact<K: Kv>(
    make: &dyn Fn() -> K,
    car_bytes: &[u8],
    mode: Mode,
    finality: i64,
    lenient_state: bool,
) -> Result<(usize, usize, usize), Error> {
    let (roots, oracle_blocks) = read_car_v1(car_bytes);
    let (header, blocks) = car::read_car(car_bytes, car::CarLimits::default()).expect("engine reads the CAR");
    assert_eq!(header.roots, roots, "roots");
    assert_eq!(blocks.len(), oracle_blocks.len(), "block count");
    let store =
        SplitStore::open(make(), make(), ManualClock::new(0), real_config(mode, finality, lenient_state)).await?;
    for chunk in blocks.chunks(500) {
        store.put_many(chunk.to_vec()).await?;
    }
    drop(store.head_change(&[], std::slice::from_ref(&roots)).await?);
    let mut all = Universe::default();
    all.extend(oracle_blocks.iter().map(|(c, b)| (key_of(c), b.clone())));
    let hot_before = keys(store.hot(), Space::Blocks).await;
    let report = store.compact(&NoProgress).await?;
    let head_height = store.info().await?.head_epoch.expect("head");
    let b = store.config().boundaries(head_height);
    assert_eq!((report.boundary_epoch, report.include_messages_epoch), (b.boundary, b.include_messages));
    let live = all.live_set(&roots, b.boundary, b.include_messages);
    if !lenient_state {
        assert!(live.missing.is_empty(), "strict compaction succeeded although live blocks are absent");
    }
    let expected: HashSet<Vec<u8>> = live.present.intersection(&hot_before).cloned().collect();
    let hot_after = keys(store.hot(), Space::Blocks).await;
    let cold_after = keys(store.cold(), Space::Blocks).await;
    assert_eq!(hot_after.len(), expected.len(), "{mode:?}: hot count vs oracle");
    assert!(hot_after == expected, "{mode:?}: hot store differs from the oracle's live set");
    let dead: HashSet<Vec<u8>> = hot_before.difference(&expected).cloned().collect();
    match mode {
        Mode::Discard => assert!(cold_after.is_empty()),
        Mode::Universal => assert!(cold_after == dead, "universal: cold must hold exactly the purged blocks"),
        Mode::Messages => {
            let old = all.closure(&all.old_message_roots(&roots, b.include_messages)).present;
            // Whole, including blocks that stay hot because newer epochs share them.
            let want: HashSet<Vec<u8>> = hot_before.intersection(&old).cloned().collect();
            assert!(cold_after == want, "messages: cold must hold exactly the old messages and receipts");
        }
    }
    assert!(
        report.purged as usize == dead.len() && !dead.is_empty(),
        "{mode:?}: purged {} of {}",
        report.purged,
        dead.len()
    );
    Ok((hot_before.len(), hot_after.len(), cold_after.len()))
}
