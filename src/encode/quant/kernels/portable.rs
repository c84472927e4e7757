//! The native kernels (every build but wasm32 `simd128`): i16 activations times i8
//! weights. On x86-64 with AVX2 (detected at run time, through `pulp`'s safe `V3` token)
//! each block of 16 is one `vpmaddwd` per row and channel on weights widened with
//! `vpmovsxbw`; elsewhere plain Rust with 16 vertical i32 lanes per accumulator, which LLVM
//! vectorises at any x86-64 level. Both give the exact integer sums, so they are tested
//! against each other. No `unsafe` here: `pulp` checks the CPU and enables the features.

use super::{Epilogue, PackedWeights, KB, NC};

pub(super) const NAME: &str = "portable";
pub(super) const MAX_WEIGHT: i8 = 127;
pub(super) const MAX_ACTIVATION: i16 = i16::MAX;
pub(super) const NEEDS_SUMS: bool = false;
/// No offset on the stored weights.
pub(super) const WEIGHT_OFFSET: i32 = 0;
/// Activation lanes per block of `KB` inputs.
pub(super) const A_PER_BLOCK: usize = KB;

pub(super) type WLane = i8;
pub(super) type Lane = i16;

/// Which native tile runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
}

/// The fastest tile this CPU runs.
pub(super) fn best() -> Path {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return Path::Avx2(simd);
    }
    Path::Scalar
}

/// `R` rows (`x`: `R · per_row` i16) against packed groups `span.0..span.1`.
pub(super) fn tile_rows<const R: usize>(
    path: Path,
    x: &[i16],
    per_row: usize,
    w: &PackedWeights,
    span: (usize, usize),
    epi: &Epilogue<'_>,
    y: &mut [f32],
) {
    match path {
        Path::Scalar => scalar_tile::<R>(x, per_row, w, span, epi, y),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2(simd) => simd.vectorize(avx2::Tile::<R> {
            simd,
            x,
            per_row,
            w,
            span,
            epi,
            y,
        }),
    }
}

pub(super) fn pack_weights(flat: Vec<i8>) -> Vec<WLane> {
    flat
}

/// Weight `j` of the 16 at packed vector `v`.
pub(super) fn weight_at(data: &[WLane], v: usize, j: usize) -> i8 {
    data[v * KB + j]
}

pub(super) fn push_acts(row_q: &[i16], out: &mut Vec<Lane>) {
    out.extend_from_slice(row_q);
}

/// Activation `k` of the row starting at lane `row_start`.
pub(super) fn act_at(data: &[Lane], row_start: usize, k: usize) -> i16 {
    data[row_start + k]
}

/// `R` rows (`x`: `R · per_row` i16) against packed groups `span.0..span.1`, in plain Rust.
fn scalar_tile<const R: usize>(
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
        epi.store_group(y, g, acc.map(|row| row.map(|a| a.iter().sum())));
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 tile: run by `V3::vectorize`, which enables AVX2 for the inlined body.

    use pulp::x86::V3;
    use pulp::{cast, i16x16, i32x8, i8x16};

    use super::super::{Epilogue, PackedWeights, KB, NC};

    /// One tile's arguments, called with AVX2 enabled.
    pub(in super::super) struct Tile<'a, 'e, const R: usize> {
        pub simd: V3,
        pub x: &'a [i16],
        pub per_row: usize,
        pub w: &'a PackedWeights,
        pub span: (usize, usize),
        pub epi: &'a Epilogue<'e>,
        pub y: &'a mut [f32],
    }

    impl<const R: usize> pulp::NullaryFnOnce for Tile<'_, '_, R> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let Self {
                simd,
                x,
                per_row,
                w,
                span,
                epi,
                y,
            } = self;
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
                let (wb, _) = wg.as_chunks::<KB>();
                let wb = &wb[..blocks * NC];
                let mut acc = [[simd.splat_i32x8(0); NC]; R];
                for b in 0..blocks {
                    let w0 = simd.convert_i8x16_to_i16x16(cast::<[i8; KB], i8x16>(wb[b * NC]));
                    let w1 = simd.convert_i8x16_to_i16x16(cast::<[i8; KB], i8x16>(wb[b * NC + 1]));
                    for r in 0..R {
                        let xv = cast::<[i16; KB], i16x16>(rows[r][b]);
                        acc[r][0] = simd.wrapping_add_i32x8(
                            acc[r][0],
                            simd.multiply_wrapping_add_adjacent_i16x16(xv, w0),
                        );
                        acc[r][1] = simd.wrapping_add_i32x8(
                            acc[r][1],
                            simd.multiply_wrapping_add_adjacent_i16x16(xv, w1),
                        );
                    }
                }
                let sums = acc.map(|row| row.map(|a| cast::<i32x8, [i32; 8]>(a).iter().sum()));
                epi.store_group(y, g, sums);
            }
        }
    }
}
