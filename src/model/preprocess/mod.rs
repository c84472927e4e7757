//! Image preprocessing: encoded image bytes to the `[3, H, W]` pixel tensor a CLIP vision
//! tower takes.
//!
//! The reference is HF transformers' slow `CLIPImageProcessor` (transformers 4.57, Pillow
//! 13) applied after `PIL.ImageOps.exif_transpose`: decode, apply the EXIF orientation,
//! `Image.convert("RGB")`, resize the shortest edge with PIL's bicubic filter (antialiased
//! when shrinking, `reducing_gap=None`), centre-crop (zero-padding when the image is smaller
//! than the crop), rescale by `rescale_factor` in float64, then normalise in float32. Every
//! step after decoding is bit-exact with that pipeline: the resize is a port of the
//! semantics of Pillow's fixed-point `ImagingResample` (two separable passes, 22-bit
//! coefficients, a uint8 image between the passes). Decoding uses the `image` crate, whose
//! JPEG decoder (zune-jpeg) differs from libjpeg-turbo by a level or so on some pixels; the
//! colour conversions follow what PIL does for each file type (alpha dropped without
//! compositing, 16-bit samples reduced to their high byte, CMYK with Adobe polarity, the
//! first GIF frame on PIL's canvas), with one departure: PIL clips 16-bit grey PNGs at 255
//! (white), we scale them to 8 bits like every other 16-bit sample.
//!
//! The model's path ([`Preprocessor::decode_for_model`], [`Preprocessor::preprocess`])
//! departs from that reference on purpose for large JPEGs: they are decoded at 1/2 or 1/4
//! scale from their DCT coefficients when the reduced image's shortest edge is still at
//! least twice the model's input (`reduced.rs`), several times faster and smaller in memory,
//! within the parity bar. [`Preprocessor::decode`] is always full scale.
//!
//! This module does no I/O and spawns nothing: callers hand in bytes, so it runs the same
//! natively and on wasm32. It refuses decompression bombs from the declared size before any
//! pixel buffer is allocated, and never panics on bad input.

mod decode;
pub mod exif;
mod reduced;
mod repair;
mod resize;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::config::PreprocessConfig;
use decode::*;
pub use reduced::{reduced_decode_bytes, reduction_for};
use resize::resize_box_window;
#[cfg(test)]
use resize::{coefficients, PRECISION_BITS};
pub use resize::{resize_bicubic, resize_window};

/// PIL's `Image.MAX_IMAGE_PIXELS * 2`: above this many pixels Pillow raises
/// `DecompressionBombError`, and so do we.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// Why an image could not be turned into pixels.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("The file is empty.")]
    Empty,
    /// `magic`: the first bytes, in hex, for logs.
    #[error("The file is not a JPEG, PNG, WebP, GIF or BMP image.")]
    UnknownFormat { magic: String },
    #[error(
        "The file is a {format} image, a format we cannot read (use JPEG, PNG, WebP, GIF or BMP)."
    )]
    UnsupportedFormat { format: &'static str },
    #[error("The image is {width}x{height} pixels, more than the {max_pixels} we accept.")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("The {format} file is truncated.")]
    Truncated { format: &'static str },
    #[error("The {format} file could not be decoded: {message}.")]
    Decode {
        format: &'static str,
        message: String,
    },
    #[error("The output buffer holds {got} values but the pixels need {expected}.")]
    OutputLength { expected: usize, got: usize },
}

/// A format we can decode, found from the file's first bytes (never from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Gif => "GIF",
            Format::WebP => "WebP",
            Format::Bmp => "BMP",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Gif => ImageFormat::Gif,
            Format::WebP => ImageFormat::WebP,
            Format::Bmp => ImageFormat::Bmp,
        }
    }
}

fn sniff(bytes: &[u8]) -> Result<Format, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let riff = |tag: &[u8]| bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == tag;
    // ISO-BMFF (HEIF/AVIF): an `ftyp` box whose major or compatible brands name the codec.
    let ftyp_brands: Vec<&[u8]> = match bytes.get(0..4) {
        Some(size) if bytes.get(4..8) == Some(b"ftyp") => {
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
            let body = bytes.get(8..size.min(bytes.len())).unwrap_or_default();
            body.chunks_exact(4)
                .filter(|b| *b != [0, 0, 0, 0])
                .collect()
        }
        _ => Vec::new(),
    };
    let brand = |names: &[&[u8]]| ftyp_brands.iter().any(|b| names.contains(b));
    if bytes.starts_with(b"\xFF\xD8\xFF") {
        Ok(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Format::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Ok(Format::Gif)
    } else if riff(b"WEBP") {
        Ok(Format::WebP)
    } else if bytes.starts_with(b"BM") && bytes.len() >= 18 {
        Ok(Format::Bmp)
    } else if brand(&[b"avif", b"avis"]) {
        Err(PreprocessError::UnsupportedFormat { format: "AVIF" })
    } else if brand(&[
        b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1",
    ]) {
        Err(PreprocessError::UnsupportedFormat { format: "HEIC" })
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Err(PreprocessError::UnsupportedFormat { format: "TIFF" })
    } else {
        let magic: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(PreprocessError::UnknownFormat {
            magic: magic.join(" "),
        })
    }
}

/// Whether a JPEG's bytes are enough for the blocks its frame declares (see
/// [`jpeg_min_data_bits`]); true when no bound is known.
fn jpeg_data_can_hold(bytes: &[u8]) -> bool {
    jpeg_min_data_bits(bytes).is_none_or(|bits| (bytes.len() as u64).saturating_mul(8) >= bits)
}

/// The width and height in a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((be(16)?, be(20)?))
}

/// Turns encoded images into CLIP pixel tensors, as configured by `preprocessor_config.json`.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    config: PreprocessConfig,
    max_pixels: u64,
    /// Whether [`Preprocessor::decode_for_model`] may decode large JPEGs at a reduced scale.
    reduced_decode: bool,
    /// `normalise(rescale(v))` for every 8-bit level `v`, per channel: the float work of the
    /// reference done once, in its order and precision.
    levels: [[f32; 256]; 3],
}

