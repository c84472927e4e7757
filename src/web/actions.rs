//! Acting on results, and the duplicates view: the selection's clicks and keys
//! (`page::selection`), its bar (copy the paths, download the originals this session holds,
//! remove from the index after asking, through the core's `forget_paths` and the store's
//! removal as "Forget" does), and the near-duplicate search run in slices between tasks
//! (`page::duplicates`), its groups drawn with "select all but the best".
//!
//! It must not decide what is selected, grouped or kept (the core does); it reads events
//! and draws. Reference: issue 11 items 2 and 6.

use js_sys::{Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{Element, Event, HtmlAnchorElement, KeyboardEvent, Url};

use super::driver::{with, App, AppRef};
use super::search::{load_thumbs, render_results};
use super::ui::results::{self as grid, ResultView};
use super::ui::{set_text, show};
use super::{describe_js, noted, now_ms, prop};
use crate::index::dot;
use crate::page::duplicates::{Step, SLICE_WORK};
use crate::page::selection::{key_action, not_downloaded_line, remove_question, KeyAction};

/// A slice of the duplicate search runs until this much wall time has passed.
const SLICE_MS: f64 = 24.0;

/// Draws the selection's marks and bar (no redraw of the grid).
pub fn draw_selection(a: &App) {
    let selected = |id| a.selection.contains(id);
    grid::set_marks(&a.dom.results, selected);
    grid::set_marks(&a.dom.duplicates, selected);
    show(&a.dom.selection_bar, !a.selection.is_empty());
    set_text(&a.dom.selection_text, &a.selection.summary());
}

/// A click on a result's check (`shift`: extend from the last one).
pub fn picked(app: &AppRef, id: u64, event: &Event) {
    let shift = prop(event.as_ref(), "shiftKey").and_then(|v| v.as_bool()) == Some(true);
    with(app, |a| {
        if shift {
            let shown = a.shown_ids.clone();
            a.selection.extend(&shown, id);
        } else {
            a.selection.toggle(id);
        }
        draw_selection(a);
    });
}

/// Space, Ctrl+A and Esc in the grid; true when the key was used.
pub fn key(app: &AppRef, event: &KeyboardEvent) -> bool {
    let Some(action) = key_action(&event.key(), event.ctrl_key() || event.meta_key()) else {
        return false;
    };
    let focused = event
        .target()
        .and_then(|t| t.dyn_into::<Element>().ok())
        .and_then(|t| t.closest("li[data-id]").ok().flatten())
        .and_then(|li| li.get_attribute("data-id"))
        .and_then(|v| v.parse::<u64>().ok());
    let used = with(app, |a| {
        match action {
            KeyAction::Toggle => match focused {
                Some(id) => a.selection.toggle(id),
                None => return false,
            },
            KeyAction::All => {
                let shown = a.shown_ids.clone();
                a.selection.all(&shown);
            }
            KeyAction::Clear if a.selection.is_empty() => return false,
            KeyAction::Clear => a.selection.clear(),
        }
        draw_selection(a);
        true
    });
    used == Some(true)
}

/// The selected photos' paths, in index order.
fn selected_paths(a: &App) -> Vec<String> {
    let Some(index) = a.core.index() else {
        return Vec::new();
    };
    a.selection
        .ids()
        .into_iter()
        .filter_map(|id| index.entry(id).map(|e| e.path.clone()))
        .collect()
}

fn say(app: &AppRef, line: &str) {
    with(app, |a| set_text(&a.dom.search_text, line));
}

/// "Copy paths": one path a line, through the asynchronous clipboard.
pub fn copy_paths(app: &AppRef) {
    let Some(paths) = with(app, |a| selected_paths(a)) else {
        return;
    };
    let n = paths.len();
    let text = paths.join("\n");
    let app = app.clone();
    spawn_local(async move {
        let line = match write_clipboard(&text).await {
            Ok(()) => format!("Copied {n} path{}.", if n == 1 { "" } else { "s" }),
            Err(e) => format!("The paths could not be copied: {}", describe_js(&e)),
        };
        say(&app, &line);
    });
}

async fn write_clipboard(text: &str) -> Result<(), JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let clipboard = Reflect::get(&window.navigator(), &JsValue::from_str("clipboard"))?;
    if clipboard.is_undefined() {
        return Err(JsValue::from_str("this browser offers no clipboard here"));
    }
    let write: Function = Reflect::get(&clipboard, &JsValue::from_str("writeText"))?.dyn_into()?;
    let promise: js_sys::Promise = write
        .call1(&clipboard, &JsValue::from_str(text))?
        .dyn_into()?;
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map(|_| ())
}

