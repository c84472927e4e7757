//! The wasm32 relaxed-SIMD kernel (built only with the crate feature `relaxed-simd`, into
//! the page's second worker module, which the page loads only where the browser validates
//! relaxed SIMD): `i32x4_relaxed_dot_i8x16_i7x16_add` multiplies 16 i8 activations by 16
//! 7-bit weights and adds the 4 pair-of-pairs sums to the accumulator in one instruction
//! (`vpdpbusd` with AVX-VNNI, `pmaddubsw` + `pmaddwd` on other x86-64, `sdot` on Arm).
//!
//! Its second operand is deterministic only in 0..=127 (the top bit is read as signed by
//! some engines and unsigned by others), so weights are quantised to ±63 and stored as
//! `q + 64` (1..=127; padding 64), activations are i8 in ±127, and the epilogue subtracts
//! `64 · Σ_k x[r][k]`, which makes the sum exactly `Σ x · q` (no product pair can saturate
//! an i16 on the way: 2 · 127 · 127 < 32 767). The relaxed instructions are used only
//! inside `#[target_feature(enable = "relaxed-simd")]` functions; the rest of the crate is
//! built for plain `simd128`.

use core::arch::wasm32::{i32x4_relaxed_dot_i8x16_i7x16_add, i32x4_splat, i8x16, v128};

use super::wasm::{byte, hsum};
use super::{Epilogue, PackedWeights, NC};

pub(super) const NAME: &str = "relaxed";
pub(super) const MAX_WEIGHT: i8 = 63;
pub(super) const MAX_ACTIVATION: i16 = 127;
pub(super) const NEEDS_SUMS: bool = true;
/// Activation lanes (`v128` of 16 × i8) per block of `KB` inputs.
pub(super) const A_PER_BLOCK: usize = 1;
/// What the stored weights are offset by.
const OFFSET: i8 = 64;
/// The same, as the epilogue subtracts it (`OFFSET · Σ_k x[r][k]`).
pub(super) const WEIGHT_OFFSET: i32 = OFFSET as i32;

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
            let u: [i8; 16] =
                core::array::from_fn(|j| w[j].clamp(-MAX_WEIGHT, MAX_WEIGHT) + OFFSET);
            i8x16(
                u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
                u[13], u[14], u[15],
            )
        })
        .collect()
}

/// Weight `j` of the 16 at packed vector `v` (the offset removed).
pub(super) fn weight_at(data: &[WLane], v: usize, j: usize) -> i8 {
    byte(data[v], j) as i8 - OFFSET
}

pub(super) fn push_acts(row_q: &[i16], out: &mut Vec<Lane>) {
    out.extend(row_q.chunks_exact(16).map(|a| {
        let b: [i8; 16] = core::array::from_fn(|j| a[j].clamp(-127, 127) as i8);
        i8x16(
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        )
    }));
}

/// Activation `k` of the row starting at lane `row_start`.
pub(super) fn act_at(data: &[Lane], row_start: usize, k: usize) -> i16 {
    i16::from(byte(data[row_start + k / 16], k % 16) as i8)
}

/// `R` rows (`x`: `R · per_row` lanes) against packed groups `span.0..span.1`.
#[target_feature(enable = "relaxed-simd")]
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
    let rows: [&[v128]; R] = core::array::from_fn(|r| &x[r * per_row..r * per_row + blocks]);
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
            for r in 0..R {
                let xb = rows[r][b];
                acc[r][0] = i32x4_relaxed_dot_i8x16_i7x16_add(xb, w0, acc[r][0]);
                acc[r][1] = i32x4_relaxed_dot_i8x16_i7x16_add(xb, w1, acc[r][1]);
            }
        }
        epi.store_group(y, g, acc.map(|row| row.map(hsum)));
    }
}
