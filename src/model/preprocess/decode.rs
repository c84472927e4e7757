//! The decoding details of [`super`]: what `image`'s decoders hand back turned into what
//! PIL's `Image.open(f)` + `exif_transpose` + `convert("RGB")` give, per file type
//! (alpha dropped, grey replicated, 16-bit samples clipped or cut to their high byte, the
//! first GIF frame on PIL's canvas, 16-bit BMP levels as PIL widens them), the EXIF/XMP
//! orientation PIL reads, and the end-of-image check libjpeg makes. No I/O, no panics.

use image::{DynamicImage, ImageDecoder, RgbImage};

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

/// Whether a JPEG has its end-of-image marker after the first scan. libjpeg (and so PIL,
/// without `LOAD_TRUNCATED_IMAGES`) refuses a file that ends early; zune-jpeg would fill the
/// missing part with grey, so the check is made here.
pub(super) fn jpeg_is_complete(bytes: &[u8]) -> bool {
    // Walk the marker segments from SOI to the first SOS so that an embedded thumbnail
    // (which has its own EOI) is skipped.
    let mut i = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while i < bytes.len() && bytes[i] == 0xFF && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if i + 4 > bytes.len() || bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xD9 {
            return false;
        }
        let length = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let next = i + 2 + length;
        if marker == 0xDA {
            return bytes
                .get(next.min(bytes.len())..)
                .is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]));
        }
        if length < 2 {
            return false;
        }
        i = next;
    }
}

/// The fewest bits the entropy-coded data of a Huffman-coded JPEG can take, from its
/// frame header: every 8x8 block of every component has its DC coefficient coded in some
/// scan, with a code of at least one bit (an EOB run covers only AC coefficients). So a file
/// shorter than this cannot hold the image it declares — zune-jpeg would fill the missing
/// blocks with grey after allocating the whole image (a 15 KB file claiming 13000 x 13000
/// took 1 GB and 3 to 9 s). `None` (no bound) for arithmetic-coded frames, which can code a
/// block in under a bit, and for headers this walk cannot read.
pub(super) fn jpeg_min_data_bits(bytes: &[u8]) -> Option<u64> {
    let mut i = 2usize;
    loop {
        while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        let length = usize::from(u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]));
        match marker {
            // Huffman-coded frames: baseline, extended, progressive, lossless.
            0xC0..=0xC3 => {
                let frame = bytes.get(i + 4..i + 2 + length)?;
                let height = u64::from(u16::from_be_bytes([*frame.get(1)?, *frame.get(2)?]));
                let width = u64::from(u16::from_be_bytes([*frame.get(3)?, *frame.get(4)?]));
                let count = usize::from(*frame.get(5)?);
                let factors: Vec<(u64, u64)> = (0..count)
                    .map(|c| {
                        let f = *frame.get(6 + 3 * c + 1)?;
                        Some((u64::from(f >> 4).max(1), u64::from(f & 15).max(1)))
                    })
                    .collect::<Option<_>>()?;
                let h_max = factors.iter().map(|f| f.0).max()?;
                let v_max = factors.iter().map(|f| f.1).max()?;
                let blocks = factors
                    .iter()
                    .map(|&(h, v)| {
                        (width * h).div_ceil(h_max).div_ceil(8)
                            * (height * v).div_ceil(v_max).div_ceil(8)
                    })
                    .sum();
                return Some(blocks);
            }
            // Arithmetic-coded (or hierarchical) frames, the end of the image, a scan
            // before any frame: no bound.
            0xC5..=0xCF | 0xD9 | 0xDA => return None,
            _ if length < 2 => return None,
            _ => i += 2 + length,
        }
    }
}

/// The EXIF orientation PIL's `exif_transpose` would use: the EXIF tag, else the XMP
/// `tiff:Orientation` (as `Image.getexif` falls back to), else none. Values outside 1..=8
/// mean no transform, as in PIL.
pub(super) fn orientation(decoder: &mut impl ImageDecoder) -> image::metadata::Orientation {
    let from_exif = match decoder.exif_metadata() {
        Ok(Some(exif)) => exif_orientation_value(&exif),
        _ => None,
    };
    let value = match from_exif {
        Some(v) => Some(v),
        None => match decoder.xmp_metadata() {
            Ok(Some(xmp)) => xmp_orientation_value(&xmp),
            _ => None,
        },
    };
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

/// The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, if present.
pub(super) fn exif_orientation_value(exif: &[u8]) -> Option<u16> {
    let exif = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let big = match exif.get(0..4)? {
        [0x49, 0x49, 42, 0] => false,
        [0x4D, 0x4D, 0, 42] => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = exif.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = exif.get(at..at + 4)?;
        Some(if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|n| {
        let entry = ifd + 2 + n * 12;
        if u16_at(entry)? != 0x0112 {
            return None;
        }
        // SHORT (3) values sit in the first two bytes of the value field; PIL also reads a
        // LONG (4) the same way.
        match u16_at(entry + 2)? {
            3 => u16_at(entry + 8),
            4 => u32_at(entry + 8).and_then(|v| u16::try_from(v).ok()),
            _ => None,
        }
    })
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
/// alpha is dropped (never composited), grey is replicated, a 16-bit grey PNG (PIL's
/// `I;16`) is clipped to 255, and 16-bit colour or grey-with-alpha PNGs (which PIL unpacks
/// to 8 bits) keep each sample's high byte.
pub(super) fn to_rgb(
    image: DynamicImage,
    format: Format,
    bytes: &[u8],
) -> Result<RgbImage, PreprocessError> {
    let (w, h) = (image.width(), image.height());
    let from_fn = |data: Vec<u8>| {
        RgbImage::from_raw(w, h, data).ok_or(PreprocessError::Decode {
            format: format.name(),
            message: "the decoder returned fewer pixels than the image declares".to_string(),
        })
    };
    let clip16 = |v: u16| u8::try_from(v).unwrap_or(u8::MAX);
    let high = |v: u16| (v >> 8) as u8;
    match image {
        DynamicImage::ImageRgb8(rgb) => Ok(rgb),
        DynamicImage::ImageRgba8(rgba) => from_fn(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        DynamicImage::ImageLuma8(l) => {
            from_fn(l.as_raw().iter().flat_map(|&v| [v, v, v]).collect())
        }
        DynamicImage::ImageLumaA8(la) => from_fn(
            la.as_raw()
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0]])
                .collect(),
        ),
        DynamicImage::ImageLuma16(l) => from_fn(
            l.as_raw()
                .iter()
                .flat_map(|&v| {
                    let v = clip16(v);
                    [v, v, v]
                })
                .collect(),
        ),
        DynamicImage::ImageLumaA16(la) => {
            // A 16-bit grey PNG with a tRNS chunk still opens as `I;16` in PIL (clipped);
            // a real grey+alpha PNG unpacks to its high bytes.
            let grey_with_trns = png_color_type(bytes) == Some(0);
            let f = if grey_with_trns { clip16 } else { high };
            from_fn(
                la.as_raw()
                    .chunks_exact(2)
                    .flat_map(|p| {
                        let v = f(p[0]);
                        [v, v, v]
                    })
                    .collect(),
            )
        }
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

/// The colour type byte of a PNG's IHDR chunk.
fn png_color_type(bytes: &[u8]) -> Option<u8> {
    (bytes.get(12..16)? == b"IHDR").then(|| bytes.get(25).copied())?
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
