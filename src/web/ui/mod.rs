//! The page's DOM: handles on the elements of index.html (found once, by id) and the small
//! view functions that write them — the status line and its `data-*` hooks, the two
//! progress bars, the skipped list. `drop` collects files from drops and pickers,
//! `results` draws the result grid and moves focus in it.
//!
//! Views only write what they are given; they must not decide anything (that is
//! `crate::page`) or touch storage and workers. Everything a test relies on is an id or a
//! `data-*` attribute from DESIGN.md ("Contract: the page"), kept stable on purpose.

pub mod drop;
pub mod results;
pub mod status;

use super::noted;
use crate::page::skipped::SkippedChange;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    Document, Element, HtmlButtonElement, HtmlDialogElement, HtmlElement, HtmlImageElement,
    HtmlInputElement, HtmlProgressElement, HtmlSelectElement,
};

/// The page's states, as `#status[data-state]` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Downloading,
    Loading,
    Ready,
    Indexing,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Downloading => "downloading",
            State::Loading => "loading",
            State::Ready => "ready",
            State::Indexing => "indexing",
            State::Error => "error",
        }
    }
}

/// Every element the app writes or listens to.
pub struct Dom {
    pub document: Document,
    pub body: HtmlElement,
    pub status: Element,
    pub model_name: Element,
    pub model_progress: HtmlProgressElement,
    pub model_text: Element,
    /// Which engine encodes, in words.
    pub engine_text: Element,
    pub download_button: HtmlButtonElement,
    pub retry_button: HtmlButtonElement,
    pub remove_model_button: HtmlButtonElement,
    pub storage_text: Element,
    pub drop_zone: HtmlElement,
    pub folder_input: HtmlInputElement,
    pub files_input: HtmlInputElement,
    pub index_progress: HtmlProgressElement,
    pub index_text: Element,
    pub pause_button: HtmlButtonElement,
    pub cancel_button: HtmlButtonElement,
    /// Shown while a save of the index failed.
    pub retry_save_button: HtmlButtonElement,
    pub clear_button: HtmlButtonElement,
    /// "Forget N photos no longer in FOLDER".
    pub forget_button: HtmlButtonElement,
    pub skipped_details: HtmlElement,
    pub skipped_summary: Element,
    pub skipped: Element,
    pub query: HtmlInputElement,
    pub search_text: Element,
    pub clear_search_button: HtmlButtonElement,
    pub results: Element,
    pub more_button: HtmlButtonElement,
    /// The filters above the results and the export button.
    pub min_score: HtmlInputElement,
    pub min_score_value: Element,
    pub folder_filter: HtmlSelectElement,
    pub sort_by: HtmlSelectElement,
    pub date_from: HtmlInputElement,
    pub date_to: HtmlInputElement,
    pub export_button: HtmlButtonElement,
    pub import_input: HtmlInputElement,
    pub fold_duplicates: HtmlInputElement,
    /// The selection's bar and its actions.
    pub selection_bar: HtmlElement,
    pub selection_text: Element,
    pub copy_paths_button: HtmlButtonElement,
    pub download_selected_button: HtmlButtonElement,
    pub remove_selected_button: HtmlButtonElement,
    pub clear_selection_button: HtmlButtonElement,
    /// The duplicates view.
    pub find_duplicates_button: HtmlButtonElement,
    pub dupes_threshold: HtmlInputElement,
    pub dupes_threshold_value: Element,
    pub select_but_best_button: HtmlButtonElement,
    pub dupes_text: Element,
    pub duplicates: Element,
    pub preview: HtmlDialogElement,
    pub preview_image: HtmlImageElement,
    pub preview_caption: Element,
    pub preview_similar: HtmlButtonElement,
    pub preview_close: HtmlButtonElement,
}

fn find<T: JsCast>(document: &Document, id: &str) -> Result<T, JsValue> {
    document
        .get_element_by_id(id)
        .ok_or_else(|| JsValue::from_str(&format!("the page has no #{id}")))?
        .dyn_into::<T>()
        .map_err(|_| JsValue::from_str(&format!("#{id} is not the expected kind of element")))
}

