//! The integer matrix kernels behind the 8-bit CPU engine: `acc[r][o] = Σ_k x[r][k] · w[o][k]`
//! over quantised activations and i8 weights in i32, with the dequantising epilogue
//! `y = acc · sx[r] · sw[o] + b[o]` fused, written straight into the caller's output.
//!
//! Weights are packed once, at load, in the layout the kernel walks: output channels in
//! groups of [`NC`], and for each group the inputs in blocks of [`KB`]: `[group][block][c]
//! [16 weights]`, zero-padded in both directions. Activations are packed per call in
//! `[row][block][16 values]`. Rows go in tiles of [`MR`] (4 rows × 2 columns = 8
//! accumulators, which fit the 16 vector registers of x86-64 and the wasm engines on it).
//! Three kernels read these layouts, one per build, chosen at compile time:
//! - `relaxed` (wasm32 built with the crate feature `relaxed-simd`, the page's second
//!   worker module, loaded only where the browser validates relaxed SIMD):
//!   `i32x4_relaxed_dot_i8x16_i7x16_add`, one instruction per 16 products. Its second
//!   operand must lie in 0..=127 to be deterministic, so weights are quantised to ±63 and
//!   stored offset by +64, activations are i8 (±127), and the epilogue subtracts
//!   `64 · Σ_k x[r][k]`: the result is exactly `Σ x · w` over the ±63 weights.
//! - `simd128` (every other wasm32 build): i16 activations times weights widened from i8
//!   with `i16x8_extend_{low,high}_i8x16`, `i32x4_dot_i16x8`.
//! - `portable` (native): plain Rust over 16 vertical i32 lanes per accumulator, row tiles
//!   on rayon's threads.
//!
//! The packed data of the wasm kernels is held as `v128` values, so every load is a safe
//! slice index. [`MAX_WEIGHT`] and [`MAX_ACTIVATION`] say what range the build's kernel
//! takes; `quant` clamps its requested ranges to them.
//! Callers bound the activation magnitude so that no i32 sum can overflow
//! (see [`max_activation`]). This module holds no model logic and no floats beyond the
//! epilogue; it must not allocate per tile.

/// Inputs per block (one `v128` of i8 weights, two of i16 activations).
pub const KB: usize = 16;
/// Output channels per packed group.
pub const NC: usize = 2;
/// Rows per tile.
pub const MR: usize = 4;

/// The largest |activation| whose products with |weight| ≤ 127, summed over `inputs`
/// (padded to a block), stay inside i32: `limit · 127 · padded ≤ i32::MAX`, capped at
/// `wanted`.
pub fn max_activation(wanted: i16, inputs: usize) -> i16 {
    let padded = inputs.div_ceil(KB).max(1) * KB;
    let bound = i32::MAX as usize / (127 * padded);
    wanted.min(bound.min(i16::MAX as usize) as i16).max(1)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
mod relaxed;
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
use relaxed as imp;

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(feature = "relaxed-simd")
))]
mod simd128;
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(feature = "relaxed-simd")
))]
use simd128 as imp;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod portable;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use portable as imp;

/// The name of the kernel this build runs (`relaxed`, `simd128` or `portable`).
pub const KERNEL: &str = imp::NAME;
/// The largest |weight| this build's kernel takes (127, or 63 for `relaxed`).
pub const MAX_WEIGHT: i8 = imp::MAX_WEIGHT;
/// The largest |activation| this build's kernel takes (127 for `relaxed`, which reads i8).
pub const MAX_ACTIVATION: i16 = imp::MAX_ACTIVATION;

/// The version of the packed layouts below (`[group][block][c][16]`, [`NC`], [`KB`], and
/// each kernel's own lane encoding, e.g. `relaxed`'s +64 offset). Packed weights kept
/// between sessions (`encode::packed`) name it with [`KERNEL`]: change it whenever a
/// packing changes, so that weights packed by an older build are packed again.
pub const LAYOUT_VERSION: u32 = 1;

/// Weights `[outputs, inputs]` in i8, packed for the kernel.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    outputs: usize,
    inputs: usize,
    blocks: usize,
    groups: usize,
    /// `[group][block][c]` then 16 weights, in the kernel's own lane type.
    data: Vec<imp::WLane>,
}

