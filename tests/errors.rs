//! Bad inputs give a specific error, never a panic: broken checkpoints, bad images,
//! model folders that are not CLIP.

mod common;

use clipseek::clip::{Clip, ClipError, ModelJson};
use clipseek::files::{load_model_dir, ModelDirError};
use clipseek::model::preprocess::PreprocessError;
use clipseek::model::weights::{write_f32_safetensors, WeightsError};
use common::*;

struct Tiny {
    config: Vec<u8>,
    preprocessor: Vec<u8>,
    tokenizer: Vec<u8>,
    weights: Vec<u8>,
}

fn tiny() -> Result<Tiny, Box<dyn std::error::Error>> {
    let d = fixtures().join("tiny-clip");
    Ok(Tiny {
        config: std::fs::read(d.join("config.json"))?,
        preprocessor: std::fs::read(d.join("preprocessor_config.json"))?,
        tokenizer: std::fs::read(d.join("tokenizer.json"))?,
        weights: std::fs::read(d.join("model.safetensors"))?,
    })
}

fn build(t: &Tiny, weights: &[u8]) -> Result<Clip, ClipError> {
    Clip::from_bytes(
        &ModelJson {
            config: &t.config,
            preprocessor: &t.preprocessor,
            tokenizer: &t.tokenizer,
        },
        weights,
    )
}

/// The tiny model's tensors, with `edit` applied, as a new safetensors buffer.
fn rewrite(
    t: &Tiny,
    edit: impl Fn(&str, Vec<usize>, Vec<f32>) -> Option<(Vec<usize>, Vec<f32>)>,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let header =
        clipseek::model::weights::SafetensorsHeader::parse(&t.weights, t.weights.len() as u64)?;
    let mut kept = Vec::new();
    for (name, info) in &header.tensors {
        let start = info.offset_bytes as usize;
        let raw = &t.weights[start..start + info.size_bytes as usize];
        let data: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some((shape, data)) = edit(name, info.shape.clone(), data) {
            kept.push((name.clone(), shape, data));
        }
    }
    let refs: Vec<(String, Vec<usize>, &[f32])> = kept
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), d.as_slice()))
        .collect();
    let mut out = Vec::new();
    write_f32_safetensors(&refs, &mut out)?;
    Ok(out)
}

#[test]
fn rewritten_model_still_loads() -> TestResult {
    let t = tiny()?;
    let same = rewrite(&t, |_, s, d| Some((s, d)))?;
    build(&t, &same)?;
    Ok(())
}

#[test]
fn truncated_safetensors_is_named() -> TestResult {
    let t = tiny()?;
    for cut in [0, 7, 100, t.weights.len() / 2, t.weights.len() - 1] {
        let r = build(&t, &t.weights[..cut]);
        assert!(
            matches!(
                r,
                Err(ClipError::Weights(
                    WeightsError::Truncated { .. }
                        | WeightsError::TooShort { .. }
                        | WeightsError::BadHeaderLength { .. }
                ))
            ),
            "cut at {cut}: {:?}",
            r.err()
        );
    }
    Ok(())
}

#[test]
fn missing_class_embedding_is_named() -> TestResult {
    let t = tiny()?;
    let w = rewrite(&t, |n, s, d| {
        (n != "vision_model.embeddings.class_embedding").then_some((s, d))
    })?;
    match build(&t, &w) {
        Err(ClipError::Weights(WeightsError::Missing { tensor })) => {
            assert_eq!(tensor, "vision_model.embeddings.class_embedding")
        }
        other => panic!("expected a missing tensor, got {:?}", other.err()),
    }
    Ok(())
}

#[test]
fn wrong_shape_is_named() -> TestResult {
    let t = tiny()?;
    let w = rewrite(&t, |n, s, mut d| {
        if n == "text_model.encoder.layers.1.mlp.fc1.bias" {
            d.pop();
            Some((vec![s[0] - 1], d))
        } else {
            Some((s, d))
        }
    })?;
    match build(&t, &w) {
        Err(ClipError::Weights(WeightsError::WrongShape { tensor, .. })) => {
            assert_eq!(tensor, "text_model.encoder.layers.1.mlp.fc1.bias")
        }
        other => panic!("expected a wrong shape, got {:?}", other.err()),
    }
    Ok(())
}

#[test]
fn garbage_header_is_an_error() -> TestResult {
    let t = tiny()?;
    let mut w = t.weights.clone();
    w[8] = b'!';
    assert!(matches!(
        build(&t, &w),
        Err(ClipError::Weights(WeightsError::BadHeader { .. }))
    ));
    Ok(())
}

#[test]
fn bad_images_are_specific_errors() -> TestResult {
    let t = tiny()?;
    let clip = build(&t, &t.weights)?;
    let bad = fixtures().join("images/bad");
    type Expect = fn(&PreprocessError) -> bool;
    let cases: [(&str, Expect); 4] = [
        ("empty.jpg", |e| matches!(e, PreprocessError::Empty)),
        ("text.jpg", |e| {
            matches!(e, PreprocessError::UnknownFormat { .. })
        }),
        ("truncated.jpg", |e| {
            matches!(e, PreprocessError::Truncated { .. })
        }),
        ("bomb.png", |e| {
            matches!(e, PreprocessError::TooLarge { .. })
        }),
    ];
    for (file, is_expected) in cases {
        let bytes = std::fs::read(bad.join(file))?;
        match clip.embed_image_bytes(&bytes) {
            Err(ClipError::Preprocess(e)) => assert!(is_expected(&e), "{file}: {e:?}"),
            other => panic!("{file}: expected a preprocessing error, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn model_folder_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    assert!(matches!(
        load_model_dir(dir.path()),
        Err(ModelDirError::Io { .. })
    ));
    let t = tiny()?;
    std::fs::write(dir.path().join("config.json"), &t.config)?;
    std::fs::write(dir.path().join("preprocessor_config.json"), &t.preprocessor)?;
    std::fs::write(dir.path().join("tokenizer.json"), &t.tokenizer)?;
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not a zip")?;
    assert!(matches!(
        load_model_dir(dir.path()),
        Err(ModelDirError::Checkpoint { .. })
    ));
    std::fs::write(dir.path().join("model.safetensors"), &t.weights[..1000])?;
    let e = load_model_dir(dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("truncated") || e.contains("header"), "{e}");
    Ok(())
}
