//! DOM events in: every listener the page has, each turned into a call of the driver that
//! owns what it means (a core `Input`, a search `Input`, a download, a storage action).
//! Drops on the zone index, drops on the search box search by photo, drops elsewhere must
//! not make the browser navigate away to the file.
//!
//! It must not decide anything: it reads the event and hands it on. Reference: DESIGN.md
//! "Contract: the page" (the hooks).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{DragEvent, Event, EventTarget, KeyboardEvent};

use super::actions;
use super::driver::{with, AppRef};
use super::model::{offer_input, remove_model, retry};
use super::photos::{clear_index, forget_vanished, picked, read_drop};
use super::search::{result_clicked, search_by_image, search_input, similar_to};
use super::ui::results;
use super::ui::{self, Dom};
use super::workers::run_input;
use super::{noted, prop};
use crate::page::offer::Input as OfferInput;
use crate::page::run::Input as RunInput;
use crate::page::search::Input;

pub fn listen<E: wasm_bindgen::convert::FromWasmAbi + 'static>(
    target: &EventTarget,
    event: &str,
    handler: impl FnMut(E) + 'static,
) -> Result<(), JsValue> {
    let closure = Closure::<dyn FnMut(E)>::new(handler);
    target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
    // Page-lifetime listeners.
    closure.forget();
    Ok(())
}

/// Makes `el` a drop target: `data-dragging` while something is dragged over it, the
/// browser's own handling (opening the file) prevented, and `on_drop` called with the drop.
fn drop_target(
    el: &web_sys::Element,
    on_drop: impl Fn(DragEvent) + 'static,
) -> Result<(), JsValue> {
    let target: &EventTarget = el.as_ref();
    for event in ["dragenter", "dragover"] {
        let z = el.clone();
        listen(target, event, move |e: DragEvent| {
            e.prevent_default();
            if let Some(dt) = e.data_transfer() {
                dt.set_drop_effect("copy");
            }
            ui::attr(&z, "data-dragging", "true");
        })?;
    }
    let z = el.clone();
    listen(target, "dragleave", move |_e: DragEvent| {
        noted(
            z.remove_attribute("data-dragging"),
            "clear the drop highlight",
        );
    })?;
    let z = el.clone();
    listen(target, "drop", move |e: DragEvent| {
        e.prevent_default();
        e.stop_propagation();
        noted(
            z.remove_attribute("data-dragging"),
            "clear the drop highlight",
        );
        on_drop(e);
    })
}

pub type Handler = fn(&AppRef, Event);

/// Calls `f` with the page for each `event` on `el`.
pub fn on(app: &AppRef, el: &EventTarget, event: &str, f: Handler) -> Result<(), JsValue> {
    let app = app.clone();
    listen(el, event, move |e: Event| f(&app, e))
}

/// Wires every listener of the page.
pub fn wire(app: &AppRef) -> Result<(), JsValue> {
    let Some(dom) = with(app, |a| a.dom.clone()) else {
        return Ok(());
    };
    wire_model(app, &dom)?;
    wire_index(app, &dom)?;
    wire_search(app, &dom)?;
    wire_results(app, &dom)?;
    super::filters::wire(app, &dom)?;
    wire_actions(app, &dom)?;
    let window: EventTarget = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .into();
    listen(&window, "securitypolicyviolation", move |e: Event| {
        let uri = prop(&e, "blockedURI")
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        super::download::note_blocked(&uri);
        let line = format!("clipseek: the page's security policy refused {uri}");
        web_sys::console::warn_1(&JsValue::from_str(&line));
    })
}

fn wire_model(app: &AppRef, dom: &Dom) -> Result<(), JsValue> {
    on(app, &dom.download_button, "click", |app, _| {
        offer_input(app, OfferInput::Pressed);
    })?;
    on(app, &dom.retry_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { retry(&app).await });
    })?;
    on(app, &dom.remove_model_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { remove_model(&app).await });
    })
}

fn wire_index(app: &AppRef, dom: &Dom) -> Result<(), JsValue> {
    on(app, &dom.pause_button, "click", |app, _| {
        run_input(app, RunInput::TogglePause)
    })?;
    on(app, &dom.cancel_button, "click", |app, _| {
        run_input(app, RunInput::Cancel)
    })?;
    on(app, &dom.retry_save_button, "click", |app, _| {
        run_input(app, RunInput::RetrySave)
    })?;
    on(app, &dom.forget_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { forget_vanished(&app).await });
    })?;
    on(app, &dom.clear_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { clear_index(&app).await });
    })?;
    on(app, &dom.folder_input, "change", |app, _| picked(app, true))?;
    super::connected::wire(app)?;
    on(app, &dom.files_input, "change", |app, _| picked(app, false))?;
    let zone_app = app.clone();
    drop_target(&dom.drop_zone, move |e: DragEvent| {
        if let Some(dt) = e.data_transfer() {
            read_drop(&zone_app, &dt);
        }
    })?;
    let document: &EventTarget = &dom.document;
    for event in ["dragover", "drop"] {
        listen(document, event, move |e: DragEvent| e.prevent_default())?;
    }
    Ok(())
}

