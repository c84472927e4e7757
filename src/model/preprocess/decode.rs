//! The decoding details of [`super`]: what `image`'s decoders hand back turned into what
//! PIL's `Image.open(f)` + `exif_transpose` + `convert("RGB")` give, per file type
//! (alpha dropped, grey replicated, 16-bit samples cut to their high byte, the
//! first GIF frame on PIL's canvas, 16-bit BMP levels as PIL widens them), the EXIF/XMP
//! orientation PIL reads (and the EXIF date taken), and the end-of-data checks libjpeg
//! makes. No I/O, no panics.

use image::{DynamicImage, ImageDecoder, RgbImage};

use super::exif::{date_taken, orientation_value};
use super::{Format, PreprocessError};

pub(super) fn image_error(format: &'static str, e: image::ImageError) -> PreprocessError {
    use image::ImageError as E;
    match e {
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            PreprocessError::Truncated { format }
        }
        E::Limits(_) => PreprocessError::Decode {
            format,
            message: "it needs more memory than an image we accept may use".to_string(),
        },
        other => {
            let message = other.to_string();
            let lower = message.to_ascii_lowercase();
            if lower.contains("unexpected end")
                || lower.contains("eof")
                || lower.contains("truncated")
            {
                PreprocessError::Truncated { format }
            } else {
                PreprocessError::Decode {
                    format,
                    message: message.trim_end_matches('.').to_string(),
                }
            }
        }
    }
}

/// One marker segment of a JPEG header: the marker byte, where its 0xFF sits, and its
/// length field (0 for EOI, which has none).
pub(super) struct Segment {
    pub marker: u8,
    pub at: usize,
    pub length: usize,
}

/// The marker segments of a JPEG from the one after SOI up to the first SOS (or EOI),
/// read as libjpeg reads them: bytes that are not a marker (junk some writers leave
/// between segments) are skipped up to the next marker, as are fill bytes (0xFF).
pub(super) fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let mut i = 2usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let marker = loop {
            while *bytes.get(i)? != 0xFF {
                i += 1;
            }
            while bytes.get(i + 1) == Some(&0xFF) {
                i += 1;
            }
            match *bytes.get(i + 1)? {
                0x00 => i += 2,
                marker => break marker,
            }
        };
        let at = i;
        if marker == 0xD9 {
            done = true;
            return Some(Segment {
                marker,
                at,
                length: 0,
            });
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]));
        done = marker == 0xDA || length < 2;
        i += 2 + length;
        Some(Segment { marker, at, length })
    })
}

/// Whether a JPEG has its end-of-image marker after the first scan (an embedded
/// thumbnail, which has its own EOI, is skipped by walking the segments).
pub(super) fn jpeg_has_end(bytes: &[u8]) -> bool {
    jpeg_segments(bytes)
        .find(|s| s.marker == 0xDA || s.marker == 0xD9)
        .is_some_and(|s| {
            s.marker == 0xDA
                && bytes
                    .get((s.at + 2 + s.length).min(bytes.len())..)
                    .is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]))
        })
}

/// For a JPEG without an end marker: whether its scans still hold every block, i.e.
/// zune-jpeg in strict mode decodes it without running out of data (a camera that stopped
/// writing after the last scan). libjpeg reads such a file; one whose data ends early
/// is refused, where zune-jpeg alone would fill the missing part with grey. Data missing
/// only inside the last row of blocks (at most 16 pixel rows) is not noticed.
pub(super) fn jpeg_scans_complete(bytes: &[u8]) -> bool {
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let cursor = zune_core::bytestream::ZCursor::new(bytes);
    zune_jpeg::JpegDecoder::new_with_options(cursor, options)
        .decode()
        .is_ok()
}

