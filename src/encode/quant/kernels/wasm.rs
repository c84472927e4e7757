//! What the two wasm32 kernels (`simd128`, `relaxed`) share: reading a `v128` back byte by
//! byte (for the references and tests) and the horizontal sum of an accumulator.

use core::arch::wasm32::{i32x4_extract_lane, v128};

/// Byte `j` of a `v128`.
pub(super) fn byte(v: v128, j: usize) -> u8 {
    let words = [
        i32x4_extract_lane::<0>(v),
        i32x4_extract_lane::<1>(v),
        i32x4_extract_lane::<2>(v),
        i32x4_extract_lane::<3>(v),
    ];
    words[j / 4].to_le_bytes()[j % 4]
}

/// The sum of an accumulator's four i32 lanes.
#[inline(always)]
pub(super) fn hsum(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v)
        + i32x4_extract_lane::<1>(v)
        + i32x4_extract_lane::<2>(v)
        + i32x4_extract_lane::<3>(v)
}
