//! A worker's CPU engine: its tower read from the cached model, in 8 bits from the
//! weights an earlier load packed when they are kept (`model_cache::packed`), else built
//! from `model.safetensors` (and then kept, [`keep_packed`]), each step timed into the
//! load's [`LoadReport`].
//!
//! It must not touch the DOM. Reference: `encode::cpu`, `encode::packed`.

use wasm_bindgen::JsValue;

use super::{now_ms, towers_of, Enc, LoadRequest, Opened};
use crate::encode::cpu::{CpuEncoder, CpuPrecision, Packed, QuantOptions};
use crate::encode::packed::PackKey;
use crate::model_cache::{load_packed, load_weights_timed, save_packed};
use crate::page::protocol::LoadReport;
use crate::web::download::ModelStore;
use crate::web::model_cache::log_once;

/// A CPU engine, and the key to keep it packed under when it was built from the model.
pub(super) struct CpuBuilt {
    pub(super) encoder: CpuEncoder,
    pub(super) pack: Option<PackKey>,
}

/// The tower on the CPU engine, read from the opened cache, in the precision asked for
/// (`int8`: 8-bit weights; `auto`: `encode::AUTO_CPU`). In 8 bits, the weights an earlier
/// load packed for this model, kernel and options are read when kept (`packed`); else, or
/// when they cannot be used (said once on the console), the engine is built from the model.
pub(super) async fn cpu_engine(
    o: &Opened,
    request: &LoadRequest,
    mut on_progress: impl FnMut(f64),
    report: &mut LoadReport,
) -> Result<CpuBuilt, String> {
    let towers = towers_of(request.tower);
    let precision = request.precision.cpu();
    let key = (precision == CpuPrecision::Int8).then(|| PackKey {
        weights: o.model.weights_identity.clone(),
        towers,
        options: QuantOptions::default(),
    });
    if let Some(key) = &key {
        if let Some(encoder) = from_packed(o, key, report).await {
            on_progress(1.0);
            return Ok(CpuBuilt {
                encoder,
                pack: None,
            });
        }
    }
    let (weights, times) = load_weights_timed(
        &o.model.weights,
        &o.header,
        &o.config,
        towers,
        on_progress,
        now_ms,
    )
    .await
    .map_err(|e| e.to_string())?;
    report.mark("read", times.read_ms);
    report.mark("convert", times.convert_ms);
    let t = now_ms();
    let encoder = CpuEncoder::new_with(&o.config, weights, precision).map_err(|e| e.to_string())?;
    report.mark("build", now_ms() - t);
    report.weights = "model".into();
    Ok(CpuBuilt { encoder, pack: key })
}

/// The engine from the weights packed under `key`, when they are kept and sound.
async fn from_packed(o: &Opened, key: &PackKey, report: &mut LoadReport) -> Option<CpuEncoder> {
    let t = now_ms();
    let parts = match load_packed(&o.store, key).await {
        Ok(Some(parts)) => parts,
        Ok(None) => {
            report.mark("packed_absent", now_ms() - t);
            return None;
        }
        Err(e) => {
            log_once(
                "the kept 8-bit weights could not be read (built again)",
                &e.to_string(),
            );
            return None;
        }
    };
    report.mark("packed_read", now_ms() - t);
    let t = now_ms();
    match CpuEncoder::from_packed(&o.config, key.towers, key.options, Packed::new(parts)) {
        Ok(encoder) => {
            report.mark("packed_build", now_ms() - t);
            report.weights = "packed".into();
            Some(encoder)
        }
        Err(e) => {
            log_once(
                "the kept 8-bit weights do not fit the model (built again)",
                &e.to_string(),
            );
            None
        }
    }
}

/// Keeps the 8-bit engine packed beside the model for the next start; a failure (storage
/// full, say) only costs the next start its time, and is said on the console once.
pub(in super::super) async fn keep_packed(store: &ModelStore, key: &PackKey, encoder: &Enc) {
    let Enc::Cpu(cpu) = encoder else { return };
    let t = now_ms();
    match save_packed(store, key, cpu).await {
        Ok(Some(bytes)) => web_sys::console::info_1(&JsValue::from_str(&format!(
            "clipseek: kept the packed 8-bit weights ({:.1} MB, {:.0} ms)",
            bytes as f64 / 1e6,
            now_ms() - t
        ))),
        Ok(None) => {}
        Err(e) => {
            log_once(
                "the 8-bit weights could not be kept (built again next time)",
                &e.to_string(),
            );
        }
    }
}
