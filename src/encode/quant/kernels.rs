//! The integer matrix kernels behind the 8-bit CPU engine: `acc[r][o] = Σ_k x[r][k] · w[o][k]`
//! over i16 activations and i8 weights in i32, with the dequantising epilogue
//! `y = acc · sx[r] · sw[o] + b[o]` fused, written straight into the caller's output.
//!
//! Weights are packed once, at load, in the layout the kernel walks: output channels in
//! groups of [`NC`], and for each group the inputs in blocks of [`KB`]: `[group][block][c]
//! [16 weights]`, zero-padded in both directions. Activations are packed per call in
//! `[row][block][16 values]`. Rows go in tiles of [`MR`] (4 rows × 2 columns = 8
//! accumulators, which fit the 16 vector registers of x86-64 and the wasm engines on it).
//! Two kernels read these layouts: a wasm32 `simd128` one (`i32x4_dot_i16x8` on weights
//! widened from i8 with `i16x8_extend_{low,high}_i8x16`; the packed data is held as
//! `v128` values so every load is a safe slice index), and a portable one in plain Rust
//! (16 vertical i32 lanes per accumulator); natively it runs row tiles on rayon's threads.
//! Measured on a baseline x86-64 build the portable kernel is still ~9× slower than
//! candle's f32 gemm (which picks AVX2/FMA at run time), so natively int8 is a choice,
//! not the default.
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
use core::arch::wasm32::{
    i16x8, i16x8_extend_high_i8x16, i16x8_extend_low_i8x16, i32x4_add, i32x4_dot_i16x8,
    i32x4_extract_lane, i32x4_splat, i8x16, v128,
};

/// Weights `[outputs, inputs]` in i8, packed for the kernel.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    outputs: usize,
    inputs: usize,
    blocks: usize,
    groups: usize,
    /// `[group][block][c]`, one `v128` = 16 weights of channel `c`.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    data: Vec<v128>,
    /// `[group][block][c][16]`.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    data: Vec<i8>,
}

