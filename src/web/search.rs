//! The search's driver: inputs into the search box's state machine (`page::search`) and
//! its effects carried out (timer, text to the query worker, results drawn); ranking the
//! core's index for the current query (`page::results`) and drawing the grid with its
//! thumbnails; the result buttons (similar, remove, preview, the selection check) and the
//! preview dialog.
//!
//! It must not rank itself (that is `index`) or decide what the search is (that is
//! `page::search`). Reference: DESIGN.md "Contract: the page" (`#query`, `#results`).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{Event, File, HtmlElement, Url};

use super::driver::{with, App, AppRef};
use super::ui::results::{self as grid, ResultView};
use super::ui::{self, set_text, show};
use super::workers::run_input;
use super::{describe_js, noted, now_ms};
use crate::page::protocol::{JobId, ToWorker};
use crate::page::results;
use crate::page::run::Input as RunInput;
use crate::page::search::{Effect, Input, Query};

/// The one way into the search box's state: `update` under `driver::with`, then its
/// effects carried out with no borrow held.
pub fn search_input(app: &AppRef, input: Input) {
    let Some(effects) = with(app, |a| a.search.update(input)) else {
        return;
    };
    for effect in effects {
        match effect {
            Effect::StartTimer { generation, ms } => start_timer(app, generation, ms),
            Effect::SendText { job, text } => send_text(app, job, text),
            Effect::Render => render_results(app),
            Effect::Say(line) => {
                with(app, |a| set_text(&a.dom.search_text, &line));
            }
            Effect::SetBox(text) => {
                with(app, |a| a.dom.query.set_value(&text));
            }
            Effect::RememberMinScore(score) => super::filters::remember_min_score(score),
        }
    }
}

fn start_timer(app: &AppRef, generation: u32, ms: u32) {
    let app = app.clone();
    let callback = Closure::once_into_js(move || {
        if let Some(text) = with(&app, |a| a.dom.query.value()) {
            search_input(&app, Input::Paused { generation, text });
        }
    });
    let set = web_sys::window().map(|w| {
        w.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.unchecked_ref(),
            ms.min(i32::MAX as u32) as i32,
        )
        .map(|_| ())
    });
    noted(
        set.unwrap_or_else(|| Err(JsValue::from_str("no window"))),
        "start the search timer",
    );
}

fn send_text(app: &AppRef, job: JobId, text: String) {
    with(app, |a| {
        let sent = match &a.text_worker {
            Some(w) => w.send(&ToWorker::Text { job, text }),
            None => Err(JsValue::from_str("the query encoder is not running")),
        };
        if let Err(e) = sent {
            let line = format!("The query could not be sent: {}", describe_js(&e));
            set_text(&a.dom.search_text, &line);
        }
    });
}

/// A photo dropped on the search box: the core has a photo encoder read it.
pub fn search_by_image(app: &AppRef, file: File) {
    let (name, mime) = (file.name(), file.type_());
    run_input(app, RunInput::SearchByImage { name, mime, file });
}

pub fn similar_to(app: &AppRef, id: u64) {
    let path = with(app, |a| {
        a.core
            .index()
            .and_then(|i| i.entry(id))
            .map(|e| e.path.clone())
    });
    let Some(Some(path)) = path else { return };
    search_input(app, Input::Similar { id, path });
    let Some(dom) = with(app, |a| a.dom.clone()) else {
        return;
    };
    if let Ok(Some(first)) = dom.results.query_selector("button.thumb") {
        if let Ok(el) = first.dyn_into::<HtmlElement>() {
            noted(el.focus(), "move the focus");
        }
    }
}

/// Draws the results again when the last time was long enough ago (during a run).
pub fn rerank_if_due(app: &AppRef) {
    let due = with(app, |a| {
        let now = now_ms();
        // With no search this only refreshes the hint line (the photo count).
        let due = now - a.last_rerank_ms > 700.0;
        if due {
            a.last_rerank_ms = now;
        }
        due
    });
    if due == Some(true) {
        render_results(app);
    }
}

/// What the grid shows.
struct Drawn {
    views: Vec<ResultView>,
    missing: Vec<String>,
    more: bool,
    line: String,
    /// The index's folders, when their count changed since they were last drawn.
    folders: Option<Vec<String>>,
}

fn rank(a: &mut App) -> Option<Drawn> {
    let index = a.core.index()?;
    let shown = results::shown_with(&a.search, index, Some(&a.dupes));
    let mut missing = Vec::new();
    let views: Vec<ResultView> = shown
        .matches
        .iter()
        .zip(&shown.counts)
        .filter_map(|(m, &count)| {
            let entry = index.entry(m.id)?;
            let path = entry.path.clone();
            let browser_decoded = a.core.decoded_by_browser(&entry.content_hash);
            let thumb_url = a.thumb_urls.get(&path).cloned();
            if thumb_url.is_none() {
                missing.push(path.clone());
            }
            Some(ResultView {
                id: m.id,
                path,
                score: m.score,
                thumb_url,
                count,
                selected: a.selection.contains(m.id),
                browser_decoded,
            })
        })
        .collect();
    a.shown_ids = views.iter().map(|v| v.id).collect();
    let version = (index.len(), index.next_id());
    let folders = (a.folders_for != Some(version)).then(|| results::folders(index));
    a.folders_for = Some(version);
    Some(Drawn {
        views,
        missing,
        more: shown.more,
        line: shown.line,
        folders,
    })
}

