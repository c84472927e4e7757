//! Criterion benchmarks of the CPU engine on a full-size random ViT-B/32 (regenerated from
//! `tests/fixtures/vit-b32-random/spec.json`): ms per image at batch 1 and 8, ms per
//! query (a short one, and one filling all 77 positions), and decode + preprocess of a
//! 12 MP JPEG. Figures and commands live in BENCHMARKS.md.
//!
//! The 8-bit engine (`--precision int8`) gets the same rows, and before Criterion starts the
//! two engines are timed in alternating rounds (`ENGINE_PAIRED_ROUNDS`, default 7; each
//! round calls both, order rotating), so that a shared machine's changing load hits both
//! alike; `ENGINE_PAIRED_ONLY=1` stops after that table.

use std::path::Path;
use std::time::Instant;

use clipseek::clip::Clip;
use clipseek::encode::cpu::QuantOptions;
use clipseek::files::{load_model_dir, write_synthetic_model};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs an engine call whose result the timing does not need; an error stops the bench.
fn ok<T, E: std::fmt::Display>(r: Result<T, E>) {
    if let Err(e) = r {
        panic!("the engine failed: {e}");
    }
}

/// f32 against int8, call for call, printed as a table.
fn paired(engines: [(&str, &Clip); 2], pixels: &[f32], per_image: usize, rounds: usize) {
    let long = "word ".repeat(100);
    type Shape<'a> = (&'a str, usize, Box<dyn Fn(&Clip) + 'a>);
    let shapes: Vec<Shape<'_>> = vec![
        (
            "image batch 1 (ms/image)",
            1,
            Box::new(|c: &Clip| ok(c.embed_pixels(&pixels[..per_image], 1))),
        ),
        (
            "image batch 8 (ms/image)",
            8,
            Box::new(|c: &Clip| ok(c.embed_pixels(pixels, 8))),
        ),
        (
            "query short (ms)",
            1,
            Box::new(|c: &Clip| ok(c.embed_texts(&["kids on their bikes"]))),
        ),
        (
            "query 77 tokens (ms)",
            1,
            Box::new(move |c: &Clip| ok(c.embed_texts(&[long.as_str()]))),
        ),
    ];
    eprintln!(
        "paired rounds ({rounds}, {} threads): shape | {} | {} | median ratio",
        rayon::current_num_threads(),
        engines[0].0,
        engines[1].0
    );
    for (name, per, run) in &shapes {
        for (_, c) in engines {
            run(c);
        }
        let mut ms = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for r in 0..rounds {
            let mut t = [0f64; 2];
            for j in 0..2 {
                let k = (j + r) % 2;
                let start = Instant::now();
                run(engines[k].1);
                t[k] = start.elapsed().as_secs_f64() * 1e3 / *per as f64;
            }
            ms[0].push(t[0]);
            ms[1].push(t[1]);
            ratios.push(t[1] / t[0]);
        }
        let [a, b] = &mut ms;
        eprintln!(
            "  {name} | {:.2} | {:.2} | {:.3}",
            median(a),
            median(b),
            median(&mut ratios)
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("  load average after: {}", load.trim());
}

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
    let int8 = match load_model_dir(dir.path())
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            c.encoder = c
                .encoder
                .quantized(QuantOptions::default())
                .map_err(|e| e.to_string())?;
            Ok(c)
        }) {
        Ok(c) => c,
        Err(e) => panic!("cannot build the 8-bit engine: {e}"),
    };
    let per_image = clip.encoder_image_len();
    let pixels: Vec<f32> = (0..per_image * 8)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let rounds = std::env::var("ENGINE_PAIRED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    paired(
        [("f32", &clip), ("int8", &int8)],
        &pixels,
        per_image,
        rounds,
    );
    if std::env::var_os("ENGINE_PAIRED_ONLY").is_some() {
        return;
    }

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

    let mut g = c.benchmark_group("vit-b32 int8");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("image batch 1", |b| {
        b.iter(|| int8.embed_pixels(&pixels[..per_image], 1))
    });
    g.throughput(Throughput::Elements(8));
    g.bench_function("image batch 8", |b| {
        b.iter(|| int8.embed_pixels(&pixels, 8))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("query short", |b| {
        b.iter(|| int8.embed_texts(&["kids on their bikes"]))
    });
    g.bench_function("query 77 tokens", |b| {
        b.iter(|| int8.embed_texts(&[long.as_str()]))
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
