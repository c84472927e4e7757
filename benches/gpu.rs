//! The GPU engine against the CPU engine on a full-size random ViT-B/32 (regenerated from
//! `tests/fixtures/vit-b32-random/spec.json`), on whatever adapter wgpu picks (lavapipe on
//! the CI machines): images per second at batch 1 and 8 for both engines and a text query,
//! the GPU engine in its default precision (f16 where the device has shader-f16;
//! `CLIPSEEK_BENCH_PRECISION=f32|f16` overrides), then summary lines with the GPU / CPU
//! ratio at batch 8 for every precision the device offers. `scripts/bench_gpu.sh` is the
//! fuller run for a real GPU (batches up to 64, matmul fraction of peak). Figures live in
//! BENCHMARKS.md.

use std::path::Path;
use std::time::Instant;

use clipseek::encode::cpu::CpuEncoder;
use clipseek::encode::gpu::{request_device, GpuEncoder, GpuOptions, Precision};
use clipseek::encode::Encoder;
use clipseek::model::config::ClipConfig;
use clipseek::model::tokenizer::TokenIds;
use clipseek::model::weights::ClipWeights;
use criterion::{Criterion, Throughput};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn vit_b32() -> Result<(ClipConfig, ClipWeights), Box<dyn std::error::Error>> {
    clipseek::files::synthetic_weights(&fixtures().join("vit-b32-random"))
        .map_err(|e| -> Box<dyn std::error::Error> { e })
}

/// Images per second over `iters` calls after one warm-up call.
fn images_per_s(e: &dyn Encoder, pixels: &[f32], batch: usize, iters: usize) -> f64 {
    if let Err(err) = e.encode_images(pixels, batch) {
        panic!("encoding failed: {err}");
    }
    let started = Instant::now();
    for _ in 0..iters {
        if let Err(err) = e.encode_images(pixels, batch) {
            panic!("encoding failed: {err}");
        }
    }
    (batch * iters) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let (config, weights) = match vit_b32() {
        Ok(m) => m,
        Err(e) => panic!("cannot build the synthetic model: {e}"),
    };
    let (adapter, device, queue) =
        match pollster::block_on(request_device(wgpu::PowerPreference::HighPerformance)) {
            Ok(d) => d,
            Err(e) => {
                println!("skipped: no adapter ({e})");
                return;
            }
        };
    let info = adapter.get_info();
    let adapter_name = format!("{:?} {:?} {}", info.backend, info.device_type, info.name);
    let cpu = match CpuEncoder::new(&config, weights.clone()) {
        Ok(e) => e,
        Err(e) => panic!("CPU engine: {e}"),
    };
    let mut gpus = Vec::new();
    for precision in [Precision::F32, Precision::F16] {
        if precision == Precision::F16 && !device.features().contains(wgpu::Features::SHADER_F16) {
            continue;
        }
        let options = GpuOptions {
            precision: Some(precision),
            ..GpuOptions::default()
        };
        match GpuEncoder::with_options(&device, &queue, &config, weights.clone(), &options) {
            Ok(g) => gpus.push((precision, g)),
            Err(e) => panic!("GPU engine ({precision:?}): {e}"),
        }
    }
    drop(weights);
    let per_image = 3 * 224 * 224;
    let pixels: Vec<f32> = (0..per_image * 8)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut ids = vec![49406u32, 1611, 525, 911, 15156, 49407];
    ids.resize(77, 49407);
    let query = [TokenIds {
        ids,
        eos_position: 5,
    }];

    let chosen = match std::env::var("CLIPSEEK_BENCH_PRECISION").as_deref() {
        Ok("f32") => Some(Precision::F32),
        Ok("f16") => Some(Precision::F16),
        _ => None,
    };
    let default_precision = if device.features().contains(wgpu::Features::SHADER_F16) {
        Precision::F16
    } else {
        Precision::F32
    };
    let measured = chosen.unwrap_or(default_precision);
    let mut g = c.benchmark_group("vit-b32 engines");
    g.sample_size(10);
    let mut engines: Vec<(String, &dyn Encoder)> = vec![("cpu".into(), &cpu)];
    for (p, gpu) in gpus.iter().filter(|(p, _)| *p == measured) {
        engines.push((format!("gpu {p:?}"), gpu));
    }
    for (name, e) in &engines {
        for batch in [1usize, 8] {
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(format!("{name} images batch {batch}"), |b| {
                b.iter(|| e.encode_images(&pixels[..batch * per_image], batch))
            });
        }
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name} query"), |b| {
            b.iter(|| e.encode_texts(&query))
        });
    }
    g.finish();
    c.final_summary();

    // The headline: images/s of each GPU engine over the CPU engine at batch 8.
    let cpu_rate = images_per_s(&cpu, &pixels, 8, 3);
    println!("adapter: {adapter_name}");
    println!("cpu engine: {cpu_rate:.2} images/s (batch 8)");
    for (p, gpu) in &gpus {
        let rate = images_per_s(gpu, &pixels, 8, 1);
        println!(
            "gpu engine {p:?}: {rate:.2} images/s (batch 8), {:.2}x the CPU engine",
            rate / cpu_rate
        );
    }
}
