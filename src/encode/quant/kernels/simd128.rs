//! The wasm32 `simd128` kernel (every wasm build without the `relaxed-simd` feature): i16
//! activations times weights widened from i8 with `i16x8_extend_{low,high}_i8x16`, summed
//! by `i32x4_dot_i16x8`. Packed data is held as `v128`, so every load is a safe slice index.

use core::arch::wasm32::{
    i16x8, i16x8_extend_high_i8x16, i16x8_extend_low_i8x16, i32x4_add, i32x4_dot_i16x8,
    i32x4_splat, i8x16, v128,
};

use super::wasm::{byte, hsum};
use super::{Epilogue, PackedWeights, NC};

pub(super) const NAME: &str = "simd128";
pub(super) const MAX_WEIGHT: i8 = 127;
pub(super) const MAX_ACTIVATION: i16 = i16::MAX;
pub(super) const NEEDS_SUMS: bool = false;
/// No offset on the stored weights.
pub(super) const WEIGHT_OFFSET: i32 = 0;
/// Activation lanes (`v128` of 8 × i16) per block of `KB` inputs.
pub(super) const A_PER_BLOCK: usize = 2;

pub(super) type WLane = v128;
pub(super) type Lane = v128;

/// One tile for the whole build (the choice of module was made at load).
#[derive(Debug, Clone, Copy)]
pub(super) struct Path;

pub(super) fn best() -> Path {
    Path
}

pub(super) fn pack_weights(flat: Vec<i8>) -> Vec<WLane> {
    flat.chunks_exact(16)
        .map(|w| {
            i8x16(
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12],
                w[13], w[14], w[15],
            )
        })
        .collect()
}

/// Weight `j` of the 16 at packed vector `v`.
pub(super) fn weight_at(data: &[WLane], v: usize, j: usize) -> i8 {
    byte(data[v], j) as i8
}

pub(super) fn push_acts(row_q: &[i16], out: &mut Vec<Lane>) {
    out.extend(
        row_q
            .chunks_exact(8)
            .map(|a| i16x8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])),
    );
}

/// Activation `k` of the row starting at lane `row_start`.
pub(super) fn act_at(data: &[Lane], row_start: usize, k: usize) -> i16 {
    let v = data[row_start + k / 8];
    let j = k % 8;
    i16::from_le_bytes([byte(v, 2 * j), byte(v, 2 * j + 1)])
}

/// `R` rows (`x`: `R · per_row` lanes) against packed groups `span.0..span.1`.
pub(super) fn tile_rows<const R: usize>(
    _path: Path,
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
        epi.store_group(y, g, acc.map(|row| row.map(hsum)));
    }
}
