//! The page's handle on an encoder worker: spawn it, post messages (with the photos as
//! File/Blob handles beside them), read its replies as [`WorkerEvent`]s (a message that
//! does not fit the protocol is [`WorkerEvent::Unreadable`], a dead worker
//! [`WorkerEvent::Crashed`]), terminate it when dropped.
//!
//! It must not decide what a reply means (that is `page::run` and `page::search`).
//! Reference: `page::protocol`.

use std::rc::Rc;

use js_sys::{Array, ArrayBuffer};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, ErrorEvent, MessageEvent, Worker};

use crate::page::protocol::{FromWorker, ProtocolError, ToWorker};
use crate::web::{prop, set_prop};

/// What a worker told the page.
pub enum WorkerEvent {
    Message(FromWorker, JsValue),
    /// A message that does not fit the protocol (an old worker after an app update).
    Unreadable(ProtocolError),
    /// The worker died (a trap, out of memory, or its script failed to load).
    Crashed(String),
}

/// The page's handle on one worker; dropping it terminates the worker.
pub struct WorkerHandle {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerHandle {
    /// Starts the worker script at `url`; `on_event` receives its messages.
    pub fn spawn(url: &str, on_event: Rc<dyn Fn(WorkerEvent)>) -> Result<Self, JsValue> {
        let worker = Worker::new(url)?;
        let on_message = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                match serde_wasm_bindgen::from_value::<FromWorker>(data.clone()) {
                    Ok(m) => on_event(WorkerEvent::Message(m, data)),
                    Err(e) => on_event(WorkerEvent::Unreadable(ProtocolError::Unreadable {
                        from: "encoder worker",
                        detail: e.to_string(),
                    })),
                }
            })
        };
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            let message = event.message();
            on_event(WorkerEvent::Crashed(if message.is_empty() {
                "the encoder worker could not start".to_owned()
            } else {
                message
            }));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    pub fn send(&self, message: &ToWorker) -> Result<(), JsValue> {
        let value = serde_wasm_bindgen::to_value(message).map_err(JsValue::from)?;
        self.worker.post_message(&value)
    }

    /// Sends an `Encode` with the photos as File/Blob handles.
    pub fn send_files(&self, message: &ToWorker, files: &[Blob]) -> Result<(), JsValue> {
        let value = serde_wasm_bindgen::to_value(message).map_err(JsValue::from)?;
        let list: Array = files.iter().collect();
        set_prop(&value, "files", &list)?;
        self.worker.post_message(&value)
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }
}

/// The thumbnails riding beside an `Encoded` message, by item position.
pub fn thumbs_of(data: &JsValue) -> Vec<Option<ArrayBuffer>> {
    prop(data, "thumbs")
        .and_then(|t| t.dyn_into::<Array>().ok())
        .map(|a| a.iter().map(|v| v.dyn_into::<ArrayBuffer>().ok()).collect())
        .unwrap_or_default()
}
