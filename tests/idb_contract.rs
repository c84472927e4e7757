//! The IndexedDB model cache (`web::model_cache::IdbChunkStore`) against the same
//! `ChunkStore` contract the in-memory store passes natively (`model_cache::contract`), in
//! a real Chromium through chromedriver (webdriver.json). Run with
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown --test idb_contract`.
#![cfg(target_arch = "wasm32")]

use clipseek::model_cache::contract::{run_all, CASES};
use clipseek::web::idb::schema;
use clipseek::web::model_cache::IdbChunkStore;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn the_indexeddb_store_passes_the_chunk_store_contract() -> Result<(), String> {
    let db = schema::open().await.map_err(|e| e.to_string())?;
    let report = run_all(|key: &str| IdbChunkStore::new(db.clone(), key.to_owned())).await;
    for (name, result) in &report {
        let line = match result {
            Ok(()) => format!("contract ok: {name}"),
            Err(e) => format!("contract FAILED: {name}: {e}"),
        };
        web_sys::console::log_1(&line.into());
    }
    let failed: Vec<String> = report
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    if report.len() != CASES.len() {
        return Err(format!("{} of {} cases ran", report.len(), CASES.len()));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the IndexedDB store broke the contract: {failed:#?}"
        ))
    }
}
