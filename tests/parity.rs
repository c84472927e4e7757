//! Parity with HF transformers on the tiny fixture model (real vocabulary, both
//! activations): token ids, embeddings from the reference's own pixels and from image
//! bytes, f16 weights, rankings. References come from `scripts/make_fixtures.py`.

mod common;

use clipseek::clip::Clip;
use clipseek::files::load_model_dir;
use common::*;

fn tiny(name: &str) -> Result<Clip, Box<dyn std::error::Error>> {
    Ok(load_model_dir(&fixtures().join(name))?)
}

#[test]
fn token_ids_match_clip_tokenizer_fast() -> TestResult {
    #[derive(serde::Deserialize)]
    struct Tok {
        text: String,
        ids: Vec<u32>,
    }
    let clip = tiny("tiny-clip")?;
    let toks: Vec<Tok> =
        serde_json::from_slice(&std::fs::read(fixtures().join("reference/tokens.json"))?)?;
    assert!(toks.len() >= 200, "only {} strings", toks.len());
    let mut mismatches = Vec::new();
    for t in &toks {
        let ours = clip.tokenizer.encode(&t.text)?;
        if ours.ids != t.ids {
            mismatches.push(t.text.clone());
        }
    }
    eprintln!(
        "tokenizer: {}/{} strings identical",
        toks.len() - mismatches.len(),
        toks.len()
    );
    assert!(mismatches.is_empty(), "ids differ for {mismatches:?}");
    Ok(())
}

#[test]
fn embeddings_match_transformers_f32() -> TestResult {
    let clip = tiny("tiny-clip")?;
    let r = reference("reference/tiny.json")?;
    let mut min_pix = f32::MAX;
    let mut min_bytes = f32::MAX;
    for img in &r.images {
        let pixels = read_f32(&fixtures().join("reference").join(&img.pixels))?;
        let e = clip.embed_pixels(&pixels, 1)?;
        let c = cosine(e.row(0), &img.embedding);
        assert!(c >= 0.9999, "{}: cos {c} from reference pixels", img.file);
        min_pix = min_pix.min(c);
        let bytes = std::fs::read(fixtures().join("images").join(&img.file))?;
        let e = clip.embed_image_bytes(&bytes)?;
        let c = cosine(&e, &img.embedding);
        assert!(c >= 0.999, "{}: cos {c} from image bytes", img.file);
        min_bytes = min_bytes.min(c);
    }
    let mut min_text = f32::MAX;
    for t in &r.texts {
        let ids = clip.tokenizer.encode(&t.text)?;
        assert_eq!(ids.ids, t.ids, "ids of {:?}", t.text);
        assert_eq!(ids.eos_position, t.eos_position, "eos of {:?}", t.text);
        let e = clip.embed_texts(&[t.text.as_str()])?;
        let c = cosine(e.row(0), &t.embedding);
        assert!(c >= 0.9999, "{:?}: cos {c}", t.text);
        min_text = min_text.min(c);
    }
    eprintln!(
        "tiny f32: min cos images from pixels {min_pix:.6}, from bytes {min_bytes:.6}, texts {min_text:.6} ({} images, {} texts)",
        r.images.len(),
        r.texts.len()
    );
    Ok(())
}

#[test]
fn batches_give_the_same_embeddings() -> TestResult {
    let clip = tiny("tiny-clip")?;
    let r = reference("reference/tiny.json")?;
    let mut pixels = Vec::new();
    for img in &r.images {
        pixels.extend(read_f32(&fixtures().join("reference").join(&img.pixels))?);
    }
    let batch = clip.embed_pixels(&pixels, r.images.len())?;
    for (i, img) in r.images.iter().enumerate() {
        let c = cosine(batch.row(i), &img.embedding);
        assert!(c >= 0.9999, "{} in a batch: cos {c}", img.file);
    }
    let texts: Vec<&str> = r.texts.iter().map(|t| t.text.as_str()).collect();
    let batch = clip.embed_texts(&texts)?;
    for (i, t) in r.texts.iter().enumerate() {
        let c = cosine(batch.row(i), &t.embedding);
        assert!(c >= 0.9999, "{:?} in a batch: cos {c}", t.text);
    }
    Ok(())
}

