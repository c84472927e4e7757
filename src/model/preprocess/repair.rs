//! Second tries for files `image`'s decoders refuse but libpng, libjpeg or PIL read: a
//! repaired copy of the bytes (a JPEG Adobe segment too short to hold its fields dropped,
//! a PNG ancillary chunk with a bad checksum dropped, a BMP header PIL accepts rewritten in
//! the layout `image` reads, a GIF without any colour table given PIL's grey one) and a
//! lenient decoder for run-length-encoded BMPs with runs past a row's end or top-down
//! rows. Used only after the first decode failed, so a file that decodes is never touched;
//! a copy that still fails keeps the first error.

use image::RgbImage;

use super::{Format, PreprocessError};

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A repaired copy of `bytes`, or `None` when nothing here applies.
pub(super) fn repaired_bytes(format: Format, bytes: &[u8]) -> Option<Vec<u8>> {
    match format {
        Format::Png => png_without_bad_ancillary(bytes),
        Format::Bmp => bmp_header_as_windows(bytes),
        Format::Gif => gif_with_grey_table(bytes),
        Format::Jpeg => jpeg_without_short_adobe(bytes),
        Format::WebP => None,
    }
}

/// An APP14 (Adobe) segment shorter than its 12 bytes of fields: libjpeg ignores it,
/// zune-jpeg refuses the file. The copy leaves it out.
fn jpeg_without_short_adobe(bytes: &[u8]) -> Option<Vec<u8>> {
    let short = super::decode::jpeg_segments(bytes).find(|s| s.marker == 0xEE && s.length < 14)?;
    let end = short.at + 2 + short.length;
    Some([&bytes[..short.at], bytes.get(end..)?].concat())
}

/// libpng's rule for checksums: an ancillary chunk (lower-case first letter) whose CRC is
/// wrong is dropped with a warning; a critical one is an error (`None` here, so the
/// decoder's error stands).
fn png_without_bad_ancillary(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.get(..8)?.to_vec();
    let mut i = 8;
    let mut dropped = false;
    while let Some(length) = bytes.get(i..i + 4) {
        let length = u32::from_be_bytes(length.try_into().ok()?) as usize;
        let end = i.checked_add(12)?.checked_add(length)?;
        let Some(chunk) = bytes.get(i..end) else {
            break;
        };
        let stored = u32::from_be_bytes(chunk[8 + length..].try_into().ok()?);
        if crc32fast::hash(&chunk[4..8 + length]) == stored {
            out.extend_from_slice(chunk);
        } else if chunk[4] & 0x20 != 0 {
            dropped = true;
        } else {
            return None;
        }
        i = end;
    }
    out.extend_from_slice(bytes.get(i..).unwrap_or_default());
    dropped.then_some(out)
}

/// PIL reads two BMP headers `image` refuses: an OS/2 2.x header (16 to 64 bytes, the
/// first 40 laid out as Windows' BITMAPINFOHEADER) and a header whose plane count is not
/// 1 (PIL ignores it). The copy has a 40-byte header with one plane.
fn bmp_header_as_windows(bytes: &[u8]) -> Option<Vec<u8>> {
    let size = le32(bytes, 14)? as usize;
    let os2 = (16..=64).contains(&size) && !matches!(size, 40 | 52 | 56);
    let planes_at = if size == 12 { 22 } else { 26 };
    let planes = le16(bytes, planes_at)?;
    if !os2 && planes == 1 {
        return None;
    }
    let mut out = bytes.to_vec();
    if os2 {
        // OS/2 compression 3 and 4 are Huffman 1D and RLE24, not Windows' meanings.
        let compression = if size >= 20 { le32(bytes, 30)? } else { 0 };
        if compression > 2 {
            return None;
        }
        let mut header = [0u8; 40];
        let keep = size.min(40);
        header[..keep].copy_from_slice(bytes.get(14..14 + keep)?);
        header[..4].copy_from_slice(&40u32.to_le_bytes());
        let offset = i64::from(le32(bytes, 10)?) + 40 - size as i64;
        let offset = u32::try_from(offset).ok()?;
        out = [&bytes[..14], &header[..], bytes.get(14 + size..)?].concat();
        out[10..14].copy_from_slice(&offset.to_le_bytes());
    }
    let planes_at = if os2 { 26 } else { planes_at };
    out[planes_at..planes_at + 2].copy_from_slice(&1u16.to_le_bytes());
    Some(out)
}

