//! Parity with HF transformers on tiny random models of the other checkpoints clipseek
//! offers: `laion-b32-tiny` (exact-erf GELU in both towers, as
//! laion/CLIP-ViT-B-32-laion2B-s34B-b79K) and `b16-tiny` (patch 16 at 224 px, 197 vision
//! positions, as openai/clip-vit-base-patch16). Same bars as the default model's tiny
//! fixture (tests/parity.rs). References from `scripts/make_fixtures.py --only variants`.

mod common;

use clipseek::clip::Clip;
use clipseek::files::load_model_dir;
use clipseek::model::config::Activation;
use common::*;

const VARIANTS: [(&str, Activation, usize); 2] = [
    ("laion-b32-tiny", Activation::Gelu, 32),
    ("b16-tiny", Activation::QuickGelu, 16),
];

#[derive(serde::Deserialize)]
struct FromBytes {
    file: String,
    embedding: Vec<f32>,
}

#[derive(serde::Deserialize)]
struct Extra {
    from_bytes: Vec<FromBytes>,
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Smallest cosine and largest element difference over rows.
struct Figures {
    min_cos: f32,
    max_diff: f32,
}

impl Figures {
    fn new() -> Self {
        Self {
            min_cos: f32::MAX,
            max_diff: 0.0,
        }
    }

    fn add(&mut self, ours: &[f32], theirs: &[f32]) -> f32 {
        let c = cosine(ours, theirs);
        self.min_cos = self.min_cos.min(c);
        self.max_diff = self.max_diff.max(max_abs_diff(ours, theirs));
        c
    }
}

fn load(name: &str) -> Result<(Clip, Reference), Box<dyn std::error::Error>> {
    let clip = load_model_dir(&fixtures().join(name))?;
    let r = reference(&format!("reference/{name}.json"))?;
    assert_eq!(r.model, name);
    Ok((clip, r))
}

#[test]
fn configurations_keep_what_tells_the_models_apart() -> TestResult {
    for (name, act, patch) in VARIANTS {
        let (clip, _) = load(name)?;
        let v = &clip.config.vision_config;
        assert_eq!(
            (v.hidden_act, v.patch_size, v.image_size),
            (act, patch, 224)
        );
        assert_eq!(clip.config.text_config.hidden_act, act);
        assert_eq!(v.num_positions(), (224 / patch) * (224 / patch) + 1);
        assert!(
            clip.model_id.contains(&format!("-p{patch}-224px")),
            "{}",
            clip.model_id
        );
    }
    Ok(())
}

#[test]
fn embeddings_match_transformers() -> TestResult {
    for (name, _, _) in VARIANTS {
        let (clip, r) = load(name)?;
        let mut pix = Figures::new();
        let mut pixels = Vec::new();
        for img in &r.images {
            let p = read_f32(&fixtures().join("reference").join(&img.pixels))?;
            let c = pix.add(clip.embed_pixels(&p, 1)?.row(0), &img.embedding);
            assert!(c >= 0.9999, "{name} {}: cos {c} from pixels", img.file);
            pixels.extend(p);
        }
        // A batch gives the rows one at a time gives.
        let batch = clip.embed_pixels(&pixels, r.images.len())?;
        for (i, img) in r.images.iter().enumerate() {
            let c = cosine(batch.row(i), &img.embedding);
            assert!(c >= 0.9999, "{name} {} in a batch: cos {c}", img.file);
        }
        let extra: Extra = serde_json::from_slice(&std::fs::read(
            fixtures().join(format!("reference/{name}.json")),
        )?)?;
        assert!(extra.from_bytes.len() >= 20);
        let mut bytes = Figures::new();
        for img in &extra.from_bytes {
            let data = std::fs::read(fixtures().join("images").join(&img.file))?;
            let c = bytes.add(&clip.embed_image_bytes(&data)?, &img.embedding);
            assert!(c >= 0.999, "{name} {}: cos {c} from image bytes", img.file);
        }
        let mut text = Figures::new();
        for t in &r.texts {
            let ids = clip.tokenizer.encode(&t.text)?;
            assert_eq!(ids.ids, t.ids, "{name}: ids of {:?}", t.text);
            assert_eq!(ids.eos_position, t.eos_position);
            let c = text.add(clip.embed_texts(&[t.text.as_str()])?.row(0), &t.embedding);
            assert!(c >= 0.9999, "{name} {:?}: cos {c}", t.text);
        }
        eprintln!(
            "{name} f32: images from pixels min cos {:.7} max |diff| {:.2e}; from bytes ({}) min cos {:.6} max |diff| {:.2e}; texts ({}) min cos {:.7} max |diff| {:.2e}",
            pix.min_cos,
            pix.max_diff,
            extra.from_bytes.len(),
            bytes.min_cos,
            bytes.max_diff,
            r.texts.len(),
            text.min_cos,
            text.max_diff
        );
    }
    Ok(())
}

#[test]
fn rankings_match_transformers() -> TestResult {
    for (name, _, _) in VARIANTS {
        let (clip, r) = load(name)?;
        let mut embedded = Vec::new();
        for img in &r.images {
            let p = read_f32(&fixtures().join("reference").join(&img.pixels))?;
            embedded.push((img.file.clone(), clip.embed_pixels(&p, 1)?.data));
        }
        for rk in &r.rankings {
            let q = clip.embed_texts(&[rk.text.as_str()])?;
            let mut scored: Vec<(String, f32)> = embedded
                .iter()
                .map(|(f, e)| (f.clone(), cosine(q.row(0), e)))
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            let ours: Vec<String> = scored.into_iter().map(|(f, _)| f).collect();
            assert!(
                same_ranking(&ours, &rk.files, &rk.scores, 1e-4),
                "{name} ranking for {:?}: ours {ours:?}, reference {:?}",
                rk.text,
                rk.files
            );
        }
    }
    Ok(())
}
