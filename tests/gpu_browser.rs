//! The GPU engine in a real browser: Chromium's WebGPU (SwiftShader when headless, with
//! `--enable-unsafe-webgpu` from webdriver.json), so the WGSL goes through Chromium's own
//! shader compiler (Tint) and not only naga. Tiny model, a few images and texts, against the
//! CPU engine compiled to wasm32. Run with
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test --release --target wasm32-unknown-unknown --test gpu_browser`.
//! Built with `CLIPSEEK_REQUIRE_GPU=1`, a missing adapter fails the test.
#![cfg(target_arch = "wasm32")]

use clipseek::encode::cpu::CpuEncoder;
use clipseek::encode::gpu::{request_device, GpuEncoder, GpuOptions};
use clipseek::encode::Encoder;
use clipseek::model::config::ClipConfig;
use clipseek::model::tokenizer::TokenIds;
use clipseek::model::weights::from_bytes;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("fixtures/tiny-clip/config.json");
const WEIGHTS: &[u8] = include_bytes!("fixtures/tiny-clip/model.safetensors");
const PIXELS: [&[u8]; 3] = [
    include_bytes!("fixtures/reference/pixels/landscape.jpg.f32"),
    include_bytes!("fixtures/reference/pixels/exif-6.jpg.f32"),
    include_bytes!("fixtures/reference/pixels/small.png.f32"),
];

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

fn ids(words: &[u32]) -> TokenIds {
    let mut ids = vec![49406];
    ids.extend_from_slice(words);
    ids.push(49407);
    let eos_position = ids.len() - 1;
    ids.resize(77, 49407);
    TokenIds { ids, eos_position }
}

#[wasm_bindgen_test]
async fn gpu_engine_matches_the_cpu_engine_in_chromium() {
    let (adapter, device, queue) =
        match request_device(wgpu::PowerPreference::HighPerformance).await {
            Ok(d) => d,
            Err(e) if option_env!("CLIPSEEK_REQUIRE_GPU") == Some("1") => {
                panic!("no WebGPU adapter: {e}")
            }
            Err(e) => {
                web_sys::console::log_1(&format!("skipped: no adapter ({e})").into());
                return;
            }
        };
    let info = adapter.get_info();
    web_sys::console::log_1(
        &format!(
            "adapter: {:?} {:?} {}",
            info.backend, info.device_type, info.name
        )
        .into(),
    );
    let config = match ClipConfig::from_json(CONFIG) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let weights = match from_bytes(WEIGHTS, &config) {
        Ok((w, _)) => w,
        Err(e) => panic!("weights: {e}"),
    };
    let cpu = match CpuEncoder::new(&config, weights.clone()) {
        Ok(c) => c,
        Err(e) => panic!("cpu engine: {e}"),
    };
    let gpu = match GpuEncoder::new_async(&device, &queue, &config, weights, &GpuOptions::default())
        .await
    {
        Ok(g) => g,
        Err(e) => panic!("gpu engine: {e}"),
    };
    let pixels: Vec<f32> = PIXELS
        .iter()
        .flat_map(|b| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        })
        .collect();
    let texts = [
        ids(&[320, 1125, 539, 320, 2368]),
        ids(&[1611, 525, 911, 15156]),
        ids(&[]),
    ];
    let (gi, gt) = match (
        gpu.encode_images_async(&pixels, PIXELS.len()).await,
        gpu.encode_texts_async(&texts).await,
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (i, t) => panic!("gpu encode failed: {:?} {:?}", i.err(), t.err()),
    };
    let (ci, ct) = match (
        cpu.encode_images(&pixels, PIXELS.len()),
        cpu.encode_texts(&texts),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (i, t) => panic!("cpu encode failed: {:?} {:?}", i.err(), t.err()),
    };
    let min_i = gi
        .rows()
        .zip(ci.rows())
        .map(|(a, b)| cosine(a, b))
        .fold(f32::MAX, f32::min);
    let min_t = gt
        .rows()
        .zip(ct.rows())
        .map(|(a, b)| cosine(a, b))
        .fold(f32::MAX, f32::min);
    web_sys::console::log_1(
        &format!(
            "browser {:?}: min cos images {min_i:.7}, texts {min_t:.7}",
            gpu.precision()
        )
        .into(),
    );
    assert!(
        min_i >= 0.9999 && min_t >= 0.9999,
        "images {min_i}, texts {min_t}"
    );
}
