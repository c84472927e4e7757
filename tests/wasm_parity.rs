//! The browser build computes the same numbers: the tiny-model parity checks compiled to
//! wasm32 (+simd128) and run by wasm-bindgen-test (Node). Fixtures are embedded with
//! `include_bytes!` since wasm has no file system. The 8-bit path is checked here too: the
//! build's kernel against the integer reference and f32 on odd sizes, and the int8
//! engine's embeddings against transformers' f32. `scripts/check` runs this file twice:
//! as built (the `simd128` kernel, in Node) and with `--features relaxed-simd` (the
//! relaxed-SIMD kernel) in Chromium with `WASM_BINDGEN_USE_BROWSER=1`: Node 20's V8
//! miscomputes `i32x4.relaxed_dot_i8x16_i7x16_add_s` (twice the dot, no accumulator).
#![cfg(target_arch = "wasm32")]

use clipseek::clip::{Clip, ModelJson};
use clipseek::encode::cpu::QuantOptions;
use clipseek::encode::quant::{ActivationBits, QuantLinear, WeightBits, KERNEL};
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

/// Reference pixels (transformers' CLIPProcessor output) for the 8-bit engine's check.
const PIXELS: &[(&str, &[u8])] = &[
    (
        "landscape.jpg",
        include_bytes!("fixtures/reference/pixels/landscape.jpg.f32"),
    ),
    (
        "cmyk.jpg",
        include_bytes!("fixtures/reference/pixels/cmyk.jpg.f32"),
    ),
    (
        "exif-6.jpg",
        include_bytes!("fixtures/reference/pixels/exif-6.jpg.f32"),
    ),
    (
        "rgba.png",
        include_bytes!("fixtures/reference/pixels/rgba.png.f32"),
    ),
];

/// SplitMix64 numbers in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

#[wasm_bindgen_test]
fn int8_kernel_matches_the_references_on_odd_sizes() {
    run(|| {
        let mut rng = Rng(3);
        for (rows, k, n) in [
            (1, 1, 1),
            (3, 17, 5),
            (4, 32, 4),
            (5, 31, 3),
            (7, 100, 9),
            (9, 768, 33),
            (50, 768, 11),
            (6, 3072, 3),
            (5, 3072, 41),
        ] {
            for bits in [ActivationBits::Eight, ActivationBits::Twelve] {
                let w = rng.vec(n * k, 0.2);
                let b = rng.vec(n, 0.5);
                let x = rng.vec(rows * k, 3.0);
                let layer = QuantLinear::new(&w, n, k, Some(&b), WeightBits::Eight, bits)
                    .map_err(|e| e.to_string())?;
                let fast = layer.forward(&x, rows).map_err(|e| e.to_string())?;
                let slow = layer.forward_scalar(&x, rows).map_err(|e| e.to_string())?;
                for (i, (a, s)) in fast.iter().zip(&slow).enumerate() {
                    if (a - s).abs() > 1e-5 * (1.0 + s.abs()) {
                        return Err(format!(
                            "{KERNEL} {rows}x{k}x{n} {bits:?} at {i}: kernel {a}, integer reference {s}"
                        ));
                    }
                }
                // Against plain f32 arithmetic: the quantisation error only.
                let mut want = vec![0f32; rows * n];
                for r in 0..rows {
                    for o in 0..n {
                        let dot: f64 = (0..k)
                            .map(|j| f64::from(x[r * k + j]) * f64::from(w[o * k + j]))
                            .sum();
                        want[r * n + o] = dot as f32 + b[o];
                    }
                }
                let c = cosine(&fast, &want);
                let bar = if k == 1 { 0.99 } else { 0.999 };
                if c < bar {
                    return Err(format!("{KERNEL} {rows}x{k}x{n} {bits:?}: cos {c} to f32"));
                }
            }
        }
        Ok(())
    });
}

#[wasm_bindgen_test]
fn int8_embeddings_match_transformers_f32_on_wasm() {
    run(|| {
        let mut c = clip(WEIGHTS)?;
        c.encoder = c
            .encoder
            .quantized(QuantOptions::default())
            .map_err(|e| e.to_string())?;
        let r = reference()?;
        for (name, bytes) in PIXELS {
            let want = r
                .images
                .iter()
                .find(|i| i.file == *name)
                .ok_or(format!("{name} not in the reference"))?;
            let pixels: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let e = c.embed_pixels(&pixels, 1).map_err(|e| e.to_string())?;
            let cos = cosine(e.row(0), &want.embedding);
            if cos < 0.999 {
                return Err(format!("{name}: int8 cos {cos}"));
            }
        }
        for t in &r.texts {
            let e = c
                .embed_texts(&[t.text.as_str()])
                .map_err(|e| e.to_string())?;
            let cos = cosine(e.row(0), &t.embedding);
            if cos < 0.999 {
                return Err(format!("{:?}: int8 cos {cos}", t.text));
            }
        }
        Ok(())
    });
}