impl Preprocessor {
    /// A preprocessor for this configuration, refusing images above [`DEFAULT_MAX_PIXELS`].
    pub fn new(config: PreprocessConfig) -> Self {
        let levels = level_table(&config);
        Self {
            config,
            max_pixels: DEFAULT_MAX_PIXELS,
            reduced_decode: true,
            levels,
        }
    }

    /// Refuses images with more than `max_pixels` pixels (their declared size).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// With `false`, [`Self::decode_for_model`] (and so [`Self::preprocess`]) always decodes
    /// at full scale, as [`Self::decode`] does (for comparisons and benchmarks).
    pub fn with_reduced_decode(mut self, reduced: bool) -> Self {
        self.reduced_decode = reduced;
        self
    }

    /// The most pixels an image may declare (see [`Self::with_max_pixels`]).
    pub fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// The configuration this preprocessor follows.
    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// `[3, crop_height, crop_width]`: the shape of every tensor when centre-cropping is on
    /// (it is for every CLIP checkpoint).
    pub fn output_shape(&self) -> [usize; 3] {
        [
            3,
            self.config.crop_height as usize,
            self.config.crop_width as usize,
        ]
    }

    /// Decodes an image file to 8-bit RGB with its EXIF orientation applied, as
    /// `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` does. A file the decoder
    /// refuses gets a second try when PIL or libpng would read it (`repair.rs`).
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
        self.decode_full(bytes).map(|(rgb, _)| rgb)
    }

    /// [`Self::decode`] and the EXIF date taken ([`exif::date_taken`]) read on the way.
    fn decode_full(&self, bytes: &[u8]) -> Result<(RgbImage, Option<i64>), PreprocessError> {
        let first = self.decode_as_given(bytes);
        let (Err(PreprocessError::Decode { .. }), Ok(format)) = (&first, sniff(bytes)) else {
            return first;
        };
        let repaired = repair::repaired_bytes(format, bytes);
        if let Some(fixed) = &repaired {
            if let Ok(decoded) = self.decode_as_given(fixed) {
                return Ok(decoded);
            }
        }
        let rle = (format == Format::Bmp)
            .then(|| repair::bmp_rle(repaired.as_deref().unwrap_or(bytes), self.max_pixels))
            .flatten();
        match rle {
            // The lenient decoder's refusal (too large, truncated) says more than the first.
            // A BMP has no EXIF: no date taken.
            Some(rle) => rle.map(|rgb| (rgb, None)),
            None => first,
        }
    }

    /// [`Self::decode_full`] without second tries.
    fn decode_as_given(&self, bytes: &[u8]) -> Result<(RgbImage, Option<i64>), PreprocessError> {
        let format = sniff(bytes)?;
        let name = format.name();
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
        let mut limits = Limits::default();
        // Room for the largest accepted image at 16 bits per channel with alpha, plus the
        // decoders' own buffers; wasm32 cannot address more anyway.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(|e| {
            // The PNG decoder applies the memory limit while reading IHDR, before it tells
            // the size: say which size, as for every other format.
            match (&e, format, png_size(bytes)) {
                (image::ImageError::Limits(_), Format::Png, Some((width, height)))
                    if u64::from(width) * u64::from(height) > self.max_pixels =>
                {
                    PreprocessError::TooLarge {
                        width,
                        height,
                        max_pixels: self.max_pixels,
                    }
                }
                _ => image_error(name, e),
            }
        })?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(PreprocessError::Decode {
                format: name,
                message: format!("it declares a size of {width}x{height} pixels"),
            });
        }
        let max_pixels = match format {
            Format::Gif => gif_max_pixels(self.max_pixels),
            _ => self.max_pixels,
        };
        if u64::from(width) * u64::from(height) > max_pixels {
            return Err(PreprocessError::TooLarge {
                width,
                height,
                max_pixels,
            });
        }
        // A JPEG must hold the blocks it declares, and end with EOI or, lacking it (as some
        // cameras write), have scans that decode without running out of data.
        let jpeg_whole =
            || jpeg_data_can_hold(bytes) && (jpeg_has_end(bytes) || jpeg_scans_complete(bytes));
        if format == Format::Jpeg && !jpeg_whole() {
            return Err(PreprocessError::Truncated { format: name });
        }
        let (orientation, taken_ms) = exif_facts(&mut decoder);
        let image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(name, e))?;
        let mut rgb = to_rgb(image, format)?;
        match format {
            Format::Gif => gif_fill_outside_first_frame(bytes, &mut rgb),
            Format::Bmp => bmp16_levels_like_pil(bytes, &mut rgb),
            _ => {}
        }
        Ok((orient(rgb, orientation), taken_ms))
    }

    /// Resizes, crops, rescales and normalises an RGB image into a CHW `f32` tensor of
    /// [`Self::output_shape`]. With `do_center_crop` off the tensor has the resized size
    /// instead, which the caller must be able to hold ([`Self::preprocess`] checks it).
    pub fn pixels(&self, rgb: &RgbImage) -> Vec<f32> {
        let plan = self.plan(rgb.dimensions());
        let mut out = vec![0.0; 3 * plan.height * plan.width];
        self.fill(rgb, rgb.dimensions(), 1, &plan, &mut out);
        out
    }

    /// [`Self::pixels`] for an image from [`Self::decode_for_model`]: a reduced-scale image
    /// is resized with the full-scale image's geometry (its resized size, crop, and the
    /// fraction of its last row and column that belongs to the picture).
    pub fn model_pixels(&self, image: &ModelImage) -> Vec<f32> {
        let plan = self.plan(image.full_size);
        let mut out = vec![0.0; 3 * plan.height * plan.width];
        self.fill_image(image, &plan, &mut out);
        out
    }

    /// Decodes an image file for the model: [`Self::decode`], except that a JPEG large
    /// enough is decoded at a reduced DCT scale (1/2 or 1/4; see [`reduction_for`]) when
    /// the reduced image's shortest edge is still at least twice the model's resize target;
    /// [`Self::model_pixels`] then resizes it with the full-scale geometry. Orientation is
    /// applied, as in [`Self::decode`]. Anything not reduced (other formats, small photos,
    /// CMYK, files the reduced decoder refuses) is exactly [`Self::decode`], errors
    /// included. Memory: see [`reduced_decode_bytes`]. The EXIF date taken comes along in
    /// [`ModelImage::taken_ms`].
    pub fn decode_for_model(&self, bytes: &[u8]) -> Result<ModelImage, PreprocessError> {
        match self.decode_reduced(bytes) {
            Some(image) => Ok(image),
            None => self.decode_full(bytes).map(|(rgb, taken_ms)| ModelImage {
                taken_ms,
                ..ModelImage::full_scale(rgb)
            }),
        }
    }

    /// The shortest edge the reduced decode must keep: twice this (0: never reduce).
    fn reduction_target(&self) -> u32 {
        let c = &self.config;
        if !self.reduced_decode || !c.do_resize {
            return 0;
        }
        let crop = if c.do_center_crop {
            c.crop_width.max(c.crop_height)
        } else {
            0
        };
        c.shortest_edge.max(crop)
    }

    /// The reduced-scale decode of [`Self::decode_for_model`], or `None` for the full path.
    fn decode_reduced(&self, bytes: &[u8]) -> Option<ModelImage> {
        let target = self.reduction_target();
        if target == 0 || !bytes.starts_with(b"\xFF\xD8\xFF") || !jpeg_has_end(bytes) {
            return None;
        }
        let header = reduced::header(bytes)?;
        let (w, h) = (header.width, header.height);
        if !header.reducible || w == 0 || h == 0 || u64::from(w) * u64::from(h) > self.max_pixels {
            return None;
        }
        if !jpeg_data_can_hold(bytes) {
            return None;
        }
        let reduction = reduction_for(w, h, target);
        if reduction == 1 {
            return None;
        }
        let max_alloc = usize::try_from(self.max_pixels.saturating_mul(3)).unwrap_or(usize::MAX);
        let rgb = reduced::decode(bytes, w, h, reduction, max_alloc)?;
        let exif = header.exif.as_deref();
        let orientation = oriented_by(exif, || header.xmp.clone());
        let rgb = orient(rgb, orientation);
        // Orientations 5 to 8 swap the axes, as they did the reduced image's.
        let full_size =
            if rgb.width() == w.div_ceil(reduction) && rgb.height() == h.div_ceil(reduction) {
                (w, h)
            } else {
                (h, w)
            };
        Some(ModelImage {
            rgb,
            full_size,
            reduction,
            taken_ms: exif.and_then(exif::date_taken),
        })
    }

    /// Decodes and preprocesses one image file.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, PreprocessError> {
        self.preprocess_dated(bytes).map(|(pixels, _)| pixels)
    }

    /// [`Self::preprocess`], and the EXIF date taken read during the decode
    /// ([`exif::date_taken`]).
    pub fn preprocess_dated(
        &self,
        bytes: &[u8],
    ) -> Result<(Vec<f32>, Option<i64>), PreprocessError> {
        let image = self.decode_for_model(bytes)?;
        let plan = self.checked_plan(image.full_size)?;
        let mut out = vec![0.0; 3 * plan.height * plan.width];
        self.fill_image(&image, &plan, &mut out);
        Ok((out, image.taken_ms))
    }

    /// Decodes and preprocesses one image file into `out`, which must hold exactly
    /// `3 * crop_height * crop_width` values (one slot of a batch).
    pub fn preprocess_into(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), PreprocessError> {
        let image = self.decode_for_model(bytes)?;
        let plan = self.checked_plan(image.full_size)?;
        let expected = 3 * plan.height * plan.width;
        if out.len() != expected {
            return Err(PreprocessError::OutputLength {
                expected,
                got: out.len(),
            });
        }
        self.fill_image(&image, &plan, out);
        Ok(())
    }

    /// Where the output comes from for an image of `size` (width, height) at full scale:
    /// the resized size, and per axis the window of the resized image that the crop keeps
    /// and the zero padding before it.
    fn plan(&self, size: (u32, u32)) -> Plan {
        let c = &self.config;
        let resized = if c.do_resize {
            resize_output_size(size.0, size.1, c.shortest_edge)
        } else {
            (u64::from(size.0), u64::from(size.1))
        };
        let (width, height) = if c.do_center_crop {
            (c.crop_width as usize, c.crop_height as usize)
        } else {
            (
                usize::try_from(resized.0).unwrap_or(usize::MAX),
                usize::try_from(resized.1).unwrap_or(usize::MAX),
            )
        };
        Plan {
            resized,
            x: crop_axis(resized.0, width),
            y: crop_axis(resized.1, height),
            width,
            height,
        }
    }

    /// [`Self::plan`], refusing an uncropped output larger than `max_pixels`.
    fn checked_plan(&self, size: (u32, u32)) -> Result<Plan, PreprocessError> {
        let plan = self.plan(size);
        if (plan.width as u64).saturating_mul(plan.height as u64) > self.max_pixels {
            return Err(PreprocessError::TooLarge {
                width: u32::try_from(plan.resized.0).unwrap_or(u32::MAX),
                height: u32::try_from(plan.resized.1).unwrap_or(u32::MAX),
                max_pixels: self.max_pixels,
            });
        }
        Ok(plan)
    }

    fn fill_image(&self, image: &ModelImage, plan: &Plan, out: &mut [f32]) {
        self.fill(&image.rgb, image.full_size, image.reduction, plan, out);
    }

    /// Resizes only the kept window, then writes normalised CHW values (zero level in the
    /// padding, as transformers pads the uint8 image with zeros before rescaling).
    /// `rgb` is the picture of `full_size` decoded at 1/`reduction`.
    fn fill(
        &self,
        rgb: &RgbImage,
        full_size: (u32, u32),
        reduction: u32,
        plan: &Plan,
        out: &mut [f32],
    ) {
        let origin = (plan.x.origin, plan.y.origin);
        let size = (plan.x.count, plan.y.count);
        let window = if reduction <= 1 {
            resize_window(rgb, plan.resized, origin, size)
        } else {
            // The picture's extent at the reduced scale (the last row and column of
            // `ceil(full / r)` stand for less than a whole pixel when `r` does not divide).
            let r = f64::from(reduction);
            let extent = (f64::from(full_size.0) / r, f64::from(full_size.1) / r);
            resize_box_window(rgb, extent, plan.resized, origin, size)
        };
        let raw = window.as_raw();
        let plane = plan.height * plan.width;
        let (r_out, rest) = out.split_at_mut(plane);
        let (g_out, b_out) = rest.split_at_mut(plane);
        let [lr, lg, lb] = &self.levels;
        for y in 0..plan.height {
            let src_y = y.checked_sub(plan.y.pad).filter(|&sy| sy < plan.y.count);
            for x in 0..plan.width {
                let i = y * plan.width + x;
                let src_x = x.checked_sub(plan.x.pad).filter(|&sx| sx < plan.x.count);
                let [r, g, b] = match (src_y, src_x) {
                    (Some(sy), Some(sx)) => {
                        let p = (sy * plan.x.count + sx) * 3;
                        [raw[p], raw[p + 1], raw[p + 2]]
                    }
                    _ => [0, 0, 0],
                };
                r_out[i] = lr[usize::from(r)];
                g_out[i] = lg[usize::from(g)];
                b_out[i] = lb[usize::from(b)];
            }
        }
    }
}

