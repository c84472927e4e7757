//! Small JPEG thumbnails for the result grid, made from the already decoded (and
//! EXIF-oriented) image so a photo is decoded once for both its embedding and its preview.
//! Thumbnails are for display only: their resampling does not need to match any reference.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::RgbImage;

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("the thumbnail could not be encoded: {0}")]
    Encode(String),
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
}