/// The fewest bits the entropy-coded data of a Huffman-coded JPEG can take, from its
/// frame header: every 8x8 block of every component has its DC coefficient coded in some
/// scan, with a code of at least one bit (an EOB run covers only AC coefficients). So a file
/// shorter than this cannot hold the image it declares — zune-jpeg would fill the missing
/// blocks with grey after allocating the whole image (a 15 KB file claiming 13000 x 13000
/// took 1 GB and 3 to 9 s). `None` (no bound) for arithmetic-coded frames, which can code a
/// block in under a bit, and for headers this walk cannot read.
pub(super) fn jpeg_min_data_bits(bytes: &[u8]) -> Option<u64> {
    let frame = jpeg_segments(bytes)
        .find(|s| matches!(s.marker, 0xC0..=0xC3 | 0xC5..=0xCF | 0xD9 | 0xDA))?;
    // Huffman-coded frames: baseline, extended, progressive, lossless. Arithmetic-coded
    // (or hierarchical) frames, the end of the image, a scan before any frame: no bound.
    if !matches!(frame.marker, 0xC0..=0xC3) {
        return None;
    }
    let body = bytes.get(frame.at + 4..frame.at + 2 + frame.length)?;
    let height = u64::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?]));
    let width = u64::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
    let count = usize::from(*body.get(5)?);
    let factors: Vec<(u64, u64)> = (0..count)
        .map(|c| {
            let f = *body.get(6 + 3 * c + 1)?;
            Some((u64::from(f >> 4).max(1), u64::from(f & 15).max(1)))
        })
        .collect::<Option<_>>()?;
    let h_max = factors.iter().map(|f| f.0).max()?;
    let v_max = factors.iter().map(|f| f.1).max()?;
    let blocks = factors
        .iter()
        .map(|&(h, v)| {
            (width * h).div_ceil(h_max).div_ceil(8) * (height * v).div_ceil(v_max).div_ceil(8)
        })
        .sum();
    Some(blocks)
}

/// What a decoder's EXIF (and XMP) metadata says: the orientation PIL's `exif_transpose`
/// would use — the EXIF tag, else the XMP `tiff:Orientation` (as `Image.getexif` falls back
/// to), else none; values outside 1..=8 mean no transform, as in PIL — and the date the
/// photo was taken ([`super::exif::date_taken`]).
pub(super) fn exif_facts(
    decoder: &mut impl ImageDecoder,
) -> (image::metadata::Orientation, Option<i64>) {
    let exif = decoder.exif_metadata().ok().flatten();
    let xmp = || decoder.xmp_metadata().ok().flatten();
    (
        oriented_by(exif.as_deref(), xmp),
        exif.as_deref().and_then(date_taken),
    )
}

/// The orientation from an EXIF block, else from the XMP packet `xmp` gives.
pub(super) fn oriented_by(
    exif: Option<&[u8]>,
    xmp: impl FnOnce() -> Option<Vec<u8>>,
) -> image::metadata::Orientation {
    let value = exif
        .and_then(orientation_value)
        .or_else(|| xmp().as_deref().and_then(xmp_orientation_value));
    orientation_of(value)
}

/// The transform for an orientation tag value (none outside 1..=8, as in PIL).
pub(super) fn orientation_of(value: Option<u16>) -> image::metadata::Orientation {
    use image::metadata::Orientation;
    value
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// `tiff:Orientation="N"` or `<tiff:Orientation>N` in an XMP packet.
pub(super) fn xmp_orientation_value(xmp: &[u8]) -> Option<u16> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut rest = xmp;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        let after = &rest[at + KEY.len()..];
        let digit = match after {
            [b'=', b'"', d, ..] | [b'>', d, ..] => Some(*d),
            _ => None,
        };
        if let Some(d) = digit.filter(u8::is_ascii_digit) {
            return Some(u16::from(d - b'0'));
        }
        rest = after;
    }
    None
}

pub(super) fn orient(rgb: RgbImage, orientation: image::metadata::Orientation) -> RgbImage {
    if orientation == image::metadata::Orientation::NoTransforms {
        return rgb;
    }
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    image.into_rgb8()
}

