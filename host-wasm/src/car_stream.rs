//! CAR files as web streams: an import that reads a `ReadableStream<Uint8Array>` chunk by
//! chunk, and an export that is one, page by page. Memory stays bounded by a page of blocks
//! and an import batch, whatever the file's size.

use std::rc::Rc;

use futures::{stream, StreamExt};
use js_sys::Uint8Array;
use splitstore_core::{
    car::{encode_header_v1, encode_section, export_cid, CarLimits},
    import::{HeadPolicy, ImportError, ImportReport, Importer},
    store::ListCursor,
    Error, Kv, KvError, Space,
};
use wasm_bindgen::{JsCast, JsValue};

use crate::{
    convert::{self, store_error, type_error},
    idb_kv::IdbKv,
};

type Store = splitstore_core::SplitStore<IdbKv, crate::clock::JsClock>;

/// Blocks per page of an export (one stream chunk each).
const EXPORT_PAGE: usize = 2048;

/// Which stores an export reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The hot store's blocks.
    Hot,
    /// The cold store's blocks.
    Cold,
    /// Every readable block once (hot, then what only cold has).
    All,
}

impl Source {
    /// `"hot"`, `"cold"` or `"all"`.
    pub fn parse(s: &str) -> Result<Self, JsValue> {
        match s {
            "hot" => Ok(Source::Hot),
            "cold" => Ok(Source::Cold),
            "all" => Ok(Source::All),
            _ => Err(type_error("an export reads \"hot\", \"cold\" or \"all\"")),
        }
    }
}

/// An import error as a JS error: a bad file is `BadCar`, a store failure keeps its code.
pub fn import_error(e: &ImportError) -> JsValue {
    match e {
        ImportError::Car(e) => convert::error_to_js(e, convert::ErrorCode::BadCar),
        ImportError::Store(e) => store_error(e),
    }
}

/// Imports a CAR read from `stream`, one chunk at a time. Blocks are checked against their
/// CIDs and written in batches as they arrive, so a stream that turns out malformed leaves the
/// verified blocks before the damage in the hot store (unreferenced: a compaction drops them in
/// discard mode) and never moves the head.
pub async fn import(
    store: &Store,
    stream: web_sys::ReadableStream,
    policy: HeadPolicy,
) -> Result<ImportReport, JsValue> {
    let mut chunks = wasm_streams::ReadableStream::from_raw(stream).into_stream();
    let mut importer = Importer::new(store, CarLimits::default()).head_policy(policy);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?
            .dyn_into::<Uint8Array>()
            .map_err(|_| type_error("importCarStream reads a stream of Uint8Array chunks"))?;
        importer.feed(&chunk.to_vec()).await.map_err(|e| import_error(&e))?;
    }
    importer.finish().await.map_err(|e| import_error(&e))
}

/// Where an export stands.
#[derive(Debug)]
enum Position {
    Header,
    Store { cold: bool, after: Option<Vec<u8>> },
    All(Option<ListCursor>),
}

/// The next non-empty chunk of an export from `at`, and where the export goes on (`None`:
/// this was the last chunk).
async fn next_chunk(store: &Store, source: Source, at: Position) -> Result<(Vec<u8>, Option<Position>), JsValue> {
    let mut at = at;
    loop {
        let mut out = Vec::new();
        let next = match at {
            Position::Header => {
                let head = store.info().await.map_err(|e| store_error(&e))?.head.unwrap_or_default();
                encode_header_v1(&head, &mut out);
                Some(match source {
                    Source::Hot => Position::Store { cold: false, after: None },
                    Source::Cold => Position::Store { cold: true, after: None },
                    Source::All => Position::All(None),
                })
            }
            Position::Store { cold, after } => {
                let (kv, name) = if cold { (store.cold(), "cold") } else { (store.hot(), "hot") };
                let page = kv
                    .scan(Space::Blocks, after.as_deref(), EXPORT_PAGE)
                    .await
                    .map_err(|e| store_error(&Error::Kv { store: name, source: e }))?;
                let full = page.len() == EXPORT_PAGE;
                let last = page.last().map(|(k, _)| k.clone());
                sections(page, name, &mut out)?;
                full.then_some(Position::Store { cold, after: last })
            }
            Position::All(cursor) => {
                let page = store.list_blocks(cursor, EXPORT_PAGE).await.map_err(|e| store_error(&e))?;
                sections(page.blocks, "hot or cold", &mut out)?;
                page.next.map(|c| Position::All(Some(c)))
            }
        };
        match next {
            Some(n) if out.is_empty() => at = n,
            next => return Ok((out, next)),
        }
    }
}

/// Appends a section per `(key, bytes)`, named by [`export_cid`].
fn sections(page: Vec<(Vec<u8>, Vec<u8>)>, store: &'static str, out: &mut Vec<u8>) -> Result<(), JsValue> {
    for (k, v) in page {
        let cid = export_cid(&k, &v).ok_or_else(|| {
            let e = KvError::Corrupt { detail: format!("{store} key {k:02x?} is not a multihash") };
            convert::error_to_js(&e, convert::ErrorCode::Corrupt)
        })?;
        encode_section(&cid, &v, out);
    }
    Ok(())
}

/// The chunks of an export, as a Rust stream: the header, then a page of blocks each.
pub fn chunks(store: Rc<Store>, source: Source) -> impl futures::Stream<Item = Result<Vec<u8>, JsValue>> {
    stream::unfold(Some(Position::Header), move |at| {
        let store = store.clone();
        async move {
            let at = at?;
            Some(match next_chunk(&store, source, at).await {
                Ok((bytes, next)) => (Ok(bytes), next),
                Err(e) => (Err(e), None),
            })
        }
    })
}

/// An export as a `ReadableStream<Uint8Array>`: each page is read when the consumer pulls.
pub fn export(store: Rc<Store>, source: Source) -> web_sys::ReadableStream {
    let js = chunks(store, source).map(|c| c.map(|bytes| JsValue::from(Uint8Array::from(&bytes[..]))));
    wasm_streams::ReadableStream::from_stream(js).into_raw()
}
