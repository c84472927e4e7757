//! Hostile input, fuzzed: bounded property tests over every parser that reads bytes a
//! stranger controls — image decoding and preprocessing, the safetensors header, the model's
//! `config.json` / `preprocessor_config.json`, and the index file. Each runs in the normal
//! `cargo test --release` from a fixed seed (a failure names its seed and case, so it can be
//! replayed); `HOSTILE_ROUNDS=N` multiplies the rounds for a longer local run.
//!
//! What holds, on any bytes: no panic, a typed error whose sentence is not empty, and no
//! allocation sized by an unchecked number (absurd sizes are refused by the declared
//! size, before any buffer exists). Hand-written cases pin each rule that fuzzing alone
//! would hit only by luck: wrapped or overlapping tensor offsets, absurd header lengths,
//! configs past the bounds in `model::config::limits`, index counts that claim more rows
//! than the bytes hold. No cargo-fuzz: a seeded xorshift keeps the run deterministic and
//! dependency-free.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use clipseek::index::{EmbeddingIndex, EntryMeta, IndexError};
use clipseek::model::config::{limits, ClipConfig, ConfigError, PreprocessConfig};
use clipseek::model::preprocess::{PreprocessError, Preprocessor};
use clipseek::model::weights::{
    expected_tensors, f32_safetensors_front, from_bytes, SafetensorsHeader, WeightsError,
};
use common::*;
use sha2::{Digest, Sha256};

/// A seeded xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// How many times the default rounds to run (`HOSTILE_ROUNDS`, default 1).
fn rounds() -> usize {
    std::env::var("HOSTILE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

/// One random damage to `good`: a truncation, bit flips, overwritten bytes (often in the
/// first 64 bytes, where sizes live), a duplicated or deleted span, or extreme values.
fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    let len = bytes.len().max(1);
    match rng.below(7) {
        0 => bytes.truncate(rng.below(len)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len().min(64));
                let value = rng.byte();
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
        }
        3 => {
            // 0x00 or 0xFF runs: zero and maximal sizes, lengths and markers.
            let at = rng.below(bytes.len());
            let n = 1 + rng.below(8);
            let value = if rng.below(2) == 0 { 0 } else { 0xFF };
            for b in bytes.iter_mut().skip(at).take(n) {
                *b = value;
            }
        }
        4 => {
            let at = rng.below(bytes.len());
            let n = rng.below(256).min(bytes.len() - at.min(bytes.len()));
            let span: Vec<u8> = bytes.get(at..at + n).unwrap_or_default().to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, span);
        }
        5 => {
            let at = rng.below(bytes.len());
            let n = rng.below(256);
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        _ => {
            // Keep the first bytes (the signature), then noise.
            let keep = rng.below(len.min(32));
            bytes.truncate(keep);
            let n = rng.below(512);
            let noise = rng.bytes(n);
            bytes.extend(noise);
        }
    }
    bytes
}

/// Runs `f`, turning a panic into an `Err` naming the case.
fn no_panic<T>(case: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| format!("panicked on {case}"))
}

// ---------------------------------------------------------------------------------------
// Images

fn preprocessors() -> Result<Vec<(&'static str, Preprocessor)>, Box<dyn std::error::Error>> {
    let tiny = PreprocessConfig::from_json(&std::fs::read(
        fixtures().join("tiny-clip/preprocessor_config.json"),
    )?)?;
    Ok(vec![
        ("vit-b32", Preprocessor::new(PreprocessConfig::default())),
        ("tiny", Preprocessor::new(tiny)),
    ])
}

/// A fixture's file name and bytes.
type Named = (String, Vec<u8>);

