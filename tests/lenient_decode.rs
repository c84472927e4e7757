//! Files PIL (or libpng / libjpeg) reads that `image`'s decoders refuse, and the
//! second tries of `model::preprocess` that read them (`tests/fixtures/lenient/`,
//! from Pillow's test images; see tests/fixtures/README.md), against what PIL shows: the
//! size and the mean colour `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` gives.
//! Files whose data really is missing are still refused, with a sentence.
//! `scripts/decode_vs_pillow.py` measures the same thing over whole test suites.

use std::path::PathBuf;

use clipseek::model::config::PreprocessConfig;
use clipseek::model::preprocess::{PreprocessError, Preprocessor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn images() -> PathBuf {
    fixtures().join("images")
}

fn preprocessor() -> Result<Preprocessor, Box<dyn std::error::Error>> {
    let json = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-clip/preprocessor_config.json"),
    )?;
    Ok(Preprocessor::new(PreprocessConfig::from_json(&json)?))
}

/// A lenient fixture, PIL's size and mean R, G, B for it, and how far ours may be.
struct Case {
    name: &'static str,
    size: (u32, u32),
    mean: [f64; 3],
    tolerance: f64,
}

const fn case(name: &'static str, size: (u32, u32), mean: [f64; 3], tolerance: f64) -> Case {
    Case {
        name,
        size,
        mean,
        tolerance,
    }
}

fn mean(rgb: &image::RgbImage) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for p in rgb.pixels() {
        for (s, v) in sum.iter_mut().zip(p.0) {
            *s += f64::from(v);
        }
    }
    sum.map(|s| s / f64::from(rgb.width() * rgb.height()))
}

