//! Folders that stay connected, browser side: "Choose folder (stays connected)" calls
//! `window.showDirectoryPicker()`, keeps the `FileSystemDirectoryHandle` in IndexedDB
//! (`photo-meta`, key `connected-folder`: handles are structured-cloneable), and walks it;
//! on a later visit "Reconnect FOLDER" asks `requestPermission({mode: "read"})` and walks
//! it again. A walk hands every file (`getFile()`, which reads no byte) to the same path as
//! a folder drop (`photos::accept`): unchanged photos are not read, new and changed ones
//! are indexed, and the photos gone from the folder are offered to forget
//! (`#forget-button`), never forgotten silently. The Files it yields are the originals the
//! previews open.
//!
//! The seam for tests: a function `globalThis.__clipseekPickDirectory`, when present, is
//! called instead of the picker (headless Chromium has no picker UI; the browser test
//! hands a directory of the Origin Private File System through it). The rules are
//! `page::connected`'s; this file only calls the browser.

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{File, FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemHandle};

use std::collections::BTreeMap;

use super::driver::{with, AppRef};
use super::events::listen;
use super::idb::schema;
use super::ui::drop::{Picked, PickedSet};
use super::ui::{set_text, show};
use super::{describe_js, prop};
use crate::page::connected::{diff, offer, reconnect_label, Offer, Seen};

const KEY: &str = "connected-folder";

fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

/// Shows the connect and reconnect buttons (or why there are none) and wires them.
pub fn wire(app: &AppRef) -> Result<(), JsValue> {
    let (Some(connect), Some(reconnect), Some(text)) = (
        element("connect-button"),
        element("reconnect-button"),
        element("connect-text"),
    ) else {
        return Ok(());
    };
    let has_picker = picker().is_some();
    if let Offer::NotHere(why) = offer(has_picker, None) {
        set_text(&text, why);
        return Ok(());
    }
    show(&connect, true);
    let connect_app = app.clone();
    listen(&connect, "click", move |_: web_sys::Event| {
        let app = connect_app.clone();
        spawn_local(async move { say(choose(&app).await) });
    })?;
    let reconnect_app = app.clone();
    listen(&reconnect, "click", move |_: web_sys::Event| {
        let app = reconnect_app.clone();
        spawn_local(async move { say(again(&app).await) });
    })?;
    spawn_local(async move {
        if let Ok(Some(handle)) = remembered().await {
            set_text(&reconnect, &reconnect_label(&handle.name()));
            show(&reconnect, true);
        }
    });
    Ok(())
}

/// The test seam, else `window.showDirectoryPicker`.
fn picker() -> Option<Function> {
    let global = js_sys::global();
    ["__clipseekPickDirectory", "showDirectoryPicker"]
        .into_iter()
        .find_map(|name| prop(&global, name)?.dyn_into::<Function>().ok())
}

fn say(result: Result<(), String>) {
    if let (Err(why), Some(text)) = (result, element("connect-text")) {
        set_text(&text, &why);
    }
}

async fn call(promise: Result<JsValue, JsValue>) -> Result<JsValue, String> {
    let promise: Promise = promise.map_err(|e| describe_js(&e))?.unchecked_into();
    JsFuture::from(promise).await.map_err(|e| describe_js(&e))
}

/// "Choose folder (stays connected)": pick, remember, walk.
async fn choose(app: &AppRef) -> Result<(), String> {
    let pick = picker().ok_or("This browser has no directory picker.")?;
    let value = call(pick.call0(&JsValue::UNDEFINED)).await?;
    let handle: FileSystemDirectoryHandle = value
        .dyn_into()
        .map_err(|_| "The picker gave no folder.".to_owned())?;
    remember(&handle).await?;
    if let Some(button) = element("reconnect-button") {
        set_text(&button, &reconnect_label(&handle.name()));
        show(&button, true);
    }
    walk_into(app, &handle, false).await
}

