//! The photo encoders, browser side: spawns one when the core asks (its messages come back
//! tagged with the core's `WorkerId`, so a terminated worker's are recognised), posts
//! batches with their files, and turns each message into a `page::run` input.
//!
//! It must not decide what a message means for the run. Reference: `page::protocol`.

use std::rc::Rc;

use js_sys::ArrayBuffer;
use wasm_bindgen::JsValue;
use web_sys::{Blob, File};

use super::{run_input, RunInput};
use crate::page::pool::WorkerId;
use crate::page::protocol::{FromWorker, ItemOut, JobId, ToWorker};
use crate::page::run::{Answer, Input};
use crate::web::driver::{with, AppRef};
use crate::web::worker::{thumbs_of, WorkerEvent, WorkerHandle};

/// Starts the worker `id`; the input saying it failed, if it did.
pub fn spawn(app: &AppRef, id: WorkerId) -> Option<RunInput> {
    let url = with(app, |a| a.worker_url.clone())?;
    let weak = Rc::downgrade(app);
    let on_event: Rc<dyn Fn(WorkerEvent)> = Rc::new(move |event| {
        if let Some(app) = weak.upgrade() {
            if let WorkerEvent::Message(FromWorker::Timings { report }, _) = event {
                with(&app, |a| a.note_timings("photos", report));
                return;
            }
            if let Some(input) = input_of(id, event) {
                run_input(&app, input);
            }
        }
    });
    match WorkerHandle::spawn(&url, on_event) {
        Ok(handle) => {
            with(app, |a| a.vision.insert(id, handle));
            None
        }
        Err(e) => {
            web_sys::console::error_1(&e);
            Some(Input::SpawnFailed(id))
        }
    }
}

/// Posts a batch with its files; the input saying it could not be, if so.
pub fn encode(
    app: &AppRef,
    worker: WorkerId,
    message: &ToWorker,
    files: Vec<File>,
) -> Option<RunInput> {
    let job = match message {
        ToWorker::Encode { job, .. } => *job,
        _ => return None,
    };
    let blobs: Vec<Blob> = files.into_iter().map(Into::into).collect();
    let sent = with(app, |a| {
        a.vision.get(&worker).map(|w| w.send_files(message, &blobs))
    });
    match sent {
        Some(Some(Ok(()))) => None,
        _ => Some(Input::SendFailed { worker, job }),
    }
}

fn answers(items: Vec<ItemOut>, data: &JsValue) -> Vec<Answer<ArrayBuffer>> {
    let thumbs = thumbs_of(data);
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| Answer {
            key: item.key,
            result: item.result,
            thumb: thumbs.get(position).cloned().flatten(),
        })
        .collect()
}

fn encoded(worker: WorkerId, job: JobId, items: Vec<ItemOut>, data: &JsValue) -> RunInput {
    Input::Encoded {
        worker,
        job,
        answers: answers(items, data),
    }
}

/// A photo encoder's message as the core's input.
fn input_of(worker: WorkerId, event: WorkerEvent) -> Option<RunInput> {
    let message = match event {
        WorkerEvent::Message(m, data) => (m, data),
        WorkerEvent::Unreadable(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {e}")));
            return Some(Input::Unreadable(e.sentence()));
        }
        WorkerEvent::Crashed(message) => return Some(Input::Crashed { worker, message }),
    };
    Some(match message {
        (FromWorker::Started, _) => Input::Started(worker),
        (FromWorker::Loading { fraction }, _) => Input::Loading(worker, fraction),
        (
            FromWorker::Loaded {
                model_id,
                engine,
                detail,
                fallback,
            },
            _,
        ) => Input::Loaded {
            worker,
            model_id,
            engine,
            detail,
            fallback,
        },
        (
            FromWorker::Switched {
                engine,
                detail,
                reason,
            },
            _,
        ) => Input::Switched {
            worker,
            engine,
            detail,
            reason,
        },
        (FromWorker::Failed { error }, _) => Input::Failed { worker, error },
        (FromWorker::Encoded { job, items }, data) => encoded(worker, job, items, &data),
        (FromWorker::Texted { .. } | FromWorker::Timings { .. }, _) => return None,
    })
}
