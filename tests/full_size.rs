//! The real architecture: a full-size ViT-B/32 (openai/clip-vit-base-patch32 config) with
//! weights regenerated bit for bit from `spec.json`, checked against transformers' outputs
//! on the same weights. Slow (605 MB of weights): `#[ignore]`d, run by `scripts/check`
//! with `--include-ignored`.

mod common;

use clipseek::files::{load_model_dir, write_synthetic_model};
use common::*;

fn build_model(dir: &std::path::Path) -> TestResult {
    write_synthetic_model(
        &fixtures().join("vit-b32-random"),
        &fixtures().join("clip-tokenizer/tokenizer.json"),
        dir,
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
#[ignore = "slow: regenerates a 605 MB model; scripts/check runs it"]
fn full_size_vit_b32_matches_transformers() -> TestResult {
    let dir = tempfile::tempdir()?;
    build_model(dir.path())?;
    let clip = load_model_dir(dir.path())?;
    let r = reference("vit-b32-random/reference.json")?;
    let base = fixtures().join("vit-b32-random");
    let (mut min_pix, mut min_bytes, mut max_mean_err) = (f32::MAX, f32::MAX, 0f32);
    for img in &r.images {
        let pixels = read_f32(&base.join(&img.pixels))?;
        let e = clip.embed_pixels(&pixels, 1)?;
        let c = cosine(e.row(0), &img.embedding);
        assert!(c >= 0.9999, "{}: cos {c} from reference pixels", img.file);
        min_pix = min_pix.min(c);
        let bytes = std::fs::read(fixtures().join("images").join(&img.file))?;
        let ours = clip.preprocessor.preprocess(&bytes)?;
        let mean_err = ours
            .iter()
            .zip(&pixels)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / ours.len() as f32;
        assert!(mean_err < 2e-2, "{}: mean pixel error {mean_err}", img.file);
        max_mean_err = max_mean_err.max(mean_err);
        let e = clip.embed_pixels(&ours, 1)?;
        let c = cosine(e.row(0), &img.embedding);
        assert!(c >= 0.999, "{}: cos {c} from image bytes", img.file);
        min_bytes = min_bytes.min(c);
    }
    // Reduced-scale JPEG decode against full scale, on this model: large photos only (the
    // rule keeps the other fixtures at full scale).
    let mut min_reduced = f32::MAX;
    let large = std::fs::read(fixtures().join("images/large.jpg"))?;
    let photos = [
        ("large.jpg", large),
        (
            "4000x3000",
            clipseek::model::synthetic::photo_like_jpeg(4000, 3000)?,
        ),
        (
            "3001x4003",
            clipseek::model::synthetic::photo_like_jpeg(3001, 4003)?,
        ),
    ];
    for (name, bytes) in &photos {
        let p = &clip.preprocessor;
        assert!(
            p.decode_for_model(bytes)?.reduction > 1,
            "{name} is not reduced"
        );
        let reduced = clip.embed_pixels(&p.preprocess(bytes)?, 1)?;
        let full = clip.embed_pixels(&p.pixels(&p.decode(bytes)?), 1)?;
        let c = cosine(reduced.row(0), full.row(0));
        assert!(
            c >= 0.999,
            "{name}: reduced-scale decode cos {c} vs full scale"
        );
        min_reduced = min_reduced.min(c);
    }
    let mut min_text = f32::MAX;
    for t in &r.texts {
        let ids = clip.tokenizer.encode(&t.text)?;
        assert_eq!(ids.ids, t.ids, "ids of {:?}", t.text);
        let e = clip.embed_texts(&[t.text.as_str()])?;
        let c = cosine(e.row(0), &t.embedding);
        assert!(c >= 0.9999, "{:?}: cos {c}", t.text);
        min_text = min_text.min(c);
    }
    for rk in &r.rankings {
        let q = clip.embed_texts(&[rk.text.as_str()])?;
        let mut scored = Vec::new();
        for img in &r.images {
            let pixels = read_f32(&base.join(&img.pixels))?;
            let e = clip.embed_pixels(&pixels, 1)?;
            scored.push((img.file.clone(), cosine(q.row(0), e.row(0))));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ours: Vec<String> = scored.into_iter().map(|(f, _)| f).collect();
        assert!(
            same_ranking(&ours, &rk.files, &rk.scores, 1e-4),
            "ranking for {:?}: {ours:?} vs {:?}",
            rk.text,
            rk.files
        );
    }
    eprintln!(
        "ViT-B/32 random: min cos images from pixels {min_pix:.6}, from bytes {min_bytes:.6}, texts {min_text:.6}; worst mean pixel error {max_mean_err:.5}; reduced-scale vs full-scale decode min cos {min_reduced:.6}"
    );
    Ok(())
}