/// "Reconnect FOLDER": ask for access again, then walk.
async fn again(app: &AppRef) -> Result<(), String> {
    let handle = remembered()
        .await?
        .ok_or("No folder is remembered; choose one first.")?;
    let options = Object::new();
    Reflect::set(&options, &"mode".into(), &"read".into()).map_err(|e| describe_js(&e))?;
    let ask = prop(&handle, "requestPermission")
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or("This browser cannot ask for the folder again.")?;
    let state = call(ask.call1(&handle, &options)).await?;
    if state.as_string().as_deref() != Some("granted") {
        return Err(format!(
            "Access to {} was not granted, so it was not read.",
            handle.name()
        ));
    }
    walk_into(app, &handle, true).await
}

/// Walks the folder and hands it to the run: as a drop when it was just chosen, as the
/// stored folder it was indexed as when `reconnected` (then edits cannot make it a new one).
async fn walk_into(
    app: &AppRef,
    handle: &FileSystemDirectoryHandle,
    reconnected: bool,
) -> Result<(), String> {
    let root = handle.name();
    let mut set = PickedSet {
        roots: vec![root.clone()],
        reconnected,
        ..PickedSet::default()
    };
    walk(handle, &root, &mut set).await?;
    let line = with(app, |a| {
        let under = format!("{root}/");
        let indexed: BTreeMap<String, (u64, i64)> = a
            .core
            .index()
            .map(|i| i.entries())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let rel = e.path.strip_prefix(&under)?;
                Some((rel.to_owned(), (e.size_bytes, e.modified_ms)))
            })
            .collect();
        let walked: Vec<Seen> = set
            .files
            .iter()
            .filter_map(|p| {
                Some(Seen {
                    path: p.path.strip_prefix(&under)?.to_owned(),
                    size_bytes: p.file.size() as u64,
                    modified_ms: p.file.last_modified() as i64,
                })
            })
            .collect();
        diff(&indexed, &walked).line(&root)
    });
    if let (Some(line), Some(text)) = (line, element("connect-text")) {
        set_text(&text, &line);
    }
    super::photos::accept(app, set).await;
    Ok(())
}

/// Every file under `dir`, as `prefix/name`, depth first; an entry that cannot be opened
/// is listed as unopened, the rest walked.
async fn walk(
    dir: &FileSystemDirectoryHandle,
    prefix: &str,
    set: &mut PickedSet,
) -> Result<(), String> {
    let mut stack = vec![(dir.clone(), prefix.to_owned())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = dir.values();
        loop {
            let next = call(entries.next().map(JsValue::from)).await?;
            if prop(&next, "done").is_some_and(|d| d.is_truthy()) {
                break;
            }
            let Some(entry) = prop(&next, "value") else {
                continue;
            };
            let handle: FileSystemHandle = entry.unchecked_into();
            let path = format!("{prefix}/{}", handle.name());
            if let Some(sub) = handle.dyn_ref::<FileSystemDirectoryHandle>() {
                stack.push((sub.clone(), path));
            } else if let Some(file) = handle.dyn_ref::<FileSystemFileHandle>() {
                match call(Ok(file.get_file().into())).await {
                    Ok(f) => set.files.push(Picked {
                        path,
                        file: f.unchecked_into::<File>(),
                        folder: Some(0),
                    }),
                    Err(why) => set.unopened.push((path, why)),
                }
            }
        }
    }
    Ok(())
}

/// A storage error as its sentence.
fn said(e: impl ToString) -> String {
    e.to_string()
}

async fn remember(handle: &FileSystemDirectoryHandle) -> Result<(), String> {
    let db = schema::open().await.map_err(said)?;
    let tx = db.write(&[schema::PHOTO_META]).map_err(said)?;
    let meta = tx.store(schema::PHOTO_META).map_err(said)?;
    meta.put(&JsValue::from_str(KEY), handle).map_err(said)?;
    tx.done().await.map_err(said)
}

async fn remembered() -> Result<Option<FileSystemDirectoryHandle>, String> {
    let db = schema::open().await.map_err(said)?;
    let tx = db.read(&[schema::PHOTO_META]).map_err(said)?;
    let meta = tx.store(schema::PHOTO_META).map_err(said)?;
    let value = meta.get(&JsValue::from_str(KEY)).await.map_err(said)?;
    Ok(value.and_then(|v| v.dyn_into().ok()))
}
