//! Criterion benchmarks of the CPU engine on a full-size random ViT-B/32 (regenerated from
//! `tests/fixtures/vit-b32-random/spec.json`): ms per image at batch 1 and 8, ms per
//! query (a short one, and one filling all 77 positions), and decode + preprocess of a
//! 12 MP JPEG. Figures and commands live in BENCHMARKS.md.

use std::path::Path;

use clipseek::files::{load_model_dir, write_synthetic_model};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn engine(c: &mut Criterion) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("no temp dir: {e}"),
    };
    if let Err(e) = write_synthetic_model(
        &fixtures().join("vit-b32-random"),
        &fixtures().join("clip-tokenizer/tokenizer.json"),
        dir.path(),
    ) {
        panic!("cannot build the synthetic model: {e}");
    }
    let clip = match load_model_dir(dir.path()) {
        Ok(c) => c,
        Err(e) => panic!("cannot load the synthetic model: {e}"),
    };
    let per_image = clip.encoder_image_len();
    let pixels: Vec<f32> = (0..per_image * 8)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();

    let mut g = c.benchmark_group("vit-b32");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("image batch 1", |b| {
        b.iter(|| clip.embed_pixels(&pixels[..per_image], 1))
    });
    g.throughput(Throughput::Elements(8));
    g.bench_function("image batch 8", |b| {
        b.iter(|| clip.embed_pixels(&pixels, 8))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("query short", |b| {
        b.iter(|| clip.embed_texts(&["kids on their bikes"]))
    });
    let long = "word ".repeat(100);
    g.bench_function("query 77 tokens", |b| {
        b.iter(|| clip.embed_texts(&[long.as_str()]))
    });
    g.finish();

    let jpeg = match clipseek::model::synthetic::photo_like_jpeg(4000, 3000) {
        Ok(j) => j,
        Err(e) => panic!("encoding the benchmark JPEG failed: {e}"),
    };
    let mut g = c.benchmark_group("preprocess");
    g.sample_size(10);
    g.bench_function("decode + preprocess 12 MP JPEG", |b| {
        b.iter(|| clip.preprocessor.preprocess(&jpeg))
    });
    let full_scale = clip.preprocessor.clone().with_reduced_decode(false);
    g.bench_function("decode + preprocess 12 MP JPEG, full-scale decode", |b| {
        b.iter(|| full_scale.preprocess(&jpeg))
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