/// An image decoded for the model by [`Preprocessor::decode_for_model`].
#[derive(Debug, Clone)]
pub struct ModelImage {
    /// The pixels, EXIF orientation applied; `full_size / reduction` (rounded up) when the
    /// JPEG was decoded at a reduced scale. Fine for a display thumbnail.
    pub rgb: RgbImage,
    /// The picture's size at full scale, orientation applied (width, height).
    pub full_size: (u32, u32),
    /// 1 (full scale), 2 or 4.
    pub reduction: u32,
    /// When the photo was taken, from its EXIF ([`exif::date_taken`]: ms since the epoch).
    pub taken_ms: Option<i64>,
}

impl ModelImage {
    /// A full-scale image.
    pub fn full_scale(rgb: RgbImage) -> Self {
        Self {
            full_size: rgb.dimensions(),
            rgb,
            reduction: 1,
            taken_ms: None,
        }
    }
}

/// What [`Preprocessor::fill`] does for one image.
struct Plan {
    /// The size the image is resized to (width, height); may exceed memory, only the
    /// window is computed.
    resized: (u64, u64),
    x: CropAxis,
    y: CropAxis,
    /// Output size.
    width: usize,
    height: usize,
}

/// One axis of transformers' `center_crop`: the kept part of the resized image starts at
/// `origin` and has `count` pixels; `pad` zero pixels come before it in the output.
struct CropAxis {
    origin: u64,
    count: usize,
    pad: usize,
}