fn fixture_images() -> Result<Vec<Named>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("images"))? {
        let path = entry?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, std::fs::read(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

/// Preprocesses `bytes` both ways the app does; any outcome but a panic, a malformed
/// tensor or an empty error sentence is a failure.
fn check_image(p: &Preprocessor, case: &str, bytes: &[u8]) -> Result<(), String> {
    let shape = p.output_shape();
    let want = shape[0] * shape[1] * shape[2];
    let result = no_panic(case, || p.preprocess(bytes))?;
    match result {
        Ok(tensor) => {
            if tensor.len() != want || tensor.iter().any(|v| !v.is_finite()) {
                return Err(format!(
                    "{case}: a tensor of {} values (want {want}) or non-finite",
                    tensor.len()
                ));
            }
        }
        Err(e) => {
            if e.to_string().trim().is_empty() {
                return Err(format!("{case}: an empty error sentence for {e:?}"));
            }
        }
    }
    // The thumbnail/full-scale path reads the same bytes.
    let full = no_panic(case, || p.decode(bytes).map(|rgb| rgb.dimensions()))?;
    if let Ok((w, h)) = full {
        if w == 0 || h == 0 {
            return Err(format!("{case}: decoded an empty {w}x{h} image"));
        }
    }
    Ok(())
}

#[test]
fn damaged_fixture_images_never_panic() -> TestResult {
    let start = Instant::now();
    let preprocessors = preprocessors()?;
    let mut failures = Vec::new();
    let mut cases = 0usize;
    for (n, (name, good)) in fixture_images()?.iter().enumerate() {
        // The 4000 x 3000 photo takes ~100 ms a decode: a few rounds only.
        let per_file = if good.len() > 100_000 { 4 } else { 40 } * rounds();
        let mut rng = Rng::new(1000 + n as u64);
        for i in 0..per_file {
            let (pname, p) = &preprocessors[i % preprocessors.len()];
            let bytes = mutate(&mut rng, good);
            let case = format!("{name} mutation {i} (seed {}, {pname})", 1000 + n);
            cases += 1;
            if let Err(e) = check_image(p, &case, &bytes) {
                failures.push(e);
            }
        }
    }
    eprintln!(
        "{cases} damaged images in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn every_truncation_of_small_images_is_refused_or_decoded() -> TestResult {
    let p = Preprocessor::new(PreprocessConfig::default());
    let mut failures = Vec::new();
    for name in ["exif-6.jpg", "small.png", "progressive.jpg"] {
        let good = std::fs::read(fixtures().join("images").join(name))?;
        // Every length up to 1 KB (headers), then every 97th.
        let lengths = (0..good.len().min(1024)).chain((1024..good.len()).step_by(97));
        for len in lengths {
            let case = format!("{name} cut to {len} bytes");
            if let Err(e) = check_image(&p, &case, &good[..len]) {
                failures.push(e);
            }
            // A cut JPEG is refused, never filled with grey.
            if name.ends_with(".jpg") && len + 2 < good.len() {
                if let Ok(Ok(_)) = no_panic(&case, || p.preprocess(&good[..len])) {
                    failures.push(format!("{case}: accepted"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn random_bytes_behind_each_signature_never_panic() -> TestResult {
    let p = Preprocessor::new(PreprocessConfig::default());
    let signatures: [&[u8]; 7] = [
        b"\xFF\xD8\xFF",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\x20\0\0\0WEBPVP8L",
        b"RIFF\x20\0\0\0WEBPVP8 ",
        b"BM",
        b"",
    ];
    let mut rng = Rng::new(7);
    let mut failures = Vec::new();
    for i in 0..300 * rounds() {
        let signature = signatures[i % signatures.len()];
        let mut bytes = signature.to_vec();
        let n = rng.below(600);
        bytes.extend(rng.bytes(n));
        if let Err(e) = check_image(&p, &format!("noise {i} (seed 7)"), &bytes) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

/// Standard CRC-32 (PNG chunks), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `small.png` with its IHDR claiming `w` x `h` (CRC fixed, so the size is believed).
fn png_claiming(w: u32, h: u32) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut png = std::fs::read(fixtures().join("images/small.png"))?;
    if png.get(12..16) != Some(b"IHDR") {
        return Err("small.png has no IHDR first".into());
    }
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    Ok(png)
}

/// `jpeg` with its (first) SOF claiming `w` x `h`.
fn jpeg_claiming(mut jpeg: Vec<u8>, w: u16, h: u16) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            jpeg[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
            jpeg[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
            return Ok(jpeg);
        }
        i += 2 + len;
    }
    Err("no SOF marker".into())
}

/// A RIFF WebP container around `chunks`.
fn riff_webp(chunks: &[u8]) -> Vec<u8> {
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&(4 + chunks.len() as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBP");
    webp.extend_from_slice(chunks);
    webp
}

fn too_large(result: Result<Vec<f32>, PreprocessError>) -> bool {
    matches!(result, Err(PreprocessError::TooLarge { .. }))
}

#[test]
fn absurd_declared_sizes_are_refused_before_decoding() -> TestResult {
    let p = Preprocessor::new(PreprocessConfig::default());
    let start = Instant::now();
    // 60000 x 60000 is 3.6 Gpx: refused from the header by every format.
    assert!(too_large(p.preprocess(&png_claiming(60_000, 60_000)?)));
    let r = p.preprocess(&png_claiming(u32::MAX >> 1, 1 << 20)?);
    assert!(matches!(r, Err(PreprocessError::TooLarge { .. })), "{r:?}");
    let jpeg = std::fs::read(fixtures().join("images/square.jpg"))?;
    assert!(too_large(p.preprocess(&jpeg_claiming(
        jpeg.clone(),
        60_000,
        60_000
    )?)));
    assert!(too_large(p.preprocess(&jpeg_claiming(
        jpeg.clone(),
        65_535,
        65_535
    )?)));
    let progressive = std::fs::read(fixtures().join("images/progressive.jpg"))?;
    assert!(too_large(p.preprocess(&jpeg_claiming(
        progressive,
        60_000,
        60_000
    )?)));
    // GIF: the logical screen.
    let mut gif = std::fs::read(fixtures().join("images/palette.gif"))?;
    gif[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let gif_result = p.preprocess(&gif);
    assert!(
        matches!(
            gif_result,
            Err(PreprocessError::TooLarge { .. } | PreprocessError::Decode { .. })
        ),
        "{gif_result:?}"
    );
    // BMP: width and height in the info header (bottom-up and top-down).
    let bmp = std::fs::read(fixtures().join("images/photo.bmp"))?;
    for (w, h) in [(60_000i32, 60_000i32), (60_000, -60_000), (i32::MAX, 2)] {
        let mut bad = bmp.clone();
        bad[18..22].copy_from_slice(&w.to_le_bytes());
        bad[22..26].copy_from_slice(&h.to_le_bytes());
        let result = p.preprocess(&bad);
        assert!(
            matches!(
                result,
                Err(PreprocessError::TooLarge { .. } | PreprocessError::Decode { .. })
            ),
            "BMP {w}x{h}: {result:?}"
        );
    }
    // WebP lossless: 16383 x 16383 (image-webp reads 14-bit sizes; 16384 wraps to 0,
    // which it then refuses) is 268 Mpx.
    let side = 16_383u32 - 1;
    let bits = side | (side << 14);
    let mut body = b"VP8L".to_vec();
    body.extend_from_slice(&64u32.to_le_bytes());
    body.push(0x2F);
    body.extend_from_slice(&bits.to_le_bytes());
    body.extend_from_slice(&[0; 59]);
    let webp = riff_webp(&body);
    let r = p.preprocess(&webp);
    assert!(
        matches!(r, Err(PreprocessError::TooLarge { width: 16_383, .. })),
        "{r:?}"
    );
    // Extended WebP (VP8X): a 60000 x 60000 canvas, 24-bit sizes.
    let mut body = b"VP8X".to_vec();
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&[0, 0, 0, 0]);
    body.extend_from_slice(&(60_000u32 - 1).to_le_bytes()[..3]);
    body.extend_from_slice(&(60_000u32 - 1).to_le_bytes()[..3]);
    body.extend_from_slice(b"VP8L");
    body.extend_from_slice(&8u32.to_le_bytes());
    body.extend_from_slice(&[0x2F, 0, 0, 0, 0, 0, 0, 0]);
    let r = p.preprocess(&riff_webp(&body));
    assert!(
        matches!(
            r,
            Err(PreprocessError::TooLarge { .. } | PreprocessError::Decode { .. })
        ),
        "{r:?}"
    );
    // A lower limit is honoured on the model's (reduced) path too: a 4000 x 3000 JPEG
    // under a 1 Mpx limit is refused, not decoded at 1/4.
    let small_limit = Preprocessor::new(PreprocessConfig::default()).with_max_pixels(1 << 20);
    let large = std::fs::read(fixtures().join("images/large.jpg"))?;
    assert!(too_large(small_limit.preprocess(&large)));
    assert!(too_large(
        small_limit.preprocess(&jpeg_claiming(jpeg, 2000, 2000)?)
    ));
    // All of it without decoding a pixel.
    let elapsed = start.elapsed().as_secs_f64();
    assert!(elapsed < 2.0, "{elapsed} s");
    Ok(())
}

/// `palette.gif` with its logical screen set to `w` x `h` (the frame stays as it is).
fn gif_screen(gif: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = gif.to_vec();
    if let Some(screen) = out.get_mut(6..10) {
        screen[..2].copy_from_slice(&w.to_le_bytes());
        screen[2..].copy_from_slice(&h.to_le_bytes());
    }
    out
}

#[test]
fn a_gif_screen_far_larger_than_its_frame_is_refused_before_it_is_allocated() -> TestResult {
    let p = Preprocessor::new(PreprocessConfig::default());
    let gif = std::fs::read(fixtures().join("images/palette.gif"))?;
    // 13000 x 13000 is under the pixel limit (179 Mpx) but would take 1.16 GB to decode
    // (an RGBA canvas of the whole screen, then RGB): refused from the header, at once.
    let start = Instant::now();
    let r = p.decode(&gif_screen(&gif, 13_000, 13_000));
    assert!(
        matches!(
            r,
            Err(PreprocessError::TooLarge {
                width: 13_000,
                height: 13_000,
                max_pixels
            }) if max_pixels < 13_000 * 13_000
        ),
        "{r:?}"
    );
    let elapsed = start.elapsed().as_secs_f64();
    assert!(elapsed < 0.5, "{elapsed} s: the canvas was allocated");
    // Seeded screens: above the GIF limit refused at once, small ones decoded at their
    // screen size (PIL's canvas); never a panic.
    let mut rng = Rng::new(0x6109);
    for case in 0..24 {
        let big = case % 2 == 0;
        let (w, h) = if big {
            (
                9_000 + rng.below(56_000) as u16,
                9_000 + rng.below(56_000) as u16,
            )
        } else {
            (1 + rng.below(600) as u16, 1 + rng.below(600) as u16)
        };
        let bytes = gif_screen(&gif, w, h);
        let start = Instant::now();
        let r = no_panic(&format!("gif screen {w}x{h}"), || p.decode(&bytes))?;
        let elapsed = start.elapsed().as_secs_f64();
        if big {
            assert!(
                matches!(r, Err(PreprocessError::TooLarge { .. })),
                "{w}x{h}: {r:?}"
            );
            assert!(elapsed < 0.2, "{w}x{h}: {elapsed} s");
        } else {
            match r {
                Ok(rgb) => assert_eq!(rgb.dimensions(), (u32::from(w), u32::from(h))),
                Err(e) => assert!(!e.to_string().is_empty(), "{w}x{h}"),
            }
        }
    }
    Ok(())
}

#[test]
fn a_jpeg_too_short_for_its_declared_size_is_refused_before_decoding() -> TestResult {
    // 169 Mpx is under PIL's limit, so the size alone is accepted; but 15 KB cannot code
    // 2.6 million luma blocks at a bit each. Before: decoded to grey in 3 s (baseline) and
    // 9 s (progressive) with 1 GB resident; now refused from the headers.
    let p = Preprocessor::new(PreprocessConfig::default());
    let start = Instant::now();
    for name in ["square.jpg", "progressive.jpg", "exif-6.jpg", "cmyk.jpg"] {
        let jpeg = std::fs::read(fixtures().join("images").join(name))?;
        let claim = jpeg_claiming(jpeg, 13_000, 13_000)?;
        for result in [
            p.preprocess(&claim).map(|_| ()),
            p.decode(&claim).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(PreprocessError::Truncated { format: "JPEG" })),
                "{name}: {result:?}"
            );
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(elapsed < 1.0, "{elapsed} s");
    // Every real fixture JPEG is far above the bound.
    for (name, bytes) in fixture_images()? {
        if name.ends_with(".jpg") {
            let result = p.preprocess(&bytes);
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }
    Ok(())
}

#[test]
fn a_jpeg_claiming_more_pixels_than_its_data_holds_never_panics() -> TestResult {
    // Under the limit but far larger than the data: the decoders may refuse it or fill the
    // rest, but neither panics, and the model's reduced path agrees with the full one on
    // whether it is an image at all.
    let p = Preprocessor::new(PreprocessConfig::default());
    let jpeg = std::fs::read(fixtures().join("images/square.jpg"))?;
    let progressive = std::fs::read(fixtures().join("images/progressive.jpg"))?;
    let mut failures = Vec::new();
    for (name, base) in [("square.jpg", &jpeg), ("progressive.jpg", &progressive)] {
        for (w, h) in [(2000u16, 1500u16), (1, 1), (1, 4000), (4000, 1), (0, 100)] {
            let bytes = jpeg_claiming(base.clone(), w, h)?;
            let case = format!("{name} claiming {w}x{h}");
            if let Err(e) = check_image(&p, &case, &bytes) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// safetensors

/// A small, valid config and its safetensors file (all tensors zero but the layer norms).
fn small_model() -> Result<(ClipConfig, Vec<u8>), Box<dyn std::error::Error>> {
    let config = ClipConfig::from_json(
        br#"{"projection_dim": 4,
             "text_config": {"vocab_size": 10, "hidden_size": 4, "intermediate_size": 8,
                             "num_hidden_layers": 1, "num_attention_heads": 2,
                             "max_position_embeddings": 5},
             "vision_config": {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 1,
                               "num_attention_heads": 2, "image_size": 8, "patch_size": 4}}"#,
    )?;
    let tensors = expected_tensors(&config);
    let table: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let mut file = f32_safetensors_front(&table);
    for (_, shape) in &tensors {
        let n: usize = shape.iter().product();
        file.extend((0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()));
    }
    Ok((config, file))
}

/// The front (length prefix + JSON, padded) of a file with this header JSON.
fn front_with(json: &str) -> Vec<u8> {
    let mut json = json.as_bytes().to_vec();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut front = (json.len() as u64).to_le_bytes().to_vec();
    front.extend_from_slice(&json);
    front
}

/// Parses a file made of this header and `data_bytes` zero bytes.
fn parse_header(json: &str, data_bytes: usize) -> Result<SafetensorsHeader, WeightsError> {
    let mut file = front_with(json);
    file.resize(file.len() + data_bytes, 0);
    SafetensorsHeader::parse(&file, file.len() as u64)
}

#[test]
fn wrapped_offsets_are_refused() {
    // Before the fix, `header + begin` wrapped: this tensor "began" 4 bytes before the end
    // of the header and was read from the header's own text.
    let begin = u64::MAX - 3;
    let end = u64::MAX;
    let json =
        format!(r#"{{"t": {{"dtype": "F32", "shape": [1], "data_offsets": [{begin}, {end}]}}}}"#);
    let result = parse_header(&json, 16);
    assert!(
        matches!(result, Err(WeightsError::OffsetOverflow { ref tensor, .. }) if tensor == "t"),
        "{result:?}"
    );
    // Near the top without wrapping: simply past the end of the file.
    let json =
        r#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [1099511627776, 1099511627780]}}"#;
    assert!(matches!(
        parse_header(json, 16),
        Err(WeightsError::Truncated { .. })
    ));
    // Even a tensor that is never read (an I64 buffer) cannot point outside the file.
    let json = r#"{"ids": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}}"#;
    assert!(matches!(
        parse_header(json, 8),
        Err(WeightsError::Truncated { .. })
    ));
}

#[test]
fn overlapping_tensors_are_refused() -> Result<(), WeightsError> {
    let cases = [
        // Partial overlap.
        (
            r#"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#,
            "a",
            "b",
        ),
        // One inside the other, listed in the other order.
        (
            r#"{"z": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
             "a": {"dtype": "F16", "shape": [2], "data_offsets": [12, 16]}}"#,
            "z",
            "a",
        ),
        // The same range twice.
        (
            r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}"#,
            "a",
            "b",
        ),
        // A tensor we skip (I64) overlapping one we read.
        (
            r#"{"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
             "w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}"#,
            "ids",
            "w",
        ),
        // Overlap with a tensor two back (the middle one ends earlier).
        (
            r#"{"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [32, 36]},
             "c": {"dtype": "F32", "shape": [1], "data_offsets": [28, 32]}}"#,
            "a",
            "c",
        ),
    ];
    for (json, first, second) in cases {
        let result = parse_header(json, 64);
        assert!(
            matches!(&result, Err(WeightsError::Overlap { first: f, second: s, .. })
                if f == first && s == second),
            "{json}: {result:?}"
        );
    }
    // Adjacent ranges, holes and empty tensors are fine.
    let header = parse_header(
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
            "c": {"dtype": "F32", "shape": [1], "data_offsets": [24, 28]}}"#,
        32,
    )?;
    assert_eq!(header.tensors.len(), 4);
    Ok(())
}

#[test]
fn absurd_header_lengths_are_refused_before_reading_them() {
    // The caller allocates the header from `total_len`: it must refuse first, even when
    // the file (as a server claims) is that large.
    for (claimed, file_len) in [
        (u64::MAX, u64::MAX),
        (u64::MAX - 7, u64::MAX),
        (1 << 40, 1 << 50),
        ((64 << 20) + 1, 1 << 40),
        (100, 50),
    ] {
        let result = SafetensorsHeader::total_len(&claimed.to_le_bytes(), file_len);
        assert!(
            matches!(result, Err(WeightsError::BadHeaderLength { header_bytes, .. }) if header_bytes == claimed),
            "{claimed}: {result:?}"
        );
        let mut file = claimed.to_le_bytes().to_vec();
        file.extend_from_slice(b"{}");
        assert!(SafetensorsHeader::parse(&file, file_len).is_err());
    }
    assert!(matches!(
        SafetensorsHeader::total_len(&[1, 2, 3], 3),
        Err(WeightsError::TooShort { len_bytes: 3 })
    ));
    // At the limit it is accepted by the length check (the caller then reads it).
    assert!(matches!(
        SafetensorsHeader::total_len(&(64u64 << 20).to_le_bytes(), 1 << 30),
        Ok(n) if n == (64 << 20) + 8
    ));
}

#[test]
fn dtype_and_shape_must_match_the_bytes() {
    for json in [
        // 6 f32 need 24 bytes.
        r#"{"t": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}"#,
        // 3 f16 need 6.
        r#"{"t": {"dtype": "F16", "shape": [3], "data_offsets": [0, 12]}}"#,
        // A shape whose element count overflows u64.
        r#"{"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 2], "data_offsets": [0, 0]}}"#,
        // Element count fits, byte count overflows.
        r#"{"t": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}}"#,
        // A zero dimension holds no bytes.
        r#"{"t": {"dtype": "BF16", "shape": [0, 7], "data_offsets": [0, 2]}}"#,
    ] {
        let result = parse_header(json, 64);
        assert!(
            matches!(result, Err(WeightsError::SizeMismatch { .. })),
            "{json}: {result:?}"
        );
    }
    for json in [
        r#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#,
        r#"{"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#,
        r#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}"#,
        r#"{"t": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}"#,
        r#"{"t": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}}"#,
        r#"{"t": [1, 2]}"#,
        r#"["not", "a", "table"]"#,
    ] {
        let result = parse_header(json, 64);
        assert!(
            matches!(result, Err(WeightsError::BadHeader { .. })),
            "{json}: {result:?}"
        );
    }
}

#[test]
fn a_tensor_of_the_wrong_shape_or_dtype_is_named() -> Result<(), Box<dyn std::error::Error>> {
    let (config, good) = small_model()?;
    assert!(from_bytes(&good, &config).is_ok());
    let tensors = expected_tensors(&config);
    // The same file with one tensor's shape transposed.
    let mut table: Vec<(String, Vec<usize>)> = tensors.clone();
    table[0].1.reverse();
    let borrowed: Vec<(&str, &[usize])> = table
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let mut file = f32_safetensors_front(&borrowed);
    file.resize(
        good.len() - f32_safetensors_front(&borrowed).len() + file.len(),
        0,
    );
    let result = from_bytes(&file, &config);
    assert!(
        matches!(&result, Err(WeightsError::WrongShape { tensor, .. }) if *tensor == tensors[0].0),
        "{:?}",
        result.err()
    );
    // A tensor stored as I32: not read, so the configuration misses it.
    let good_table: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let front = f32_safetensors_front(&good_table);
    let json = String::from_utf8(front[8..].to_vec())?.replacen("\"F32\"", "\"I32\"", 1);
    let mut file = front_with(json.trim_end());
    file.resize(good.len() - front.len() + file.len(), 0);
    let result = from_bytes(&file, &config);
    assert!(
        matches!(&result, Err(WeightsError::Missing { .. })),
        "{:?}",
        result.err()
    );
    Ok(())
}

#[test]
fn damaged_safetensors_never_panic() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let (config, good) = small_model()?;
    let real = std::fs::read(fixtures().join("tiny-clip/model.safetensors"))?;
    let real_len = real.len() as u64;
    let real_total = usize::try_from(SafetensorsHeader::total_len(&real, real_len)?)?;
    let real_front = real.get(..real_total).ok_or("short fixture")?;
    let mut rng = Rng::new(41);
    let mut failures = Vec::new();
    for i in 0..1500 * rounds() {
        // A whole small file, loaded against its configuration.
        let bytes = mutate(&mut rng, &good);
        let case = format!("small model mutation {i} (seed 41)");
        match no_panic(&case, || from_bytes(&bytes, &config)) {
            Ok(Ok((weights, header))) => {
                // What loads is what the header says, within the file.
                for info in header.tensors.values() {
                    if info.offset_bytes + info.size_bytes > bytes.len() as u64 {
                        failures.push(format!("{case}: a tensor past the end loaded"));
                    }
                }
                if weights.parameter_count() == 0 {
                    failures.push(format!("{case}: loaded nothing"));
                }
            }
            Ok(Err(e)) if e.to_string().is_empty() => failures.push(format!("{case}: {e:?}")),
            Ok(Err(_)) => {}
            Err(e) => failures.push(e),
        }
        // The real fixture's header, parsed against the real file length.
        let front = mutate(&mut rng, real_front);
        let case = format!("tiny-clip header mutation {i} (seed 41)");
        if let Err(e) = no_panic(&case, || {
            SafetensorsHeader::total_len(&front, real_len)
                .and_then(|_| SafetensorsHeader::parse(&front, real_len))
                .map(|h| h.plan(&config, Default::default()).map(|p| p.len()))
        }) {
            failures.push(e);
        }
    }
    eprintln!(
        "{} damaged safetensors in {:.1} s",
        3000 * rounds(),
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// config.json and preprocessor_config.json

fn config_with(section: &str, field: &str, value: &str) -> String {
    if section.is_empty() {
        format!(r#"{{"{field}": {value}}}"#)
    } else {
        format!(r#"{{"{section}": {{"{field}": {value}}}}}"#)
    }
}

#[test]
fn each_size_is_bounded_above() {
    use limits::*;
    let bounded = [
        ("text_config", "vocab_size", MAX_VOCAB),
        ("text_config", "hidden_size", MAX_WIDTH),
        ("text_config", "intermediate_size", MAX_INTERMEDIATE),
        ("text_config", "num_hidden_layers", MAX_LAYERS),
        ("text_config", "num_attention_heads", MAX_HEADS),
        ("text_config", "max_position_embeddings", MAX_TEXT_POSITIONS),
        ("vision_config", "hidden_size", MAX_WIDTH),
        ("vision_config", "intermediate_size", MAX_INTERMEDIATE),
        ("vision_config", "num_hidden_layers", MAX_LAYERS),
        ("vision_config", "num_attention_heads", MAX_HEADS),
        ("vision_config", "image_size", MAX_IMAGE_SIZE),
        ("vision_config", "patch_size", MAX_IMAGE_SIZE),
        ("", "projection_dim", MAX_WIDTH),
    ];
    for (section, field, max) in bounded {
        let name = if section.is_empty() {
            field.to_string()
        } else {
            format!("{section}.{field}")
        };
        for value in [
            (max + 1).to_string(),
            (max * 1000).to_string(),
            u64::MAX.to_string(),
        ] {
            let json = config_with(section, field, &value);
            let result = ClipConfig::from_json(json.as_bytes());
            assert!(
                matches!(&result, Err(ConfigError::TooLarge { field: f, .. }) if *f == name),
                "{json}: {result:?}"
            );
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains(&value) && message.contains("refused"),
                "{message}"
            );
        }
        // At the bound the field itself passes (another rule may still refuse the whole).
        let json = config_with(section, field, &max.to_string());
        let result = ClipConfig::from_json(json.as_bytes());
        assert!(
            !matches!(&result, Err(ConfigError::TooLarge { field: f, .. }) if *f == name),
            "{json}: {result:?}"
        );
    }
}

#[test]
fn every_fixture_model_is_within_the_bounds() -> TestResult {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures())? {
        let dir = entry?.path();
        let config = dir.join("config.json");
        if config.is_file() {
            ClipConfig::from_json(&std::fs::read(&config)?)
                .map_err(|e| format!("{}: {e}", config.display()))?;
            seen += 1;
        }
        let preprocessor = dir.join("preprocessor_config.json");
        if preprocessor.is_file() {
            PreprocessConfig::from_json(&std::fs::read(&preprocessor)?)
                .map_err(|e| format!("{}: {e}", preprocessor.display()))?;
        }
    }
    assert!(seen >= 3, "{seen} fixture models");
    Ok(())
}

#[test]
fn absurd_products_are_refused() {
    // Every field within bounds, the model not: 256 layers of width 16384.
    let json = br#"{"text_config": {"hidden_size": 16384, "num_hidden_layers": 256, "intermediate_size": 65536}}"#;
    let result = ClipConfig::from_json(json);
    assert!(
        matches!(result, Err(ConfigError::TooManyParameters { .. })),
        "{result:?}"
    );
    // 4096 px in patches of 1: 16.7 M vision tokens.
    let json = br#"{"vision_config": {"image_size": 4096, "patch_size": 1}}"#;
    let result = ClipConfig::from_json(json);
    assert!(
        matches!(
            result,
            Err(ConfigError::TooLarge {
                value: 16_777_217,
                ..
            })
        ),
        "{result:?}"
    );
    // The largest public CLIP (ViT-bigG/14) is accepted.
    let big_g = br#"{"projection_dim": 1280,
        "text_config": {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                        "num_attention_heads": 20, "hidden_act": "gelu"},
        "vision_config": {"hidden_size": 1664, "intermediate_size": 8192, "num_hidden_layers": 48,
                          "num_attention_heads": 16, "patch_size": 14, "hidden_act": "gelu"}}"#;
    assert!(ClipConfig::from_json(big_g).is_ok());
}

#[test]
fn zero_negative_and_non_dividing_sizes_are_refused() {
    let invalid = [
        config_with("text_config", "vocab_size", "0"),
        config_with("text_config", "num_attention_heads", "0"),
        config_with("vision_config", "patch_size", "0"),
        config_with("vision_config", "image_size", "0"),
        config_with("", "projection_dim", "0"),
        config_with("text_config", "max_position_embeddings", "1"),
        config_with("vision_config", "num_attention_heads", "7"),
        config_with("text_config", "num_attention_heads", "3"),
        config_with("vision_config", "patch_size", "30"),
        config_with("vision_config", "num_channels", "4"),
        config_with("vision_config", "num_channels", "1"),
        config_with("text_config", "layer_norm_eps", "-1e-5"),
        config_with("vision_config", "layer_norm_eps", "0"),
        config_with("vision_config", "layer_norm_eps", "1e300"),
    ];
    for json in invalid {
        let result = ClipConfig::from_json(json.as_bytes());
        assert!(
            matches!(result, Err(ConfigError::Invalid { .. })),
            "{json}: {result:?}"
        );
    }
    for json in [
        config_with("text_config", "hidden_size", "-512"),
        config_with("vision_config", "patch_size", "3.5"),
        config_with("vision_config", "image_size", "1e30"),
        config_with("text_config", "num_hidden_layers", "\"12\""),
        config_with("text_config", "num_hidden_layers", "18446744073709551616"),
    ] {
        let result = ClipConfig::from_json(json.as_bytes());
        assert!(
            matches!(result, Err(ConfigError::Json { .. })),
            "{json}: {result:?}"
        );
    }
}

#[test]
fn preprocessor_sizes_are_bounded() {
    for json in [
        r#"{"size": 1000000000}"#,
        r#"{"size": {"shortest_edge": 4097}}"#,
        r#"{"crop_size": 4294967295}"#,
        r#"{"crop_size": {"height": 224, "width": 100000}}"#,
    ] {
        let result = PreprocessConfig::from_json(json.as_bytes());
        assert!(
            matches!(result, Err(ConfigError::TooLarge { .. })),
            "{json}: {result:?}"
        );
    }
    for json in [
        r#"{"size": 0}"#,
        r#"{"crop_size": {"height": 0, "width": 224}}"#,
        r#"{"rescale_factor": 0}"#,
        r#"{"rescale_factor": -0.5}"#,
        r#"{"image_std": [1, 1]}"#,
        r#"{"image_std": [1, 0, 1]}"#,
        r#"{"size": {"height": 224, "width": 224}}"#,
    ] {
        let result = PreprocessConfig::from_json(json.as_bytes());
        assert!(
            matches!(result, Err(ConfigError::Invalid { .. })),
            "{json}: {result:?}"
        );
    }
    for json in [
        r#"{"size": -1}"#,
        r#"{"size": 4294967296}"#,
        r#"{"image_mean": "x"}"#,
    ] {
        let result = PreprocessConfig::from_json(json.as_bytes());
        assert!(
            matches!(result, Err(ConfigError::Json { .. })),
            "{json}: {result:?}"
        );
    }
    assert!(PreprocessConfig::from_json(br#"{"size": 4096, "crop_size": 4096}"#).is_ok());
}

#[test]
fn damaged_configs_never_panic_and_what_loads_is_bounded() -> TestResult {
    let config = std::fs::read(fixtures().join("tiny-clip/config.json"))?;
    let preprocessor = std::fs::read(fixtures().join("tiny-clip/preprocessor_config.json"))?;
    let mut rng = Rng::new(23);
    let mut failures = Vec::new();
    for i in 0..1500 * rounds() {
        let bytes = mutate(&mut rng, &config);
        let case = format!("config.json mutation {i} (seed 23)");
        match no_panic(&case, || ClipConfig::from_json(&bytes)) {
            Ok(Ok(c)) => {
                let tensors = expected_tensors(&c);
                let count =
                    13 + 16 * (c.text_config.num_hidden_layers + c.vision_config.num_hidden_layers);
                if tensors.len() != count {
                    failures.push(format!("{case}: {} tensors", tensors.len()));
                }
            }
            Ok(Err(e)) if e.to_string().is_empty() => failures.push(format!("{case}: {e:?}")),
            Ok(Err(_)) => {}
            Err(e) => failures.push(e),
        }
        let bytes = mutate(&mut rng, &preprocessor);
        let case = format!("preprocessor_config.json mutation {i} (seed 23)");
        match no_panic(&case, || {
            PreprocessConfig::from_json(&bytes).map(|c| Preprocessor::new(c).output_shape())
        }) {
            Ok(Ok(shape)) => {
                let max = limits::MAX_IMAGE_SIZE;
                if shape[1] > max || shape[2] > max {
                    failures.push(format!("{case}: {shape:?}"));
                }
            }
            Ok(Err(_)) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The index file

const MODEL: &str = "openai/clip-vit-base-patch32";

fn real_index(n: usize, dim: usize) -> Result<EmbeddingIndex, IndexError> {
    let mut rng = Rng::new(5);
    let mut index = EmbeddingIndex::new(MODEL, dim);
    for i in 0..n {
        let vector: Vec<f32> = (0..dim)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let meta = EntryMeta {
            path: format!("Photos/{}/IMG_{i:04}.jpg", 2000 + i % 7),
            size_bytes: 1_000_000 + i as u64,
            modified_ms: 1_700_000_000_000 + i as i64,
            content_hash: [(i % 251) as u8; 32],
            taken_ms: None,
        };
        index.upsert(meta, &vector)?;
    }
    index.remove_path("Photos/2001/IMG_0001.jpg");
    Ok(index)
}

/// Replaces the trailing checksum with the right one, so edits reach the parser.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len().saturating_sub(32));
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    bytes
}

/// `bytes` with its header JSON replaced (and the length field and checksum fixed).
fn with_header(bytes: &[u8], header: &str) -> Option<Vec<u8>> {
    let len = usize::try_from(u32::from_le_bytes(bytes.get(20..24)?.try_into().ok()?)).ok()?;
    let mut out = bytes.get(..20)?.to_vec();
    out.extend_from_slice(&u32::try_from(header.len()).ok()?.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes.get(24 + len..)?);
    Some(reseal(out))
}

fn check_index(case: &str, bytes: &[u8]) -> Result<(), String> {
    match no_panic(case, || EmbeddingIndex::from_bytes(bytes, Some(MODEL)))? {
        Ok(index) => {
            if index.matrix().len() != index.len() * index.dim()
                || index.dim() > clipseek::index::store::MAX_DIM
            {
                return Err(format!("{case}: an inconsistent index loaded"));
            }
        }
        Err(e) => {
            if e.to_string().is_empty() {
                return Err(format!("{case}: {e:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn damaged_index_files_never_panic() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let good = real_index(40, 512)?.to_bytes();
    let mut rng = Rng::new(77);
    let mut failures = Vec::new();
    for i in 0..400 * rounds() {
        let bytes = mutate(&mut rng, &good);
        // As damaged on disk (caught by the checksum) and as written by a faulty writer
        // (resealed, so the parser itself meets the damage).
        for (how, bytes) in [("raw", bytes.clone()), ("resealed", reseal(bytes))] {
            if let Err(e) = check_index(&format!("index mutation {i} {how} (seed 77)"), &bytes) {
                failures.push(e);
            }
        }
    }
    eprintln!(
        "{} damaged index files in {:.1} s",
        800 * rounds(),
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

#[test]
fn index_counts_beyond_the_bytes_are_refused_without_allocating() -> TestResult {
    let index = real_index(40, 512)?;
    let good = index.to_bytes();
    let next_id = index.next_id();
    let n = index.len() as u64;
    let start = Instant::now();
    for count in [n, n + 1, 1000, 1 << 32, 1 << 48, u64::MAX] {
        for dim in [512u64, 511, 1, 65_536, 65_537, 1 << 40, u64::MAX] {
            let header = format!(
                r#"{{"model_id": "{MODEL}", "dim": {dim}, "count": {count}, "next_id": {next_id}}}"#
            );
            let bytes = with_header(&good, &header).ok_or("no header")?;
            let result = EmbeddingIndex::from_bytes(&bytes, Some(MODEL));
            if (count, dim) == (n, 512) {
                assert!(result.is_ok(), "{result:?}");
                continue;
            }
            assert!(
                matches!(
                    result,
                    Err(IndexError::CountExceedsData { .. }
                        | IndexError::MalformedHeader { .. }
                        | IndexError::MalformedEntry { .. }
                        | IndexError::MatrixSizeMismatch { .. })
                ),
                "count {count} dim {dim}: {result:?}"
            );
        }
    }
    // An empty index may not claim a vast dim either (callers size buffers from it).
    let empty = EmbeddingIndex::new(MODEL, 512).to_bytes();
    let header =
        format!(r#"{{"model_id": "{MODEL}", "dim": 1099511627776, "count": 0, "next_id": 0}}"#);
    let result =
        EmbeddingIndex::from_bytes(&with_header(&empty, &header).ok_or("no header")?, None);
    assert!(
        matches!(result, Err(IndexError::MalformedHeader { .. })),
        "{result:?}"
    );
    let elapsed = start.elapsed().as_secs_f64();
    assert!(elapsed < 2.0, "{elapsed} s");
    Ok(())
}
