//! Photos in and out of the index, browser side: a drop or a pick is read (folders walked,
//! non-photos left out by name or first bytes) and handed to the core (`page::run`,
//! `Input::Dropped`), which starts the download first when there is no model yet;
//! "Forget N photos" and "Clear index" change the core's index and then storage.
//!
//! It must not place photos or decide what to index (that is `page::library`, `ingest`,
//! `page::run`). Reference: DESIGN.md "The page: folder identity".

use wasm_bindgen_futures::spawn_local;
use web_sys::DataTransfer;

use super::driver::{with, AppRef, Stage};
use super::library::IdbPhotoStore;
use super::model::{offer_input, show_storage};
use super::search::{render_results, search_input};
use super::ui::drop::{entries_of_drop, from_input, walk, PickedSet};
use super::ui::set_text;
use super::workers::run_input;
use super::{now_ms, sleep_ms, sync};
use crate::ingest;
use crate::page::browser_decode;
use crate::page::library::DropFile;
use crate::page::offer::Input as OfferInput;
use crate::page::photo_store::PhotoStore;
use crate::page::refused::{RefusedFile, RefusedKey};
use crate::page::run::Input as RunInput;
use crate::page::search::Input;

/// A drop on the zone: its tree is walked, then its photos accepted.
pub fn read_drop(app: &AppRef, dt: &DataTransfer) {
    let dropped = entries_of_drop(dt);
    with(app, |a| {
        a.collecting += 1;
        a.update_status();
    });
    let app = app.clone();
    spawn_local(async move {
        let set = walk(dropped).await;
        with(&app, |a| a.collecting -= 1);
        accept(&app, set).await;
    });
}

/// A pick from `#folder-input` or `#files-input`.
pub fn picked(app: &AppRef, folder: bool) {
    let Some(dom) = with(app, |a| a.dom.clone()) else {
        return;
    };
    let input = if folder {
        &dom.folder_input
    } else {
        &dom.files_input
    };
    let set = from_input(input);
    // Let the same folder be picked again later.
    input.set_value("");
    let app = app.clone();
    spawn_local(async move { accept(&app, set).await });
}

/// What is a photo by its name or its first bytes (`.txt`, `.DS_Store` are not). A file
/// whose first bytes name a format the app cannot decode (TIFF, camera RAW) is kept with
/// its refusal (`ingest::refusal_for_head`) so the core lists and remembers it; one the
/// core remembers as refused is kept without reading a byte; one whose first bytes cannot
/// be read is listed as unopened.
async fn keep_photos(app: &AppRef, set: PickedSet) -> (PickedSet, Vec<RefusedFile>) {
    let mut kept = PickedSet {
        files: Vec::new(),
        roots: set.roots,
        unopened: set.unopened,
        reconnected: set.reconnected,
    };
    let mut refused = Vec::new();
    for picked in set.files {
        let file = &picked.file;
        let key = RefusedKey::new(
            &picked.path,
            file.size() as u64,
            file.last_modified() as i64,
        );
        let known = with(app, |a| a.core.refusal(&key).is_some()).unwrap_or(false);
        let keep = if known || ingest::has_image_extension(&picked.path) {
            true
        } else if file.size() >= 1.0 {
            let head = file.slice_with_f64_and_f64(0.0, ingest::SNIFF_BYTES as f64);
            let bytes = match head {
                Ok(head) => super::read_blob(&head).await,
                Err(e) => Err(e),
            };
            match bytes {
                // AVIF, HEIC: ours refuse them, the worker asks the browser.
                Ok(b) if browser_decode::head_for_browser(&b) => true,
                Ok(b) => {
                    if let Some(reason) = ingest::refusal_for_head(&b) {
                        refused.push(RefusedFile { key, reason });
                    }
                    ingest::looks_like_image_bytes(&b)
                }
                Err(e) => {
                    let why = super::unreadable_sentence(&e, false);
                    kept.unopened.push((picked.path.clone(), why));
                    false
                }
            }
        } else {
            false
        };
        if keep {
            kept.files.push(picked);
        }
    }
    (kept, refused)
}

/// Queues the photos of a drop or pick for indexing (downloading the model first when
/// there is none).
pub(super) async fn accept(app: &AppRef, set: PickedSet) {
    with(app, |a| a.collecting += 1);
    let (kept, refused) = keep_photos(app, set).await;
    if !kept.unopened.is_empty() {
        run_input(app, RunInput::NotOpened(kept.unopened));
    }
    if !refused.is_empty() {
        run_input(app, RunInput::Refused(refused));
    }
    let empty = kept.files.is_empty();
    let download = with(app, |a| {
        a.collecting -= 1;
        if empty {
            a.core.say("No photos were found in what was dropped.");
        }
        a.update_status();
        a.stage == Stage::NoModel && a.error.is_none()
    });
    if empty {
        return;
    }
    let files = kept
        .files
        .into_iter()
        .map(|p| DropFile {
            size_bytes: p.file.size() as u64,
            modified_ms: p.file.last_modified() as i64,
            path: p.path,
            folder: p.folder,
            handle: p.file,
        })
        .collect();
    let roots = kept.roots;
    run_input(
        app,
        match kept.reconnected {
            true => RunInput::Reconnected { files, roots },
            false => RunInput::Dropped { files, roots },
        },
    );
    if download == Some(true) {
        offer_input(app, OfferInput::Dropped);
    }
}

/// "Forget N photos no longer in FOLDER": removes the offered photos from the index and
/// from storage.
pub async fn forget_vanished(app: &AppRef) {
    let Some((store, paths)) = with(app, |a| {
        let removed = a.core.forget_offered();
        a.revoke_thumbs(&removed);
        a.update_status();
        (sync::store_of(a), removed)
    }) else {
        return;
    };
    render_results(app);
    if let (Some(store), false) = (store, paths.is_empty()) {
        removed(app, &store, paths).await;
    }
}

/// Removes `paths` from storage and tells the other tabs.
pub async fn removed(app: &AppRef, store: &IdbPhotoStore, paths: Vec<String>) {
    match store.remove(&paths).await {
        Ok(()) => sync::tell(app, |t| t.removed(paths)),
        Err(e) => {
            let line = format!("The index could not be updated: {e}");
            with(app, |a| a.fail(line, false));
        }
    }
}

/// "Clear index", pressed twice within five seconds.
pub async fn clear_index(app: &AppRef) {
    let Some(store) = with(app, |a| {
        let now = now_ms();
        let dom = a.dom.clone();
        if now > a.clear_armed_until {
            a.clear_armed_until = now + 5000.0;
            let n = a.core.indexed();
            let line = format!("Press again to remove all {n} photos from the index");
            set_text(&dom.clear_button, &line);
            spawn_local(async move {
                sleep_ms(5000.0).await;
                set_text(&dom.clear_button, "Clear index");
            });
            return None;
        }
        a.clear_armed_until = 0.0;
        set_text(&dom.clear_button, "Clear index");
        a.core.clear();
        let urls: Vec<String> = a.thumb_urls.keys().cloned().collect();
        a.revoke_thumbs(&urls);
        Some(sync::store_of(a))
    }) else {
        return;
    };
    let Some(store) = store else { return };
    search_input(app, Input::Cleared);
    with(app, |a| a.update_status());
    if let Some(store) = store {
        match store.clear().await {
            Ok(generation) => sync::tell(app, |t| t.cleared(generation)),
            Err(e) => {
                let line = format!("The index could not be cleared: {e}");
                with(app, |a| a.fail(line, false));
            }
        }
    }
    show_storage(app).await;
}