/// "Download originals": each selected photo whose file this page holds, by its name.
pub fn download_selected(app: &AppRef) {
    let Some((urls, missing, dom)) = with(app, |a| {
        let mut urls = Vec::new();
        let mut missing = 0;
        for path in selected_paths(a) {
            match a.core.original(&path) {
                Some(file) => match Url::create_object_url_with_blob(file) {
                    Ok(url) => urls.push((url, file.name())),
                    Err(_) => missing += 1,
                },
                None => missing += 1,
            }
        }
        (urls, missing, a.dom.clone())
    }) else {
        return;
    };
    let line = not_downloaded_line(missing, urls.len());
    for (url, name) in urls {
        let link = dom
            .document
            .create_element("a")
            .ok()
            .and_then(|e| e.dyn_into::<HtmlAnchorElement>().ok());
        if let Some(link) = link {
            link.set_href(&url);
            link.set_download(&name);
            link.click();
        }
        revoke_later(url);
    }
    say(app, &line);
}

/// Revokes an object URL a minute from now (a download has its own copy by then).
pub fn revoke_later(url: String) {
    let revoke = Closure::once_into_js(move || {
        noted(Url::revoke_object_url(&url), "revoke an object URL");
    });
    let set = web_sys::window().map(|w| {
        w.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 60_000)
            .map(|_| ())
    });
    noted(
        set.unwrap_or_else(|| Err(JsValue::from_str("no window"))),
        "schedule an object URL's release",
    );
}

/// "Remove from index", after the person says yes: the core forgets the photos in one
/// pass and the store removes them (the other tabs are told), as "Forget" does.
pub fn remove_selected(app: &AppRef) {
    let Some(paths) = with(app, |a| selected_paths(a)) else {
        return;
    };
    if paths.is_empty() {
        return;
    }
    let asked = web_sys::window()
        .map(|w| w.confirm_with_message(&remove_question(paths.len())))
        .unwrap_or(Ok(false));
    if asked != Ok(true) {
        return;
    }
    let removed = with(app, |a| {
        let named: Vec<(u64, String)> = a
            .selection
            .ids()
            .into_iter()
            .filter_map(|id| Some((id, a.core.index()?.entry(id)?.path.clone())))
            .collect();
        let removed = a.core.forget_paths(paths);
        a.revoke_thumbs(&removed);
        for (id, path) in &named {
            if removed.contains(path) {
                // A search with it as a term ends; the results are drawn again below.
                a.search.forget(*id, path);
            }
        }
        let index = a.core.index();
        a.selection
            .retain(|id| index.is_some_and(|i| i.entry(id).is_some()));
        a.update_status();
        (super::sync::store_of(a), removed)
    });
    let Some((store, removed)) = removed else {
        return;
    };
    let n = removed.len();
    render_results(app);
    draw_dupes(app);
    with(app, |a| draw_selection(a));
    say(
        app,
        &format!(
            "Removed {n} photo{} from the index.",
            if n == 1 { "" } else { "s" }
        ),
    );
    if let Some(store) = store {
        let app = app.clone();
        spawn_local(async move { super::photos::removed(&app, &store, removed).await });
    }
}

/// "Find near-duplicates" (or a new threshold): starts the search and its slices.
pub fn find_duplicates(app: &AppRef) {
    let started = with(app, |a| {
        let Some(index) = a.core.index() else {
            return false;
        };
        let was_running = a.dupes.is_running();
        a.dupes.start(index);
        !was_running
    });
    if started == Some(true) {
        schedule_slice(app);
    }
    draw_dupes(app);
}