fn wire_search(app: &AppRef, dom: &Dom) -> Result<(), JsValue> {
    let box_app = app.clone();
    drop_target(&dom.query, move |e: DragEvent| {
        let file = e
            .data_transfer()
            .and_then(|dt| dt.files())
            .and_then(|f| f.get(0));
        if let Some(file) = file {
            search_by_image(&box_app, file);
        }
    })?;
    on(app, &dom.query, "input", |app, _| {
        if let Some(text) = with(app, |a| a.dom.query.value()) {
            search_input(app, Input::Typed(text));
        }
    })?;
    let key_app = app.clone();
    listen(&dom.query, "keydown", move |e: KeyboardEvent| {
        if e.key() == "Enter" {
            e.prevent_default();
            if let Some(text) = with(&key_app, |a| a.dom.query.value()) {
                search_input(&key_app, Input::Enter(text));
            }
        }
    })?;
    on(app, &dom.clear_search_button, "click", |app, _| {
        let Some(dom) = with(app, |a| a.dom.clone()) else {
            return;
        };
        dom.query.set_value("");
        search_input(app, Input::Cleared);
        noted(dom.query.focus(), "move the focus");
    })?;
    on(app, &dom.more_button, "click", |app, _| {
        search_input(app, Input::ShowMore)
    })
}

fn wire_results(app: &AppRef, dom: &std::rc::Rc<Dom>) -> Result<(), JsValue> {
    let grid: &EventTarget = &dom.results;
    on(app, grid, "click", result_clicked)?;
    let dom2 = dom.clone();
    let key_app = app.clone();
    listen(grid, "keydown", move |e: KeyboardEvent| {
        if results::move_focus(&dom2, &e) || actions::key(&key_app, &e) {
            e.prevent_default();
        }
    })?;
    let groups: &EventTarget = &dom.duplicates;
    on(app, groups, "click", result_clicked)?;
    let key_app = app.clone();
    listen(groups, "keydown", move |e: KeyboardEvent| {
        if actions::key(&key_app, &e) {
            e.prevent_default();
        }
    })?;
    on(app, &dom.preview_close, "click", |app, _| {
        with(app, |a| a.dom.preview.close());
    })?;
    on(app, &dom.preview, "close", super::search::preview_closed)?;
    on(app, &dom.preview_similar, "click", |app, _| {
        let id = with(app, |a| {
            a.dom.preview.close();
            a.preview_id
        });
        if let Some(Some(id)) = id {
            similar_to(app, id);
        }
    })
}

fn wire_actions(app: &AppRef, dom: &Dom) -> Result<(), JsValue> {
    on(app, &dom.copy_paths_button, "click", |app, _| {
        actions::copy_paths(app)
    })?;
    on(app, &dom.download_selected_button, "click", |app, _| {
        actions::download_selected(app)
    })?;
    on(app, &dom.remove_selected_button, "click", |app, _| {
        actions::remove_selected(app)
    })?;
    on(app, &dom.clear_selection_button, "click", |app, _| {
        with(app, |a| {
            a.selection.clear();
            actions::draw_selection(a);
        });
    })?;
    on(app, &dom.find_duplicates_button, "click", |app, _| {
        actions::find_duplicates(app)
    })?;
    on(
        app,
        &dom.dupes_threshold,
        "change",
        actions::threshold_moved,
    )?;
    on(app, &dom.select_but_best_button, "click", |app, _| {
        actions::select_but_best(app)
    })?;
    on(app, &dom.fold_duplicates, "change", |app, _| {
        let Some(fold) = with(app, |a| a.dom.fold_duplicates.checked()) else {
            return;
        };
        if fold {
            let idle = with(app, |a| {
                a.core
                    .index()
                    .is_some_and(|i| a.dupes.groups(i).is_none() && !a.dupes.is_running())
            });
            if idle == Some(true) {
                actions::find_duplicates(app);
            }
        }
        search_input(app, Input::Fold(fold));
    })
}