#[test]
fn lenient_files_decode_as_pil_shows_them() -> TestResult {
    let p = preprocessor()?;
    // JPEG decoders differ by a level here and there.
    let cases = [
        case("badplanes.bmp", (127, 64), [75.3, 75.3, 75.3], 0.01),
        // badrle.bmp: PIL places a few of its broken runs differently.
        case("badrle.bmp", (127, 64), [115.09, 35.38, 194.55], 0.15),
        case("rletopdown.bmp", (127, 64), [119.36, 116.94, 120.47], 0.01),
        case("pal8os2v2.bmp", (127, 64), [119.36, 116.94, 120.47], 0.01),
        case("no_palette.gif", (1, 1), [0.0, 0.0, 0.0], 0.0),
        case(
            "photoshop-200dpi-broken.jpg",
            (200, 200),
            [92.09, 92.09, 92.09],
            1.0,
        ),
        case("truncated_app14.jpg", (100, 100), [28.0, 4.49, 3.5], 1.0),
    ];
    for Case {
        name,
        size,
        mean: want,
        tolerance,
    } in cases
    {
        let bytes = std::fs::read(fixtures().join("lenient").join(name))?;
        let rgb = p.decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
        assert_eq!(rgb.dimensions(), size, "{name}");
        let got = mean(&rgb);
        for c in 0..3 {
            assert!(
                (got[c] - want[c]).abs() <= tolerance,
                "{name}: mean {got:?}, PIL {want:?}"
            );
        }
        p.preprocess(&bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    // rletopdown.bmp and pal8os2v2.bmp hold the same picture as the bmpsuite's pal8.bmp:
    // the top-down rows and the OS/2 header give identical pixels.
    let a = p.decode(&std::fs::read(fixtures().join("lenient/rletopdown.bmp"))?)?;
    let b = p.decode(&std::fs::read(fixtures().join("lenient/pal8os2v2.bmp"))?)?;
    assert_eq!(a, b);
    Ok(())
}

#[test]
fn a_jpeg_without_its_end_marker_decodes_when_its_scan_is_whole() -> TestResult {
    let p = preprocessor()?;
    for name in ["square.jpg", "landscape.jpg"] {
        let whole = std::fs::read(images().join(name))?;
        assert!(whole.ends_with(&[0xFF, 0xD9]), "{name}");
        let no_end = &whole[..whole.len() - 2];
        assert_eq!(p.decode(no_end)?, p.decode(&whole)?, "{name}");
        let padded = [no_end, &[0u8; 64]].concat();
        assert_eq!(p.decode(&padded)?, p.decode(&whole)?, "{name}");
        // Data really missing: refused (half the file, even padded with zeros as libjpeg
        // reads it; or the last 12 bytes).
        let half = &whole[..whole.len() / 2];
        let cuts = [
            half.to_vec(),
            [half, &[0u8; 1024]].concat(),
            whole[..whole.len() - 12].to_vec(),
        ];
        for bytes in cuts {
            let e = p
                .decode(&bytes)
                .err()
                .ok_or(format!("{name}: cut decoded"))?;
            assert!(
                matches!(e, PreprocessError::Truncated { .. }),
                "{name}: {e}"
            );
            assert_eq!(e.to_string(), "The JPEG file is truncated.");
        }
    }
    // A progressive JPEG needs its end marker to know the last scan is there (as libjpeg).
    let progressive = std::fs::read(images().join("progressive.jpg"))?;
    let e = p.decode(&progressive[..progressive.len() - 2]).err();
    assert!(
        matches!(e, Some(PreprocessError::Truncated { .. })),
        "{e:?}"
    );
    Ok(())
}

/// `png` with a chunk of `kind` and `data` inserted after IHDR, its CRC off by one.
fn with_bad_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let ihdr_end = 8 + 12 + 13;
    let crc = crc32fast::hash(&[&kind[..], data].concat()).wrapping_add(1);
    let chunk = [
        &(data.len() as u32).to_be_bytes()[..],
        kind,
        data,
        &crc.to_be_bytes(),
    ]
    .concat();
    [&png[..ihdr_end], &chunk, &png[ihdr_end..]].concat()
}

#[test]
fn a_png_ancillary_chunk_with_a_bad_checksum_is_dropped_as_libpng_does() -> TestResult {
    let p = preprocessor()?;
    let png = std::fs::read(images().join("small.png"))?;
    let text = with_bad_chunk(&png, b"tEXt", b"Comment\0damaged");
    assert_eq!(p.decode(&text)?, p.decode(&png)?);
    // A critical chunk with a bad checksum is still refused, with the decoder's sentence.
    let critical = with_bad_chunk(&png, b"PLTE", &[0, 0, 0]);
    let e = p.decode(&critical).err().ok_or("a bad PLTE decoded")?;
    assert!(
        e.to_string()
            .starts_with("The PNG file could not be decoded: "),
        "{e}"
    );
    Ok(())
}

#[test]
fn lenient_decoders_still_refuse_missing_data() -> TestResult {
    let p = preprocessor()?;
    // The RLE data cut 300 bytes after the palette (PIL: "not enough image data").
    for name in ["badrle.bmp", "rletopdown.bmp"] {
        let rle = std::fs::read(fixtures().join("lenient").join(name))?;
        let e = p
            .decode(&rle[..1078 + 300])
            .err()
            .ok_or(format!("{name}: cut decoded"))?;
        assert_eq!(e.to_string(), "The BMP file is truncated.", "{name}");
    }
    let os2 = std::fs::read(fixtures().join("lenient/pal8os2v2.bmp"))?;
    assert!(p.decode(&os2[..40]).is_err());
    let gif = std::fs::read(fixtures().join("lenient/no_palette.gif"))?;
    // Cut inside the first frame (the second frame alone may be cut: PIL reads the first).
    assert!(p.decode(&gif[..20]).is_err());
    Ok(())
}

#[test]
fn sixteen_bit_grey_is_scaled_not_clipped_to_white() -> TestResult {
    let p = preprocessor()?;
    let rgb = p.decode(&std::fs::read(images().join("grey16.png"))?)?;
    let m = mean(&rgb)[0];
    // PIL's clip gives ~250 (nearly all 255); the high byte keeps the picture.
    assert!(m < 200.0, "mean {m}");
    Ok(())
}