/// `Image.convert("RGB")` for what each decoder hands back, following PIL's modes:
/// alpha is dropped (never composited) and grey is replicated. Every 16-bit sample keeps
/// its high byte (`v >> 8`), as PIL does for 16-bit colour and grey + alpha PNGs. The one
/// departure from PIL: a 16-bit grey PNG (PIL's `I;16`), which PIL clips to 255 (the
/// photo turns white and unsearchable), is scaled the same way.
pub(super) fn to_rgb(image: DynamicImage, format: Format) -> Result<RgbImage, PreprocessError> {
    let (w, h) = (image.width(), image.height());
    let from_fn = |data: Vec<u8>| {
        RgbImage::from_raw(w, h, data).ok_or(PreprocessError::Decode {
            format: format.name(),
            message: "the decoder returned fewer pixels than the image declares".to_string(),
        })
    };
    let high = |v: u16| (v >> 8) as u8;
    let grey = |samples: &[u8], step: usize| -> Vec<u8> {
        samples
            .iter()
            .step_by(step)
            .flat_map(|&v| [v, v, v])
            .collect()
    };
    let grey16 = |samples: &[u16], step: usize| -> Vec<u8> {
        samples
            .iter()
            .step_by(step)
            .flat_map(|&v| [high(v); 3])
            .collect()
    };
    match image {
        DynamicImage::ImageRgb8(rgb) => Ok(rgb),
        DynamicImage::ImageRgba8(rgba) => from_fn(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        DynamicImage::ImageLuma8(l) => from_fn(grey(l.as_raw(), 1)),
        DynamicImage::ImageLumaA8(la) => from_fn(grey(la.as_raw(), 2)),
        DynamicImage::ImageLuma16(l) => from_fn(grey16(l.as_raw(), 1)),
        DynamicImage::ImageLumaA16(la) => from_fn(grey16(la.as_raw(), 2)),
        DynamicImage::ImageRgb16(rgb) => from_fn(rgb.as_raw().iter().map(|&v| high(v)).collect()),
        DynamicImage::ImageRgba16(rgba) => from_fn(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [high(p[0]), high(p[1]), high(p[2])])
                .collect(),
        ),
        other => Err(PreprocessError::Decode {
            format: format.name(),
            message: format!("its pixel format {:?} is not supported", other.color()),
        }),
    }
}

/// Bytes per pixel of a GIF's logical screen that decoding it takes: the `image` crate
/// composes the first frame on an RGBA canvas of the whole screen (4), then it becomes RGB
/// (3), however small the frame. A JPEG or 8-bit PNG takes 3 to 4.
const GIF_BYTES_PER_PIXEL: u64 = 7;

/// The most logical-screen pixels a GIF may declare under a limit of `max_pixels`: as many
/// as fit in the memory an 8-bit RGB image at the limit takes (3 bytes a pixel). At the
/// default limit that is 76.7 Mpx, about 537 MB to decode, which fits one wasm32 worker
/// (4 GiB of linear memory, never given back) beside the model; a 13000 x 13000 screen
/// around a tiny frame (1.16 GB to decode) is refused from its header.
pub(super) fn gif_max_pixels(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(3) / GIF_BYTES_PER_PIXEL
}

/// PIL draws the first GIF frame on a canvas filled with palette index `transparency`
/// (or 0 when the frame has none); the `image` crate leaves black outside the frame.
/// Repaint that area with PIL's colour. Does nothing when the frame covers the canvas.
pub(super) fn gif_fill_outside_first_frame(bytes: &[u8], rgb: &mut RgbImage) {
    let Some(first) = gif_first_frame(bytes) else {
        return;
    };
    let (w, h) = (rgb.width(), rgb.height());
    let covers = first.left == 0
        && first.top == 0
        && u32::from(first.width) >= w
        && u32::from(first.height) >= h;
    if covers {
        return;
    }
    let index = usize::from(first.transparency.unwrap_or(0));
    let color = first
        .palette
        .get(index * 3..index * 3 + 3)
        .map_or([0, 0, 0], |c| [c[0], c[1], c[2]]);
    let (x0, y0) = (u32::from(first.left), u32::from(first.top));
    let (x1, y1) = (x0 + u32::from(first.width), y0 + u32::from(first.height));
    for (x, y, p) in rgb.enumerate_pixels_mut() {
        if x < x0 || x >= x1 || y < y0 || y >= y1 {
            p.0 = color;
        }
    }
}

