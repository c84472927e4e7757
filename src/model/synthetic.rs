//! A counter-based weight generator that fills a full-size CLIP with reproducible random
//! values, bit for bit the same as `scripts/make_fixtures.py` computes with numpy.
//!
//! The repository cannot ship a 605 MB checkpoint and tests may not download one, so the
//! fixture script commits only a `spec.json` (names, shapes, scale and offset per tensor)
//! and the reference outputs of transformers on the generated weights; the slow tests and
//! the benchmarks regenerate the weights here. Each element is
//! `offset + (2u - 1) * scale` in f32, where `u` is the top 24 bits of SplitMix64 over a
//! counter seeded by the FNV-1a hash of the tensor name.

use serde::Deserialize;

/// One tensor of the spec.
#[derive(Debug, Clone, Deserialize)]
pub struct SpecTensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// Decimal text, parsed to f64 and rounded to f32 (as the script does).
    pub scale: String,
    pub offset: String,
}

/// `spec.json` of a synthetic model.
#[derive(Debug, Clone, Deserialize)]
pub struct Spec {
    pub generator: String,
    pub tensors: Vec<SpecTensor>,
}

/// The only generator this code implements.
pub const GENERATOR: &str = "splitmix64-fnv1a-v1";

/// Why a spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("spec.json is not valid: {0}")]
    Json(String),
    #[error("spec.json names generator {found}, this code implements {GENERATOR}")]
    Generator { found: String },
    #[error("writing the synthetic model failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("spec.json: tensor {tensor} has an unreadable {field} {value:?}")]
    Number {
        tensor: String,
        field: &'static str,
        value: String,
    },
}

impl Spec {
    pub fn from_json(bytes: &[u8]) -> Result<Self, SpecError> {
        let spec: Spec =
            serde_json::from_slice(bytes).map_err(|e| SpecError::Json(e.to_string()))?;
        if spec.generator != GENERATOR {
            return Err(SpecError::Generator {
                found: spec.generator,
            });
        }
        Ok(spec)
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The `i`-th value in [-1, 1) of the stream seeded by `seed`.
#[inline]
pub fn unit(seed: u64, i: u64) -> f32 {
    crate::splitmix::signed_unit(crate::splitmix::at(seed, i))
}

fn number(t: &SpecTensor, field: &'static str, value: &str) -> Result<f32, SpecError> {
    value
        .trim()
        .parse::<f64>()
        .map(|v| v as f32)
        .map_err(|_| SpecError::Number {
            tensor: t.name.clone(),
            field,
            value: value.to_owned(),
        })
}

/// Generates one tensor's values.
pub fn generate(t: &SpecTensor) -> Result<Vec<f32>, SpecError> {
    let scale = number(t, "scale", &t.scale)?;
    let offset = number(t, "offset", &t.offset)?;
    let seed = fnv1a64(t.name.as_bytes());
    let n: usize = t.shape.iter().product();
    Ok((0..n as u64)
        .map(|i| offset + unit(seed, i) * scale)
        .collect())
}

/// Streams the whole model as an f32 safetensors file, one tensor at a time.
pub fn write_safetensors(spec: &Spec, out: &mut impl std::io::Write) -> Result<(), SpecError> {
    let table: Vec<(&str, &[usize])> = spec
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    out.write_all(&super::weights::f32_safetensors_front(&table))?;
    let mut buf = Vec::new();
    for t in &spec.tensors {
        buf.clear();
        for v in generate(t)? {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&buf)?;
    }
    Ok(())
}

/// A photo-like `width` x `height` JPEG (smooth gradients and rings), quality 90: the
/// picture the decode-and-preprocess benchmarks time, natively and in wasm32.
pub fn photo_like_jpeg(width: u32, height: u32) -> Result<Vec<u8>, image::ImageError> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let fx = x as f32 / width as f32;
        let fy = y as f32 / height as f32;
        let ring = (((fx - 0.5).powi(2) + (fy - 0.4).powi(2)).sqrt() * 40.0).sin();
        image::Rgb([
            (255.0 * fx) as u8,
            (200.0 * fy + 40.0 * ring) as u8,
            (128.0 + 100.0 * ring) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img)?;
    Ok(out)
}

/// The `seed`-th of a family of distinct photo-like `width` x `height` JPEGs (quality 88):
/// horizontal colour bands, 25 soft discs and grain, all drawn from `seed`, so that a
/// folder of them holds different pictures that compress like photos (the grain keeps the
/// JPEG's high frequencies busy, as a camera's noise does). Used to draw the browser
/// tests' 12 MP folders (`examples/make_photos.rs`), so no test needs an image library
/// outside this crate.
pub fn varied_photo_jpeg(width: u32, height: u32, seed: u64) -> Result<Vec<u8>, image::ImageError> {
    let s = fnv1a64(&seed.to_le_bytes());
    let mut k = 0u64;
    let mut next = || {
        k += 1;
        (unit(s, k) + 1.0) * 0.5
    };
    let bands: Vec<[f32; 3]> = (0..6).map(|_| [next(), next(), next()]).collect();
    let discs: Vec<([f32; 2], f32, [f32; 3])> = (0..25)
        .map(|_| {
            (
                [next(), next()],
                0.025 + 0.125 * next(),
                [next(), next(), next()],
            )
        })
        .collect();
    let (w, h) = (width as f32, height as f32);
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let fx = x as f32 / w;
        let fy = y as f32 / h;
        // Bands blend into each other over the lower half of each band.
        let band = fy * (bands.len() - 1) as f32;
        let (i, t) = (band.floor() as usize, band.fract());
        let t = ((t - 0.5).max(0.0) * 2.0).min(1.0);
        let j = (i + 1).min(bands.len() - 1);
        let mut c = [0f32; 3];
        for ch in 0..3 {
            c[ch] = bands[i][ch] * (1.0 - t) + bands[j][ch] * t;
        }
        for ([cx, cy], r, colour) in &discs {
            let dx = (fx - cx) * w / h;
            let d = (dx * dx + (fy - cy) * (fy - cy)).sqrt();
            // A soft edge, about 1 % of the height wide.
            let a = ((r - d) / 0.01 + 0.5).clamp(0.0, 1.0);
            if a > 0.0 {
                for ch in 0..3 {
                    c[ch] = c[ch] * (1.0 - a) + colour[ch] * a;
                }
            }
        }
        let grain = unit(s ^ 0x5eed, u64::from(y) * u64::from(width) + u64::from(x)) * 0.06;
        image::Rgb(c.map(|v| ((v + grain) * 255.0).clamp(0.0, 255.0) as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88).encode_image(&img)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unit_is_in_range_and_spread() {
        let seed = fnv1a64(b"x");
        let v: Vec<f32> = (0..10_000).map(|i| unit(seed, i)).collect();
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn varied_photos_differ_by_seed_and_decode() -> Result<(), image::ImageError> {
        let a = varied_photo_jpeg(64, 48, 1)?;
        assert_ne!(a, varied_photo_jpeg(64, 48, 2)?);
        assert_eq!(a, varied_photo_jpeg(64, 48, 1)?);
        assert_eq!(
            image::load_from_memory(&a)?.to_rgb8().dimensions(),
            (64, 48)
        );
        Ok(())
    }
}