/// transformers' `center_crop` along one axis: `top = (size - crop) // 2` when the image is
/// at least as large as the crop; otherwise the image is zero-padded by
/// `ceil((crop - size) / 2)` before and kept whole.
fn crop_axis(size: u64, crop: usize) -> CropAxis {
    let crop64 = crop as u64;
    if size >= crop64 {
        CropAxis {
            origin: (size - crop64) / 2,
            count: crop,
            pad: 0,
        }
    } else {
        let count = size as usize;
        CropAxis {
            origin: 0,
            count,
            pad: (crop - count).div_ceil(2),
        }
    }
}

/// The float work of `rescale` then `normalize`, per channel and 8-bit level:
/// `f32(f64(v) * rescale_factor)`, then `(x - mean) / std` in `f32`.
fn level_table(c: &PreprocessConfig) -> [[f32; 256]; 3] {
    let factor = c.rescale_factor;
    let mut table = [[0.0f32; 256]; 3];
    for (ch, row) in table.iter_mut().enumerate() {
        for (v, slot) in row.iter_mut().enumerate() {
            let mut x = v as f32;
            if c.do_rescale {
                x = (v as f64 * factor) as f32;
            }
            if c.do_normalize {
                x = (x - c.image_mean[ch]) / c.image_std[ch];
            }
            *slot = x;
        }
    }
    table
}