/// The threshold slider moved.
pub fn threshold_moved(app: &AppRef, _: Event) {
    let again = with(app, |a| {
        let t = a
            .dom
            .dupes_threshold
            .value()
            .parse::<f32>()
            .unwrap_or(f32::NAN);
        let again = a.dupes.set_threshold(t);
        set_text(
            &a.dom.dupes_threshold_value,
            &format!("{:.3}", a.dupes.threshold()),
        );
        again
    });
    if again == Some(true) {
        find_duplicates(app);
    }
}

fn schedule_slice(app: &AppRef) {
    let app = app.clone();
    let callback = Closure::once_into_js(move || slice(&app));
    let set = web_sys::window().map(|w| {
        w.set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), 0)
            .map(|_| ())
    });
    noted(
        set.unwrap_or_else(|| Err(JsValue::from_str("no window"))),
        "schedule the duplicate search",
    );
}

/// Runs slices for about [`SLICE_MS`], then gives the page back until the next task.
fn slice(app: &AppRef) {
    let done = with(app, |a| {
        let Some(index) = a.core.index() else {
            return true;
        };
        let started = now_ms();
        loop {
            match a.dupes.step(index, SLICE_WORK) {
                Step::Done => return true,
                Step::Running(_) if now_ms() - started >= SLICE_MS => {
                    set_text(&a.dom.dupes_text, &a.dupes.line(index));
                    return false;
                }
                Step::Running(_) => {}
            }
        }
    });
    match done {
        Some(false) => schedule_slice(app),
        Some(true) => {
            draw_dupes(app);
            render_results(app);
        }
        // Busy: try again on the next task.
        None => schedule_slice(app),
    }
}

/// Draws the groups: the one to keep first, each tile scored by its cosine with it.
pub fn draw_dupes(app: &AppRef) {
    let Some(Some((dom, groups, line, missing))) = with(app, |a| {
        let index = a.core.index()?;
        let line = a.dupes.line(index);
        let mut missing = Vec::new();
        let mut views = Vec::new();
        for g in a.dupes.groups(index).unwrap_or_default() {
            let keep = index.embedding(g.keep).unwrap_or_default();
            let tiles: Vec<ResultView> = std::iter::once(g.keep)
                .chain(g.others.iter().copied())
                .filter_map(|id| {
                    let entry = index.entry(id)?;
                    let thumb_url = a.thumb_urls.get(&entry.path).cloned();
                    if thumb_url.is_none() {
                        missing.push(entry.path.clone());
                    }
                    Some(ResultView {
                        id,
                        path: entry.path.clone(),
                        score: dot(keep, index.embedding(id).unwrap_or_default()),
                        thumb_url,
                        count: 1,
                        selected: a.selection.contains(id),
                        browser_decoded: a.core.decoded_by_browser(&entry.content_hash),
                    })
                })
                .collect();
            views.push(tiles);
        }
        Some((a.dom.clone(), views, line, missing))
    }) else {
        return;
    };
    set_text(&dom.dupes_text, &line);
    show(&dom.select_but_best_button, !groups.is_empty());
    dom.duplicates.set_inner_html("");
    for tiles in &groups {
        let Some(keep) = tiles.first() else { continue };
        let (Ok(li), Ok(list)) = (
            dom.document.create_element("li"),
            dom.document.create_element("ol"),
        ) else {
            continue;
        };
        li.set_class_name("dupe-group");
        super::ui::attr(&li, "data-keep", &keep.path);
        super::ui::attr(&li, "data-count", &tiles.len().to_string());
        grid::render_into(&dom.document, &list, tiles);
        super::ui::append(&li, &list);
        super::ui::append(&dom.duplicates, &li);
    }
    if !missing.is_empty() {
        let app = app.clone();
        spawn_local(async move { load_thumbs(&app, missing).await });
    }
}

/// "Select all but the best": every group's others.
pub fn select_but_best(app: &AppRef) {
    with(app, |a| {
        if let Some(index) = a.core.index() {
            let others = a.dupes.all_but_best(index);
            a.selection.set(others);
        }
        draw_selection(a);
    });
}
