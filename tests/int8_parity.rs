//! The 8-bit CPU engine against HF transformers' f32 outputs: image and text embeddings
//! cos ≥ 0.999 and rankings equal up to near-ties (reference scores within 1e-2), on the
//! tiny fixture (every run) and on the full-size random ViT-B/32 (slow, `#[ignore]`d, run
//! by `scripts/check`). Also records how 8-bit activations compare with the 12-bit default
//! and what quantising the patch embedding and the projections costs.

mod common;

use clipseek::clip::Clip;
use clipseek::encode::cpu::{CpuPrecision, QuantOptions};
use clipseek::encode::quant::{ActivationBits, WeightBits};
use clipseek::files::{load_model_dir, write_synthetic_model};
use common::*;

/// The bar the issue sets for the 8-bit path.
const BAR: f32 = 0.999;
/// Items whose reference scores are this close may swap places.
const TIE: f32 = 1e-2;

fn quantized(
    dir: &std::path::Path,
    options: QuantOptions,
) -> Result<Clip, Box<dyn std::error::Error>> {
    let mut clip = load_model_dir(dir)?;
    clip.encoder = clip.encoder.quantized(options)?;
    Ok(clip)
}

/// Minimum cosines (images from the reference's pixels, texts) and whether every ranking
/// matches up to near-ties.
struct Fidelity {
    images: f32,
    texts: f32,
    rankings: bool,
}

