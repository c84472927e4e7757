//! The controls above the results: the minimum-score slider (kept in `localStorage` for the
//! next visit), the folder, sort and date inputs, each turned into a `page::search` input;
//! the folder list drawn from the index; "Export index", which downloads the index as
//! the CLI's archive (`index::export`: embeddings.npy + manifest.json in a zip), and
//! "Import index", which reads one (`page::archive`), saves its new photos and loads them.
//!
//! It must not filter or order anything itself (`page::results` does). Reference: issue 11
//! items 3–5; DESIGN.md "Contract: native CLI" (the archive).

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{Blob, BlobPropertyBag, Event, File, HtmlAnchorElement, Url};

use super::driver::{with, AppRef};
use super::events::on;
use super::search::{render_results, search_input};
use super::sync::{guard, store_of, tell};
use super::ui::{set_text, Dom};
use super::{describe_js, noted, now_ms, read_blob};
use crate::index::export::export_marked;
use crate::index::filters::SortBy;
use crate::index::Entry;
use crate::page::archive::{import_line, plan_import};
use crate::page::photo_store::{PhotoRecord, PhotoStore, Thumb};
use crate::page::results::day_range;
use crate::page::search::Input;

/// Where the minimum score is remembered.
const MIN_SCORE_KEY: &str = "clipseek.min-score";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// `#min-score-value`: "off" at 0, else the score.
pub fn show_min_score(dom: &Dom, score: f32) {
    let text = if score > 0.0 {
        format!("{score:.2}")
    } else {
        "off".to_owned()
    };
    set_text(&dom.min_score_value, &text);
}

/// Keeps `score` for the next visit (a refusal, e.g. storage off, is logged once).
pub fn remember_min_score(score: f32) {
    let kept = match storage() {
        Some(s) => s.set_item(MIN_SCORE_KEY, &score.to_string()),
        None => Err(JsValue::from_str("localStorage is not available")),
    };
    noted(kept, "remember the minimum score");
}

/// The remembered minimum score, put on the slider and into the search.
pub fn restore(app: &AppRef) {
    let score = storage()
        .and_then(|s| s.get_item(MIN_SCORE_KEY).ok().flatten())
        .and_then(|v| v.parse::<f32>().ok())
        .filter(|v| v.is_finite() && *v > 0.0);
    let Some(score) = score else { return };
    if let Some(dom) = with(app, |a| a.dom.clone()) {
        dom.min_score.set_value(&score.to_string());
        show_min_score(&dom, score);
    }
    search_input(app, Input::MinScore(score));
}

/// Draws `#folder-filter`'s options (keeping the chosen one while it exists).
pub fn set_folders(dom: &Dom, folders: &[String]) {
    let chosen = dom.folder_filter.value();
    let doc = &dom.document;
    dom.folder_filter.set_inner_html("");
    let add = |value: &str, text: &str| {
        if let Ok(option) = doc.create_element("option") {
            super::ui::attr(&option, "value", value);
            option.set_text_content(Some(text));
            super::ui::append(&dom.folder_filter, &option);
        }
    };
    add("", "All folders");
    for folder in folders {
        add(folder, folder);
    }
    if folders.contains(&chosen) {
        dom.folder_filter.set_value(&chosen);
    }
}

fn dates_changed(app: &AppRef, _: Event) {
    let range = with(app, |a| {
        day_range(&a.dom.date_from.value(), &a.dom.date_to.value())
    });
    if let Some(range) = range {
        search_input(app, Input::Dates(range));
    }
}

