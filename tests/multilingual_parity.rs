//! The multilingual query encoder against sentence-transformers on the tiny random
//! DistilBERT fixture (`scripts/make_fixtures.py --only multilingual`): token ids equal to
//! the fast tokenizer's on strings in many scripts, embeddings as `SentenceTransformer.encode`
//! computes them, from `model.safetensors` and from PyTorch's `pytorch_model.bin` alike, and
//! hostile checkpoints refused with a sentence.

mod common;

use clipseek::files::load_query_model_dir;
use common::*;

#[derive(serde::Deserialize)]
struct Text {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    max_seq_length: usize,
    texts: Vec<Text>,
}

fn reference() -> Result<Reference, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(fixtures().join("reference/multilingual-tiny.json"))?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[test]
fn token_ids_match_the_fast_tokenizer_in_every_script() -> TestResult {
    let model = load_query_model_dir(&fixtures().join("multilingual-tiny"))?;
    let r = reference()?;
    assert_eq!(model.spec.max_seq_length, r.max_seq_length);
    let mut mismatches = Vec::new();
    for t in &r.texts {
        if model.tokenizer.encode(&t.text)? != t.ids {
            mismatches.push(t.text.clone());
        }
    }
    assert!(mismatches.is_empty(), "ids differ for {mismatches:?}");
    // The fixture covers what it claims: unknown pieces, truncation, many scripts.
    assert!(r.texts.iter().any(|t| t.ids.contains(&100)), "no [UNK]");
    assert!(r.texts.iter().any(|t| t.ids.len() == r.max_seq_length));
    for script in ['é', 'К', 'γ', '東', 'ق', 'ש', 'न', '🐶'] {
        assert!(r.texts.iter().any(|t| t.text.contains(script)), "{script}");
    }
    Ok(())
}

#[test]
fn embeddings_match_sentence_transformers_from_safetensors_and_pytorch_bin() -> TestResult {
    let r = reference()?;
    let texts: Vec<&str> = r.texts.iter().map(|t| t.text.as_str()).collect();
    let mut batches = Vec::new();
    for dir in ["multilingual-tiny", "multilingual-tiny-bin"] {
        let model = load_query_model_dir(&fixtures().join(dir))?;
        assert_eq!(model.embedding_dim(), r.texts[0].embedding.len());
        let (mut min_cos, mut max_diff) = (f32::MAX, 0f32);
        for t in &r.texts {
            let e = model.embed_texts(&[t.text.as_str()])?;
            let c = cosine(e.row(0), &t.embedding);
            assert!(c >= 0.9999, "{dir} {:?}: cos {c}", t.text);
            min_cos = min_cos.min(c);
            let want = normalised(&t.embedding);
            let d = e.row(0).iter().zip(&want).map(|(a, b)| (a - b).abs());
            max_diff = max_diff.max(d.fold(0.0, f32::max));
        }
        eprintln!(
            "{dir}: {} texts, min cos {min_cos:.7}, max |diff| (normalised) {max_diff:.2e}",
            r.texts.len()
        );
        // One padded batch gives what one text at a time gives.
        let batch = model.embed_texts(&texts)?;
        for (i, t) in r.texts.iter().enumerate() {
            let c = cosine(batch.row(i), &t.embedding);
            assert!(c >= 0.9999, "{dir} {:?} in a batch: cos {c}", t.text);
        }
        batches.push(batch.data);
    }
    assert_eq!(
        batches[0], batches[1],
        "safetensors and pytorch_model.bin differ"
    );
    Ok(())
}

/// Copies the .bin fixture into a temporary folder with `edit` applied to one file.
fn edited_copy(
    file: &str,
    edit: impl Fn(&mut Vec<u8>),
) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let src = fixtures().join("multilingual-tiny-bin");
    let tmp = tempfile::tempdir()?;
    for entry in walk(&src)? {
        let rel = entry.strip_prefix(&src)?;
        let dst = tmp.path().join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = std::fs::read(&entry)?;
        if rel == std::path::Path::new(file) {
            edit(&mut bytes);
        }
        std::fs::write(dst, bytes)?;
    }
    Ok(tmp)
}

fn walk(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

fn replace(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "same length keeps the zip's offsets");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    bytes[at..at + from.len()].copy_from_slice(to);
}

fn load_error(dir: &std::path::Path) -> String {
    match load_query_model_dir(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_checkpoints_are_refused_with_a_sentence() -> TestResult {
    // A global no state dict uses, written over torch's own (CRC fixed up: the zip is
    // otherwise intact, so the pickle reader is what refuses it).
    let tmp = edited_copy("2_Dense/pytorch_model.bin", |b| {
        replace(
            b,
            b"collections\nOrderedDict",
            b"subprocess\nPopen\x00\x00\x00\x00\x00\x00\x00",
        );
        fix_crcs(b);
    })?;
    let e = load_error(tmp.path());
    assert!(
        e.contains("subprocess.Popen") && e.contains("nothing in it was run"),
        "{e}"
    );

    let tmp = edited_copy("pytorch_model.bin", |b| b.truncate(b.len() * 2 / 3))?;
    let e = load_error(tmp.path());
    assert!(
        e.contains("pytorch_model.bin") && e.contains("damaged"),
        "{e}"
    );

    let tmp = edited_copy("pytorch_model.bin", |b| *b = b"\x80\x02}q\x00.".to_vec())?;
    let e = load_error(tmp.path());
    assert!(e.contains("PyTorch 1.6"), "{e}");

    let tmp = edited_copy("1_Pooling/config.json", |b| {
        replace(
            b,
            b"\"pooling_mode_cls_token\": false",
            b"\"pooling_mode_cls_token\": true ",
        );
    })?;
    let e = load_error(tmp.path());
    assert!(e.contains("mean pooling"), "{e}");

    let tmp = edited_copy("modules.json", |b| {
        replace(b, b"models.Dense", b"models.Other");
    })?;
    let e = load_error(tmp.path());
    assert!(e.contains("Other"), "{e}");

    let tmp = edited_copy("modules.json", |b| {
        replace(b, b"\"path\": \"2_Dense\"", b"\"path\": \"../Dens\"");
    })?;
    let e = load_error(tmp.path());
    assert!(e.contains("inside the model folder"), "{e}");
    Ok(())
}

/// Rewrites the CRC-32 of every stored member (after an edit of its bytes).
fn fix_crcs(zip: &mut [u8]) {
    for (central, start, len) in zip_members(zip) {
        let crc = clipseek::zip::crc32(&zip[start..start + len]).to_le_bytes();
        zip[central + 16..central + 20].copy_from_slice(&crc);
        let local = u32::from_le_bytes([
            zip[central + 42],
            zip[central + 43],
            zip[central + 44],
            zip[central + 45],
        ]) as usize;
        zip[local + 14..local + 18].copy_from_slice(&crc);
    }
}

/// (central header offset, data offset, length) of each member, found by signature.
fn zip_members(zip: &[u8]) -> Vec<(usize, usize, usize)> {
    let sig = clipseek::zip::CENTRAL_SIG.to_le_bytes();
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([zip[at], zip[at + 1]]));
    let u32_at =
        |at: usize| u32::from_le_bytes([zip[at], zip[at + 1], zip[at + 2], zip[at + 3]]) as usize;
    (0..zip.len() - 4)
        .filter(|&i| zip[i..i + 4] == sig)
        .map(|c| {
            let local = u32_at(c + 42);
            let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
            (c, start, u32_at(c + 20))
        })
        .collect()
}
