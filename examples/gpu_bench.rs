//! The GPU benchmark for a machine with a real GPU (run by `scripts/bench_gpu.sh`): on the
//! best adapter (a discrete or integrated GPU before a CPU one), for each precision the
//! device offers, ViT-B/32 images per second at batch 1, 8, 32 and 64, text queries per
//! second, and the FLOP/s of the matmul kernel alone with the fraction of the peak given on
//! the command line.
//!
//! Usage: gpu_bench [--peak-f32-tflops X] [--peak-f16-tflops Y] [--batches 1,8,32,64]
//!                  [--seconds S] [--matmul M,N,K]
//!
//! Native only (it blocks on the device): on wasm32 `main` does nothing, and the GPU engine
//! is measured in a browser instead.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::Path;
    use std::time::Instant;

    use clipseek::encode::gpu::{open_device, time_matmul, GpuEncoder, GpuOptions, Precision};
    use clipseek::encode::Encoder;
    use clipseek::model::config::ClipConfig;
    use clipseek::model::tokenizer::TokenIds;
    use clipseek::model::weights::ClipWeights;

    type Res<T> = Result<T, Box<dyn std::error::Error>>;

    struct Args {
        peak_f32_tflops: Option<f64>,
        peak_f16_tflops: Option<f64>,
        batches: Vec<usize>,
        seconds: f64,
        matmul: (usize, usize, usize),
    }

    fn parse_args() -> Res<Args> {
        let mut a = Args {
            peak_f32_tflops: None,
            peak_f16_tflops: None,
            batches: vec![1, 8, 32, 64],
            seconds: 3.0,
            matmul: (4096, 4096, 4096),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--peak-f32-tflops" => a.peak_f32_tflops = Some(value()?.parse()?),
                "--peak-f16-tflops" => a.peak_f16_tflops = Some(value()?.parse()?),
                "--batches" => {
                    a.batches = value()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "--seconds" => a.seconds = value()?.parse()?,
                "--matmul" => {
                    let v: Vec<usize> = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                    let [m, n, k] = v[..] else {
                        return Err("--matmul takes M,N,K".into());
                    };
                    a.matmul = (m, n, k);
                }
                "--bench" => {} // passed by `cargo bench`-style runners
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(a)
    }

    fn vit_b32() -> Res<(ClipConfig, ClipWeights)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit-b32-random");
        clipseek::files::synthetic_weights(&dir).map_err(|e| -> Box<dyn std::error::Error> { e })
    }

    /// Calls `f` until `seconds` have passed (at least twice, after one warm-up call); returns
    /// calls per second.
    fn rate(seconds: f64, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
        f()?;
        let started = Instant::now();
        let mut calls = 0u32;
        while calls < 2 || started.elapsed().as_secs_f64() < seconds {
            f()?;
            calls += 1;
        }
        Ok(f64::from(calls) / started.elapsed().as_secs_f64())
    }

    pub fn main() -> Res<()> {
        let args = parse_args()?;
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        for a in &adapters {
            let i = a.get_info();
            println!(
                "found adapter: {:?} {:?} {} ({})",
                i.backend, i.device_type, i.name, i.driver_info
            );
        }
        let adapter = adapters.into_iter().next().ok_or("no adapter")?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(open_device(&adapter))?;
        println!(
            "using: {:?} {:?} {} ({})",
            info.backend, info.device_type, info.name, info.driver_info
        );
        let (config, weights) = vit_b32()?;
        let per_image = 3 * config.vision_config.image_size * config.vision_config.image_size;
        let max_batch = args.batches.iter().copied().max().unwrap_or(1);
        let pixels: Vec<f32> = (0..per_image * max_batch)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut ids = vec![49406u32, 1611, 525, 911, 15156, 49407];
        ids.resize(config.text_config.max_position_embeddings, 49407);
        let query = [TokenIds {
            ids,
            eos_position: 5,
        }];
        let mut precisions = vec![Precision::F32];
        if device.features().contains(wgpu::Features::SHADER_F16) {
            precisions.push(Precision::F16);
        }
        let mut json = Vec::new();
        for precision in precisions {
            if !args.batches.is_empty() {
                let options = GpuOptions {
                    precision: Some(precision),
                    max_batch,
                };
                let gpu =
                    GpuEncoder::with_options(&device, &queue, &config, weights.clone(), &options)?;
                println!("{precision:?}: kernels {:?}", gpu.kernel_config());
                for &batch in &args.batches {
                    let calls = rate(args.seconds, || {
                        gpu.encode_images(&pixels[..batch * per_image], batch)?;
                        Ok(())
                    })?;
                    let ips = calls * batch as f64;
                    println!(
                        "{precision:?} images batch {batch:>3}: {ips:9.1} images/s ({:.2} ms per image)",
                        1e3 / ips
                    );
                    json.push(format!(
                        "{{\"precision\":\"{}\",\"what\":\"images\",\"batch\":{batch},\"per_s\":{ips:.2}}}",
                        precision.name()
                    ));
                }
                let qps = rate(args.seconds, || {
                    gpu.encode_texts(&query)?;
                    Ok(())
                })?;
                println!("{precision:?} text query batch 1: {qps:9.1} queries/s");
                json.push(format!(
                    "{{\"precision\":\"{}\",\"what\":\"texts\",\"batch\":1,\"per_s\":{qps:.2}}}",
                    precision.name()
                ));
            }
            let (m, n, k) = args.matmul;
            // Enough repetitions for about a quarter second of work at 20 TFLOP/s.
            let flops = 2.0 * (m * n * k) as f64;
            let reps = ((5e12 / flops) as usize).clamp(3, 200);
            let seconds = time_matmul(&device, &queue, precision, m, n, k, reps)?;
            let tflops = flops / seconds / 1e12;
            let peak = match precision {
                Precision::F32 => args.peak_f32_tflops,
                Precision::F16 => args.peak_f16_tflops,
            };
            let fraction = peak.map(|p| tflops / p);
            let rate = format!("{tflops:.3} TFLOP/s ({:.1} GFLOP/s)", tflops * 1e3);
            match fraction {
                Some(f) => println!(
                    "{precision:?} matmul {m}x{n}x{k}: {rate} = {:.1}% of the {:.1} TFLOP/s peak",
                    100.0 * f,
                    peak.unwrap_or(0.0)
                ),
                None => println!(
                    "{precision:?} matmul {m}x{n}x{k}: {rate} (pass --peak-{}-tflops for the fraction)",
                    precision.name()
                ),
            }
            json.push(format!(
                "{{\"precision\":\"{}\",\"what\":\"matmul\",\"m\":{m},\"n\":{n},\"k\":{k},\"tflops\":{tflops:.3},\"fraction_of_peak\":{}}}",
                precision.name(),
                fraction.map_or("null".to_owned(), |f| format!("{f:.4}"))
            ));
        }
        println!("json: [{}]", json.join(","));
        Ok(())
    }
}
