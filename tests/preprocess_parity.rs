//! Preprocessing parity from image bytes with HF transformers' slow `CLIPImageProcessor`
//! (PIL) after `ImageOps.exif_transpose`: every reference image of the tiny (64 px) and
//! ViT-B/32-shaped (224 px) fixtures, and the files in `images/bad/`.
//!
//! Bar (DESIGN.md): mean abs error of the normalised tensor < 2e-2. Lossless formats are
//! held to bit-exactness (resize, crop and normalisation mirror PIL/numpy exactly); JPEGs
//! differ only by the decoder (zune-jpeg vs libjpeg-turbo).

mod common;

use clipseek::model::config::PreprocessConfig;
use clipseek::model::preprocess::{PreprocessError, Preprocessor};
use common::*;

const MEAN_ABS_BAR: f64 = 2e-2;

struct FileError {
    file: String,
    mean_abs: f64,
    max_abs: f32,
    exact: usize,
    len: usize,
}

fn is_jpeg(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg")
}

/// Preprocesses every image of `reference_json` with the config in `model_dir` and checks
/// it against the reference tensors.
fn check(
    reference_json: &str,
    model_dir: &str,
) -> Result<Vec<FileError>, Box<dyn std::error::Error>> {
    let reference = reference(reference_json)?;
    let base = fixtures().join(reference_json);
    let base = base.parent().ok_or("reference path has no folder")?;
    let config = PreprocessConfig::from_json(&std::fs::read(
        fixtures().join(model_dir).join("preprocessor_config.json"),
    )?)?;
    let preprocessor = Preprocessor::new(config);
    assert!(
        !reference.images.is_empty(),
        "{reference_json} lists no images"
    );
    let mut errors = Vec::new();
    for image in &reference.images {
        let bytes = std::fs::read(fixtures().join("images").join(&image.file))?;
        let want = read_f32(&base.join(&image.pixels))?;
        assert_eq!(
            preprocessor.output_shape().to_vec(),
            image.shape,
            "{}",
            image.file
        );
        assert_eq!(
            want.len(),
            image.shape.iter().product::<usize>(),
            "{}",
            image.file
        );
        let mut got = vec![0.0f32; want.len()];
        preprocessor.preprocess_into(&bytes, &mut got)?;
        assert_eq!(
            preprocessor.preprocess(&bytes)?,
            got,
            "{}: preprocess and preprocess_into differ",
            image.file
        );
        let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        errors.push(FileError {
            file: image.file.clone(),
            mean_abs: diffs.iter().map(|d| f64::from(*d)).sum::<f64>() / diffs.len() as f64,
            max_abs: diffs.iter().copied().fold(0.0, f32::max),
            exact: got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count(),
            len: want.len(),
        });
    }
    println!("{reference_json}: file, mean abs, max abs, bit-exact values");
    for e in &errors {
        println!(
            "  {:24} {:.2e} {:.2e} {:6.2}%",
            e.file,
            e.mean_abs,
            e.max_abs,
            100.0 * e.exact as f64 / e.len as f64
        );
    }
    let worst = errors
        .iter()
        .max_by(|a, b| a.mean_abs.total_cmp(&b.mean_abs))
        .ok_or("no images")?;
    let max = errors
        .iter()
        .max_by(|a, b| a.max_abs.total_cmp(&b.max_abs))
        .ok_or("no images")?;
    println!(
        "  worst mean abs {:.2e} ({}), largest abs error {:.2e} ({}); bar {MEAN_ABS_BAR:.0e}",
        worst.mean_abs, worst.file, max.max_abs, max.file
    );
    for e in &errors {
        assert!(
            e.mean_abs < MEAN_ABS_BAR,
            "{}: mean abs error {:.3e}",
            e.file,
            e.mean_abs
        );
        if !is_jpeg(&e.file) {
            assert_eq!(
                e.exact, e.len,
                "{}: a lossless image must match bit for bit (max abs {:.2e})",
                e.file, e.max_abs
            );
        }
    }
    Ok(errors)
}

#[test]
fn tiny_pixels_match_clip_image_processor() -> TestResult {
    let errors = check("reference/tiny.json", "tiny-clip")?;
    // Every PIL mode and format in the fixture set is represented.
    for file in [
        "exif-6.jpg",
        "cmyk.jpg",
        "grey16.png",
        "rgb48.png",
        "rgba.png",
        "palette.gif",
        "photo.bmp",
        "lossless.webp",
    ] {
        assert!(
            errors.iter().any(|e| e.file == file),
            "{file} missing from tiny.json"
        );
    }
    Ok(())
}

#[test]
fn vit_b32_pixels_match_clip_image_processor() -> TestResult {
    check("vit-b32-random/reference.json", "vit-b32-random")?;
    Ok(())
}

#[test]
fn bad_images_give_specific_errors() -> TestResult {
    let preprocessor = Preprocessor::new(PreprocessConfig::default());
    let mut files: Vec<_> = std::fs::read_dir(fixtures().join("images/bad"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    assert!(files.len() >= 4);
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&path)?;
        let result = preprocessor.preprocess(&bytes);
        let ok = match (name.as_str(), &result) {
            ("empty.jpg", Err(PreprocessError::Empty)) => true,
            ("text.jpg", Err(PreprocessError::UnknownFormat { .. })) => true,
            ("truncated.jpg", Err(PreprocessError::Truncated { format: "JPEG" })) => true,
            (
                "bomb.png",
                Err(PreprocessError::TooLarge {
                    width: 30000,
                    height: 30000,
                    ..
                }),
            ) => true,
            ("empty.jpg" | "text.jpg" | "truncated.jpg" | "bomb.png", _) => false,
            // A file added later: any error will do, as long as it is one.
            (_, r) => r.is_err(),
        };
        assert!(ok, "{name}: {result:?}");
        if let Err(e) = result {
            let message = e.to_string();
            assert!(
                message.ends_with('.') && !message.contains('\n'),
                "{name}: {message}"
            );
        }
    }
    Ok(())
}