pub fn wire(app: &AppRef, dom: &Dom) -> Result<(), JsValue> {
    on(app, &dom.min_score, "input", |app, _| {
        let Some(dom) = with(app, |a| a.dom.clone()) else {
            return;
        };
        let score = dom.min_score.value().parse::<f32>().unwrap_or(0.0);
        show_min_score(&dom, score);
        search_input(app, Input::MinScore(score));
    })?;
    on(app, &dom.folder_filter, "change", |app, _| {
        if let Some(folder) = with(app, |a| a.dom.folder_filter.value()) {
            search_input(app, Input::Folder(folder));
        }
    })?;
    on(app, &dom.sort_by, "change", |app, _| {
        let sort = with(app, |a| match a.dom.sort_by.value().as_str() {
            "newest" => SortBy::DateNewest,
            "oldest" => SortBy::DateOldest,
            _ => SortBy::Score,
        });
        if let Some(sort) = sort {
            search_input(app, Input::Sort(sort));
        }
    })?;
    on(app, &dom.date_from, "change", dates_changed)?;
    on(app, &dom.date_to, "change", dates_changed)?;
    on(app, &dom.export_button, "click", |app, _| {
        let said = match export_index(app) {
            Ok(n) => format!("Exported {n} photos as clipseek-export.zip."),
            Err(e) => format!("The index could not be exported: {e}"),
        };
        with(app, |a| set_text(&a.dom.search_text, &said));
    })?;
    on(app, &dom.import_input, "change", |app, _| {
        let Some(file) = with(app, |a| {
            let file = a.dom.import_input.files().and_then(|f| f.get(0));
            // The same file chosen again is a new change.
            a.dom.import_input.set_value("");
            file
        }) else {
            return;
        };
        if let Some(file) = file {
            let app = app.clone();
            spawn_local(async move {
                let said = import_archive(&app, file).await.unwrap_or_else(|e| e);
                with(&app, |a| set_text(&a.dom.search_text, &said));
            });
        }
    })
}

/// Reads, checks, saves and loads an archive; the sentence to show.
async fn import_archive(app: &AppRef, file: File) -> Result<String, String> {
    let bytes = read_blob(&file)
        .await
        .map_err(|e| format!("The archive could not be read: {}", describe_js(&e)))?;
    let planned = with(app, |a| {
        let index = a
            .core
            .index()
            .ok_or("No index is open yet: wait for the model.")?;
        let plan = plan_import(&bytes, index, now_ms())?;
        let paths: Vec<String> = plan.records.iter().map(|r| r.path.clone()).collect();
        let guard = guard(a, &paths);
        Ok::<_, String>((plan, store_of(a), guard))
    });
    let (plan, store, guard) = planned.ok_or("The page is busy; try again.")??;
    let (Some(store), Some(guard)) = (store, guard) else {
        return Err("The index is still being read; try again in a moment.".to_owned());
    };
    let photos: Vec<(PhotoRecord, Thumb<Blob>)> = plan
        .records
        .iter()
        .map(|r| (r.clone(), Thumb::None))
        .collect();
    store
        .save(&photos, &guard)
        .await
        .map_err(|e| format!("The imported photos could not be saved: {e}"))?;
    let added = plan.records.len();
    let paths: Vec<String> = plan.records.iter().map(|r| r.path.clone()).collect();
    with(app, |a| {
        a.core.load_stored(plan.records);
        a.update_status();
    });
    tell(app, |t| t.added(paths));
    render_results(app);
    Ok(import_line(added, plan.kept))
}

/// Downloads the index as `clipseek-export.zip`; the number of photos in it.
fn export_index(app: &AppRef) -> Result<usize, String> {
    let made = with(app, |a| {
        let index = a.core.index().ok_or("no index is open yet")?;
        let revision = Some(a.params.source.revision.as_str());
        let marked = |e: &Entry| a.core.decoded_by_browser(&e.content_hash);
        let bytes = export_marked(index, revision, marked).map_err(|e| e.to_string())?;
        Ok::<_, String>((bytes, index.len(), a.dom.clone()))
    });
    let (bytes, n, dom) = made.ok_or("the page is busy; try again")??;
    let js = |e: JsValue| describe_js(&e);
    let parts = Array::of1(&Uint8Array::from(bytes.as_slice()));
    let options = BlobPropertyBag::new();
    options.set_type("application/zip");
    let blob = Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(js)?;
    let url = Url::create_object_url_with_blob(&blob).map_err(js)?;
    let link: HtmlAnchorElement = dom
        .document
        .create_element("a")
        .map_err(js)?
        .dyn_into()
        .map_err(|_| "no link element".to_owned())?;
    link.set_href(&url);
    link.set_download("clipseek-export.zip");
    link.click();
    // The download has its own copy once it started; the URL goes a minute later.
    super::actions::revoke_later(url);
    Ok(n)
}
