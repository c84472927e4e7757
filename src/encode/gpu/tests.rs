//! Every kernel against its CPU reference (`reference.rs`) on random sizes and inputs, on
//! whatever adapter exists (lavapipe in CI), in f32 and — when the device has shader-f16 —
//! in f16. Sizes are drawn so that most are not multiples of any tile. With
//! `CLIPSEEK_REQUIRE_GPU=1` a missing adapter fails the tests; otherwise they say
//! "skipped: no adapter" and pass.

use super::buffers::{self, block_on, from_bytes, upload, upload_bytes};
use super::kernels::{KernelConfig, Kernels, Precision, MATMUL_TILES};
use super::ops::{Act, ProgramBuilder};
use super::reference as r;
use super::GpuError;

type TestResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn device() -> Option<(wgpu::Device, wgpu::Queue)> {
    let required = std::env::var("CLIPSEEK_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match pollster::block_on(super::request_device(
        wgpu::PowerPreference::HighPerformance,
    )) {
        Ok((adapter, device, queue)) => {
            let info = adapter.get_info();
            eprintln!(
                "adapter: {:?} {:?} {:?}",
                info.backend, info.device_type, info.name
            );
            Some((device, queue))
        }
        Err(e) if required => panic!("CLIPSEEK_REQUIRE_GPU=1 but no GPU adapter: {e}"),
        Err(e) => {
            eprintln!("skipped: no adapter ({e})");
            None
        }
    }
}

use crate::splitmix::SplitMix64 as Rng;

/// Values as the device stores them in `precision` (what the reference must see).
fn stored(v: &[f32], p: Precision) -> Vec<f32> {
    from_bytes(&buffers::to_bytes(v, p), p)
}

struct Bench {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    kernels: Kernels,
}

impl Bench {
    fn new(device: &wgpu::Device, queue: &wgpu::Queue, p: Precision) -> Result<Self, GpuError> {
        let config = KernelConfig::for_limits(&device.limits(), p, 200, 128)?;
        Ok(Self::with_config(device, queue, config))
    }

    fn with_config(device: &wgpu::Device, queue: &wgpu::Queue, config: KernelConfig) -> Self {
        let limits = device.limits();
        let kernels = Kernels::new(device, config);
        Self {
            device: device.clone(),
            queue: queue.clone(),
            limits,
            kernels,
        }
    }

    fn p(&self) -> Precision {
        self.kernels.config.precision
    }

    fn up(&self, v: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        upload(&self.device, &self.limits, "test input", v, self.p())
    }

    fn up_f32(&self, v: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        upload(&self.device, &self.limits, "test input", v, Precision::F32)
    }

    fn up_u32(&self, v: &[u32]) -> Result<wgpu::Buffer, GpuError> {
        upload_bytes(
            &self.device,
            &self.limits,
            "test ids",
            bytemuck::cast_slice(v),
        )
    }

    /// Runs what `build` records, then reads `len` values of `out` (stored in `out_precision`).
    fn run(
        &self,
        out: &wgpu::Buffer,
        len: usize,
        out_precision: Precision,
        build: impl FnOnce(&mut ProgramBuilder<'_>) -> Result<(), GpuError>,
    ) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let mut prog = ProgramBuilder::new(&self.kernels, &self.limits);
        build(&mut prog)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let program = prog.finish(&self.device);
        let bytes = (len as u64 * out_precision.size_bytes()).div_ceil(4) * 4;
        let staging = buffers::staging(&self.device, bytes);
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            program.record(&self.kernels, &mut pass);
        }
        encoder.copy_buffer_to_buffer(out, 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("validation: {e}").into());
        }
        let raw = block_on(&self.device, buffers::read_mapped(&staging)).ok_or("device lost")??;
        let mut v = from_bytes(&raw, out_precision);
        v.truncate(len);
        Ok(v)
    }

    fn out(&self, len: usize, p: Precision) -> Result<wgpu::Buffer, GpuError> {
        buffers::storage(
            &self.device,
            &self.limits,
            "test output",
            len as u64 * p.size_bytes(),
        )
    }
}