/// transformers' `get_resize_output_image_size(default_to_square=False)`: the short edge
/// becomes `shortest_edge`, the long edge `int(shortest_edge * long / short)` (a float
/// division, truncated). Returns (width, height); the long edge can exceed `u32` for
/// extreme aspect ratios (PIL then fails; here only the cropped part is ever computed).
pub fn resize_output_size(width: u32, height: u32, shortest_edge: u32) -> (u64, u64) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let short = short.max(1);
    let new_long = (f64::from(shortest_edge) * f64::from(long) / f64::from(short)) as u64;
    let short = u64::from(shortest_edge);
    if width <= height {
        (short, new_long)
    } else {
        (new_long, short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{codecs, ExtendedColorType, ImageEncoder};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn splitmix_bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = crate::splitmix::SplitMix64(seed);
        (0..n).map(|_| s.next_u64() as u8).collect()
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// The input of one checksum case: splitmix64 noise, optionally mixed with ramps.
    fn test_image(
        w: u32,
        h: u32,
        seed: u64,
        smooth: bool,
    ) -> Result<RgbImage, Box<dyn std::error::Error>> {
        let mut data = splitmix_bytes(seed, (w * h * 3) as usize);
        if smooth {
            for y in 0..h {
                for x in 0..w {
                    let ramp = (x * 255) / (w - 1).max(1) / 2 + (y * 255) / (h - 1).max(1) / 3;
                    for c in 0..3 {
                        let i = ((y * w + x) * 3 + c) as usize;
                        data[i] = (u32::from(data[i]) / 8 + ramp) as u8;
                    }
                }
            }
        }
        RgbImage::from_raw(w, h, data).ok_or_else(|| "size".into())
    }

    /// FNV-1a of `PIL.Image.resize((ow, oh), BICUBIC)` on [`test_image`], from Pillow 13.0.0
    /// (the generator is the same splitmix64 in Python). Covers upscaling, shrinking, mixed
    /// directions, 1-pixel inputs, skipped passes and Pillow's vertical-first order.
    const PIL_RESIZE_CHECKSUMS: &[(u32, u32, u32, u32, u64, bool, u64)] = &[
        (1, 1, 5, 3, 1000, false, 0xfebea980a2dc4527),
        (1, 1, 1, 7, 1001, true, 0x93d087b0b9577e92),
        (2, 1, 9, 4, 1002, false, 0x223957bb59dc21b1),
        (3, 7, 224, 522, 1003, true, 0x4f5cafa6e2e19f55),
        (5, 5, 2, 2, 1004, false, 0xf54b43200fc051d8),
        (7, 3, 1, 1, 1005, true, 0xb50c8a1979567927),
        (16, 16, 64, 64, 1006, false, 0x2deb364693bc814e),
        (100, 75, 64, 48, 1007, true, 0x52cf11d4f376d445),
        (75, 100, 48, 64, 1008, false, 0x74d98d7f0ab63f04),
        (64, 48, 85, 64, 1009, true, 0x47546d58a4678311),
        (333, 251, 84, 64, 1010, false, 0xf5ab60af5e5c7e8f),
        (90, 700, 64, 497, 1011, true, 0x8ae55da8328fd376),
        (700, 90, 497, 64, 1012, false, 0x681b48498ae81de4),
        (40, 30, 85, 64, 1013, true, 0x9ee79826fbdb2b49),
        (640, 480, 85, 64, 1014, false, 0xf1f0b9661877989e),
        (37, 211, 29, 40, 1015, true, 0xbee8a7cb1cd17511),
        (211, 37, 40, 29, 1016, false, 0xf7fcde7c4b656be4),
        (50, 80, 50, 10, 1017, true, 0x83e3a4fca9d7f85d),
        (80, 50, 10, 50, 1018, false, 0xa988379184d22ea8),
        (50, 80, 13, 80, 1019, true, 0x92fbc600c0f23758),
        (120, 80, 96, 64, 1020, false, 0x5253a04b2a31a8c9),
        (31, 17, 32, 18, 1021, true, 0x5d5f61edbb31e6d7),
        (64, 64, 64, 63, 1022, false, 0xde3440b21639a615),
        (64, 64, 63, 64, 1023, true, 0xd29b0e0654b201fc),
        (100, 300, 80, 150, 1024, false, 0xf2fb88aad89867ba),
        (300, 100, 150, 80, 1025, true, 0xada2fad8310fde81),
        (17, 900, 30, 31, 1026, false, 0xb463e72380df453e),
        (257, 129, 256, 128, 1027, true, 0x126210592a62b1ae),
        (9, 9, 224, 224, 1028, false, 0x328cc6168af646a4),
        (400, 5, 224, 3, 1029, true, 0x28a7b1c1bbd075f5),
    ];

    #[test]
    fn resize_is_bit_exact_with_pillow() -> TestResult {
        for &(iw, ih, ow, oh, seed, smooth, expected) in PIL_RESIZE_CHECKSUMS {
            let out = resize_bicubic(&test_image(iw, ih, seed, smooth)?, ow, oh);
            assert_eq!(out.dimensions(), (ow, oh));
            assert_eq!(fnv1a(out.as_raw()), expected, "{iw}x{ih} -> {ow}x{oh}");
        }
        Ok(())
    }

    #[test]
    fn resize_windows_equal_crops_of_the_full_resize() -> TestResult {
        // Covers both pass orders and skipped passes.
        for (n, &(iw, ih, ow, oh)) in [
            (90u32, 700u32, 64u32, 497u32),
            (640, 480, 85, 64),
            (37, 211, 29, 40),
            (50, 80, 50, 10),
            (80, 50, 10, 50),
            (16, 16, 64, 64),
            (30, 30, 30, 30),
        ]
        .iter()
        .enumerate()
        {
            let src = test_image(iw, ih, 77 + n as u64, n % 2 == 0)?;
            let full = resize_bicubic(&src, ow, oh);
            for (x0, y0, w, h) in [
                (0, 0, ow, oh),
                (ow / 3, oh / 4, ow / 2, oh / 2),
                (ow - 1, oh - 1, 1, 1),
                (0, oh / 2, ow, 1),
            ] {
                let window = resize_window(
                    &src,
                    (u64::from(ow), u64::from(oh)),
                    (u64::from(x0), u64::from(y0)),
                    (w as usize, h as usize),
                );
                let want = image::imageops::crop_imm(&full, x0, y0, w, h).to_image();
                assert_eq!(
                    window, want,
                    "{iw}x{ih} -> {ow}x{oh}, window {x0},{y0} {w}x{h}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn extreme_aspect_ratios_only_compute_the_crop() -> TestResult {
        // 1x200000 resizes to 224 x 44,800,000 (30 GB as RGB): only the 224x224 crop is made.
        let p = Preprocessor::new(PreprocessConfig::default());
        let strip = test_image(1, 200_000, 5, false)?;
        let px = p.pixels(&strip);
        assert_eq!(px.len(), 3 * 224 * 224);
        assert!(px.iter().all(|v| v.is_finite()));
        let strip = test_image(200_000, 1, 6, false)?;
        assert_eq!(p.pixels(&strip).len(), 3 * 224 * 224);
        Ok(())
    }

    #[test]
    fn resize_keeps_constant_images_and_single_pixels() {
        for (iw, ih, ow, oh) in [(1, 1, 9, 4), (13, 7, 3, 2), (5, 300, 40, 11), (8, 8, 8, 8)] {
            for v in [0u8, 1, 127, 254, 255] {
                let src = RgbImage::from_pixel(iw, ih, image::Rgb([v, 255 - v, v / 2]));
                let out = resize_bicubic(&src, ow, oh);
                assert!(
                    out.pixels().all(|p| p.0 == [v, 255 - v, v / 2]),
                    "{iw}x{ih} -> {ow}x{oh} at {v}"
                );
            }
        }
    }

    #[test]
    fn coefficients_are_normalised_fixed_point() {
        for (i, o) in [(1u32, 5u32), (7, 3), (640, 85), (85, 640), (3000, 224)] {
            let c = coefficients(i, u64::from(o), 0, o as usize);
            for (k, &(xmin, taps)) in c.weights.chunks_exact(c.ksize).zip(&c.bounds) {
                assert!(taps >= 1 && xmin + taps <= i as usize);
                let sum: i32 = k.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= c.ksize as i32,
                    "{i}->{o}: {sum}"
                );
            }
        }
    }

    #[test]
    fn output_size_follows_transformers() {
        assert_eq!(resize_output_size(640, 480, 224), (298, 224));
        assert_eq!(resize_output_size(480, 640, 224), (224, 298));
        assert_eq!(resize_output_size(100, 100, 64), (64, 64));
        assert_eq!(resize_output_size(1, 1000, 64), (64, 64000));
        assert_eq!(resize_output_size(3, 7, 224), (224, 522));
        assert_eq!(resize_output_size(333, 251, 64), (84, 64));
        assert_eq!(resize_output_size(90, 700, 64), (64, 497));
    }

    fn config(shortest_edge: u32, crop: u32) -> PreprocessConfig {
        PreprocessConfig {
            shortest_edge,
            crop_height: crop,
            crop_width: crop,
            ..PreprocessConfig::default()
        }
    }

    #[test]
    fn levels_match_numpy_float_order() {
        let c = PreprocessConfig::default();
        let t = level_table(&c);
        for (ch, levels) in t.iter().enumerate() {
            for (v, got) in levels.iter().enumerate() {
                // numpy: (uint8 -> f64) * (1/255) -> f32, then (x - f32 mean) / f32 std in f32.
                let x = (v as f64 * (1.0 / 255.0)) as f32;
                let want = (x - c.image_mean[ch]) / c.image_std[ch];
                assert_eq!(got.to_bits(), want.to_bits(), "channel {ch} level {v}");
            }
        }
        assert_eq!(t[0][0], -0.481_454_66_f32 / 0.268_629_54);
    }

    #[test]
    fn centre_crop_offsets_and_padding_follow_transformers() -> TestResult {
        // 5 wide, 4 high into 3x3 without resizing: top = 0, left = 1.
        let cfg = PreprocessConfig {
            do_resize: false,
            ..config(3, 3)
        };
        let p = Preprocessor::new(cfg);
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([(10 * y + x) as u8, 0, 0]));
        let px = p.pixels(&img);
        let levels = &p.levels[0];
        let expect: Vec<f32> = [1u8, 2, 3, 11, 12, 13, 21, 22, 23]
            .iter()
            .map(|&v| levels[usize::from(v)])
            .collect();
        assert_eq!(&px[..9], expect.as_slice());

        // A 2x1 image into 5x4: padded by ceil((4-1)/2) = 2 rows above and ceil(3/2) = 2 columns left.
        let cfg = PreprocessConfig {
            do_resize: false,
            crop_height: 4,
            crop_width: 5,
            ..config(3, 3)
        };
        let p = Preprocessor::new(cfg);
        let img = RgbImage::from_fn(2, 1, |x, _| image::Rgb([100 + x as u8, 50, 60]));
        let px = p.pixels(&img);
        assert_eq!(px.len(), 3 * 4 * 5);
        let zero = p.levels[0][0];
        for y in 0..4 {
            for x in 0..5 {
                let want = match (y, x) {
                    (2, 2) => p.levels[0][100],
                    (2, 3) => p.levels[0][101],
                    _ => zero,
                };
                assert_eq!(px[y * 5 + x], want, "({x}, {y})");
            }
        }
        Ok(())
    }

    #[test]
    fn pixels_layout_is_chw() -> TestResult {
        let p = Preprocessor::new(config(4, 4));
        let img = RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]));
        let px = p.pixels(&img);
        assert_eq!(p.output_shape(), [3, 4, 4]);
        assert_eq!(px.len(), 48);
        for (c, v) in [10usize, 20, 30].into_iter().enumerate() {
            assert!(px[c * 16..(c + 1) * 16]
                .iter()
                .all(|&x| x == p.levels[c][v]));
        }
        let mut out = vec![0.0; 47];
        let png = encode_png(&img)?;
        assert!(matches!(
            p.preprocess_into(&png, &mut out),
            Err(PreprocessError::OutputLength {
                expected: 48,
                got: 47
            })
        ));
        let mut out = vec![0.0; 48];
        p.preprocess_into(&png, &mut out)?;
        assert_eq!(out, px);
        Ok(())
    }

    fn encode_png(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
        let mut buf = Vec::new();
        codecs::png::PngEncoder::new(&mut buf).write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )?;
        Ok(buf)
    }

    fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
        let mut buf = Vec::new();
        codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90).encode(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )?;
        Ok(buf)
    }

    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |mut c, &b| {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
            c
        })
    }

    #[test]
    fn bad_inputs_give_specific_errors() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        assert!(matches!(p.decode(b""), Err(PreprocessError::Empty)));
        assert!(matches!(
            p.decode(b"This is not an image at all\n"),
            Err(PreprocessError::UnknownFormat { .. })
        ));
        assert!(matches!(
            p.decode(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Err(PreprocessError::UnsupportedFormat { format: "HEIC" })
        ));
        assert!(matches!(
            p.decode(b"\0\0\0\x1cftypmif1\0\0\0\0mif1avifmiaf"),
            Err(PreprocessError::UnsupportedFormat { format: "AVIF" })
        ));

        let img = test_image(64, 48, 7, true)?;
        let jpeg = encode_jpeg(&img)?;
        assert!(p.decode(&jpeg).is_ok());
        // Without its EOI but with the whole scan, the JPEG decodes (as a camera's might).
        assert_eq!(p.decode(&jpeg[..jpeg.len() - 2])?, p.decode(&jpeg)?);
        for keep in [3, 20, jpeg.len() / 3] {
            assert!(
                matches!(
                    p.decode(&jpeg[..keep]),
                    Err(PreprocessError::Truncated { format: "JPEG" }
                        | PreprocessError::Decode { .. })
                ),
                "JPEG cut at {keep}"
            );
        }
        let png = encode_png(&img)?;
        assert!(matches!(
            p.decode(&png[..png.len() / 2]),
            Err(PreprocessError::Truncated { .. } | PreprocessError::Decode { .. })
        ));

        // A valid PNG header declaring 30000x30000: refused before anything is inflated.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&30000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&30000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        match p.decode(&bomb) {
            Err(PreprocessError::TooLarge {
                width: 30000,
                height: 30000,
                max_pixels,
            }) => assert_eq!(max_pixels, DEFAULT_MAX_PIXELS),
            other => return Err(format!("bomb gave {other:?}").into()),
        }
        let small = Preprocessor::new(config(8, 8)).with_max_pixels(64 * 48 - 1);
        assert!(matches!(
            small.decode(&png),
            Err(PreprocessError::TooLarge {
                width: 64,
                height: 48,
                ..
            })
        ));
        // Every message is one sentence.
        for e in [
            PreprocessError::Empty,
            PreprocessError::Truncated { format: "PNG" },
        ] {
            let m = e.to_string();
            assert!(
                m.ends_with('.') && m.chars().next().is_some_and(char::is_uppercase),
                "{m}"
            );
        }
        Ok(())
    }

    #[test]
    fn damaged_files_never_panic() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let img = test_image(40, 30, 9, true)?;
        let mut files = vec![
            encode_png(&img)?,
            encode_jpeg(&img)?,
            GIF_TRNS.to_vec(),
            bmp16(&[0x1234, 0x7fff], false),
        ];
        let mut buf = Vec::new();
        codecs::bmp::BmpEncoder::new(&mut buf).write_image(
            img.as_raw(),
            40,
            30,
            ExtendedColorType::Rgb8,
        )?;
        files.push(buf);
        let noise = splitmix_bytes(42, 4096);
        for file in &files {
            for (i, &n) in noise.iter().enumerate().take(400) {
                let mut damaged = file.clone();
                let at = (usize::from(n) * 7919 + i * 31) % damaged.len();
                damaged[at] ^= noise[(i + 1) % noise.len()] | 1;
                let cut = (i * 131) % damaged.len();
                // Any outcome but a panic is fine; what decodes has the right shape.
                for bytes in [&damaged[..], &damaged[..cut]] {
                    if let Ok(pixels) = p.preprocess(bytes) {
                        assert_eq!(pixels.len(), 3 * 8 * 8);
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn sixteen_bit_pngs_keep_the_high_byte() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let values: [u16; 8] = [0, 1, 200, 255, 256, 300, 0x80FF, 65535];
        let encode =
            |color: ExtendedColorType, samples: &[u16]| -> Result<Vec<u8>, image::ImageError> {
                let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_ne_bytes()).collect();
                let mut buf = Vec::new();
                codecs::png::PngEncoder::new(&mut buf).write_image(&bytes, 8, 1, color)?;
                Ok(buf)
            };
        // I;16: scaled to 8 bits (v >> 8), where PIL clips to 255.
        let grey = p.decode(&encode(ExtendedColorType::L16, &values)?)?;
        let got: Vec<u8> = grey.pixels().map(|px| px.0[0]).collect();
        assert_eq!(got, [0, 0, 0, 0, 1, 1, 0x80, 255]);
        assert!(grey
            .pixels()
            .all(|px| px.0[0] == px.0[1] && px.0[1] == px.0[2]));
        // 48-bit RGB and 16-bit grey + alpha: the high byte.
        let rgb: Vec<u16> = values.iter().flat_map(|&v| [v, 65535 - v, v / 2]).collect();
        let got = p.decode(&encode(ExtendedColorType::Rgb16, &rgb)?)?;
        let want: Vec<u8> = rgb.iter().map(|v| (v >> 8) as u8).collect();
        assert_eq!(got.as_raw(), &want);
        let la: Vec<u16> = values.iter().flat_map(|&v| [v, 1234]).collect();
        let got = p.decode(&encode(ExtendedColorType::La16, &la)?)?;
        let want: Vec<u8> = values.iter().flat_map(|v| [(v >> 8) as u8; 3]).collect();
        assert_eq!(got.as_raw(), &want);
        Ok(())
    }

    #[test]
    fn alpha_is_dropped_not_composited() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let mut buf = Vec::new();
        let rgba = [255u8, 0, 255, 0, 10, 20, 30, 128];
        codecs::png::PngEncoder::new(&mut buf).write_image(
            &rgba,
            2,
            1,
            ExtendedColorType::Rgba8,
        )?;
        assert_eq!(p.decode(&buf)?.as_raw(), &[255, 0, 255, 10, 20, 30]);
        Ok(())
    }

    /// PIL's `exif_transpose` of a 3x2 image whose red values are 0, 3, .., 15 (row-major),
    /// per orientation: (tag, width, height, red values).
    const PIL_ORIENTED: [(u16, u32, u32, [u8; 6]); 8] = [
        (1, 3, 2, [0, 3, 6, 9, 12, 15]),
        (2, 3, 2, [6, 3, 0, 15, 12, 9]),
        (3, 3, 2, [15, 12, 9, 6, 3, 0]),
        (4, 3, 2, [9, 12, 15, 0, 3, 6]),
        (5, 2, 3, [0, 9, 3, 12, 6, 15]),
        (6, 2, 3, [9, 0, 12, 3, 15, 6]),
        (7, 2, 3, [15, 6, 12, 3, 9, 0]),
        (8, 2, 3, [6, 15, 3, 12, 0, 9]),
    ];

    fn exif_block(big_endian: bool, orientation: u16) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut e = if big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        e.extend(u32b(8));
        e.extend(u16b(2));
        // An unrelated tag first (ImageDescription), then Orientation.
        e.extend(u16b(0x010E));
        e.extend(u16b(2));
        e.extend(u32b(1));
        e.extend([0, 0, 0, 0]);
        e.extend(u16b(0x0112));
        e.extend(u16b(3));
        e.extend(u32b(1));
        e.extend(u16b(orientation));
        e.extend([0, 0]);
        e.extend(u32b(0));
        e
    }

    #[test]
    fn exif_orientation_matches_pil_for_all_eight() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([((y * 3 + x) * 3) as u8, 1, 2]));
        for (n, &(tag, w, h, red)) in PIL_ORIENTED.iter().enumerate() {
            let mut buf = Vec::new();
            let mut enc = codecs::png::PngEncoder::new(&mut buf);
            enc.set_exif_metadata(exif_block(n % 2 == 0, tag))?;
            enc.write_image(img.as_raw(), 3, 2, ExtendedColorType::Rgb8)?;
            let got = p.decode(&buf)?;
            assert_eq!(got.dimensions(), (w, h), "orientation {tag}");
            let r: Vec<u8> = got.pixels().map(|px| px.0[0]).collect();
            assert_eq!(r, red, "orientation {tag}");
        }
        Ok(())
    }

    #[test]
    fn orientation_parsers() {
        assert_eq!(exif::orientation_value(&exif_block(true, 6)), Some(6));
        assert_eq!(
            exif::orientation_value(&[b"Exif\0\0".as_slice(), &exif_block(false, 8)].concat()),
            Some(8)
        );
        assert_eq!(exif::orientation_value(b"II*\0\xff\xff\xff\xff"), None);
        assert_eq!(exif::orientation_value(b""), None);
        assert_eq!(
            xmp_orientation_value(br#"<rdf tiff:Orientation="6"/>"#),
            Some(6)
        );
        assert_eq!(
            xmp_orientation_value(b"<tiff:Orientation>3</tiff:Orientation>"),
            Some(3)
        );
        assert_eq!(
            xmp_orientation_value(b"tiff:Orientation tiff:Orientation=\"x\""),
            None
        );
    }

    const GIF_TRNS: &[u8] = &[
        71, 73, 70, 56, 57, 97, 6, 0, 5, 0, 241, 3, 0, 10, 20, 30, 200, 100, 50, 0, 255, 0, 90, 80,
        70, 33, 249, 4, 5, 0, 0, 2, 0, 44, 1, 0, 1, 0, 3, 0, 2, 0, 0, 2, 5, 4, 67, 113, 20, 83, 0,
        59,
    ];
    const GIF_PLAIN: &[u8] = &[
        71, 73, 70, 56, 57, 97, 6, 0, 5, 0, 241, 3, 0, 10, 20, 30, 200, 100, 50, 0, 255, 0, 90, 80,
        70, 44, 1, 0, 1, 0, 3, 0, 2, 0, 0, 2, 5, 4, 67, 113, 20, 83, 0, 59,
    ];

    #[test]
    fn gif_first_frame_sits_on_pils_canvas() -> TestResult {
        // A 6x5 screen with a 3x2 first frame at (1, 1); PIL fills the rest with palette
        // entry `transparency` (2, green) or 0, and keeps the colour of transparent pixels.
        let p = Preprocessor::new(config(8, 8));
        let palette = [[10u8, 20, 30], [200, 100, 50], [0, 255, 0], [90, 80, 70]];
        let frame = [[0usize, 1, 2], [3, 2, 1]];
        for (gif, fill) in [(GIF_TRNS, 2usize), (GIF_PLAIN, 0)] {
            let got = p.decode(gif)?;
            assert_eq!(got.dimensions(), (6, 5));
            for (x, y, px) in got.enumerate_pixels() {
                let inside = (1..4).contains(&x) && (1..3).contains(&y);
                let index = if inside {
                    frame[(y - 1) as usize][(x - 1) as usize]
                } else {
                    fill
                };
                assert_eq!(px.0, palette[index], "({x}, {y})");
            }
        }
        Ok(())
    }

    /// A bottom-up 16-bit BMP, one row of `pixels`, 5-5-5 or (BI_BITFIELDS) 5-6-5.
    fn bmp16(pixels: &[u16], rgb565: bool) -> Vec<u8> {
        let row: Vec<u8> = pixels
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .chain(std::iter::repeat(0))
            .take((pixels.len() * 2).div_ceil(4) * 4)
            .collect();
        let masks: Vec<u8> = if rgb565 {
            [0xF800u32, 0x07E0, 0x001F]
                .iter()
                .flat_map(|m| m.to_le_bytes())
                .collect()
        } else {
            Vec::new()
        };
        let offset = 14 + 40 + masks.len() as u32;
        let mut b = b"BM".to_vec();
        b.extend((offset + row.len() as u32).to_le_bytes());
        b.extend([0, 0, 0, 0]);
        b.extend(offset.to_le_bytes());
        b.extend(40u32.to_le_bytes());
        b.extend((pixels.len() as i32).to_le_bytes());
        b.extend(1i32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(16u16.to_le_bytes());
        b.extend((if rgb565 { 3u32 } else { 0 }).to_le_bytes());
        b.extend((row.len() as u32).to_le_bytes());
        b.extend([0u8; 16]);
        b.extend(masks);
        b.extend(row);
        b
    }

    #[test]
    fn bmp16_levels_truncate_like_pil() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let floor = |v: u32, max: u32| (v * 255 / max) as u8;
        let pixels: Vec<u16> = (0..32u16)
            .map(|v| (v << 10) | ((31 - v) << 5) | v)
            .collect();
        let got = p.decode(&bmp16(&pixels, false))?;
        for (v, px) in (0..32u32).zip(got.pixels()) {
            assert_eq!(px.0, [floor(v, 31), floor(31 - v, 31), floor(v, 31)]);
        }
        let pixels: Vec<u16> = (0..64u16)
            .map(|v| ((v & 31) << 11) | (v << 5) | (31 - (v & 31)))
            .collect();
        let got = p.decode(&bmp16(&pixels, true))?;
        for (v, px) in (0..64u32).zip(got.pixels()) {
            assert_eq!(
                px.0,
                [floor(v & 31, 31), floor(v, 63), floor(31 - (v & 31), 31)]
            );
        }
        Ok(())
    }

    #[test]
    fn jpeg_completeness_check() -> TestResult {
        let jpeg = encode_jpeg(&test_image(16, 16, 1, false)?)?;
        assert!(jpeg_has_end(&jpeg));
        assert!(jpeg_has_end(&[jpeg.as_slice(), b"trailing junk"].concat()));
        assert!(!jpeg_has_end(&jpeg[..jpeg.len() - 2]));
        assert!(!jpeg_has_end(&jpeg[..4]));
        // Junk between segments is skipped, as libjpeg does; a table before the frame
        // header does not hide the frame's bound.
        let bound = jpeg_min_data_bits(&jpeg);
        assert!(bound.is_some());
        let junk = [&jpeg[..2], &b"junk\xFF\x00"[..], &jpeg[2..]].concat();
        assert!(jpeg_has_end(&junk));
        assert_eq!(jpeg_min_data_bits(&junk), bound);
        let table_first = [&jpeg[..2], &[0xFF, 0xC4, 0, 2][..], &jpeg[2..]].concat();
        assert_eq!(jpeg_min_data_bits(&table_first), bound);
        Ok(())
    }
}
