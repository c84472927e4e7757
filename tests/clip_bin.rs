//! A CLIP folder whose revision publishes only PyTorch's `pytorch_model.bin` loads through
//! `model::torch_bin` (`scripts/make_fixtures.py --only clip-bin` writes tiny-clip-f16's
//! weights with `torch.save`): the same embeddings, bit for bit, as from
//! `model.safetensors`, and a damaged checkpoint refused with a sentence.

mod common;

use std::path::Path;

use clipseek::files::{load_model_dir, ModelDirError};
use common::*;

/// tiny-clip-f16's JSON files beside `weights` (a file name and its bytes) in a fresh folder.
fn folder_with(weights: &str, bytes: &[u8]) -> Result<tempfile::TempDir, std::io::Error> {
    let dir = tempfile::tempdir()?;
    let src = fixtures().join("tiny-clip-f16");
    for f in ["config.json", "preprocessor_config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f))?;
    }
    std::fs::write(dir.path().join(weights), bytes)?;
    Ok(dir)
}

fn bin() -> Result<Vec<u8>, std::io::Error> {
    std::fs::read(fixtures().join("tiny-clip-f16-bin/pytorch_model.bin"))
}

#[test]
fn a_bin_only_folder_embeds_as_its_safetensors_does() -> TestResult {
    let st = load_model_dir(&fixtures().join("tiny-clip-f16"))?;
    let dir = folder_with("pytorch_model.bin", &bin()?)?;
    let pt = load_model_dir(dir.path())?;
    assert_eq!(st.embedding_dim(), pt.embedding_dim());
    let texts = ["a red square", "две кошки", "", "a photo of a dog at night"];
    let (a, b) = (st.embed_texts(&texts)?, pt.embed_texts(&texts)?);
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(a.row(i), b.row(i), "text {text:?}");
    }
    let images = fixtures().join("images");
    let mut compared = 0;
    for name in ["exif-1.jpg", "exact-64.png", "cmyk.jpg"] {
        let bytes = std::fs::read(images.join(name))?;
        assert_eq!(
            st.embed_image_bytes(&bytes)?,
            pt.embed_image_bytes(&bytes)?,
            "{name}"
        );
        compared += 1;
    }
    assert_eq!(compared, 3);
    // Different files, different ids (an index made with one is not silently the other's).
    assert_ne!(st.model_id, pt.model_id);
    assert_eq!(pt.model_id, load_model_dir(dir.path())?.model_id);
    Ok(())
}

fn load_error(dir: &Path) -> String {
    load_model_dir(dir)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn a_damaged_or_foreign_checkpoint_is_refused_with_a_sentence() -> TestResult {
    let good = bin()?;
    // One flipped bit in the middle of the file, inside the token embedding (49,408 x 32
    // halves, 3.2 of its 3.3 MB): that member's CRC-32 says so.
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let dir = folder_with("pytorch_model.bin", &flipped)?;
    let e = load_error(dir.path());
    assert!(
        e.contains("CRC-32") && e.contains("pytorch_model.bin"),
        "{e}"
    );
    // Cut short, or not a checkpoint at all.
    let dir = folder_with("pytorch_model.bin", &good[..good.len() / 2])?;
    assert!(matches!(
        load_model_dir(dir.path()),
        Err(ModelDirError::Checkpoint { .. })
    ));
    let dir = folder_with("pytorch_model.bin", b"not a checkpoint")?;
    let e = load_error(dir.path());
    assert!(e.contains("not a zip archive"), "{e}");
    // When both are there, model.safetensors is the one read.
    let st = std::fs::read(fixtures().join("tiny-clip-f16/model.safetensors"))?;
    std::fs::write(dir.path().join("model.safetensors"), st)?;
    load_model_dir(dir.path())?;
    Ok(())
}