fn fidelity(
    clip: &Clip,
    reference_json: &str,
    pixel_dir: &std::path::Path,
) -> Result<Fidelity, Box<dyn std::error::Error>> {
    let r = reference(reference_json)?;
    let mut images = f32::MAX;
    let mut embedded = Vec::new();
    for img in &r.images {
        let pixels = read_f32(&pixel_dir.join(&img.pixels))?;
        let e = clip.embed_pixels(&pixels, 1)?;
        images = images.min(cosine(e.row(0), &img.embedding));
        embedded.push((img.file.clone(), e.data));
    }
    let mut texts = f32::MAX;
    for t in &r.texts {
        let e = clip.embed_texts(&[t.text.as_str()])?;
        texts = texts.min(cosine(e.row(0), &t.embedding));
    }
    let mut rankings = true;
    for rk in &r.rankings {
        let q = clip.embed_texts(&[rk.text.as_str()])?;
        let mut scored: Vec<(String, f32)> = embedded
            .iter()
            .map(|(f, e)| (f.clone(), cosine(q.row(0), e)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ours: Vec<String> = scored.into_iter().map(|(f, _)| f).collect();
        if !same_ranking(&ours, &rk.files, &rk.scores, TIE) {
            eprintln!(
                "ranking for {:?}: ours {ours:?}, reference {:?}",
                rk.text, rk.files
            );
            rankings = false;
        }
    }
    Ok(Fidelity {
        images,
        texts,
        rankings,
    })
}

/// Every variant measured (printed for the record); the default (12-bit activations, every
/// linear layer) must meet the bar, the relaxed-SIMD build's numbers (7-bit weights, 8-bit
/// activations) `relaxed_bar`.
fn check_variants(
    dir: &std::path::Path,
    reference_json: &str,
    pixel_dir: &std::path::Path,
    label: &str,
    relaxed_bar: f32,
) -> TestResult {
    let variants = [
        (
            "default (12-bit activations, all layers)",
            QuantOptions::default(),
        ),
        (
            "8-bit activations",
            QuantOptions {
                activations: ActivationBits::Eight,
                ..QuantOptions::default()
            },
        ),
        (
            // What the relaxed-SIMD kernel of the page's second worker build computes.
            "7-bit weights, 8-bit activations (relaxed SIMD)",
            QuantOptions {
                weights: WeightBits::Seven,
                activations: ActivationBits::Eight,
                ..QuantOptions::default()
            },
        ),
        (
            "patch embedding and projections in f32",
            QuantOptions {
                patch: false,
                projections: false,
                ..QuantOptions::default()
            },
        ),
        (
            "token embedding in f32",
            QuantOptions {
                token_embedding_f16: false,
                ..QuantOptions::default()
            },
        ),
    ];
    for (i, (name, options)) in variants.into_iter().enumerate() {
        let clip = quantized(dir, options)?;
        assert_eq!(clip.encoder.precision(), CpuPrecision::Int8);
        let f = fidelity(&clip, reference_json, pixel_dir)?;
        eprintln!(
            "{label} int8, {name}: min cos images {:.6}, texts {:.6}, rankings (tie {TIE}) {}",
            f.images,
            f.texts,
            if f.rankings { "equal" } else { "DIFFER" }
        );
        if i == 0 || i == 2 {
            let bar = if i == 0 { BAR } else { relaxed_bar };
            assert!(f.images >= bar, "{label} {name}: image cos {}", f.images);
            assert!(f.texts >= bar, "{label} {name}: text cos {}", f.texts);
            assert!(f.rankings, "{label} {name}: rankings differ");
        }
    }
    Ok(())
}

#[test]
fn int8_tiny_matches_transformers_f32() -> TestResult {
    let dir = fixtures().join("tiny-clip");
    check_variants(
        &dir,
        "reference/tiny.json",
        &fixtures().join("reference"),
        "tiny",
        BAR,
    )
}

#[test]
fn int8_batches_give_the_same_embeddings_as_one_at_a_time() -> TestResult {
    let clip = quantized(&fixtures().join("tiny-clip"), QuantOptions::default())?;
    let r = reference("reference/tiny.json")?;
    let mut pixels = Vec::new();
    let mut single = Vec::new();
    for img in &r.images {
        let p = read_f32(&fixtures().join("reference").join(&img.pixels))?;
        single.push(clip.embed_pixels(&p, 1)?.data);
        pixels.extend(p);
    }
    let batch = clip.embed_pixels(&pixels, r.images.len())?;
    for (i, one) in single.iter().enumerate() {
        // Activations are quantised per token, so a batch changes nothing.
        let c = cosine(batch.row(i), one);
        assert!(c >= 0.99999, "image {i} in a batch: cos {c}");
    }
    let texts: Vec<&str> = r.texts.iter().map(|t| t.text.as_str()).collect();
    let batch = clip.embed_texts(&texts)?;
    for (i, t) in texts.iter().enumerate() {
        let one = clip.embed_texts(&[t])?;
        let c = cosine(batch.row(i), one.row(0));
        assert!(c >= 0.99999, "{t:?} in a batch: cos {c}");
    }
    Ok(())
}

#[test]
#[ignore = "slow: regenerates a 605 MB model; scripts/check runs it"]
fn int8_full_size_vit_b32_matches_transformers_f32() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_synthetic_model(
        &fixtures().join("vit-b32-random"),
        &fixtures().join("clip-tokenizer/tokenizer.json"),
        dir.path(),
    )
    .map_err(|e| e.to_string())?;
    check_variants(
        dir.path(),
        "vit-b32-random/reference.json",
        &fixtures().join("vit-b32-random"),
        "ViT-B/32 random",
        BAR,
    )
}

/// The other checkpoints' distinguishing features in 8 bits: exact GELU in both towers
/// (LAION ViT-B/32) and patch 16 with 197 positions (ViT-B/16). Their text towers are 16
/// wide (tiny-clip's 32), where 7-bit weights with 8-bit activations lose about 1e-3 of
/// cosine (laion-b32-tiny texts 0.99890 when measured): that variant's bar is 0.998 here;
/// the default keeps 0.999.
#[test]
fn int8_variants_match_transformers_f32() -> TestResult {
    for name in ["laion-b32-tiny", "b16-tiny"] {
        check_variants(
            &fixtures().join(name),
            &format!("reference/{name}.json"),
            &fixtures().join("reference"),
            name,
            0.998,
        )?;
    }
    Ok(())
}

/// The 8-bit engine's fused forward (plain slices, one quantisation shared by q/k/v,
/// residuals in the kernel's epilogue, a polynomial `exp`) against its older op-by-op
/// forward on candle tensors: the same numbers up to float rounding, images and texts, on
/// quick-GELU (tiny-clip's text tower, b16-tiny) and exact-GELU (tiny-clip's and LAION's
/// vision towers) checkpoints, one item and a batch.
#[test]
fn the_fused_int8_forward_equals_the_op_by_op_one() -> TestResult {
    for (name, json) in [
        ("tiny-clip", "reference/tiny.json"),
        ("laion-b32-tiny", "reference/laion-b32-tiny.json"),
        ("b16-tiny", "reference/b16-tiny.json"),
    ] {
        let dir = fixtures().join(name);
        let fused = quantized(&dir, QuantOptions::default())?;
        let mut candle = quantized(&dir, QuantOptions::default())?;
        candle.encoder = candle.encoder.with_fused(false);
        let r = reference(json)?;
        let mut pixels = Vec::new();
        for img in &r.images {
            pixels.extend(read_f32(&fixtures().join("reference").join(&img.pixels))?);
        }
        let n = r.images.len();
        let (a, b) = (
            fused.embed_pixels(&pixels, n)?,
            candle.embed_pixels(&pixels, n)?,
        );
        for i in 0..n {
            let c = cosine(a.row(i), b.row(i));
            assert!(c >= 0.99999, "{name} image {i}: fused vs op by op cos {c}");
        }
        let texts: Vec<&str> = r.texts.iter().map(|t| t.text.as_str()).collect();
        let (a, b) = (fused.embed_texts(&texts)?, candle.embed_texts(&texts)?);
        for (i, t) in texts.iter().enumerate() {
            let c = cosine(a.row(i), b.row(i));
            assert!(c >= 0.99999, "{name} {t:?}: fused vs op by op cos {c}");
        }
        // The timed forward is the same forward.
        let clock: fn() -> f64 = || 0.0;
        let profile = fused
            .encoder
            .profile_images(&pixels, n, clock)?
            .ok_or("the 8-bit vision stack did not run fused")?;
        assert_eq!(profile.total(), 0.0);
        assert!(candle.encoder.profile_images(&pixels, n, clock)?.is_none());
    }
    Ok(())
}