impl PackedWeights {
    /// Packs row-major `q` (`outputs × inputs`, every |value| ≤ [`MAX_WEIGHT`]).
    pub fn pack(q: &[i8], outputs: usize, inputs: usize) -> Self {
        debug_assert_eq!(q.len(), outputs * inputs);
        let blocks = inputs.div_ceil(KB);
        let groups = outputs.div_ceil(NC);
        let mut flat = vec![0i8; groups * blocks * NC * KB];
        for (o, row) in q.chunks_exact(inputs.max(1)).enumerate().take(outputs) {
            let (g, c) = (o / NC, o % NC);
            for (b, chunk) in row.chunks(KB).enumerate() {
                let at = ((g * blocks + b) * NC + c) * KB;
                flat[at..at + chunk.len()].copy_from_slice(chunk);
            }
        }
        Self {
            outputs,
            inputs,
            blocks,
            groups,
            data: imp::pack_weights(flat),
        }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Bytes the packed weights occupy.
    pub fn bytes(&self) -> usize {
        self.groups * self.blocks * NC * KB
    }

    /// The packed data as bytes, exactly as this build's kernel reads it.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data)
    }

    /// Packed weights of `outputs × inputs` from [`Self::as_bytes`] of the same build's
    /// kernel; `None` when `bytes` has not the length that shape packs to.
    pub fn from_bytes(outputs: usize, inputs: usize, bytes: &[u8]) -> Option<Self> {
        let blocks = inputs.div_ceil(KB);
        let groups = outputs.div_ceil(NC);
        let len = groups * blocks * NC * KB;
        if bytes.len() != len {
            return None;
        }
        let mut data = vec![
            <imp::WLane as bytemuck::Zeroable>::zeroed();
            len / core::mem::size_of::<imp::WLane>()
        ];
        bytemuck::cast_slice_mut::<imp::WLane, u8>(&mut data).copy_from_slice(bytes);
        Some(Self {
            outputs,
            inputs,
            blocks,
            groups,
            data,
        })
    }

    /// Weight `(o, k)` read back from the packed layout (for tests and references).
    pub fn get(&self, o: usize, k: usize) -> i8 {
        let (g, c, b, j) = (o / NC, o % NC, k / KB, k % KB);
        imp::weight_at(&self.data, (g * self.blocks + b) * NC + c, j)
    }
}

/// Quantised activations `[rows, inputs]`, packed for the kernel, with their per-row
/// scales (and, for the `relaxed` kernel, their per-row sums). Reused between calls:
/// [`PackedActs::fill`] keeps the allocation.
#[derive(Debug, Clone, Default)]
pub struct PackedActs {
    rows: usize,
    inputs: usize,
    limit: i16,
    blocks: usize,
    /// `[row][block]` then 16 values, in the kernel's own lane type.
    data: Vec<imp::Lane>,
    scales: Vec<f32>,
    /// `Σ_k q[r][k]` per row (only for kernels that need it; empty otherwise).
    sums: Vec<i32>,
    row_q: Vec<i16>,
}

