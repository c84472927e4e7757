//! The model's driver: download it (`download`, progress into the model panel), retry,
//! remove it, and open the verified model — its configuration and header, the stored
//! index handed to the core (`page::run`, `Input::Opened`), the query worker started —
//! plus the storage line ("This site stores …").
//!
//! It must not hold the page's state across an `await` (every access goes through
//! `driver::with`). Reference: DESIGN.md "Contract: the page"; `crate::model_cache`.

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::download::{Download, DownloadError, Phase, Progress};
use super::driver::{with, AppRef, Stage};
use super::library::PhotoRecord;
use super::search::{render_results, search_input};
use super::ui::{self, set_progress, set_text};
use super::workers::{run_input, text};
use super::{now_ms, prop};
use crate::clip::model_id;
use crate::hub::{format_bytes, format_eta};
use crate::ingest;
use crate::model::config::ClipConfig;
use crate::page::offer::{Effect as OfferEffect, Input as OfferInput};
use crate::page::photo_store::PhotoStore;
use crate::page::run::{Config, Input as RunInput};
use crate::page::search::{Encoder, Input};
use crate::page::text::Input as TextInput;

pub async fn show_storage(app: &AppRef) {
    let Some((dom, total)) = with(app, |a| (a.dom.clone(), a.model_id.is_some())) else {
        return;
    };
    let Some(storage) = web_sys::window().map(|w| w.navigator().storage()) else {
        return;
    };
    let estimate = match storage.estimate() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    let persisted = match storage.persisted() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        Err(_) => false,
    };
    let Some(estimate) = estimate else { return };
    let usage = prop(&estimate, "usage")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let quota = prop(&estimate, "quota").and_then(|v| v.as_f64());
    let mut text = format!("This site stores {} in this browser", format_bytes(usage));
    if let Some(q) = quota {
        text.push_str(&format!(" (it may use up to {})", format_bytes(q)));
    }
    text.push_str(if persisted {
        "; the browser keeps it until you remove it."
    } else if total {
        "; the browser may clear it if the disk runs low."
    } else {
        "."
    });
    set_text(&dom.storage_text, &text);
}

/// Marks the page downloading, or says why not (already under way, or open).
fn may_download(app: &AppRef) -> Option<(crate::hub::ModelSource, super::download::ModelStore)> {
    with(app, |a| {
        let busy = matches!(
            a.stage,
            Stage::Starting | Stage::Downloading | Stage::Opening | Stage::Open
        );
        // Starting: the page decides by itself once it has looked at its storage.
        if busy && (a.stage != Stage::Starting || a.store.is_none()) {
            return None;
        }
        let store = a.store.clone()?;
        a.error = None;
        a.stage = Stage::Downloading;
        a.download_text = "Starting the model download…".into();
        a.update_status();
        Some((a.params.source.clone(), store))
    })
    .flatten()
}

/// Tells the download question (`page::offer`) what happened and carries out its effects:
/// the size lookup (raced against its timeout; the core ignores whichever comes second)
/// and the download itself.
pub fn offer_input(app: &AppRef, input: OfferInput) {
    let Some((effects, source)) = with(app, |a| {
        let effects = a.offer.update(input);
        a.update_status();
        (effects, a.params.source.clone())
    }) else {
        return;
    };
    for effect in effects {
        let app = app.clone();
        match effect {
            OfferEffect::Download => spawn_local(async move { begin_download(&app).await }),
            OfferEffect::LookUpSize { timeout_ms } => {
                let timer = app.clone();
                spawn_local(async move {
                    super::sleep_ms(f64::from(timeout_ms)).await;
                    offer_input(&timer, OfferInput::SizeTimedOut);
                });
                let source = source.clone();
                spawn_local(async move {
                    let hub = super::model_cache::FetchHub::default();
                    let size = crate::model_cache::weights_size(&hub, &source).await;
                    offer_input(&app, OfferInput::Sized(size));
                });
            }
        }
    }
}