impl Dom {
    pub fn find() -> Result<Self, JsValue> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or_else(|| JsValue::from_str("no document"))?;
        let d = &document;
        Ok(Self {
            body: document
                .body()
                .ok_or_else(|| JsValue::from_str("no body"))?,
            status: find(d, "status")?,
            model_name: find(d, "model-name")?,
            model_progress: find(d, "model-progress")?,
            model_text: find(d, "model-text")?,
            engine_text: find(d, "engine-text")?,
            download_button: find(d, "download-model")?,
            retry_button: find(d, "retry-button")?,
            remove_model_button: find(d, "remove-model-button")?,
            storage_text: find(d, "storage-text")?,
            drop_zone: find(d, "drop-zone")?,
            folder_input: find(d, "folder-input")?,
            files_input: find(d, "files-input")?,
            index_progress: find(d, "index-progress")?,
            index_text: find(d, "index-text")?,
            pause_button: find(d, "pause-button")?,
            cancel_button: find(d, "cancel-button")?,
            retry_save_button: find(d, "retry-save-button")?,
            clear_button: find(d, "clear-button")?,
            forget_button: find(d, "forget-button")?,
            skipped_details: find(d, "skipped-details")?,
            skipped_summary: find(d, "skipped-summary")?,
            skipped: find(d, "skipped")?,
            query: find(d, "query")?,
            search_text: find(d, "search-text")?,
            clear_search_button: find(d, "clear-search-button")?,
            results: find(d, "results")?,
            more_button: find(d, "more-button")?,
            min_score: find(d, "min-score")?,
            min_score_value: find(d, "min-score-value")?,
            folder_filter: find(d, "folder-filter")?,
            sort_by: find(d, "sort-by")?,
            date_from: find(d, "date-from")?,
            date_to: find(d, "date-to")?,
            export_button: find(d, "export-button")?,
            import_input: find(d, "import-input")?,
            fold_duplicates: find(d, "fold-duplicates")?,
            selection_bar: find(d, "selection-bar")?,
            selection_text: find(d, "selection-text")?,
            copy_paths_button: find(d, "copy-paths-button")?,
            download_selected_button: find(d, "download-selected-button")?,
            remove_selected_button: find(d, "remove-selected-button")?,
            clear_selection_button: find(d, "clear-selection-button")?,
            find_duplicates_button: find(d, "find-duplicates-button")?,
            dupes_threshold: find(d, "dupes-threshold")?,
            dupes_threshold_value: find(d, "dupes-threshold-value")?,
            select_but_best_button: find(d, "select-but-best-button")?,
            dupes_text: find(d, "dupes-text")?,
            duplicates: find(d, "duplicates")?,
            preview: find(d, "preview")?,
            preview_image: find(d, "preview-image")?,
            preview_caption: find(d, "preview-caption")?,
            preview_similar: find(d, "preview-similar")?,
            preview_close: find(d, "preview-close")?,
            document,
        })
    }

    /// Sets `#status`: its state, its sentence, and the page's `data-phase` for CSS.
    pub fn set_status(&self, state: State, text: &str) {
        attr(&self.status, "data-state", state.as_str());
        attr(&self.body, "data-phase", state.as_str());
        if self.status.text_content().as_deref() != Some(text) {
            self.status.set_text_content(Some(text));
        }
    }

    pub fn set_counts(&self, indexed: usize, skipped: usize) {
        attr(&self.status, "data-indexed", &indexed.to_string());
        attr(&self.status, "data-skipped", &skipped.to_string());
    }

    pub fn set_backend(&self, backend: &str) {
        attr(&self.status, "data-backend", backend);
    }

    /// Applies the skipped list's changes (`page::skipped`) to `#skipped`: one `li` made,
    /// changed or removed per change, never the whole list rebuilt. `count`: the entries
    /// after them.
    pub fn apply_skipped(&self, changes: Vec<SkippedChange>, count: usize) {
        for change in changes {
            match change {
                SkippedChange::Insert {
                    path,
                    reason,
                    before,
                } => self.insert_skipped(&path, &reason, before.as_deref()),
                SkippedChange::Reason { path, reason } => {
                    if let Some(why) = self.skipped_entry(&path, " .why") {
                        why.set_text_content(Some(&reason));
                    }
                }
                SkippedChange::Remove { path } => {
                    if let Some(li) = self.skipped_entry(&path, "") {
                        li.remove();
                    }
                }
                SkippedChange::Clear => self.skipped.set_inner_html(""),
            }
        }
        show(&self.skipped_details, count > 0);
        self.skipped_summary.set_text_content(Some(&match count {
            1 => "1 file could not be indexed".to_owned(),
            n => format!("{n} files could not be indexed"),
        }));
    }

    /// The `li` of `path` in `#skipped` (or the element `inner` selects inside it).
    fn skipped_entry(&self, path: &str, inner: &str) -> Option<Element> {
        let quoted = path.replace('\\', "\\\\").replace('"', "\\\"");
        let selector = format!("li[data-path=\"{quoted}\"]{inner}");
        self.skipped.query_selector(&selector).ok().flatten()
    }

    fn insert_skipped(&self, path: &str, reason: &str, before: Option<&str>) {
        let Ok(li) = self.document.create_element("li") else {
            return;
        };
        attr(&li, "data-path", path);
        if let (Ok(name), Ok(why)) = (
            self.document.create_element("span"),
            self.document.create_element("span"),
        ) {
            name.set_class_name("path");
            name.set_text_content(Some(path));
            why.set_class_name("why");
            why.set_text_content(Some(reason));
            append(&li, &name);
            append(&li, &why);
        }
        match before.and_then(|b| self.skipped_entry(b, "")) {
            Some(next) => noted(
                self.skipped.insert_before(&li, Some(&next)).map(drop),
                "list a skipped file",
            ),
            None => append(&self.skipped, &li),
        }
    }
}

/// Sets a progress bar: `None` total leaves it at zero (no fake movement).
pub fn set_progress(bar: &HtmlProgressElement, done: f64, total: Option<f64>) {
    match total {
        Some(t) if t > 0.0 => {
            bar.set_max(t);
            bar.set_value(done.clamp(0.0, t));
        }
        _ => {
            bar.set_max(1.0);
            bar.set_value(0.0);
        }
    }
}

pub fn show(el: &Element, visible: bool) {
    if visible {
        if el.has_attribute("hidden") && el.remove_attribute("hidden").is_err() {
            web_sys::console::warn_1(&JsValue::from_str("ui: could not show an element"));
        }
    } else if !el.has_attribute("hidden") {
        attr(el, "hidden", "");
    }
}

pub fn set_text(el: &Element, text: &str) {
    if el.text_content().as_deref() != Some(text) {
        el.set_text_content(Some(text));
    }
}

/// Sets an attribute (only fails for invalid names, which ours are not).
pub fn attr(el: &Element, name: &str, value: &str) {
    if el.get_attribute(name).as_deref() != Some(value) && el.set_attribute(name, value).is_err() {
        web_sys::console::warn_1(&JsValue::from_str(&format!("ui: bad attribute {name}")));
    }
}

pub fn append(parent: &Element, child: &Element) {
    if parent.append_child(child).is_err() {
        web_sys::console::warn_1(&JsValue::from_str("ui: could not add an element"));
    }
}
