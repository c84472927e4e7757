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
//! compositing, 16-bit grey clipped, 16-bit colour reduced to its high byte, CMYK with
//! Adobe polarity, the first GIF frame on PIL's canvas).
//!
//! This module does no I/O and spawns nothing: callers hand in bytes, so it runs the same
//! natively and on wasm32. It refuses decompression bombs from the declared size before any
//! pixel buffer is allocated, and never panics on bad input.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::config::PreprocessConfig;

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

/// Turns encoded images into CLIP pixel tensors, as configured by `preprocessor_config.json`.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    config: PreprocessConfig,
    max_pixels: u64,
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
            levels,
        }
    }

    /// Refuses images with more than `max_pixels` pixels (their declared size).
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
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
    /// `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` does.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
        let format = sniff(bytes)?;
        let name = format.name();
        if format == Format::Jpeg && !jpeg_is_complete(bytes) {
            return Err(PreprocessError::Truncated { format: name });
        }
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
        let mut limits = Limits::default();
        // Room for the largest accepted image at 16 bits per channel with alpha, plus the
        // decoders' own buffers; wasm32 cannot address more anyway.
        limits.max_alloc = Some(self.max_pixels.saturating_mul(8).saturating_add(64 << 20));
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(|e| image_error(name, e))?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(PreprocessError::Decode {
                format: name,
                message: format!("it declares a size of {width}x{height} pixels"),
            });
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(PreprocessError::TooLarge {
                width,
                height,
                max_pixels: self.max_pixels,
            });
        }
        let orientation = orientation(&mut decoder);
        let image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(name, e))?;
        let mut rgb = to_rgb(image, format, bytes)?;
        match format {
            Format::Gif => gif_fill_outside_first_frame(bytes, &mut rgb),
            Format::Bmp => bmp16_levels_like_pil(bytes, &mut rgb),
            _ => {}
        }
        Ok(orient(rgb, orientation))
    }

    /// Resizes, crops, rescales and normalises an RGB image into a CHW `f32` tensor of
    /// [`Self::output_shape`]. With `do_center_crop` off the tensor has the resized size
    /// instead, which the caller must be able to hold ([`Self::preprocess`] checks it).
    pub fn pixels(&self, rgb: &RgbImage) -> Vec<f32> {
        let plan = self.plan(rgb);
        let mut out = vec![0.0; 3 * plan.height * plan.width];
        self.fill(rgb, &plan, &mut out);
        out
    }

    /// Decodes and preprocesses one image file.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, PreprocessError> {
        let rgb = self.decode(bytes)?;
        let plan = self.checked_plan(&rgb)?;
        let mut out = vec![0.0; 3 * plan.height * plan.width];
        self.fill(&rgb, &plan, &mut out);
        Ok(out)
    }

    /// Decodes and preprocesses one image file into `out`, which must hold exactly
    /// `3 * crop_height * crop_width` values (one slot of a batch).
    pub fn preprocess_into(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), PreprocessError> {
        let rgb = self.decode(bytes)?;
        let plan = self.checked_plan(&rgb)?;
        let expected = 3 * plan.height * plan.width;
        if out.len() != expected {
            return Err(PreprocessError::OutputLength {
                expected,
                got: out.len(),
            });
        }
        self.fill(&rgb, &plan, out);
        Ok(())
    }

    /// Where the output comes from: the resized size, and per axis the window of the resized
    /// image that the crop keeps and the zero padding before it.
    fn plan(&self, rgb: &RgbImage) -> Plan {
        let c = &self.config;
        let resized = if c.do_resize {
            resize_output_size(rgb.width(), rgb.height(), c.shortest_edge)
        } else {
            (u64::from(rgb.width()), u64::from(rgb.height()))
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
    fn checked_plan(&self, rgb: &RgbImage) -> Result<Plan, PreprocessError> {
        let plan = self.plan(rgb);
        if (plan.width as u64).saturating_mul(plan.height as u64) > self.max_pixels {
            return Err(PreprocessError::TooLarge {
                width: u32::try_from(plan.resized.0).unwrap_or(u32::MAX),
                height: u32::try_from(plan.resized.1).unwrap_or(u32::MAX),
                max_pixels: self.max_pixels,
            });
        }
        Ok(plan)
    }

    /// Resizes only the kept window, then writes normalised CHW values (zero level in the
    /// padding, as transformers pads the uint8 image with zeros before rescaling).
    fn fill(&self, rgb: &RgbImage, plan: &Plan, out: &mut [f32]) {
        let window = resize_window(
            rgb,
            plan.resized,
            (plan.x.origin, plan.y.origin),
            (plan.x.count, plan.y.count),
        );
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

// ---------------------------------------------------------------------------------------
// Decoding details.

fn image_error(format: &'static str, e: image::ImageError) -> PreprocessError {
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
fn jpeg_is_complete(bytes: &[u8]) -> bool {
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

/// The EXIF orientation PIL's `exif_transpose` would use: the EXIF tag, else the XMP
/// `tiff:Orientation` (as `Image.getexif` falls back to), else none. Values outside 1..=8
/// mean no transform, as in PIL.
fn orientation(decoder: &mut impl ImageDecoder) -> image::metadata::Orientation {
    use image::metadata::Orientation;
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
    value
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block, if present.
fn exif_orientation_value(exif: &[u8]) -> Option<u16> {
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
fn xmp_orientation_value(xmp: &[u8]) -> Option<u16> {
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

fn orient(rgb: RgbImage, orientation: image::metadata::Orientation) -> RgbImage {
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
fn to_rgb(image: DynamicImage, format: Format, bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
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

/// PIL draws the first GIF frame on a canvas filled with palette index `transparency`
/// (or 0 when the frame has none); the `image` crate leaves black outside the frame.
/// Repaint that area with PIL's colour. Does nothing when the frame covers the canvas.
fn gif_fill_outside_first_frame(bytes: &[u8], rgb: &mut RgbImage) {
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
fn bmp16_levels_like_pil(bytes: &[u8], rgb: &mut RgbImage) {
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

// ---------------------------------------------------------------------------------------
// Resampling: the semantics of Pillow's `ImagingResample` for 8-bit images with the
// bicubic filter (a = -0.5), written from its documented behaviour.

/// Fixed-point precision of the filter coefficients (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights of its window.
struct Coefficients {
    /// (first input index, number of taps) per output index.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output index (unused tail zero).
    weights: Vec<i32>,
    ksize: usize,
}

impl Coefficients {
    /// The input range `[first, end)` that the window's outputs read.
    fn input_span(&self) -> (usize, usize) {
        let first = self.bounds.first().map_or(0, |b| b.0);
        let end = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
        (first, end)
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for box `[0, in_size)` resized
/// to `out_size`, for the `count` output indices from `first` on (each output index's
/// weights depend on nothing else, so a window of the output is exact).
fn coefficients(in_size: u32, out_size: u64, first: u64, count: usize) -> Coefficients {
    const SUPPORT: f64 = 2.0;
    // Pillow computes `in1 - in0` in single precision (the box is `float[4]`).
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let one = f64::from(1u32 << PRECISION_BITS);
    let mut bounds = Vec::with_capacity(count);
    let mut weights = vec![0i32; count * ksize];
    let mut window = vec![0.0f64; ksize];
    for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
        let center = ((first + i as u64) as f64 + 0.5) * scale;
        // `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
        let taps = usize::try_from(xmax - xmin).unwrap_or(0).min(ksize);
        let mut total = 0.0;
        for (x, w) in window.iter_mut().take(taps).enumerate() {
            *w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            total += *w;
        }
        for (k, w) in row.iter_mut().zip(window.iter().take(taps)) {
            let w = if total != 0.0 { w / total } else { *w };
            *k = if w < 0.0 {
                (-0.5 + w * one) as i32
            } else {
                (0.5 + w * one) as i32
            };
        }
        bounds.push((usize::try_from(xmin).unwrap_or(0), taps));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes like `PIL.Image.resize((width, height), Image.BICUBIC)` on an RGB image.
/// See [`resize_window`].
pub fn resize_bicubic(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_window(
        src,
        (u64::from(width), u64::from(height)),
        (0, 0),
        (width as usize, height as usize),
    )
}

/// The `size` window at `origin` of `src` resized to `out` (width, height) like
/// `PIL.Image.resize(out, Image.BICUBIC)`, computing only the pixels inside the window
/// (so a centre crop of a very long resized image costs no more than the crop).
///
/// Two separable passes, each rounding to 8 bits, each skipped when its dimension does not
/// change. Pillow 13 runs the horizontal pass first (over only the rows the vertical pass
/// reads) unless the height shrinks by more than twice as many pixels as the width does,
/// in which case the vertical pass runs first. The order changes the result, so it is
/// mirrored exactly (checked against Pillow 13.0 on thousands of random sizes).
/// The window must lie inside the resized image.
pub fn resize_window(
    src: &RgbImage,
    out: (u64, u64),
    origin: (u64, u64),
    size: (usize, usize),
) -> RgbImage {
    let (in_w, in_h) = (src.width(), src.height());
    let ((out_w, out_h), (x0, y0), (w, h)) = (out, origin, size);
    let blank = || RgbImage::new(w as u32, h as u32);
    let fits =
        |o: u64, s: usize, total: u64| o.checked_add(s as u64).is_some_and(|end| end <= total);
    if in_w == 0 || in_h == 0 || w == 0 || h == 0 || !fits(x0, w, out_w) || !fits(y0, h, out_h) {
        return blank();
    }
    let need_h = out_w != u64::from(in_w);
    let need_v = out_h != u64::from(in_h);
    let vertical_first = out_h < u64::from(in_h)
        && 2 * (i128::from(in_w) - i128::from(out_w)) < i128::from(in_h) - i128::from(out_h);
    let raw = src.as_raw().as_slice();
    let (stride, x0, y0) = (in_w as usize * 3, x0 as usize, y0 as usize);
    let data = if !need_h && !need_v {
        (0..h)
            .flat_map(|y| &raw[(y0 + y) * stride + x0 * 3..(y0 + y) * stride + (x0 + w) * 3])
            .copied()
            .collect()
    } else if vertical_first {
        // Vertical pass over the columns the horizontal pass reads, then horizontal.
        let vert = coefficients(in_h, out_h, y0 as u64, h);
        let (cols, first_col) = if need_h {
            let horiz = coefficients(in_w, out_w, x0 as u64, w);
            let (first, end) = horiz.input_span();
            (Some(horiz), first..end)
        } else {
            (None, x0..x0 + w)
        };
        let width = first_col.len();
        let tmp = resample_vertical(raw, stride, first_col.start * 3, width, &vert, 0);
        match cols {
            Some(horiz) => resample_horizontal(&tmp, width, &horiz, first_col.start),
            None => tmp,
        }
    } else {
        // Horizontal pass over the rows the vertical pass reads, then vertical.
        let vert = need_v.then(|| coefficients(in_h, out_h, y0 as u64, h));
        let rows = match &vert {
            Some(v) => {
                let (first, end) = v.input_span();
                first..end
            }
            None => y0..y0 + h,
        };
        let tmp = if need_h {
            let horiz = coefficients(in_w, out_w, x0 as u64, w);
            resample_horizontal(
                &raw[rows.start * stride..rows.end * stride],
                in_w as usize,
                &horiz,
                0,
            )
        } else {
            (rows.clone())
                .flat_map(|y| &raw[y * stride + x0 * 3..y * stride + (x0 + w) * 3])
                .copied()
                .collect()
        };
        match &vert {
            Some(v) => resample_vertical(&tmp, w * 3, 0, w, v, rows.start),
            None => tmp,
        }
    };
    // Lengths match by construction; fall back to black rather than panic.
    RgbImage::from_raw(w as u32, h as u32, data).unwrap_or_else(blank)
}

/// Horizontal pass over whole rows of `src` (`in_w` pixels each, starting at input column
/// `col_offset`), one output pixel per entry of `c`.
fn resample_horizontal(src: &[u8], in_w: usize, c: &Coefficients, col_offset: usize) -> Vec<u8> {
    let out_w = c.bounds.len();
    let rows = src.len() / (in_w * 3).max(1);
    let mut out = vec![0u8; rows * out_w * 3];
    for (src_row, out_row) in src
        .chunks_exact(in_w * 3)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for ((px, &(xmin, taps)), k) in out_row
            .chunks_exact_mut(3)
            .zip(&c.bounds)
            .zip(c.weights.chunks_exact(c.ksize))
        {
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            let start = (xmin - col_offset) * 3;
            let window = &src_row[start..start + taps * 3];
            for (p, &w) in window.chunks_exact(3).zip(&k[..taps]) {
                r += i32::from(p[0]) * w;
                g += i32::from(p[1]) * w;
                b += i32::from(p[2]) * w;
            }
            px[0] = clip8(r);
            px[1] = clip8(g);
            px[2] = clip8(b);
        }
    }
    out
}

/// Vertical pass: for each entry of `c`, one output row of `width` pixels read from rows of
/// `src` (`stride` bytes each, starting at byte `col_byte` of a row); `src` row 0 is input
/// row `row_offset`.
fn resample_vertical(
    src: &[u8],
    stride: usize,
    col_byte: usize,
    width: usize,
    c: &Coefficients,
    row_offset: usize,
) -> Vec<u8> {
    let row_bytes = width * 3;
    let mut out = vec![0u8; c.bounds.len() * row_bytes];
    let mut acc = vec![0i32; row_bytes];
    for ((out_row, &(ymin, taps)), k) in out
        .chunks_exact_mut(row_bytes)
        .zip(&c.bounds)
        .zip(c.weights.chunks_exact(c.ksize))
    {
        acc.fill(HALF);
        for (dy, &w) in k[..taps].iter().enumerate() {
            let at = (ymin - row_offset + dy) * stride + col_byte;
            for (a, &v) in acc.iter_mut().zip(&src[at..at + row_bytes]) {
                *a += i32::from(v) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{codecs, ExtendedColorType, ImageEncoder};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn splitmix_bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect()
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
        for keep in [3, 20, jpeg.len() / 3, jpeg.len() - 2] {
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
    fn sixteen_bit_pngs_convert_like_pil() -> TestResult {
        let p = Preprocessor::new(config(8, 8));
        let values: [u16; 8] = [0, 1, 200, 255, 256, 300, 0x80FF, 65535];
        let encode =
            |color: ExtendedColorType, samples: &[u16]| -> Result<Vec<u8>, image::ImageError> {
                let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_ne_bytes()).collect();
                let mut buf = Vec::new();
                codecs::png::PngEncoder::new(&mut buf).write_image(&bytes, 8, 1, color)?;
                Ok(buf)
            };
        // I;16: clipped to 255, not scaled.
        let grey = p.decode(&encode(ExtendedColorType::L16, &values)?)?;
        let got: Vec<u8> = grey.pixels().map(|px| px.0[0]).collect();
        assert_eq!(got, [0, 1, 200, 255, 255, 255, 255, 255]);
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
        assert_eq!(exif_orientation_value(&exif_block(true, 6)), Some(6));
        assert_eq!(
            exif_orientation_value(&[b"Exif\0\0".as_slice(), &exif_block(false, 8)].concat()),
            Some(8)
        );
        assert_eq!(exif_orientation_value(b"II*\0\xff\xff\xff\xff"), None);
        assert_eq!(exif_orientation_value(b""), None);
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
        assert!(jpeg_is_complete(&jpeg));
        assert!(jpeg_is_complete(
            &[jpeg.as_slice(), b"trailing junk"].concat()
        ));
        assert!(!jpeg_is_complete(&jpeg[..jpeg.len() - 2]));
        assert!(!jpeg_is_complete(&jpeg[..4]));
        Ok(())
    }
}