/// Largest |a - b| / (1 + |b|).
fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

fn precisions(device: &wgpu::Device) -> Vec<Precision> {
    let mut v = vec![Precision::F32];
    if device.features().contains(wgpu::Features::SHADER_F16) {
        v.push(Precision::F16);
    } else {
        eprintln!("f16 kernels not tested: the device lacks shader-f16");
    }
    v
}

fn tol(p: Precision, f32_tol: f32, f16_tol: f32) -> f32 {
    match p {
        Precision::F32 => f32_tol,
        Precision::F16 => f16_tol,
    }
}

#[test]
fn matmul_matches_reference_on_random_sizes() -> TestResult {
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    let limits = device.limits();
    for p in precisions(&device) {
        for tile in MATMUL_TILES.iter().copied().filter(|t| t.fits(&limits, p)) {
            // Every product on this one tile.
            let mut config = KernelConfig::for_limits(&limits, p, 200, 128)?;
            (config.tile_large, config.tile_medium, config.tile_small) = (tile, tile, tile);
            let bench = Bench::with_config(&device, &queue, config);
            let mut rng = Rng(7);
            for case in 0..16 {
                // Mostly odd sizes in 1..200; a few large-tile shapes.
                let (m, n, k) = if case % 4 == 3 {
                    (
                        rng.range(130, 300),
                        rng.range(130, 300),
                        rng.range(100, 200),
                    )
                } else {
                    (rng.range(1, 200), rng.range(1, 200), rng.range(1, 200))
                };
                let act = [Act::None, Act::QuickGelu, Act::Gelu][case % 3];
                let with_bias = case % 4 != 1;
                let accumulate = case % 2 == 0;
                let a = stored(&rng.vec(m * k, 1.0), p);
                let b = stored(&rng.vec(n * k, 0.5), p);
                let bias = stored(&rng.vec(n, 1.0), p);
                let c0 = stored(&rng.vec(m * n, 1.0), p);
                let (ab, bb, biasb) = (bench.up(&a)?, bench.up(&b)?, bench.up(&bias)?);
                let cb = bench.up(&c0)?;
                let got = bench.run(&cb, m * n, p, |prog| {
                    prog.matmul(
                        &ab,
                        &bb,
                        with_bias.then_some(&biasb),
                        &cb,
                        m,
                        n,
                        k,
                        act,
                        accumulate,
                    )
                })?;
                let want = r::matmul(
                    &a,
                    &b,
                    with_bias.then_some(&bias[..]),
                    accumulate.then_some(&c0[..]),
                    m,
                    n,
                    k,
                    act,
                );
                // f16: inputs are exact in f16, but each step's TK products are summed in f16
                // (ulp 2^-10 near 1) before the f32 accumulation, and the output is rounded to f16.
                let limit = tol(p, 2e-5, 1e-2);
                let e = max_rel_err(&got, &want);
                assert!(
                e < limit,
                "{p:?} matmul {m}x{n}x{k} on {tile:?} act {act:?} bias {with_bias} acc {accumulate}: error {e}"
            );
            }
        }
    }
    Ok(())
}

