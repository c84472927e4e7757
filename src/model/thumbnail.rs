//! Small JPEG thumbnails for the result grid, made from the already decoded (and
//! EXIF-oriented) image so a photo is decoded once for both its embedding and its preview.
//! Thumbnails are for display only: their resampling does not need to match any reference.
//! One exception to "decoded once": a 16-bit grey PNG, which the reference clips to 255 (so
//! the model sees it nearly white), gets a display copy scaled to 8 bits ([`display_copy`]).

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::RgbImage;

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("the thumbnail could not be encoded: {0}")]
    Encode(String),
}

/// For a 16-bit grey PNG (PIL's `I;16`, which the model's pixels clip at 255, so it would
/// look white), the picture as people see it: 16 bits scaled to 8. `None` for every other
/// file (its decoded pixels are already what people see). A display copy that cannot be
/// decoded is `None` too: the thumbnail then shows what the model saw.
pub fn display_copy(bytes: &[u8]) -> Option<RgbImage> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let grey16 = bytes.len() > 25
        && bytes.starts_with(SIGNATURE)
        && &bytes[12..16] == b"IHDR"
        && bytes[24] == 16
        && bytes[25] == 0;
    if !grey16 {
        return None;
    }
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .ok()
        .map(|i| i.to_rgb8())
}

/// Scales `rgb` to fit in `max_side` x `max_side` (never enlarging) and encodes it as a
/// JPEG of the given quality (1-100).
pub fn thumbnail_jpeg(
    rgb: &RgbImage,
    max_side: u32,
    quality: u8,
) -> Result<Vec<u8>, ThumbnailError> {
    let (w, h) = rgb.dimensions();
    let longest = w.max(h).max(1);
    let scaled;
    let img = if longest > max_side {
        let tw = ((u64::from(w) * u64::from(max_side)) / u64::from(longest)).max(1) as u32;
        let th = ((u64::from(h) * u64::from(max_side)) / u64::from(longest)).max(1) as u32;
        scaled = image::imageops::resize(rgb, tw, th, FilterType::Triangle);
        &scaled
    } else {
        rgb
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(img)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_the_box_and_decodes() -> Result<(), Box<dyn std::error::Error>> {
        let img = RgbImage::from_fn(1000, 400, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 9])
        });
        let jpeg = thumbnail_jpeg(&img, 256, 80)?;
        let back = image::load_from_memory(&jpeg)?;
        assert_eq!((back.width(), back.height()), (256, 102));
        let tiny = RgbImage::new(3, 2);
        let back = image::load_from_memory(&thumbnail_jpeg(&tiny, 256, 80)?)?;
        assert_eq!((back.width(), back.height()), (3, 2));
        Ok(())
    }

    #[test]
    fn a_16_bit_grey_png_gets_a_display_copy_and_nothing_else_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
        let grey16 = read("grey16.png");
        let Some(copy) = display_copy(&grey16) else {
            panic!("grey16.png: no display copy");
        };
        let mean = copy.pixels().map(|p| f64::from(p[0])).sum::<f64>() / copy.len() as f64 * 3.0;
        assert!(
            mean < 250.0,
            "the display copy is still white (mean {mean})"
        );
        for name in [
            "grey.png",
            "rgb48.png",
            "grey-alpha.png",
            "landscape.jpg",
            "palette.gif",
        ] {
            assert!(display_copy(&read(name)).is_none(), "{name}");
        }
        assert!(display_copy(b"\x89PNG").is_none());
    }
}