pub async fn begin_download(app: &AppRef) {
    let Some((source, store)) = may_download(app) else {
        return;
    };
    // Ask that the model and index survive storage pressure (a no-op where refused).
    if let Some(w) = web_sys::window() {
        if let Ok(p) = w.navigator().storage().persist() {
            if JsFuture::from(p).await.is_err() {
                web_sys::console::warn_1(&JsValue::from_str("clipseek: persist() failed"));
            }
        }
    }
    // "Stop and remove" pressed while `persist()` was awaited: the download must not start.
    if with(app, |a| a.stage != Stage::Downloading).unwrap_or(true) {
        return;
    }
    let weak = std::rc::Rc::downgrade(app);
    let on_progress = Box::new(move |p: &Progress| {
        if let Some(app) = weak.upgrade() {
            download_progress(&app, p);
        }
    });
    let download = std::rc::Rc::new(Download::new(source, store, on_progress));
    with(app, |a| a.download = Some(download.clone()));
    let result = download.run().await;
    let go_on = with(app, |a| {
        a.download = None;
        match result {
            Ok(()) => true,
            Err(DownloadError::Cancelled) => {
                a.stage = Stage::NoModel;
                a.update_status();
                false
            }
            Err(e) => {
                a.stage = Stage::NoModel;
                set_text(
                    &a.dom.model_text,
                    "The download stopped. Whatever was saved is kept and will not be fetched \
                     again.",
                );
                let retry = !matches!(
                    e,
                    DownloadError::NotFound { .. }
                        | DownloadError::OnlyPytorch { .. }
                        | DownloadError::Blocked { .. }
                        | DownloadError::TooLarge { .. }
                );
                a.fail(e.to_string(), retry);
                false
            }
        }
    });
    if go_on == Some(true) {
        show_storage(app).await;
        open_model(app).await;
    }
}

/// The download's progress in words.
fn progress_line(p: &Progress) -> (String, String) {
    let amount = match p.total_bytes {
        Some(t) if t > 0 => format!(
            "{} of {} ({:.0}%)",
            format_bytes(p.done_bytes as f64),
            format_bytes(t as f64),
            p.done_bytes as f64 * 100.0 / t as f64
        ),
        _ => format_bytes(p.done_bytes as f64),
    };
    let line = match &p.phase {
        Phase::Starting => "Fetching the model's configuration…".to_owned(),
        Phase::Fetching => {
            let mut line = format!("Downloading the model: {amount}");
            if let Some(rate) = p.bytes_per_s {
                line.push_str(&format!(" · {}/s", format_bytes(rate)));
            }
            if let Some(eta) = p.eta_s {
                line.push_str(&format!(" · {} left", format_eta(eta)));
            }
            line
        }
        Phase::Checking => format!("Checking the part downloaded earlier: {amount}"),
        Phase::Retrying { attempt, in_ms } => format!(
            "The connection dropped at {amount}; trying again (attempt {attempt}) in {:.0} s…",
            in_ms / 1000.0
        ),
        Phase::Verifying => "Verifying the downloaded model…".to_owned(),
        Phase::Refetching { reason } => {
            format!("Verification failed: {reason}. Downloading it again…")
        }
    };
    let status = match &p.phase {
        Phase::Fetching | Phase::Checking => format!("Downloading the model: {amount}."),
        _ => line.clone(),
    };
    (line, status)
}

fn download_progress(app: &AppRef, p: &Progress) {
    let (line, status) = progress_line(p);
    let storage_due = with(app, |a| {
        let dom = a.dom.clone();
        let total = p.total_bytes.map(|t| t as f64);
        set_progress(&dom.model_progress, p.done_bytes as f64, total);
        let failures = p.verify_failures.to_string();
        ui::attr(&dom.status, "data-verify-failures", &failures);
        set_text(&dom.model_text, &line);
        a.download_text = status;
        a.update_status();
        let now = now_ms();
        let due = now - a.last_storage_ms > 3000.0;
        if due {
            a.last_storage_ms = now;
        }
        due
    });
    if storage_due == Some(true) {
        let app = app.clone();
        spawn_local(async move { show_storage(&app).await });
    }
}

pub async fn retry(app: &AppRef) {
    let Some(stage) = with(app, |a| {
        a.error = None;
        a.update_status();
        a.stage
    }) else {
        return;
    };
    match stage {
        Stage::Starting | Stage::NoModel | Stage::Downloading => begin_download(app).await,
        Stage::Opening | Stage::Open => open_model(app).await,
    }
}

pub async fn remove_model(app: &AppRef) {
    let Some((store, download)) = with(app, |a| {
        let download = a.download.take();
        a.text_worker = None;
        a.model_id = None;
        a.stage = Stage::NoModel;
        a.error = None;
        a.offer.update(OfferInput::Removed);
        (a.store.clone(), download)
    }) else {
        return;
    };
    run_input(app, RunInput::Closed);
    text::text_input(app, TextInput::Closed);
    if let Some(d) = download {
        d.cancel();
    }
    // Any query waiting or in flight waits for a model again.
    search_input(app, Input::Encoder(Encoder::NoModel));
    let Some(store) = store else { return };
    let result = store.remove().await;
    with(app, |a| {
        set_progress(&a.dom.model_progress, 0.0, None);
        match result {
            Ok(()) => {
                set_text(
                    &a.dom.model_text,
                    "The model was removed. Your index is kept; download the model again to \
                     search it.",
                );
                a.update_status();
            }
            Err(e) => a.fail(e.to_string(), false),
        }
    });
    show_storage(app).await;
}

