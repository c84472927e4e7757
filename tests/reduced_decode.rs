//! Reduced-scale JPEG decoding (`Preprocessor::decode_for_model`) against the full-scale
//! path (`pixels(decode(..))`): on every fixture image with the tiny (64 px) and the
//! ViT-B/32 (224 px) preprocessing, on large photo-like JPEGs, at the rule's boundaries,
//! with EXIF rotation, grey and CMYK files. The parity with transformers' own pixels is
//! `tests/preprocess_parity.rs`; this file bounds what the reduction itself changes.
//!
//! Bars (normalised tensor, values span about 4; one 8-bit level is about 0.015): mean abs
//! error < 1.5e-2 and max abs error < 0.35 against the full-scale tensor, and the tiny
//! model's embedding cos >= 0.999 against the embedding of the full-scale tensor. Measured
//! worst: square.jpg for the 64 px model (300 px at 1/2, the reduced image only 2.3x the
//! input): mean 1.1e-2, max 0.26, cos 0.999995; a 4000 x 3000 photo at 1/4 for 224 px: mean
//! 2.6e-3. Files the rule keeps at full scale must match it bit for bit.

mod common;

use clipseek::files::load_model_dir;
use clipseek::model::config::PreprocessConfig;
use clipseek::model::preprocess::{reduction_for, Preprocessor};
use clipseek::model::synthetic::photo_like_jpeg;
use common::*;

const MEAN_ABS_BAR: f64 = 1.5e-2;
const MAX_ABS_BAR: f32 = 0.35;
const COS_BAR: f32 = 0.999;

fn preprocessor(model_dir: &str) -> Result<Preprocessor, Box<dyn std::error::Error>> {
    let config = PreprocessConfig::from_json(&std::fs::read(
        fixtures().join(model_dir).join("preprocessor_config.json"),
    )?)?;
    Ok(Preprocessor::new(config))
}

/// (mean abs, max abs) between two tensors of the same length.
fn errors(a: &[f32], b: &[f32]) -> (f64, f32) {
    let mean = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .sum::<f64>()
        / a.len().max(1) as f64;
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    (mean, max)
}

/// One file through both paths: the reduction used, the two tensors.
struct Compared {
    reduction: u32,
    reduced: Vec<f32>,
    full: Vec<f32>,
}

fn compare(p: &Preprocessor, bytes: &[u8]) -> Result<Compared, Box<dyn std::error::Error>> {
    let full_rgb = p.decode(bytes)?;
    let model = p.decode_for_model(bytes)?;
    let (w, h) = full_rgb.dimensions();
    let (mw, mh) = model.rgb.dimensions();
    let reduction = model.reduction;
    assert_eq!(model.full_size, (w, h), "full size");
    assert_eq!(
        (mw, mh),
        (w.div_ceil(reduction), h.div_ceil(reduction)),
        "a {w}x{h} image came back {mw}x{mh}"
    );
    let full = p.pixels(&full_rgb);
    let reduced = p.preprocess(bytes)?;
    assert_eq!(
        reduced,
        p.model_pixels(&model),
        "preprocess is model_pixels(decode_for_model)"
    );
    let mut into = vec![0.0; reduced.len()];
    p.preprocess_into(bytes, &mut into)?;
    assert_eq!(into, reduced, "preprocess_into differs from preprocess");
    if reduction == 1 {
        assert_eq!(
            model.rgb.as_raw(),
            full_rgb.as_raw(),
            "not reduced, so identical"
        );
    }
    Ok(Compared {
        reduction,
        reduced,
        full,
    })
}