impl PackedWeights {
    /// Packs row-major `q` (`outputs × inputs`).
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
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            data: flat
                .chunks_exact(KB)
                .map(|w| {
                    i8x16(
                        w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11],
                        w[12], w[13], w[14], w[15],
                    )
                })
                .collect(),
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            data: flat,
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

    /// Weight `(o, k)` read back from the packed layout (for tests and references).
    pub fn get(&self, o: usize, k: usize) -> i8 {
        let (g, c, b, j) = (o / NC, o % NC, k / KB, k % KB);
        let v = (g * self.blocks + b) * NC + c;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            lane_i8(self.data[v], j)
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        {
            self.data[v * KB + j]
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn lane_i8(v: v128, j: usize) -> i8 {
    use core::arch::wasm32::i32x4_extract_lane as lane;
    let words = [lane::<0>(v), lane::<1>(v), lane::<2>(v), lane::<3>(v)];
    words[j / 4].to_le_bytes()[j % 4] as i8
}

/// Quantised activations `[rows, inputs]` in i16, packed for the kernel, with their
/// per-row scales. Reused between calls: [`PackedActs::fill`] keeps the allocation.
#[derive(Debug, Clone, Default)]
pub struct PackedActs {
    rows: usize,
    blocks: usize,
    /// `[row][block][2]`, one `v128` = 8 activations.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    data: Vec<v128>,
    /// `[row][block][16]`.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    data: Vec<i16>,
    scales: Vec<f32>,
}

impl PackedActs {
    /// Quantises each row of `x` (`rows × inputs`) symmetrically to `[-limit, limit]` with
    /// its own scale `max|x| / limit` (a zero row gets scale 0 and zeros).
    pub fn fill(&mut self, x: &[f32], rows: usize, inputs: usize, limit: i16) {
        debug_assert_eq!(x.len(), rows * inputs);
        let blocks = inputs.div_ceil(KB);
        self.rows = rows;
        self.blocks = blocks;
        self.scales.clear();
        self.data.clear();
        let mut row_q = vec![0i16; blocks * KB];
        for row in x.chunks_exact(inputs.max(1)).take(rows) {
            let scale = quantize_row(row, limit, &mut row_q);
            self.scales.push(scale);
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            self.data.extend(
                row_q
                    .chunks_exact(8)
                    .map(|a| i16x8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])),
            );
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            self.data.extend_from_slice(&row_q);
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Activation `(r, k)` read back (for tests and references).
    pub fn get(&self, r: usize, k: usize) -> i16 {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            let v = self.data[(r * self.blocks * KB + k) / 8];
            let j = k % 8;
            use core::arch::wasm32::i32x4_extract_lane as lane;
            let words = [lane::<0>(v), lane::<1>(v), lane::<2>(v), lane::<3>(v)];
            let half = words[j / 2];
            (half >> (16 * (j % 2))) as i16
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        {
            self.data[r * self.blocks * KB + k]
        }
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
            row.copy_from_slice(bias);
        }
        return;
    }
    let per_row = acts.blocks * per_block();
    // Column groups are taken in chunks of about CHUNK_BYTES of weights, each run over every
    // row tile before the next: the chunk stays in cache while the tiles reuse it, instead of
    // every tile streaming the whole matrix from memory.
    let chunk = (CHUNK_BYTES / (NC * KB * acts.blocks)).max(1);
    for g0 in (0..w.groups).step_by(chunk) {
        let span = (g0, (g0 + chunk).min(w.groups));
        let job = |(tile, (x, y)): (usize, (&[Lane], &mut [f32]))| {
            let rows = y.len() / outputs;
            let sx = &acts.scales[tile * MR..tile * MR + rows];
            let epi = Epilogue {
                sx,
                sw: col_scales,
                bias,
                outputs,
            };
            match rows {
                4 => tile_rows::<4>(x, per_row, w, span, &epi, y),
                3 => tile_rows::<3>(x, per_row, w, span, &epi, y),
                2 => tile_rows::<2>(x, per_row, w, span, &epi, y),
                _ => tile_rows::<1>(x, per_row, w, span, &epi, y),
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
    sw: &'a [f32],
    bias: &'a [f32],
    outputs: usize,
}

impl Epilogue<'_> {
    #[inline(always)]
    fn store(&self, y: &mut [f32], r: usize, o: usize, acc: i32) {
        if o < self.outputs {
            y[r * self.outputs + o] = acc as f32 * (self.sx[r] * self.sw[o]) + self.bias[o];
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
type Lane = v128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
type Lane = i16;

/// Activation lanes per block of `KB` inputs.
const fn per_block() -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        2
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        KB
    }
}

/// `R` rows (`x`: `R · per_row` lanes) against packed groups `span.0..span.1`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn tile_rows<const R: usize>(
    x: &[v128],
    per_row: usize,
    w: &PackedWeights,
    span: (usize, usize),
    epi: &Epilogue<'_>,
    y: &mut [f32],
) {
    let blocks = w.blocks;
    // Every slice cut to exactly `blocks` entries, so that the loop index needs no bounds
    // check inside the loop.
    let rows: [&[[v128; 2]]; R] = core::array::from_fn(|r| {
        let (row, _) = x[r * per_row..(r + 1) * per_row].as_chunks::<2>();
        &row[..blocks]
    });
    let (all, _) = w.data.as_chunks::<NC>();
    for (i, wg) in all[span.0 * blocks..span.1 * blocks]
        .chunks_exact(blocks)
        .enumerate()
    {
        let g = span.0 + i;
        let wg = &wg[..blocks];
        let mut acc = [[i32x4_splat(0); NC]; R];
        for b in 0..blocks {
            let [w0, w1] = wg[b];
            let w0l = i16x8_extend_low_i8x16(w0);
            let w0h = i16x8_extend_high_i8x16(w0);
            let w1l = i16x8_extend_low_i8x16(w1);
            let w1h = i16x8_extend_high_i8x16(w1);
            for r in 0..R {
                let [xl, xh] = rows[r][b];
                acc[r][0] = i32x4_add(
                    acc[r][0],
                    i32x4_add(i32x4_dot_i16x8(xl, w0l), i32x4_dot_i16x8(xh, w0h)),
                );
                acc[r][1] = i32x4_add(
                    acc[r][1],
                    i32x4_add(i32x4_dot_i16x8(xl, w1l), i32x4_dot_i16x8(xh, w1h)),
                );
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (c, a) in acc_r.iter().enumerate() {
                let s = i32x4_extract_lane::<0>(*a)
                    + i32x4_extract_lane::<1>(*a)
                    + i32x4_extract_lane::<2>(*a)
                    + i32x4_extract_lane::<3>(*a);
                epi.store(y, r, g * NC + c, s);
            }
        }
    }
}

/// `R` rows (`x`: `R · per_row` i16) against packed groups `span.0..span.1`, in plain Rust.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn tile_rows<const R: usize>(
    x: &[i16],
    per_row: usize,
    w: &PackedWeights,
    span: (usize, usize),
    epi: &Epilogue<'_>,
    y: &mut [f32],
) {
    let blocks = w.blocks;
    let rows: [&[[i16; KB]]; R] = core::array::from_fn(|r| {
        let (row, _) = x[r * per_row..(r + 1) * per_row].as_chunks::<KB>();
        &row[..blocks]
    });
    let group_len = blocks * NC * KB;
    for (i, wg) in w.data[span.0 * group_len..span.1 * group_len]
        .chunks_exact(group_len)
        .enumerate()
    {
        let g = span.0 + i;
        // 16 lanes per accumulator: only vertical multiply-adds, which LLVM vectorises at
        // any x86-64 level (a horizontal pattern did not vectorise on baseline SSE2).
        let mut acc = [[[0i32; KB]; NC]; R];
        for (b, wb) in wg
            .as_chunks::<KB>()
            .0
            .chunks_exact(NC)
            .enumerate()
            .take(blocks)
        {
            for r in 0..R {
                let xb = &rows[r][b];
                for c in 0..NC {
                    for j in 0..KB {
                        acc[r][c][j] += i32::from(xb[j]) * i32::from(wb[c][j]);
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (c, a) in acc_r.iter().enumerate() {
                epi.store(y, r, g * NC + c, a.iter().sum());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