/// 16-bit BMPs hold 5- or 6-bit channels. PIL widens them with `v * 255 / max`
/// (truncating); the `image` crate rounds. Both are one-to-one on the few levels, so map
/// `image`'s levels to PIL's. Only the two layouts PIL reads (5-5-5 and 5-6-5) are mapped.
pub(super) fn bmp16_levels_like_pil(bytes: &[u8], rgb: &mut RgbImage) {
    let le16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let le32 = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header_size = le32(14).unwrap_or(0);
    if header_size < 40 || le16(28) != Some(16) {
        return;
    }
    let green_bits = match le32(30) {
        Some(0) => 5,
        // BI_BITFIELDS: the masks follow the 40-byte header (or sit inside a V4/V5 header).
        Some(3) => match (le32(54), le32(58), le32(62)) {
            (Some(0x7C00), Some(0x03E0), Some(0x001F)) => 5,
            (Some(0xF800), Some(0x07E0), Some(0x001F)) => 6,
            _ => return,
        },
        _ => return,
    };
    let table = |bits: u32| {
        let max = (1u32 << bits) - 1;
        let mut map: [u8; 256] = std::array::from_fn(|i| i as u8);
        for v in 0..=max {
            let rounded = (v * 255 + max / 2) / max;
            map[rounded as usize] = (v * 255 / max) as u8;
        }
        map
    };
    let five = table(5);
    let green = if green_bits == 6 { table(6) } else { five };
    for p in rgb.pixels_mut() {
        p.0 = [
            five[usize::from(p.0[0])],
            green[usize::from(p.0[1])],
            five[usize::from(p.0[2])],
        ];
    }
}

struct GifFrame<'a> {
    left: u16,
    top: u16,
    width: u16,
    height: u16,
    transparency: Option<u8>,
    palette: &'a [u8],
}

/// The first image descriptor of a GIF, its transparency index and the palette it uses.
fn gif_first_frame(bytes: &[u8]) -> Option<GifFrame<'_>> {
    let le = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    };
    let flags = *bytes.get(10)?;
    let mut i = 13;
    let mut palette: &[u8] = &[];
    if flags & 0x80 != 0 {
        let len = 3 << ((flags & 7) + 1);
        palette = bytes.get(i..i + len)?;
        i += len;
    }
    let mut transparency = None;
    loop {
        match *bytes.get(i)? {
            0x21 => {
                let label = *bytes.get(i + 1)?;
                i += 2;
                if label == 0xF9 && *bytes.get(i)? >= 4 {
                    let packed = *bytes.get(i + 1)?;
                    if packed & 1 != 0 {
                        transparency = Some(*bytes.get(i + 4)?);
                    }
                }
                // Skip the extension's sub-blocks.
                loop {
                    let n = usize::from(*bytes.get(i)?);
                    i += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let local = *bytes.get(i + 9)?;
                if local & 0x80 != 0 {
                    let len = 3 << ((local & 7) + 1);
                    palette = bytes.get(i + 10..i + 10 + len)?;
                }
                return Some(GifFrame {
                    left: le(i + 1)?,
                    top: le(i + 3)?,
                    width: le(i + 5)?,
                    height: le(i + 7)?,
                    transparency,
                    palette,
                });
            }
            _ => return None,
        }
    }
}