#[test]
fn f16_weights_match() -> TestResult {
    let clip = tiny("tiny-clip-f16")?;
    let r = reference("reference/tiny.json")?;
    let mut min_vs_f32 = f32::MAX;
    for img in &r.images {
        let pixels = read_f32(&fixtures().join("reference").join(&img.pixels))?;
        let e = clip.embed_pixels(&pixels, 1)?;
        let c = cosine(e.row(0), &img.embedding);
        assert!(c >= 0.999, "{}: cos {c} vs the f32 reference", img.file);
        min_vs_f32 = min_vs_f32.min(c);
        if !img.embedding_f16.is_empty() {
            let c = cosine(e.row(0), &img.embedding_f16);
            assert!(
                c >= 0.9999,
                "{}: cos {c} vs transformers on the f16 weights",
                img.file
            );
        }
    }
    for t in &r.texts {
        let e = clip.embed_texts(&[t.text.as_str()])?;
        let c = cosine(e.row(0), &t.embedding);
        assert!(c >= 0.999, "{:?}: cos {c} vs the f32 reference", t.text);
        min_vs_f32 = min_vs_f32.min(c);
    }
    eprintln!("tiny f16 weights: min cos vs f32 reference {min_vs_f32:.6}");
    Ok(())
}

/// Ranks every fixture image for every reference text. From the reference's own pixels
/// the order must match up to ties of 1e-4; from image bytes, JPEG decoding (zune-jpeg vs
/// libjpeg-turbo, up to ~6e-3 mean pixel error) moves scores by a few 1e-3, so items whose
/// reference scores are within 5e-3 may swap.
#[test]
fn rankings_match() -> TestResult {
    let clip = tiny("tiny-clip")?;
    let r = reference("reference/tiny.json")?;
    let mut from_pixels = Vec::new();
    let mut from_bytes = Vec::new();
    for img in &r.images {
        let pixels = read_f32(&fixtures().join("reference").join(&img.pixels))?;
        from_pixels.push((img.file.clone(), clip.embed_pixels(&pixels, 1)?.data));
        let bytes = std::fs::read(fixtures().join("images").join(&img.file))?;
        from_bytes.push((img.file.clone(), clip.embed_image_bytes(&bytes)?));
    }
    for (embeddings, tie) in [(&from_pixels, 1e-4f32), (&from_bytes, 5e-3)] {
        for rk in &r.rankings {
            let q = clip.embed_texts(&[rk.text.as_str()])?;
            let mut scored: Vec<(String, f32)> = embeddings
                .iter()
                .map(|(f, e)| (f.clone(), cosine(q.row(0), e)))
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            let ours: Vec<String> = scored.into_iter().map(|(f, _)| f).collect();
            assert!(
                same_ranking(&ours, &rk.files, &rk.scores, tie),
                "ranking for {:?} (tie {tie}): ours {ours:?}, reference {:?}",
                rk.text,
                rk.files
            );
        }
    }
    Ok(())
}

#[test]
fn one_tower_loads_alone_and_gives_the_same_numbers() -> TestResult {
    use clipseek::clip::ModelJson;
    use clipseek::model::weights::Towers;
    let d = fixtures().join("tiny-clip");
    let (config, preprocessor, tokenizer, weights) = (
        std::fs::read(d.join("config.json"))?,
        std::fs::read(d.join("preprocessor_config.json"))?,
        std::fs::read(d.join("tokenizer.json"))?,
        std::fs::read(d.join("model.safetensors"))?,
    );
    let json = ModelJson {
        config: &config,
        preprocessor: &preprocessor,
        tokenizer: &tokenizer,
    };
    let r = reference("reference/tiny.json")?;
    let vision = Clip::from_bytes_for(&json, &weights, Towers::Vision)?;
    let text = Clip::from_bytes_for(&json, &weights, Towers::Text)?;
    let img = &r.images[0];
    let pixels = read_f32(&fixtures().join("reference").join(&img.pixels))?;
    assert!(cosine(vision.embed_pixels(&pixels, 1)?.row(0), &img.embedding) >= 0.9999);
    assert!(vision.embed_texts(&["x"]).is_err());
    let t = &r.texts[0];
    assert!(cosine(text.embed_texts(&[t.text.as_str()])?.row(0), &t.embedding) >= 0.9999);
    assert!(text.embed_pixels(&pixels, 1).is_err());
    Ok(())
}