/// Every fixture image listed in `reference_json`: reduced as the rule says, close to the
/// full-scale tensor, identical when not reduced. Returns how many were reduced.
fn check_fixtures(
    reference_json: &str,
    model_dir: &str,
    embed: bool,
) -> Result<usize, Box<dyn std::error::Error>> {
    let p = preprocessor(model_dir)?;
    let clip = if embed {
        Some(load_model_dir(&fixtures().join(model_dir))?)
    } else {
        None
    };
    let target = p.config().shortest_edge;
    let mut reduced_count = 0;
    println!("{reference_json}: file, size, reduction, mean abs, max abs, cos vs full scale");
    for image in &reference(reference_json)?.images {
        let bytes = std::fs::read(fixtures().join("images").join(&image.file))?;
        let c = compare(&p, &bytes)?;
        let full_rgb = p.decode(&bytes)?;
        let (w, h) = full_rgb.dimensions();
        let is_jpeg = bytes.starts_with(b"\xFF\xD8\xFF");
        let cmyk = image.file.starts_with("cmyk");
        let want = if is_jpeg && !cmyk {
            reduction_for(w, h, target)
        } else {
            1
        };
        assert_eq!(c.reduction, want, "{}: reduction", image.file);
        let (mean, max) = errors(&c.reduced, &c.full);
        let hf = read_f32(
            &fixtures()
                .join(reference_json)
                .with_file_name(&image.pixels),
        )?;
        let (hf_full, _) = errors(&c.full, &hf);
        let (hf_reduced, _) = errors(&c.reduced, &hf);
        let cos = match &clip {
            Some(clip) => {
                let a = clip.embed_pixels(&c.reduced, 1)?;
                let b = clip.embed_pixels(&c.full, 1)?;
                cosine(a.row(0), b.row(0))
            }
            None => 1.0,
        };
        println!(
            "  {:20} {w:5}x{h:<5} 1/{} {mean:.2e} {max:.2e} {cos:.6}; vs transformers: \
             mean abs {hf_full:.2e} full scale, {hf_reduced:.2e} reduced",
            image.file, c.reduction
        );
        if c.reduction == 1 {
            assert_eq!(
                c.reduced, c.full,
                "{}: not reduced, so identical",
                image.file
            );
            continue;
        }
        reduced_count += 1;
        assert!(mean < MEAN_ABS_BAR, "{}: mean abs {mean:.3e}", image.file);
        assert!(max < MAX_ABS_BAR, "{}: max abs {max:.3e}", image.file);
        assert!(cos >= COS_BAR, "{}: cos {cos}", image.file);
    }
    Ok(reduced_count)
}

#[test]
fn tiny_fixtures_reduced_match_full_scale() -> TestResult {
    // landscape, portrait, square, progressive at 1/2; large at 1/4.
    let reduced = check_fixtures("reference/tiny.json", "tiny-clip", true)?;
    assert!(reduced >= 5, "only {reduced} fixtures were reduced");
    Ok(())
}

#[test]
fn vit_b32_fixtures_reduced_match_full_scale() -> TestResult {
    // Only large.jpg (2400x1600) is large enough for 224 px: 1/2.
    let reduced = check_fixtures("vit-b32-random/reference.json", "vit-b32-random", false)?;
    assert_eq!(reduced, 1);
    Ok(())
}

/// A large photo-like JPEG at each reduction, odd sizes included, for both models.
#[test]
fn large_photos_reduced_match_full_scale() -> TestResult {
    let tiny = load_model_dir(&fixtures().join("tiny-clip"))?;
    let vit = preprocessor("vit-b32-random")?;
    for (w, h, want_vit, want_tiny) in [
        (4000u32, 3000u32, 4u32, 4u32),
        (3001, 4003, 4, 4),
        (1792, 1344, 2, 4),
        (1001, 897, 2, 4),
        (900, 1201, 2, 4),
        (600, 450, 1, 2),
    ] {
        let jpeg = photo_like_jpeg(w, h)?;
        let c = compare(&vit, &jpeg)?;
        let (mean, max) = errors(&c.reduced, &c.full);
        println!(
            "ViT-B/32 {w}x{h}: 1/{} mean abs {mean:.2e} max abs {max:.2e}",
            c.reduction
        );
        assert_eq!(c.reduction, want_vit, "{w}x{h} for 224 px");
        assert!(
            mean < MEAN_ABS_BAR && max < MAX_ABS_BAR,
            "{w}x{h}: {mean} {max}"
        );

        let c = compare(&tiny.preprocessor, &jpeg)?;
        let (mean, max) = errors(&c.reduced, &c.full);
        let a = tiny.embed_pixels(&c.reduced, 1)?;
        let b = tiny.embed_pixels(&c.full, 1)?;
        let cos = cosine(a.row(0), b.row(0));
        println!(
            "tiny {w}x{h}: 1/{} mean abs {mean:.2e} max abs {max:.2e} cos {cos:.6}",
            c.reduction
        );
        assert_eq!(c.reduction, want_tiny, "{w}x{h} for 64 px");
        assert!(
            mean < MEAN_ABS_BAR && max < MAX_ABS_BAR,
            "{w}x{h}: {mean} {max}"
        );
        assert!(cos >= COS_BAR, "{w}x{h}: cos {cos}");
    }
    Ok(())
}