#[test]
fn layernorm_matches_reference() -> TestResult {
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    for p in precisions(&device) {
        let bench = Bench::new(&device, &queue, p)?;
        let mut rng = Rng(11);
        for case in 0..10 {
            let rows = rng.range(1, 70);
            let n = if case == 0 { 768 } else { rng.range(1, 600) };
            // An offset far from zero checks the two-pass variance.
            let offset = if case % 2 == 0 { 30.0 } else { 0.0 };
            let x: Vec<f32> = rng.vec(rows * n, 2.0).iter().map(|v| v + offset).collect();
            let x = stored(&x, p);
            let g = stored(&rng.vec(n, 1.0), p);
            let bta = stored(&rng.vec(n, 1.0), p);
            let (xb, gb, bb, yb) = (
                bench.up(&x)?,
                bench.up(&g)?,
                bench.up(&bta)?,
                bench.out(rows * n, p)?,
            );
            let got = bench.run(&yb, rows * n, p, |prog| {
                prog.layernorm(&xb, &gb, &bb, &yb, rows, n, 1e-5)
            })?;
            let want = r::layernorm(&x, &g, &bta, rows, n, 1e-5);
            let e = max_rel_err(&got, &want);
            // f16 rows near 30 hold their deviations to ~0.015 (ulp of 32): the reference sees
            // the same stored values, so only output rounding remains.
            assert!(
                e < tol(p, 1e-5, 2e-3),
                "{p:?} layernorm {rows}x{n}: error {e}"
            );
        }
    }
    Ok(())
}

#[test]
fn attention_matches_reference() -> TestResult {
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    for p in precisions(&device) {
        let bench = Bench::new(&device, &queue, p)?;
        let mut rng = Rng(13);
        for case in 0..10 {
            let batch = rng.range(1, 3);
            let seq = if case == 0 { 77 } else { rng.range(1, 200) };
            let heads = rng.range(1, 6);
            let head_dim = if case == 1 { 64 } else { rng.range(1, 128) };
            let causal = case % 2 == 0;
            let hidden = heads * head_dim;
            // Large values make large scores: the softmax must subtract the maximum.
            let scale = if case == 2 { 8.0 } else { 1.0 };
            let qkv = stored(&rng.vec(batch * seq * 3 * hidden, scale), p);
            let (qb, cb) = (bench.up(&qkv)?, bench.out(batch * seq * hidden, p)?);
            let got = bench.run(&cb, batch * seq * hidden, p, |prog| {
                prog.attention(&qb, &cb, batch, seq, heads, head_dim, causal)
            })?;
            let want = r::attention(
                &qkv,
                batch,
                seq,
                heads,
                head_dim,
                causal,
                (head_dim as f64).powf(-0.5),
            );
            let e = max_rel_err(&got, &want);
            // exp() on GPUs is allowed a few ulp (3 + 2|x| in Vulkan): lavapipe lands near 4e-5.
            assert!(
                e < tol(p, 1e-4, 2e-3),
                "{p:?} attention b{batch} s{seq} h{heads} d{head_dim} causal {causal}: error {e}"
            );
        }
    }
    Ok(())
}

#[test]
fn embeddings_match_reference() -> TestResult {
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    for p in precisions(&device) {
        let bench = Bench::new(&device, &queue, p)?;
        let mut rng = Rng(17);
        for _ in 0..4 {
            // im2col on odd images: channels 1..4, patch 1..9, side 1..7.
            let (count, channels, patch, side) = (
                rng.range(1, 3),
                rng.range(1, 4),
                rng.range(1, 9),
                rng.range(1, 7),
            );
            let image = patch * side;
            let pixels = rng.vec(count * channels * image * image, 2.0);
            let k = channels * patch * patch;
            let len = count * side * side * k;
            let (pb, ob) = (bench.up_f32(&pixels)?, bench.out(len, p)?);
            let got = bench.run(&ob, len, p, |prog| {
                prog.im2col(&pb, &ob, count, channels, image, patch)
            })?;
            let want = stored(&r::im2col(&pixels, count, channels, image, patch), p);
            assert!(
                got == want,
                "{p:?} im2col {count}x{channels}x{image} patch {patch}"
            );

            let (batch, seq, hidden) = (rng.range(1, 4), rng.range(2, 60), rng.range(1, 100));
            let pe = stored(&rng.vec(batch * (seq - 1) * hidden, 1.0), p);
            let pos = stored(&rng.vec(seq * hidden, 1.0), p);
            let class = stored(&rng.vec(hidden, 1.0), p);
            let (peb, posb, cb, xb) = (
                bench.up(&pe)?,
                bench.up(&pos)?,
                bench.up(&class)?,
                bench.out(batch * seq * hidden, p)?,
            );
            let got = bench.run(&xb, batch * seq * hidden, p, |prog| {
                prog.assemble_vision(&peb, &posb, &cb, &xb, batch, seq, hidden)
            })?;
            let want = stored(
                &r::assemble_vision(&pe, &pos, &class, batch, seq, hidden),
                p,
            );
            assert!(
                max_rel_err(&got, &want) < tol(p, 1e-6, 1e-3),
                "{p:?} assemble"
            );

            let vocab = rng.range(1, 500);
            let rows = batch * seq;
            let ids: Vec<u32> = (0..rows).map(|_| rng.range(0, vocab - 1) as u32).collect();
            let table = stored(&rng.vec(vocab * hidden, 1.0), p);
            let (ib, tb, xb) = (
                bench.up_u32(&ids)?,
                bench.up(&table)?,
                bench.out(rows * hidden, p)?,
            );
            let got = bench.run(&xb, rows * hidden, p, |prog| {
                prog.embed_tokens(&ib, &tb, &posb, &xb, rows, seq, hidden)
            })?;
            let want = stored(&r::embed_tokens(&ids, &table, &pos, seq, hidden), p);
            assert!(
                max_rel_err(&got, &want) < tol(p, 1e-6, 1e-3),
                "{p:?} tokens"
            );
        }
    }
    Ok(())
}

