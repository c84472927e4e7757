//! The query encoder (the text tower in its own worker), browser side: started when the
//! model opens, its messages turned into `page::text` inputs and the effects carried out
//! (load, restart after a crash, fail, tell the search box), its answers handed to the
//! search box (`page::search`).
//!
//! It must not decide what a message means (that is `page::text`) nor rank. Reference:
//! `page::text`, `page::search`.

use std::rc::Rc;

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::page::protocol::{FromWorker, ToWorker, Tower};
use crate::page::search::{Encoder, Input};
use crate::page::text::{Effect, Input as TextInput};
use crate::web::describe_js;
use crate::web::driver::{with, App, AppRef};
use crate::web::search::search_input;
use crate::web::worker::{WorkerEvent, WorkerHandle};

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

/// Applies `input` to the query encoder's rules and carries out what they say.
pub fn text_input(app: &AppRef, input: TextInput) {
    let Some(effects) = with(app, |a| a.query.update(input)) else {
        return;
    };
    for effect in effects {
        match effect {
            Effect::Load => {
                with(app, load);
            }
            Effect::Ready => search_input(app, Input::Encoder(Encoder::Ready)),
            Effect::Loading => search_input(app, Input::Encoder(Encoder::Loading)),
            Effect::Respawn => {
                let old = with(app, |a| a.text_worker.take()).flatten();
                // Drop the dead worker's handle after this event handler has returned.
                spawn_local(async move { drop(old) });
                start(app);
            }
            Effect::Fail { message, retry } => {
                with(app, |a| a.fail(message, retry));
            }
            Effect::Fallback(why) => {
                with(app, |a| a.engine_fallback = Some(why));
            }
        }
    }
    with(app, |a| a.update_status());
}

fn event_in(app: &AppRef, event: WorkerEvent) {
    let input = match event {
        WorkerEvent::Message(FromWorker::Texted { job, result }, _) => {
            text_input(app, TextInput::Answered);
            return search_input(app, Input::Texted { job, result });
        }
        WorkerEvent::Message(FromWorker::Started, _) => TextInput::Started,
        WorkerEvent::Message(
            FromWorker::Loaded {
                model_id,
                engine,
                detail,
                fallback,
            },
            _,
        ) => TextInput::Loaded {
            model_id,
            engine,
            detail,
            fallback,
        },
        WorkerEvent::Message(FromWorker::Failed { error }, _) => TextInput::Failed(error),
        WorkerEvent::Message(
            FromWorker::Switched {
                engine,
                detail,
                reason,
            },
            _,
        ) => TextInput::Switched {
            engine,
            detail,
            reason,
        },
        WorkerEvent::Message(FromWorker::Timings { report }, _) => {
            with(app, |a| a.note_timings("query", report));
            return;
        }
        WorkerEvent::Unreadable(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {e}")));
            with(app, |a| a.fail(e.sentence(), false));
            return;
        }
        WorkerEvent::Message(_, _) => return,
        WorkerEvent::Crashed(message) => TextInput::Crashed(message),
    };
    text_input(app, input);
}
