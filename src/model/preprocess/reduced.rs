//! Reduced-scale JPEG decoding for the model's pixels: a large photo is decoded at 1/2 or
//! 1/4 of its size straight from its DCT coefficients (a smaller inverse DCT per 8x8 block,
//! as libjpeg's `scale_denom` does), then resized like every other image. The model sees
//! 224 px; decoding 12 MP to shrink it 13x costs most of the time and memory of
//! preprocessing.
//!
//! The rule ([`reduction_for`]): the largest reduction whose shortest edge is still at least
//! twice the size the model resizes to, so the antialiased bicubic resize still shrinks by 2x
//! or more and the result stays close to decoding at full scale (figures in
//! `tests/reduced_decode.rs`). Not 1/8: jpeg-decoder 0.3's 1x1 IDCT truncates the DC term
//! instead of rounding it, a mean bias of about half a level (measured: mean abs error
//! 1.1e-2 against full scale on a 4000 x 3000 photo for a 64 px model, 1.0e-3 at 1/4).
//! Only 8-bit baseline or progressive JPEGs with one (grey) or three (YCbCr/RGB) components
//! are reduced; CMYK/YCCK, 12-bit, lossless and arithmetic-coded files, and any file the
//! reduced decoder refuses, go through the full-scale path unchanged, so their handling
//! (and every error message) is exactly the full-scale one.
//!
//! The decoder is `jpeg-decoder` (image-rs), the one well-kept Rust JPEG decoder with scaled
//! IDCTs (`Decoder::scale`); zune-jpeg, which `image` uses at full scale, has none. Headers
//! and the EXIF/XMP blocks are read by zune-jpeg, as `image` reads them, so the orientation
//! is found exactly as at full scale. No I/O, no panics on bad input.

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// The reductions tried, largest first (1/8 is left out: see the module comment).
const REDUCTIONS: [u32; 2] = [4, 2];

/// How many times smaller than its declared size a `width` x `height` JPEG is decoded for a
/// model that resizes its shortest edge to `target` pixels: the larger of 4 and 2 that
/// leaves the shortest edge (`ceil(short / r)`, the size the reduced IDCT gives) at least
/// `2 * target`; 1 (full scale) when none does or `target` is 0.
pub fn reduction_for(width: u32, height: u32, target: u32) -> u32 {
    let short = u64::from(width.min(height));
    let need = 2 * u64::from(target);
    if target == 0 {
        return 1;
    }
    REDUCTIONS
        .into_iter()
        .find(|&r| short.div_ceil(u64::from(r)) >= need)
        .unwrap_or(1)
}

/// An upper bound on the bytes the reduced path holds at once for a `width` x `height` JPEG
/// with `components` (1 or 3) colour components decoded at 1/`reduction` (input bytes not
/// counted). With `W = ceil(width / r)`, `H = ceil(height / r)`, `s = 8 / r` and
/// `B = (ceil(width / 8) + 4) * (ceil(height / 8) + 4)` (8x8 blocks per component, MCU
/// padding included for sampling factors up to 4), it is the sum of:
/// - coefficients: `components * B * 128` for a progressive file (every block's 64 `i16`
///   are kept until the last scan, at any scale), else one MCU row,
///   `components * (ceil(width / 8) + 4) * 4 * 128`;
/// - the component planes the reduced IDCT writes: `components * B * s * s`;
/// - the decoded image, `4 * W * H` (a grey image's `W * H` plane plus its RGB copy; RGB
///   needs `3 * W * H`);
/// - one more `3 * W * H`: the EXIF-rotated copy or the resize's intermediate pass, each
///   smaller than the decoded image, never both alive (the crop itself is a few
///   hundred KB).
///
/// The phases do not all overlap, so this over-estimates the peak. For a 4000 x 3000
/// baseline photo it is about 8.3 MB at 1/4 (ViT-B/32's 224 px; 2.7 MB at 1/8); decoding
/// that photo at full scale holds 36 MB of RGB alone (72 MB while an EXIF rotation copies
/// it).
pub fn reduced_decode_bytes(
    width: u32,
    height: u32,
    reduction: u32,
    components: u32,
    progressive: bool,
) -> u64 {
    let r = u64::from(reduction.max(1));
    let (w, h, c) = (u64::from(width), u64::from(height), u64::from(components));
    let (out_w, out_h) = (w.div_ceil(r), h.div_ceil(r));
    let s = (8 / r).max(1);
    let blocks_w = w.div_ceil(8) + 4;
    let blocks = blocks_w * (h.div_ceil(8) + 4);
    let coefficients = if progressive {
        c * blocks * 128
    } else {
        c * blocks_w * 4 * 128
    };
    let planes = c * blocks * s * s;
    coefficients + planes + 4 * out_w * out_h + 3 * out_w * out_h
}

/// What the reduced path needs from a JPEG's headers, read by zune-jpeg (as `image` reads
/// them) without copying the file.
pub(super) struct Header {
    pub width: u32,
    pub height: u32,
    /// One (grey) or three (YCbCr or RGB) components: the only ones reduced.
    pub reducible: bool,
    pub exif: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
}

/// The headers of `bytes`, or `None` when zune-jpeg cannot read them (the full-scale path
/// then reports why).
pub(super) fn header(bytes: &[u8]) -> Option<Header> {
    // The options `image` opens JPEGs with.
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    let (width, height) = decoder.dimensions()?;
    let reducible = matches!(
        decoder.input_colorspace()?,
        ColorSpace::YCbCr | ColorSpace::RGB | ColorSpace::Luma
    );
    Some(Header {
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        reducible,
        exif: decoder.exif().cloned(),
        xmp: decoder.xmp().cloned(),
    })
}

