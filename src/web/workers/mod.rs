//! The core's effects carried out, and the workers' messages turned into its inputs.
//! [`run_input`] is the one way into `page::run`: the input is applied under
//! `driver::with`, then its effects are executed with no borrow held (spawn, post or
//! terminate a photo encoder, save a batch, start a timer, show an error, draw); an
//! effect that answers at once (a failed spawn or post) queues its input, handled in turn.
//! `vision` spawns the photo encoders and reads their messages, `text` drives the query
//! encoder.
//!
//! It must not decide anything about a run: that is `page::run`. Reference: issue 8,
//! item 1 (the browser side executes effects).

pub mod text;
pub mod vision;

use std::collections::VecDeque;

use js_sys::ArrayBuffer;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Blob, BlobPropertyBag, File};

use super::driver::{with, AppRef};
use super::library::{PhotoRecord, Thumb};
use super::search::{render_results, rerank_if_due, search_input};
use super::ui::set_text;
use super::{describe_js, now_ms, sleep_ms, sync};
use crate::page::photo_store::{PhotoStore, PhotoStoreError};
use crate::page::protocol::ToWorker;
use crate::page::run::{BatchId, Effect, Input, SaveError, ThumbOf, ToSave};
use crate::page::search::Input as SearchInput;

type RunEffect = Effect<File, ArrayBuffer>;
type RunInput = Input<File, ArrayBuffer>;

/// Applies `input` to the core, carries out its effects, and draws the page.
pub fn run_input(app: &AppRef, input: RunInput) {
    let mut queue = VecDeque::from([input]);
    while let Some(input) = queue.pop_front() {
        let Some(effects) = with(app, |a| a.core.update(now_ms(), input)) else {
            return;
        };
        for effect in effects {
            if let Some(next) = execute(app, effect) {
                queue.push_back(next);
            }
        }
    }
    with(app, |a| a.update_status());
}

/// Carries out one effect; an input when it answers at once.
fn execute(app: &AppRef, effect: RunEffect) -> Option<RunInput> {
    match effect {
        Effect::Spawn(worker) => vision::spawn(app, worker),
        Effect::Terminate(worker) => {
            let old = with(app, |a| a.vision.remove(&worker)).flatten();
            // Dropped (terminated) after the handler that asked has returned.
            spawn_local(async move { drop(old) });
            None
        }
        Effect::Send { worker, message } => send(app, worker, &message),
        Effect::Encode {
            worker,
            message,
            files,
        } => vision::encode(app, worker, &message, files),
        Effect::Save { batch, photos } => {
            save(app, batch, photos);
            None
        }
        Effect::Claim { round, folders } => {
            sync::claim(app, round, folders);
            None
        }
        Effect::Remember(files) => {
            sync::remember(app, files);
            None
        }
        Effect::StartIdleTimer { generation, ms } => {
            let app = app.clone();
            spawn_local(async move {
                sleep_ms(f64::from(ms)).await;
                run_input(&app, Input::IdleTimer(generation));
            });
            None
        }
        other => {
            show(app, other);
            None
        }
    }
}

/// The effects that only change what the page shows.
fn show(app: &AppRef, effect: RunEffect) {
    match effect {
        Effect::Fail { message, retry } => {
            with(app, |a| a.fail(message, retry));
        }
        Effect::Fallback(why) => {
            with(app, |a| a.engine_fallback = Some(why));
        }
        Effect::Indexed { paths } => {
            with(app, |a| a.revoke_thumbs(&paths));
            rerank_if_due(app);
        }
        Effect::RunEnded => render_results(app),
        Effect::SearchImage { name, embedding } => {
            search_input(app, SearchInput::Dropped { name, embedding })
        }
        Effect::SaySearch(line) => {
            with(app, |a| set_text(&a.dom.search_text, &line));
        }
        Effect::Warn(line) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {line}")));
        }
        _ => {}
    }
}

fn send(app: &AppRef, worker: crate::page::pool::WorkerId, message: &ToWorker) -> Option<RunInput> {
    let sent = with(app, |a| a.vision.get(&worker).map(|w| w.send(message)))??;
    if let Err(e) = sent {
        let line = format!("The photo encoder could not start: {}", describe_js(&e));
        match message {
            ToWorker::Load { .. } => {
                with(app, |a| a.fail(line, true));
            }
            _ => web_sys::console::warn_1(&e),
        }
    }
    None
}

/// A thumbnail the worker made, as the JPEG Blob storage keeps.
fn jpeg(buffer: &ArrayBuffer) -> Option<Blob> {
    let parts = js_sys::Array::of1(buffer);
    let options = BlobPropertyBag::new();
    options.set_type("image/jpeg");
    Blob::new_with_buffer_source_sequence_and_options(&parts, &options).ok()
}

fn record_of(p: ToSave<ArrayBuffer>) -> (PhotoRecord, Thumb) {
    let thumb = match p.thumb {
        ThumbOf::New(buffer) => jpeg(&buffer).map_or(Thumb::None, Thumb::Jpeg),
        ThumbOf::CopyOf(path) => Thumb::CopyOf(path),
        ThumbOf::None => Thumb::None,
    };
    (p.record, thumb)
}

/// Saves a batch under this tab's guard (`page::tabs`); the core hears how it went, and
/// the other tabs what was saved.
fn save(app: &AppRef, batch: BatchId, photos: Vec<ToSave<ArrayBuffer>>) {
    let records: Vec<(PhotoRecord, Thumb)> = photos.into_iter().map(record_of).collect();
    let paths: Vec<String> = records.iter().map(|(r, _)| r.path.clone()).collect();
    let Some(ready) = with(app, |a| Some((sync::store_of(a)?, sync::guard(a, &paths)?))) else {
        return;
    };
    let Some((store, guard)) = ready else {
        let error = SaveError::Other("the stored index is not open".into());
        run_input(app, Input::SaveFailed { batch, error });
        return;
    };
    let app = app.clone();
    spawn_local(async move {
        let input = match store.save(&records, &guard).await {
            Ok(()) => {
                sync::tell(&app, |t| t.added(paths));
                Input::SaveDone(batch)
            }
            Err(e) => {
                web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: save: {e}")));
                if sync::save_refused(&app, &e) {
                    return;
                }
                let error = match e {
                    PhotoStoreError::Full => SaveError::Quota,
                    other => SaveError::Other(other.to_string()),
                };
                Input::SaveFailed { batch, error }
            }
        };
        run_input(&app, input);
    });
}
