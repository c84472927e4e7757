//! The query encoder (the text tower in its own worker): started when the model opens,
//! restarted after a crash (up to `MAX_RESPAWNS` in a row with no query answered), its
//! replies handed to the search box (`page::search`).
//!
//! It must not rank or decide what the search shows. Reference: `page::search`.

use std::rc::Rc;

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::encode::Backend;
use crate::page::protocol::{FromWorker, ToWorker, Tower};
use crate::page::search::{Encoder, Input};
use crate::web::describe_js;
use crate::web::driver::{with, App, AppRef};
use crate::web::search::search_input;
use crate::web::worker::{WorkerEvent, WorkerHandle};

/// Query-worker crashes in a row (with no query answered between them) before giving up.
const MAX_RESPAWNS: u32 = 3;

/// Starts the query worker.
pub fn start(app: &AppRef) {
    let Some(url) = with(app, |a| a.worker_url.clone()) else {
        return;
    };
    let weak = Rc::downgrade(app);
    let on_event: Rc<dyn Fn(WorkerEvent)> = Rc::new(move |event| {
        if let Some(app) = weak.upgrade() {
            event_in(&app, event);
        }
    });
    match WorkerHandle::spawn(&url, on_event) {
        Ok(handle) => with(app, |a| {
            a.text_worker = Some(handle);
            a.text_ready = false;
            a.update_status();
        }),
        Err(e) => with(app, |a| {
            let line = format!("The query encoder could not start: {}", describe_js(&e));
            a.fail(line, true)
        }),
    };
}

fn load(a: &mut App) {
    let message = ToWorker::Load {
        model_key: a.params.source.key(),
        tower: Tower::Text,
        backend: a.params.backend,
        precision: a.params.precision,
    };
    if let Some(Err(e)) = a.text_worker.as_ref().map(|w| w.send(&message)) {
        let line = format!("The query encoder could not start: {}", describe_js(&e));
        a.fail(line, true);
    }
}

/// It loaded: the search box can send texts (false when it loaded another model).
fn loaded(a: &mut App, model_id: &str, detail: String, fallback: Option<String>) -> bool {
    if a.model_id.as_deref().is_some_and(|m| m != model_id) {
        let line = "The query encoder loaded a different model than the page; reload the page.";
        a.fail(line.into(), false);
        return false;
    }
    a.text_ready = true;
    a.text_detail = Some(detail);
    if fallback.is_some() {
        a.engine_fallback = fallback;
    }
    a.update_status();
    true
}

fn failed(a: &mut App, error: &str) {
    let (message, retry) = if a.text_ready {
        (format!("The query encoder stopped: {error}"), false)
    } else {
        (
            format!("The query encoder could not load the model: {error}"),
            a.params.backend != Backend::WebGpu,
        )
    };
    a.fail(message, retry);
}

fn event_in(app: &AppRef, event: WorkerEvent) {
    match event {
        WorkerEvent::Message(FromWorker::Started, _) => {
            with(app, load);
        }
        WorkerEvent::Message(
            FromWorker::Loaded {
                model_id,
                engine,
                detail,
                fallback,
            },
            _,
        ) => {
            let ready = with(app, |a| {
                a.text_engine = Some(engine);
                loaded(a, &model_id, detail, fallback)
            });
            if ready == Some(true) {
                search_input(app, Input::Encoder(Encoder::Ready));
            }
        }
        WorkerEvent::Message(FromWorker::Failed { error }, _) => {
            with(app, |a| failed(a, &error));
        }
        WorkerEvent::Message(
            FromWorker::Switched {
                engine,
                detail,
                reason,
            },
            _,
        ) => {
            with(app, |a| {
                a.text_engine = Some(engine);
                a.text_detail = Some(detail);
                a.engine_fallback = Some(reason);
                a.update_status();
            });
        }
        WorkerEvent::Message(FromWorker::Timings { report }, _) => {
            with(app, |a| a.note_timings("query", report));
        }
        WorkerEvent::Message(FromWorker::Texted { job, result }, _) => {
            with(app, |a| a.respawns = 0);
            search_input(app, Input::Texted { job, result });
        }
        WorkerEvent::Unreadable(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {e}")));
            with(app, |a| a.fail(e.sentence(), false));
        }
        WorkerEvent::Message(_, _) => {}
        WorkerEvent::Crashed(message) => crashed(app, &message),
    }
}

fn crashed(app: &AppRef, message: &str) {
    let old = with(app, |a| {
        a.text_ready = false;
        a.respawns += 1;
        if a.respawns > MAX_RESPAWNS {
            let line = format!("The query encoder stopped ({message}); reload the page.");
            a.fail(line, false);
            return None;
        }
        Some(a.text_worker.take())
    });
    let Some(Some(old)) = old else { return };
    // Drop the dead worker's handle after this event handler has returned.
    spawn_local(async move { drop(old) });
    search_input(app, Input::Encoder(Encoder::Loading));
    start(app);
}
