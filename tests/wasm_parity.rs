//! The browser build computes the same numbers: the tiny-model parity checks compiled to
//! wasm32 (+simd128) and run by wasm-bindgen-test (Node). Fixtures are embedded with
//! `include_bytes!` since wasm has no file system.
#![cfg(target_arch = "wasm32")]

use clipseek::clip::{Clip, ModelJson};
use wasm_bindgen_test::wasm_bindgen_test;

const CONFIG: &[u8] = include_bytes!("fixtures/tiny-clip/config.json");
const PREPROCESSOR: &[u8] = include_bytes!("fixtures/tiny-clip/preprocessor_config.json");
const TOKENIZER: &[u8] = include_bytes!("fixtures/tiny-clip/tokenizer.json");
const WEIGHTS: &[u8] = include_bytes!("fixtures/tiny-clip/model.safetensors");
const WEIGHTS_F16: &[u8] = include_bytes!("fixtures/tiny-clip-f16/model.safetensors");
const REFERENCE: &[u8] = include_bytes!("fixtures/reference/tiny.json");
const TOKENS: &[u8] = include_bytes!("fixtures/reference/tokens.json");

/// Images whose bytes are decoded in wasm too (a spread of formats and conversions).
const IMAGES: &[(&str, &[u8])] = &[
    (
        "landscape.jpg",
        include_bytes!("fixtures/images/landscape.jpg"),
    ),
    ("exif-6.jpg", include_bytes!("fixtures/images/exif-6.jpg")),
    ("cmyk.jpg", include_bytes!("fixtures/images/cmyk.jpg")),
    ("rgba.png", include_bytes!("fixtures/images/rgba.png")),
    ("grey16.png", include_bytes!("fixtures/images/grey16.png")),
    ("palette.gif", include_bytes!("fixtures/images/palette.gif")),
    (
        "lossless.webp",
        include_bytes!("fixtures/images/lossless.webp"),
    ),
    ("photo.bmp", include_bytes!("fixtures/images/photo.bmp")),
    ("small.png", include_bytes!("fixtures/images/small.png")),
];

#[derive(serde::Deserialize)]
struct RefImage {
    file: String,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct RefText {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    images: Vec<RefImage>,
    texts: Vec<RefText>,
}

#[derive(serde::Deserialize)]
struct Tok {
    text: String,
    ids: Vec<u32>,
}

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

fn clip(weights: &[u8]) -> Result<Clip, String> {
    Clip::from_bytes(
        &ModelJson {
            config: CONFIG,
            preprocessor: PREPROCESSOR,
            tokenizer: TOKENIZER,
        },
        weights,
    )
    .map_err(|e| e.to_string())
}

fn reference() -> Result<Reference, String> {
    serde_json::from_slice(REFERENCE).map_err(|e| e.to_string())
}

fn run(f: impl FnOnce() -> Result<(), String>) {
    if let Err(e) = f() {
        panic!("{e}");
    }
}

#[wasm_bindgen_test]
fn tokenizer_matches_on_wasm() {
    run(|| {
        let c = clip(WEIGHTS)?;
        let toks: Vec<Tok> = serde_json::from_slice(TOKENS).map_err(|e| e.to_string())?;
        for t in &toks {
            let ours = c.tokenizer.encode(&t.text).map_err(|e| e.to_string())?;
            if ours.ids != t.ids {
                return Err(format!("ids differ for {:?}", t.text));
            }
        }
        Ok(())
    });
}

#[wasm_bindgen_test]
fn image_embeddings_from_bytes_match_on_wasm() {
    run(|| {
        let c = clip(WEIGHTS)?;
        let r = reference()?;
        for (name, bytes) in IMAGES {
            let want = r
                .images
                .iter()
                .find(|i| i.file == *name)
                .ok_or(format!("{name} not in the reference"))?;
            let e = c.embed_image_bytes(bytes).map_err(|e| e.to_string())?;
            let cos = cosine(&e, &want.embedding);
            if cos < 0.999 {
                return Err(format!("{name}: cos {cos}"));
            }
        }
        Ok(())
    });
}

#[wasm_bindgen_test]
fn text_embeddings_match_on_wasm() {
    run(|| {
        for (weights, bar) in [(WEIGHTS, 0.9999f32), (WEIGHTS_F16, 0.999)] {
            let c = clip(weights)?;
            let r = reference()?;
            for t in &r.texts {
                let ids = c.tokenizer.encode(&t.text).map_err(|e| e.to_string())?;
                if ids.ids != t.ids {
                    return Err(format!("ids differ for {:?}", t.text));
                }
                let e = c
                    .embed_texts(&[t.text.as_str()])
                    .map_err(|e| e.to_string())?;
                let cos = cosine(e.row(0), &t.embedding);
                if cos < bar {
                    return Err(format!("{:?}: cos {cos} < {bar}", t.text));
                }
            }
        }
        Ok(())
    });
}