#[test]
fn pooling_matches_reference() -> TestResult {
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    for p in precisions(&device) {
        let bench = Bench::new(&device, &queue, p)?;
        let mut rng = Rng(19);
        for case in 0..6 {
            let (src_rows, n) = (rng.range(1, 100), rng.range(1, 700));
            let count = rng.range(1, 20);
            let rows: Vec<u32> = (0..count)
                .map(|_| rng.range(0, src_rows - 1) as u32)
                .collect();
            let mut src = stored(&rng.vec(src_rows * n, 3.0), p);
            if case == 0 {
                // A zero row stays zero; a tiny row still normalises.
                src[..n].fill(0.0);
                for v in &mut src[n..(2 * n).min(src_rows * n)] {
                    *v *= 1e-4;
                }
            }
            let (sb, rb, db) = (
                bench.up(&src)?,
                bench.up_u32(&rows)?,
                bench.out(count * n, p)?,
            );
            let got = bench.run(&db, count * n, p, |prog| {
                prog.gather_rows(&sb, &rb, &db, count, n)
            })?;
            let want = r::gather_rows(&src, &rows, n);
            assert!(got == want, "{p:?} gather {count} of {src_rows}x{n}");

            let ob = bench.out(count * n, Precision::F32)?;
            let got = bench.run(&ob, count * n, Precision::F32, |prog| {
                prog.l2_normalize(&db, &ob, count, n)
            })?;
            let want = r::l2_normalize(&want, n);
            let e = max_rel_err(&got, &want);
            assert!(e < 1e-6, "{p:?} l2 {count}x{n}: error {e}");
        }
    }
    Ok(())
}

#[test]
fn dispatch_grids_fold_beyond_the_dimension_limit() -> TestResult {
    // More rows than workgroups per dimension: the 2-D grid must cover them all.
    let Some((device, queue)) = device() else {
        return Ok(());
    };
    let bench = Bench::new(&device, &queue, Precision::F32)?;
    let max = device.limits().max_compute_workgroups_per_dimension as usize;
    let (rows, n) = (max + 37, 1);
    let x: Vec<f32> = (0..rows).map(|i| i as f32).collect();
    let (xb, ob) = (bench.up(&x)?, bench.out(rows, Precision::F32)?);
    let got = bench.run(&ob, rows, Precision::F32, |prog| {
        prog.l2_normalize(&xb, &ob, rows, n)
    })?;
    let want = r::l2_normalize(&x, n);
    let e = max_rel_err(&got, &want);
    assert!(e < 1e-6, "{rows} rows: error {e}");
    Ok(())
}