/// Just above and below twice the input (448 px for 224) at 1/2, and tiny photos.
#[test]
fn rule_boundaries() -> TestResult {
    let vit = preprocessor("vit-b32-random")?;
    for (w, h, want) in [
        (1200u32, 896u32, 2u32),
        (895, 1200, 2),
        (1200, 894, 1),
        (893, 893, 1),
        (64, 48, 1),
        (1, 1, 1),
        (3, 2000, 1),
    ] {
        let jpeg = photo_like_jpeg(w, h)?;
        let c = compare(&vit, &jpeg)?;
        assert_eq!(c.reduction, want, "{w}x{h}");
        assert_eq!(c.reduction, reduction_for(w, h, 224), "{w}x{h}");
        let (mean, max) = errors(&c.reduced, &c.full);
        assert!(
            mean < MEAN_ABS_BAR && max < MAX_ABS_BAR,
            "{w}x{h}: {mean} {max}"
        );
    }
    Ok(())
}

/// `jpeg`'s SOI, then `app1` (a whole APP1 segment, marker included), then the rest.
fn with_segment(jpeg: &[u8], app1: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The first APP1 (EXIF) segment of a JPEG, marker included.
fn app1_segment(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] == 0xE1 {
            return jpeg.get(i..i + 2 + len).map(<[u8]>::to_vec);
        }
        i += 2 + len;
    }
    None
}

/// A large photo with each fixture's EXIF orientation: the reduced image is rotated as
/// the full-scale one is, and the tensors agree.
#[test]
fn exif_rotated_large_photos() -> TestResult {
    let vit = preprocessor("vit-b32-random")?;
    let plain = photo_like_jpeg(2000, 1000)?;
    for n in 1..=8 {
        let fixture = std::fs::read(fixtures().join(format!("images/exif-{n}.jpg")))?;
        let app1 = app1_segment(&fixture).ok_or("fixture has no APP1")?;
        let jpeg = with_segment(&plain, &app1);
        let full = vit.decode(&jpeg)?;
        let model = vit.decode_for_model(&jpeg)?;
        let rotated = n >= 5;
        assert_eq!(
            full.dimensions(),
            if rotated { (1000, 2000) } else { (2000, 1000) }
        );
        assert_eq!(
            model.rgb.dimensions(),
            if rotated { (500, 1000) } else { (1000, 500) }
        );
        let c = compare(&vit, &jpeg)?;
        let (mean, max) = errors(&c.reduced, &c.full);
        println!("exif-{n} on 2000x1000: mean abs {mean:.2e} max abs {max:.2e}");
        assert!(
            mean < MEAN_ABS_BAR && max < MAX_ABS_BAR,
            "exif-{n}: {mean} {max}"
        );
    }
    Ok(())
}