/// Decodes `bytes` (a `width` x `height` JPEG, per its headers) at 1/`reduction` of its
/// size to 8-bit RGB, without orientation. `None` when `jpeg-decoder` disagrees with the
/// headers, the file is not 8-bit grey or colour, or decoding fails: the caller then
/// decodes at full scale. `max_alloc` bounds the decoder's output buffer.
pub(super) fn decode(
    bytes: &[u8],
    width: u32,
    height: u32,
    reduction: u32,
    max_alloc: usize,
) -> Option<RgbImage> {
    use jpeg_decoder::PixelFormat;
    let r = reduction.max(1);
    let (out_w, out_h) = (width.div_ceil(r), height.div_ceil(r));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(max_alloc);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    if (u32::from(info.width), u32::from(info.height)) != (width, height) {
        return None;
    }
    if !matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24) {
        return None;
    }
    let scaled = decoder
        .scale(u16::try_from(out_w).ok()?, u16::try_from(out_h).ok()?)
        .ok()?;
    if (u32::from(scaled.0), u32::from(scaled.1)) != (out_w, out_h) {
        return None;
    }
    let data = decoder.decode().ok()?;
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => data,
        _ => {
            let mut rgb = Vec::with_capacity(data.len() * 3);
            rgb.extend(data.iter().flat_map(|&v| [v, v, v]));
            rgb
        }
    };
    RgbImage::from_raw(out_w, out_h, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_is_the_largest_that_leaves_twice_the_target() {
        // 12 MP for ViT-B/32 (224): 3000 / 4 = 750 >= 448.
        assert_eq!(reduction_for(4000, 3000, 224), 4);
        assert_eq!(reduction_for(3000, 4000, 224), 4);
        // Never more than 1/4, however large.
        assert_eq!(reduction_for(8000, 6000, 224), 4);
        assert_eq!(reduction_for(60_000, 60_000, 64), 4);
        // The boundary at 1/2: shortest edge 896 gives 448 exactly; 895 gives 448 too
        // (ceil), 894 gives 447.
        assert_eq!(reduction_for(1200, 896, 224), 2);
        assert_eq!(reduction_for(1200, 895, 224), 2);
        assert_eq!(reduction_for(1200, 894, 224), 1);
        // At 1/4: 4 * 448 = 1792; three pixels less still round up to 448.
        assert_eq!(reduction_for(2000, 1792, 224), 4);
        assert_eq!(reduction_for(2000, 1789, 224), 4);
        assert_eq!(reduction_for(2000, 1788, 224), 2);
        // Small photos and degenerate sizes stay at full scale.
        assert_eq!(reduction_for(640, 480, 224), 1);
        assert_eq!(reduction_for(1, 1, 224), 1);
        assert_eq!(reduction_for(0, 5000, 224), 1);
        assert_eq!(reduction_for(5000, 5000, 0), 1);
        // Only the shortest edge counts: a 100 px tall panorama is never reduced.
        assert_eq!(reduction_for(60_000, 100, 64), 1);
        // The tiny fixture model (64 px): 2 * 64 = 128.
        assert_eq!(reduction_for(640, 480, 64), 2);
        assert_eq!(reduction_for(2400, 1600, 64), 4);
        assert_eq!(reduction_for(1000, 250, 64), 1);
    }

    #[test]
    fn memory_bound_adds_up_its_parts() {
        // 4000 x 3000 baseline, 3 components, 1/8: B = 504 * 379, W * H = 500 * 375.
        let blocks = 504 * 379;
        let want = 3 * 504 * 4 * 128 + 3 * blocks + 7 * 500 * 375;
        assert_eq!(reduced_decode_bytes(4000, 3000, 8, 3, false), want);
        assert!(want < 3 << 20, "{want}");
        // Progressive keeps every coefficient: 128 bytes per block and component.
        let want = 3 * blocks * 128 + 3 * blocks + 7 * 500 * 375;
        assert_eq!(reduced_decode_bytes(4000, 3000, 8, 3, true), want);
        // 1/2: planes of s = 4, output 2000 x 1500.
        let want = 3 * 504 * 4 * 128 + 3 * blocks * 16 + 7 * 2000 * 1500;
        assert_eq!(reduced_decode_bytes(4000, 3000, 2, 3, false), want);
        // Always above the decoded RGB image itself, and under a third of the full-scale
        // RGB image (3 bytes per pixel) for a large baseline file at 1/4 or less.
        for (w, h) in [
            (4000u32, 3000u32),
            (3001, 4003),
            (1791, 897),
            (8, 8),
            (1, 1),
        ] {
            for r in [1u32, 2, 4, 8] {
                for c in [1u32, 3] {
                    for progressive in [false, true] {
                        let bound = reduced_decode_bytes(w, h, r, c, progressive);
                        let out = 3 * u64::from(w.div_ceil(r)) * u64::from(h.div_ceil(r));
                        assert!(bound >= out, "{w}x{h}/{r}");
                        if r >= 4 && !progressive && w >= 1000 {
                            assert!(bound < u64::from(w) * u64::from(h), "{w}x{h}/{r}");
                        }
                    }
                }
            }
        }
    }
}
