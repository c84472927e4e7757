//! The IndexedDB model cache (`web::model_cache::IdbChunkStore`) against the same
//! `ChunkStore` contract the in-memory store passes natively (`model_cache::contract`), in
//! a real Chromium through chromedriver (webdriver.json). Run with
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown --test idb_contract`.
//! The photo store (`web::photo_store`) against `page::photo_contract`, and the tabs'
//! BroadcastChannel driver (`web::tabs`), are checked here too.
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

/// The IndexedDB photo store (`web::photo_store::IdbPhotoStore`) against the `PhotoStore`
/// contract the memory store passes natively (`page::photo_contract`).
#[wasm_bindgen_test]
async fn the_indexeddb_store_passes_the_photo_store_contract() -> Result<(), String> {
    use clipseek::page::photo_contract;
    use clipseek::web::photo_store::IdbPhotoStore;
    let db = schema::open().await.map_err(|e| e.to_string())?;
    let store = IdbPhotoStore::new(db);
    let report = photo_contract::run_all(&store).await;
    for (name, result) in &report {
        let line = match result {
            Ok(()) => format!("photo contract ok: {name}"),
            Err(e) => format!("photo contract FAILED: {name}: {e}"),
        };
        web_sys::console::log_1(&line.into());
    }
    let failed: Vec<String> = report
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    if report.len() != photo_contract::CASES.len() {
        return Err(format!(
            "{} of {} cases ran",
            report.len(),
            photo_contract::CASES.len()
        ));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the IndexedDB photo store broke the contract: {failed:#?}"
        ))
    }
}

/// Two tabs' channels (two BroadcastChannels of one name in one page reach each other as
/// two tabs do): a clear in tab A reaches tab B as a reload at the new generation, and
/// photos A saved reach B as photos to load; A hears nothing of its own.
#[wasm_bindgen_test]
async fn the_tab_channel_carries_one_tabs_changes_to_another() -> Result<(), String> {
    use std::cell::RefCell;
    use std::rc::Rc;

    use clipseek::page::tabs::{TabId, TabInput, Tabs};
    use clipseek::web::tabs::{start, OnInput};

    let heard_a: Rc<RefCell<Vec<TabInput>>> = Rc::default();
    let heard_b: Rc<RefCell<Vec<TabInput>>> = Rc::default();
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = |heard: &Rc<RefCell<Vec<TabInput>>>| -> OnInput {
        let heard = heard.clone();
        let errors = errors.clone();
        Rc::new(move |input| match input {
            Ok(i) => heard.borrow_mut().push(i),
            Err(e) => errors.borrow_mut().push(e.to_string()),
        })
    };
    let a = Rc::new(RefCell::new(Tabs::new(TabId(1), 3)));
    let b = Rc::new(RefCell::new(Tabs::new(TabId(2), 3)));
    let channel_a = start(a.clone(), sink(&heard_a)).map_err(|e| format!("{e:?}"))?;
    let _channel_b = start(b.clone(), sink(&heard_b)).map_err(|e| format!("{e:?}"))?;
    let added = a.borrow().added(vec!["DCIM/1.jpg".into()]);
    channel_a.send(&added).map_err(|e| e.to_string())?;
    let cleared = a.borrow_mut().cleared(4);
    channel_a.send(&cleared).map_err(|e| e.to_string())?;
    for _ in 0..100 {
        if heard_b.borrow().len() >= 2 {
            break;
        }
        clipseek::web::sleep_ms(20.0).await;
    }
    let got = heard_b.borrow().clone();
    let want = vec![
        TabInput::Load {
            paths: vec!["DCIM/1.jpg".into()],
        },
        TabInput::Reload { generation: 4 },
    ];
    if got != want {
        return Err(format!("tab B heard {got:?}, not {want:?}"));
    }
    if b.borrow().generation() != 4 {
        return Err("tab B did not adopt the new generation".into());
    }
    if !heard_a.borrow().is_empty() || !errors.borrow().is_empty() {
        return Err(format!(
            "tab A heard {:?}; errors {:?}",
            heard_a.borrow(),
            errors.borrow()
        ));
    }
    Ok(())
}