/// A large grey JPEG is reduced and stays grey; CMYK is never reduced (its colour
/// conversion stays the full-scale one), even when large enough.
#[test]
fn grey_reduced_cmyk_full() -> TestResult {
    let vit = preprocessor("vit-b32-random")?;
    let grey = image::DynamicImage::ImageRgb8(
        image::load_from_memory(&photo_like_jpeg(1800, 1000)?)?.to_rgb8(),
    )
    .to_luma8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&grey)?;
    let c = compare(&vit, &jpeg)?;
    assert_eq!(c.reduction, 2);
    let model = vit.decode_for_model(&jpeg)?;
    assert!(model.rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let (mean, max) = errors(&c.reduced, &c.full);
    assert!(
        mean < MEAN_ABS_BAR && max < MAX_ABS_BAR,
        "grey: {mean} {max}"
    );

    // The CMYK fixtures are 200x150: a 32 px model would reduce them to 1/2 if CMYK were
    // reducible.
    let small = Preprocessor::new(PreprocessConfig {
        shortest_edge: 32,
        crop_height: 32,
        crop_width: 32,
        ..PreprocessConfig::default()
    });
    assert_eq!(reduction_for(200, 150, 32), 2);
    for file in ["cmyk.jpg", "cmyk-convert.jpg"] {
        let bytes = std::fs::read(fixtures().join("images").join(file))?;
        assert_eq!(compare(&small, &bytes)?.reduction, 1, "{file}");
    }
    // And a YCbCr fixture of the same size is reduced by that model.
    let bytes = std::fs::read(fixtures().join("images/landscape.jpg"))?;
    assert_eq!(compare(&small, &bytes)?.reduction, 4);
    Ok(())
}

/// Switched off, `preprocess` is the full-scale path exactly.
#[test]
fn reduced_decode_can_be_switched_off() -> TestResult {
    let vit = preprocessor("vit-b32-random")?.with_reduced_decode(false);
    let jpeg = photo_like_jpeg(2000, 1500)?;
    assert_eq!(vit.decode_for_model(&jpeg)?.rgb.dimensions(), (2000, 1500));
    assert_eq!(vit.preprocess(&jpeg)?, vit.pixels(&vit.decode(&jpeg)?));
    Ok(())
}

/// Native timing of a 12 MP photo-like JPEG through both paths, alternating so that load
/// on the machine hits both alike: prints the medians (`--ignored --nocapture`); asserts
/// only that the reduced path is the faster (it is about 4x).
#[test]
#[ignore = "timing: run with --ignored --nocapture"]
fn timing_12mp_reduced_vs_full_scale() -> TestResult {
    let vit = preprocessor("vit-b32-random")?;
    let full = vit.clone().with_reduced_decode(false);
    let jpeg = photo_like_jpeg(4000, 3000)?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut reduced_ms, mut full_ms) = (Vec::new(), Vec::new());
    for i in 0..12 {
        let t = std::time::Instant::now();
        let a = vit.preprocess(&jpeg)?;
        let ra = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let b = full.preprocess(&jpeg)?;
        let fa = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(a.len(), b.len());
        if i >= 2 {
            reduced_ms.push(ra);
            full_ms.push(fa);
        }
    }
    let (r, f) = (median(reduced_ms), median(full_ms));
    println!(
        "12 MP JPEG ({} bytes) decode + preprocess, native, 1 thread, median of 10: \
         reduced {r:.1} ms, full scale {f:.1} ms ({:.2}x)",
        jpeg.len(),
        f / r
    );
    assert!(r < f, "reduced {r} ms vs full scale {f} ms");
    Ok(())
}

/// A large JPEG cut short is refused as truncated, as at full scale (the reduced decoder
/// would fill the missing part), and a large non-JPEG is never reduced.
#[test]
fn truncated_large_jpeg_is_refused() -> TestResult {
    use clipseek::model::preprocess::PreprocessError;
    let vit = preprocessor("vit-b32-random")?;
    let jpeg = photo_like_jpeg(2000, 1500)?;
    let cut = &jpeg[..jpeg.len() / 2];
    assert!(matches!(
        vit.decode_for_model(cut),
        Err(PreprocessError::Truncated { format: "JPEG" })
    ));
    assert!(matches!(
        vit.preprocess(cut),
        Err(PreprocessError::Truncated { .. })
    ));
    let rgb = image::load_from_memory(&jpeg)?.to_rgb8();
    let mut png = Vec::new();
    rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let c = compare(&vit, &png)?;
    assert_eq!(c.reduction, 1);
    Ok(())
}
