//! Writes the full-size synthetic ViT-B/32 (random weights regenerated from
//! `tests/fixtures/vit-b32-random/spec.json`, the real CLIP tokenizer) into a folder in the
//! Hugging Face layout, for the WebAssembly benchmark (`scripts/bench_wasm.sh`) and anyone
//! who wants a 605 MB model to try the CLI on. Next to the model it writes
//!
//! - `bench-12mp.jpg`: a photo-like 4000x3000 JPEG (quality 90), the same picture
//!   `benches/engine.rs` decodes, so native and wasm preprocess identical bytes;
//! - `native-fingerprint.json`: the native engine's first embedding values for the
//!   benchmark's deterministic inputs, so the wasm harness can check that it loaded the
//!   same model and computes the same numbers.
//!
//! Native only: the body is compiled out on wasm32 (the generator needs a file system).
//!
//! Usage: `cargo run --release --example make_synthetic_model -- OUT_DIR`

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    native::run()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use clipseek::files::{load_model_dir, write_synthetic_model};

    /// The benchmark's deterministic pixels (the same formula as `benches/engine.rs` and
    /// `examples/wasm_bench.rs`): `count` CHW images back to back.
    fn bench_pixels(per_image: usize, count: usize) -> Vec<f32> {
        // u64: on wasm32 `usize` is 32 bits and `i * 7919` would wrap past image 3.
        (0..(per_image * count) as u64)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The queries the benchmarks time: a short one, and one that fills all 77 positions.
    const SHORT_QUERY: &str = "kids on their bikes";

    fn long_query() -> String {
        "word ".repeat(100)
    }

    fn first(values: &[f32], n: usize) -> Vec<f32> {
        values.iter().take(n).copied().collect()
    }

    pub fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(out_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
            return Err("usage: make_synthetic_model OUT_DIR".into());
        };
        std::fs::create_dir_all(&out_dir)?;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

        let t = Instant::now();
        write_synthetic_model(
            &fixtures.join("vit-b32-random"),
            &fixtures.join("clip-tokenizer/tokenizer.json"),
            &out_dir,
        )?;
        eprintln!(
            "wrote {} in {:.1} s",
            out_dir.join("model.safetensors").display(),
            t.elapsed().as_secs_f64()
        );

        let jpeg = clipseek::model::synthetic::photo_like_jpeg(4000, 3000)?;
        std::fs::write(out_dir.join("bench-12mp.jpg"), &jpeg)?;

        let clip = load_model_dir(&out_dir)?;
        let per_image = clip.encoder_image_len();
        let pixels = bench_pixels(per_image, 8);
        let b1 = clip.embed_pixels(&pixels[..per_image], 1)?;
        let b8 = clip.embed_pixels(&pixels, 8)?;
        let long = long_query();
        let short = clip.embed_texts(&[SHORT_QUERY])?;
        let long_emb = clip.embed_texts(&[long.as_str()])?;
        let preprocessed = clip.preprocessor.preprocess(&jpeg)?;
        let pixel_sum: f64 = preprocessed.iter().map(|v| f64::from(*v)).sum();
        let short_tokens = clip.tokenizer.encode(SHORT_QUERY)?.eos_position + 1;
        let long_tokens = clip.tokenizer.encode(&long)?.eos_position + 1;

        let fingerprint = serde_json::json!({
            "model_id": clip.model_id,
            "pixels": "((i * 7919) % 1000) / 500 - 1 (u64), i over count*3*224*224",
            "image_b1_first8": first(&b1.data, 8),
            "image_b8_row7_first8": first(b8.row(7), 8),
            "text_short": {"query": SHORT_QUERY, "tokens": short_tokens, "first8": first(&short.data, 8)},
            "text_long": {"query": "\"word \" x 100", "tokens": long_tokens, "first8": first(&long_emb.data, 8)},
            "jpeg_12mp": {"file": "bench-12mp.jpg", "size_bytes": jpeg.len(), "pixel_values": preprocessed.len(), "pixel_sum": pixel_sum},
        });
        let path = out_dir.join("native-fingerprint.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&fingerprint)?)?;
        eprintln!(
            "wrote {} and {}",
            path.display(),
            out_dir.join("bench-12mp.jpg").display()
        );
        Ok(())
    }
}
