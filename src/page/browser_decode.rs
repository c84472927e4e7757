//! Photos our decoders refuse but the browser can show (AVIF everywhere, HEIC in Safari):
//! when the browser's own decoder is tried, how large a picture it may hand back, and how
//! such photos are marked ("decoded by the browser", not PIL-exact).
//!
//! The rule: only a refusal of the *format* (`UnknownFormat`, `UnsupportedFormat`) is worth
//! a second decoder. A file refused as empty, truncated, corrupt or too large would be
//! refused by the browser too (or, too large, must not be decoded at all), so it keeps our
//! sentence. A picture the browser decodes passes the same pixel bound as ours, checked on
//! the size the file declares (`ispe`, for the ISO-BMFF family) before the browser decodes
//! it and again on the decoded size before any RGBA buffer exists; then it goes through
//! our resize, crop and normalisation (`model::preprocess`), only the decode differs.
//!
//! It must not decode anything itself or name the browser's API: `web::worker::browser`
//! does the decoding. Reference: issue 12 item 3; Pillow's `MAX_IMAGE_PIXELS` bound
//! (`model::preprocess::DEFAULT_MAX_PIXELS`); ISO/IEC 23008-12 (`ftyp` brands, `ispe`).

use crate::model::preprocess::PreprocessError;

/// The words on a tile (and its tooltip) whose photo the browser decoded.
pub const MARK: &str = "decoded by the browser";

/// The tooltip of that mark.
pub const MARK_TITLE: &str =
    "Decoded by the browser, not by clipseek's PIL-exact decoders: its pixels, and so its \
     embedding, may differ slightly from the CLI's.";

/// Whether the browser's decoder is worth trying after ours refused a file this way.
pub fn try_browser(error: &PreprocessError) -> bool {
    matches!(
        error,
        PreprocessError::UnknownFormat { .. } | PreprocessError::UnsupportedFormat { .. }
    )
}

/// Whether a file's first bytes (16 are enough) name an ISO-BMFF image that a browser may
/// decode though we cannot (AVIF, HEIC/HEIF): such a file goes to a worker instead of
/// being refused by its head.
pub fn head_for_browser(head: &[u8]) -> bool {
    if head.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let brand = head.get(8..12).unwrap_or_default();
    const BRANDS: &[&[u8]] = &[
        b"avif", b"avis", b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
    ];
    BRANDS.contains(&brand)
}

/// The largest picture an ISO-BMFF file declares in its `ispe` (image spatial extent)
/// properties, width by height; `None` when it declares none (then only the decoded size
/// is checked).
pub fn declared_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut best: Option<(u32, u32)> = None;
    let mut at = 0;
    while let Some(found) = find(bytes.get(at..)?, b"ispe") {
        let start = at + found + 4;
        // version and flags (4 bytes), then width and height, big-endian.
        let be = |o: usize| -> Option<u32> {
            let b = bytes.get(start + o..start + o + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        if let (Some(w), Some(h)) = (be(4), be(8)) {
            let area = |s: (u32, u32)| u64::from(s.0) * u64::from(s.1);
            if best.is_none_or(|b| area((w, h)) > area(b)) {
                best = Some((w, h));
            }
        }
        at = start;
    }
    best
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Refuses a picture of more than `max_pixels` pixels (our sentence for it).
pub fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<(), String> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PreprocessError::TooLarge {
            width,
            height,
            max_pixels,
        }
        .to_string());
    }
    if width == 0 || height == 0 {
        return Err(format!(
            "The browser decoded it to {width}x{height} pixels, an empty picture."
        ));
    }
    Ok(())
}

/// The sentence when the browser could not decode it either: ours first, then why.
pub fn both_failed(ours: &PreprocessError, browser: &str) -> String {
    let ours = ours.to_string();
    let ours = ours.trim_end_matches('.');
    format!("{ours}; this browser cannot decode it either ({browser}).")
}

/// RGBA bytes (what a canvas hands back) to RGB: alpha dropped without compositing, as
/// our decoders (and PIL's `convert("RGB")`) do.
pub fn rgba_to_rgb(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 28];
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(brand);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }

    #[test]
    fn only_a_refused_format_tries_the_browser() {
        let unsupported = PreprocessError::UnsupportedFormat { format: "AVIF" };
        let unknown = PreprocessError::UnknownFormat { magic: "00".into() };
        assert!(try_browser(&unsupported));
        assert!(try_browser(&unknown));
        for refused in [
            PreprocessError::Empty,
            PreprocessError::Truncated { format: "JPEG" },
            PreprocessError::Decode {
                format: "PNG",
                message: "bad CRC".into(),
            },
            PreprocessError::TooLarge {
                width: 20_000,
                height: 20_000,
                max_pixels: 1,
            },
        ] {
            assert!(!try_browser(&refused), "{refused}");
        }
    }

    #[test]
    fn avif_and_heic_heads_go_to_the_browser_others_do_not() {
        for brand in [b"avif", b"heic", b"mif1", b"heix"] {
            assert!(head_for_browser(&ftyp(brand)), "{brand:?}");
        }
        assert!(!head_for_browser(&ftyp(b"isom")), "an MP4 video");
        assert!(!head_for_browser(b"II*\0 a TIFF file"));
        assert!(!head_for_browser(b"\xFF\xD8\xFF"));
        assert!(!head_for_browser(b""));
    }

    fn ispe(w: u32, h: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 20];
        b.extend_from_slice(b"ispe");
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b
    }

    #[test]
    fn the_largest_declared_extent_is_the_pictures() {
        let mut file = ftyp(b"avif");
        assert_eq!(declared_size(&file), None);
        // A grid of 512x512 tiles making a 2048x1024 picture.
        file.extend(ispe(512, 512));
        file.extend(ispe(2048, 1024));
        file.extend(ispe(512, 512));
        assert_eq!(declared_size(&file), Some((2048, 1024)));
        // A box cut off after its name declares nothing.
        let mut cut = ftyp(b"avif");
        cut.extend_from_slice(b"ispe\0\0\0\0\0\0");
        assert_eq!(declared_size(&cut), None);
    }

    #[test]
    fn the_pixel_bound_is_ours() {
        assert!(check_size(100, 100, 10_000).is_ok());
        let e = check_size(101, 100, 10_000).err().unwrap_or_default();
        assert!(e.contains("101x100 pixels, more than the 10000"), "{e}");
        assert!(check_size(0, 5, 10_000).is_err());
    }

    #[test]
    fn both_sentences_are_said() {
        let ours = PreprocessError::UnsupportedFormat { format: "HEIC" };
        let line = both_failed(
            &ours,
            "InvalidStateError: The source image cannot be decoded.",
        );
        assert!(line.starts_with("The file is a HEIC image"), "{line}");
        assert!(
            line.contains("(use JPEG, PNG, WebP, GIF or BMP); this browser"),
            "{line}"
        );
        assert!(line.ends_with("cannot be decoded.)."), "{line}");
    }

    #[test]
    fn alpha_is_dropped_without_compositing() {
        assert_eq!(
            rgba_to_rgb(&[1, 2, 3, 0, 9, 8, 7, 255]),
            vec![1, 2, 3, 9, 8, 7]
        );
    }
}