/// Ranks for the current search and draws the grid.
pub fn render_results(app: &AppRef) {
    let Some((dom, drawn, label, any)) = with(app, |a| {
        let any = !matches!(a.search.query(), Query::None);
        (a.dom.clone(), rank(a), a.search.label(), any)
    }) else {
        return;
    };
    let Some(drawn) = drawn else {
        // No index yet: the hint comes from update_status.
        grid::render(&dom, &[]);
        return;
    };
    grid::render(&dom, &drawn.views);
    if let Some(folders) = &drawn.folders {
        super::filters::set_folders(&dom, folders);
    }
    match &label {
        Some(q) => ui::attr(&dom.results, "data-query", q),
        None => noted(
            dom.results.remove_attribute("data-query"),
            "clear the results' query",
        ),
    }
    show(&dom.more_button, drawn.more);
    show(&dom.clear_search_button, any);
    set_text(&dom.search_text, &drawn.line);
    if !drawn.missing.is_empty() {
        let app = app.clone();
        spawn_local(async move { load_thumbs(&app, drawn.missing).await });
    }
}

/// Fetches the thumbnails of `paths` from the store and shows them where they are drawn.
pub async fn load_thumbs(app: &AppRef, paths: Vec<String>) {
    let Some(Some(library)) = with(app, |a| a.library.clone()) else {
        return;
    };
    let blobs = match library.thumbs(&paths).await {
        Ok(b) => b,
        Err(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: thumbnails: {e}")));
            return;
        }
    };
    with(app, |a| {
        for (path, blob) in paths.into_iter().zip(blobs) {
            let Some(blob) = blob else { continue };
            if a.thumb_urls.contains_key(&path) {
                continue;
            }
            if let Ok(url) = Url::create_object_url_with_blob(&blob) {
                grid::set_thumb(&a.dom.results, &path, &url);
                grid::set_thumb(&a.dom.duplicates, &path, &url);
                a.thumb_urls.insert(path, url);
            }
        }
    });
}

/// A click in the grid: which result, and which of its buttons.
pub fn result_clicked(app: &AppRef, event: Event) {
    let Some(target) = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Some(li) = target.closest("li[data-id]").ok().flatten() else {
        return;
    };
    let Some(id) = li
        .get_attribute("data-id")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let button = target.closest("button").ok().flatten();
    let class = button.map(|b| b.class_name()).unwrap_or_default();
    if class.contains("pick") {
        super::actions::picked(app, id, &event);
    } else if class.contains("similar") {
        similar_to(app, id);
    } else if class.contains("remove") {
        let app = app.clone();
        spawn_local(async move { remove_entry(&app, id).await });
    } else if class.contains("thumb") {
        let score = li.get_attribute("data-score").unwrap_or_default();
        open_preview(app, id, &score);
    }
}

fn open_preview(app: &AppRef, id: u64, score: &str) {
    let Some(Some(dom)) = with(app, |a| preview_of(a, id, score)) else {
        return;
    };
    noted(dom.preview.show_modal(), "open the preview");
}

/// Fills the preview dialog for result `id`: the dropped original when the page has it,
/// else the thumbnail.
fn preview_of(a: &mut App, id: u64, score: &str) -> Option<std::rc::Rc<ui::Dom>> {
    let dom = a.dom.clone();
    let path = a.core.index()?.entry(id)?.path.clone();
    let original = a
        .core
        .original(&path)
        .and_then(|f| Url::create_object_url_with_blob(f).ok());
    let (url, note) = match original {
        Some(url) => {
            a.preview_url = Some(url.clone());
            (Some(url), "")
        }
        None => (
            a.thumb_urls.get(&path).cloned(),
            " (a thumbnail: drop the folder again to see the original)",
        ),
    };
    a.preview_id = Some(id);
    match url {
        Some(u) => ui::attr(&dom.preview_image, "src", &u),
        None => noted(
            dom.preview_image.remove_attribute("src"),
            "clear the preview image",
        ),
    }
    ui::attr(&dom.preview_image, "alt", &path);
    let caption = format!("{path} · score {score}{note}");
    set_text(&dom.preview_caption, &caption);
    Some(dom)
}

pub fn preview_closed(app: &AppRef, _event: Event) {
    let Some((id, dom)) = with(app, |a| {
        if let Some(url) = a.preview_url.take() {
            noted(Url::revoke_object_url(&url), "revoke an object URL");
        }
        (a.preview_id.take(), a.dom.clone())
    }) else {
        return;
    };
    // Back to the result that was opened.
    if let Some(id) = id {
        let selector = format!("li[data-id=\"{id}\"] button.thumb");
        if let Ok(Some(el)) = dom.results.query_selector(&selector) {
            if let Ok(el) = el.dyn_into::<HtmlElement>() {
                noted(el.focus(), "move the focus");
            }
        }
    }
}

async fn remove_entry(app: &AppRef, id: u64) {
    let removed = with(app, |a| {
        let path = a.core.remove(id)?;
        a.revoke_thumbs(std::slice::from_ref(&path));
        // A search by this photo ends; the results are drawn again just below.
        a.search.forget(id, &path);
        a.selection.retain(|s| s != id);
        a.update_status();
        Some((super::sync::store_of(a), path))
    });
    let Some(Some((store, path))) = removed else {
        return;
    };
    render_results(app);
    if let Some(store) = store {
        super::photos::removed(app, &store, vec![path]).await;
    }
}