/// What opening the model found.
struct Opened {
    config: ClipConfig,
    id: String,
    vision_bytes: f64,
    records: Vec<PhotoRecord>,
    unreadable: usize,
    /// The stored index's generation (`page::tabs`).
    generation: u64,
    size: u64,
}

async fn read_model(app: &AppRef) -> Option<Result<Opened, String>> {
    let (store, library) = with(app, |a| {
        a.stage = Stage::Opening;
        a.update_status();
        (a.store.clone(), a.library.clone())
    })?;
    let (store, library) = (store?, library?);
    let opened = async {
        let model = store.open_verified().await.map_err(|e| e.to_string())?;
        let config = ClipConfig::from_json(&model.config_json).map_err(|e| e.to_string())?;
        let header = model.weights.header().await.map_err(|e| e.to_string())?;
        let id = model_id(&config, &model.config_json, &header);
        let vision_bytes: f64 = header
            .tensors
            .iter()
            .filter(|(n, _)| n.starts_with("vision_model.") || n.starts_with("visual_projection"))
            .map(|(_, t)| t.shape.iter().product::<usize>() as f64 * 4.0)
            .sum();
        let loaded = library
            .store()
            .load_all()
            .await
            .map_err(|e| e.to_string())?;
        let size = model.weights.size_bytes();
        Ok(Opened {
            config,
            id,
            vision_bytes,
            records: loaded.records,
            unreadable: loaded.unreadable.len(),
            generation: loaded.generation,
            size,
        })
    };
    Some(opened.await)
}

/// How many photo encoders this machine runs, and the tooltip saying why.
fn pool_size(vision_bytes: f64, requested: Option<usize>) -> (usize, String) {
    let navigator = web_sys::window().map(|w| w.navigator());
    let cores = navigator.as_ref().map(|n| n.hardware_concurrency());
    let memory = navigator
        .as_ref()
        .and_then(|n| prop(n, "deviceMemory"))
        .and_then(|v| v.as_f64());
    let count = ingest::worker_count(cores, memory, vision_bytes, requested);
    let title = format!(
        "{} This device: {} cores, {} of memory; {count} worker{}.",
        ingest::WORKER_RULE,
        cores.map_or("unknown".into(), |c| format!("{c:.0}")),
        memory.map_or("an unknown amount".into(), |m| format!("{m} GB")),
        if count == 1 { "" } else { "s" }
    );
    (count, title)
}

/// Opens the verified model: reads its configuration and header, restores the index and
/// starts the query worker.
pub async fn open_model(app: &AppRef) {
    let opened = match read_model(app).await {
        None => return,
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            with(app, |a| a.fail(e, true));
            return;
        }
    };
    let Some(params) = with(app, |a| a.params.clone()) else {
        return;
    };
    let (pool_size, title) = pool_size(opened.vision_bytes, params.workers);
    let config = Config {
        model_key: params.source.key(),
        model_id: opened.id.clone(),
        dim: opened.config.projection_dim,
        backend: params.backend,
        precision: params.precision,
        pool_size,
        idle_release_s: params.idle_release_s,
    };
    let size = opened.size as f64;
    let model_id = opened.id.clone();
    with(app, |a| {
        a.model_id = Some(opened.id);
        a.stage = Stage::Open;
        ui::attr(&a.dom.index_text, "title", &title);
        set_progress(&a.dom.model_progress, size, Some(size));
        let line = format!(
            "The model is stored in this browser ({}) and verified.",
            format_bytes(size)
        );
        set_text(&a.dom.model_text, &line);
    });
    let stored = opened.records;
    let unreadable = opened.unreadable;
    super::sync::open(app, opened.generation);
    if let Some(Some(store)) = with(app, |a| super::sync::store_of(a)) {
        super::sync::remembered(app, &store).await;
    }
    search_input(app, Input::Encoder(Encoder::Loading));
    text::text_input(app, TextInput::Opened { model_id });
    text::start(app);
    run_input(
        app,
        RunInput::Opened {
            config,
            stored,
            unreadable,
        },
    );
    render_results(app);
    show_storage(app).await;
}