impl PackedActs {
    /// Quantises each row of `x` (`rows × inputs`) symmetrically to `[-limit, limit]` with
    /// its own scale `max|x| / limit` (a zero row gets scale 0 and zeros). `limit` must not
    /// exceed [`MAX_ACTIVATION`].
    pub fn fill(&mut self, x: &[f32], rows: usize, inputs: usize, limit: i16) {
        debug_assert_eq!(x.len(), rows * inputs);
        let blocks = inputs.div_ceil(KB);
        self.rows = rows;
        self.inputs = inputs;
        self.limit = limit;
        self.blocks = blocks;
        self.scales.clear();
        self.sums.clear();
        self.data.clear();
        self.row_q.clear();
        self.row_q.resize(blocks * KB, 0);
        for row in x.chunks_exact(inputs.max(1)).take(rows) {
            let scale = quantize_row(row, limit, &mut self.row_q);
            self.scales.push(scale);
            if imp::NEEDS_SUMS {
                self.sums
                    .push(self.row_q.iter().map(|v| i32::from(*v)).sum::<i32>());
            }
            imp::push_acts(&self.row_q, &mut self.data);
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (before padding to a block).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The limit the rows were quantised to.
    pub fn limit(&self) -> i16 {
        self.limit
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Activation `(r, k)` read back (for tests and references).
    pub fn get(&self, r: usize, k: usize) -> i16 {
        imp::act_at(&self.data, r * self.blocks * imp::A_PER_BLOCK, k)
    }
}

/// Rounds `row / scale` into `out` (padded with zeros), `scale = max|row| / limit`;
/// returns the scale.
pub fn quantize_row(row: &[f32], limit: i16, out: &mut [i16]) -> f32 {
    // Eight running maxima (NaN ignored, as `f32::max` does), in a shape that vectorises.
    let mut lanes = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            if a > *m {
                *m = a;
            }
        }
    }
    let max = tail
        .iter()
        .chain(lanes.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    out.fill(0);
    if max == 0.0 || !max.is_finite() {
        // Zeros stay zeros; a non-finite row has no meaningful scale: NaN out, as f32 would.
        return if max == 0.0 { 0.0 } else { f32::NAN };
    }
    let scale = max / f32::from(limit);
    let inv = f32::from(limit) / max;
    let lim = f32::from(limit);
    for (q, v) in out.iter_mut().zip(row) {
        *q = round_even((v * inv).clamp(-lim, lim)) as i16;
    }
    scale
}

/// Rounds to the nearest integer, ties to even, for |v| < 2²²: adding and subtracting
/// 1.5·2²³ leaves no fraction bits. Two adds where `f32::round` is a libm call on wasm32
/// and on x86-64 without SSE4.1 (this runs once per activation of every layer).
#[inline(always)]
pub(crate) fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `out[r * outputs + o] = acc(r, o) · sx[r] · sw[o] + bias[o]` for every row of `acts`.
/// `col_scales` and `bias` have `w.outputs()` entries; `out` has `rows · outputs`.
pub fn gemm(
    acts: &PackedActs,
    w: &PackedWeights,
    col_scales: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    gemm_on(imp::best(), acts, w, col_scales, bias, Store::Write, out);
}

/// [`gemm`] added to what `out` holds (`out += …`): a residual connection fused into the
/// epilogue, with no second pass over the output.
pub fn gemm_add(
    acts: &PackedActs,
    w: &PackedWeights,
    col_scales: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    gemm_on(imp::best(), acts, w, col_scales, bias, Store::Add, out);
}

/// What the epilogue does with each result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// `out = y`.
    Write,
    /// `out += y`.
    Add,
}

/// [`gemm`] on a given tile (natively: AVX2 or plain Rust; tests compare them).
fn gemm_on(
    path: imp::Path,
    acts: &PackedActs,
    w: &PackedWeights,
    col_scales: &[f32],
    bias: &[f32],
    store: Store,
    out: &mut [f32],
) {
    let outputs = w.outputs;
    debug_assert_eq!(acts.blocks, w.blocks);
    debug_assert_eq!(out.len(), acts.rows * outputs);
    debug_assert!(col_scales.len() == outputs && bias.len() == outputs);
    if outputs == 0 || acts.rows == 0 {
        return;
    }
    if acts.blocks == 0 {
        // No inputs: every output is its bias.
        for row in out.chunks_exact_mut(outputs) {
            match store {
                Store::Write => row.copy_from_slice(bias),
                Store::Add => row.iter_mut().zip(bias).for_each(|(y, b)| *y += b),
            }
        }
        return;
    }
    let per_row = acts.blocks * imp::A_PER_BLOCK;
    // Column groups are taken in chunks of about CHUNK_BYTES of weights, each run over every
    // row tile before the next: the chunk stays in cache while the tiles reuse it, instead of
    // every tile streaming the whole matrix from memory.
    let chunk = (CHUNK_BYTES / (NC * KB * acts.blocks)).max(1);
    for g0 in (0..w.groups).step_by(chunk) {
        let span = (g0, (g0 + chunk).min(w.groups));
        let job = |(tile, (x, y)): (usize, (&[imp::Lane], &mut [f32]))| {
            let rows = y.len() / outputs;
            let sx = &acts.scales[tile * MR..tile * MR + rows];
            let sums = if imp::NEEDS_SUMS {
                &acts.sums[tile * MR..tile * MR + rows]
            } else {
                &[]
            };
            let epi = Epilogue {
                sx,
                sums,
                sw: col_scales,
                bias,
                outputs,
                add: store == Store::Add,
            };
            match rows {
                4 => imp::tile_rows::<4>(path, x, per_row, w, span, &epi, y),
                3 => imp::tile_rows::<3>(path, x, per_row, w, span, &epi, y),
                2 => imp::tile_rows::<2>(path, x, per_row, w, span, &epi, y),
                _ => imp::tile_rows::<1>(path, x, per_row, w, span, &epi, y),
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            acts.data
                .par_chunks(MR * per_row)
                .zip(out.par_chunks_mut(MR * outputs))
                .enumerate()
                .for_each(job);
        }
        #[cfg(target_arch = "wasm32")]
        acts.data
            .chunks(MR * per_row)
            .zip(out.chunks_mut(MR * outputs))
            .enumerate()
            .for_each(job);
    }
}

/// Bytes of packed weights one pass over the row tiles works on (fits a core's L2 with the
/// activations beside it).
const CHUNK_BYTES: usize = 64 * 1024;

/// What the tile writes: the scales and bias of the dequantising epilogue.
struct Epilogue<'a> {
    sx: &'a [f32],
    /// Per-row activation sums (`relaxed` only; empty otherwise).
    sums: &'a [i32],
    sw: &'a [f32],
    bias: &'a [f32],
    outputs: usize,
    /// Add to the output instead of overwriting it ([`Store::Add`]).
    add: bool,
}

impl Epilogue<'_> {
    /// Writes one tile's sums for the channel group `g` (`sums[r][c]`: row `r`, output
    /// `g · NC + c`), every kernel's last step: the sums corrected for the kernel's weight
    /// offset (`relaxed` only, `−offset · Σ_k x[r][k]`), dequantised, biased, and stored
    /// where the output exists (the last group may be padding).
    #[inline(always)]
    fn store_group<const R: usize>(&self, y: &mut [f32], g: usize, sums: [[i32; NC]; R]) {
        for (r, row) in sums.iter().enumerate() {
            let shift = if imp::NEEDS_SUMS {
                imp::WEIGHT_OFFSET * self.sums[r]
            } else {
                0
            };
            for (c, acc) in row.iter().enumerate() {
                let o = g * NC + c;
                if o < self.outputs {
                    let q = (acc - shift) as f32;
                    let v = q * (self.sx[r] * self.sw[o]) + self.bias[o];
                    let at = &mut y[r * self.outputs + o];
                    *at = if self.add { *at + v } else { v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Native: the AVX2 tile (where the CPU has it) and the plain-Rust one give the same
    /// exact sums as an i64 reference, on sizes on and off every multiple the kernels use.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    #[test]
    fn the_native_tiles_equal_each_other_and_the_integer_sums() {
        let best = imp::best();
        eprintln!("native tile: {best:?}");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (rows, k, n) in [
            (1, 1, 1),
            (3, 17, 5),
            (4, 32, 4),
            (5, 31, 3),
            (7, 100, 9),
            (9, 768, 33),
            (13, 3072, 7),
            (5, 3072, 41),
        ] {
            for limit in [127i16, 2047] {
                let q: Vec<i8> = (0..n * k)
                    .map(|_| ((next() % 255) as i16 - 127) as i8)
                    .collect();
                let x: Vec<f32> = (0..rows * k)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                let w = PackedWeights::pack(&q, n, k);
                let mut acts = PackedActs::default();
                acts.fill(&x, rows, k, max_activation(limit, k));
                let ones = vec![1.0f32; n];
                let zeros = vec![0.0f32; n];
                let mut scalar = vec![0f32; rows * n];
                let mut fast = vec![0f32; rows * n];
                gemm_on(
                    imp::Path::Scalar,
                    &acts,
                    &w,
                    &ones,
                    &zeros,
                    Store::Write,
                    &mut scalar,
                );
                gemm_on(best, &acts, &w, &ones, &zeros, Store::Write, &mut fast);
                assert_eq!(scalar, fast, "{rows}x{k}x{n} limit {limit}");
                // Added to a residual: the same sums on top of what was there.
                let base: Vec<f32> = (0..rows * n).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut added = base.clone();
                gemm_on(best, &acts, &w, &ones, &zeros, Store::Add, &mut added);
                for ((a, b), f) in added.iter().zip(&base).zip(&fast) {
                    assert_eq!(*a, b + f, "{rows}x{k}x{n} limit {limit}: added");
                }
                for r in 0..rows {
                    for o in 0..n {
                        let exact: i64 = (0..k)
                            .map(|j| i64::from(acts.get(r, j)) * i64::from(q[o * k + j]))
                            .sum();
                        let want = exact as f32 * acts.scales()[r];
                        let got = scalar[r * n + o];
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{rows}x{k}x{n} limit {limit} at ({r}, {o}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn round_even_rounds_ties_to_even_over_the_activation_range() {
        for i in -70_000..70_000 {
            let v = i as f32 * 0.03125 + (i % 7) as f32 * 1e-3;
            assert_eq!(round_even(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn quantize_row_uses_the_largest_magnitude_and_pads_with_zeros() {
        let row = [0.5f32, -2.0, 1.0, 0.25, 0.1, -0.3, 0.0, 1.5, -1.9, 0.7];
        let mut q = [7i16; 16];
        let scale = quantize_row(&row, 127, &mut q);
        assert_eq!(scale, 2.0 / 127.0);
        assert_eq!(q[1], -127);
        assert_eq!(q[8], round_even(-1.9 * 63.5) as i16);
        assert!(q[10..].iter().all(|v| *v == 0));
        let mut z = [1i16; 16];
        assert_eq!(quantize_row(&[0.0; 3], 127, &mut z), 0.0);
        assert!(z.iter().all(|v| *v == 0));
    }
}