/// A GIF with neither a global nor a local colour table: PIL shows its indices as grey
/// levels. The copy has that grey ramp as its global table.
fn gif_with_grey_table(bytes: &[u8]) -> Option<Vec<u8>> {
    let flags = *bytes.get(10)?;
    if flags & 0x80 != 0 {
        return None;
    }
    let grey: Vec<u8> = (0..=255u8).flat_map(|v| [v; 3]).collect();
    let screen = bytes.get(11..13)?;
    Some([&bytes[..10], &[flags | 0x87], screen, &grey, &bytes[13..]].concat())
}

/// A lenient decoder for 8- and 4-bit run-length-encoded BMPs (Windows headers), after
/// PIL's: a run past the end of a row is cut there, an absolute run may go on into the
/// next row, rows may be stored top-down, and an end-of-bitmap code leaves the rest at
/// index 0. `None` when the file is not such a BMP; `Truncated` when the data ends before
/// the image does without an end-of-bitmap code.
pub(super) fn bmp_rle(bytes: &[u8], max_pixels: u64) -> Option<Result<RgbImage, PreprocessError>> {
    let header = le32(bytes, 14)? as usize;
    let width = i32::from_le_bytes(bytes.get(18..22)?.try_into().ok()?);
    let height = i32::from_le_bytes(bytes.get(22..26)?.try_into().ok()?);
    let rle4 = match (le16(bytes, 28)?, le32(bytes, 30)?) {
        (8, 1) => false,
        (4, 2) => true,
        _ => return None,
    };
    if header < 40 || width <= 0 || height == 0 {
        return None;
    }
    let (w, h) = (width.unsigned_abs(), height.unsigned_abs());
    if u64::from(w) * u64::from(h) > max_pixels {
        let too_large = PreprocessError::TooLarge {
            width: w,
            height: h,
            max_pixels,
        };
        return Some(Err(too_large));
    }
    let palette_count = match le32(bytes, 46)? {
        0 => 1usize << if rle4 { 4 } else { 8 },
        n => (n as usize).min(256),
    };
    let palette = bytes.get(14 + header..)?;
    let colour = |i: u8| -> [u8; 3] {
        let at = usize::from(i) * 4;
        match palette.get(at..at + 3) {
            Some(c) if usize::from(i) < palette_count => [c[2], c[1], c[0]],
            _ => [0, 0, 0],
        }
    };
    let data = bytes.get(le32(bytes, 10)? as usize..)?;
    let (w, h) = (w as usize, h as usize);
    let indices = match rle_indices(data, w, h, rle4) {
        Some(indices) => indices,
        None => return Some(Err(PreprocessError::Truncated { format: "BMP" })),
    };
    let image = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let row = if height < 0 {
            y as usize
        } else {
            h - 1 - y as usize
        };
        image::Rgb(colour(indices[row * w + x as usize]))
    });
    Some(Ok(image))
}

/// The palette indices of `w` x `h` pixels in stored row order, or `None` when the data
/// ends first without an end-of-bitmap code.
fn rle_indices(data: &[u8], w: usize, h: usize, rle4: bool) -> Option<Vec<u8>> {
    let total = w * h;
    let mut out = vec![0u8; total];
    let nibble = |b: u8, k: usize| if k.is_multiple_of(2) { b >> 4 } else { b & 15 };
    let (mut pos, mut j) = (0usize, 0usize);
    while pos < total {
        let (n, b) = (*data.get(j)?, *data.get(j + 1)?);
        j += 2;
        match (n, b) {
            (0, 0) => pos = pos.div_ceil(w) * w,
            (0, 1) => return Some(out),
            (0, 2) => {
                let (right, up) = (*data.get(j)?, *data.get(j + 1)?);
                j += 2;
                pos = pos.saturating_add(usize::from(right) + usize::from(up).saturating_mul(w));
            }
            (0, count) => {
                let count = usize::from(count);
                let stored = if rle4 { count.div_ceil(2) } else { count };
                let run = data.get(j..j + stored)?;
                for k in 0..count {
                    let v = if rle4 { nibble(run[k / 2], k) } else { run[k] };
                    if let Some(p) = out.get_mut(pos + k) {
                        *p = v;
                    }
                }
                pos += count;
                j += stored + stored % 2;
            }
            (n, b) => {
                let run = usize::from(n).min(w - pos % w);
                for (k, p) in out[pos..pos + run].iter_mut().enumerate() {
                    *p = if rle4 { nibble(b, k) } else { b };
                }
                pos += run;
            }
        }
    }
    Some(out)
}
