//! EXIF blocks and small JPEGs built here, byte by byte: both TIFF byte orders, dates with
//! and without offsets, the fallbacks, malformed and hostile blocks.

use super::*;
use crate::model::config::PreprocessConfig;
use crate::model::preprocess::Preprocessor;
use image::{codecs::jpeg::JpegEncoder, ExtendedColorType, ImageEncoder, RgbImage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// 2024-02-29 13:45:07 as if UTC.
const LEAP_DAY_MS: i64 = 1_709_214_307_000;

/// One directory entry to write: tag, type and value bytes (ASCII gets its NUL here).
#[derive(Clone)]
struct Tag(u16, u16, Vec<u8>);

fn ascii(tag: u16, text: &str) -> Tag {
    let mut v = text.as_bytes().to_vec();
    v.push(0);
    Tag(tag, 2, v)
}

fn short(tag: u16, value: u16, big: bool) -> Tag {
    let b = if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    };
    Tag(tag, 3, b.to_vec())
}

/// A TIFF block (`Exif\0\0` not included): IFD0 with `ifd0`, and when `exif` is not empty
/// an Exif IFD holding it (IFD0 gets the pointer). Values over 4 bytes go after each IFD.
fn tiff(big: bool, ifd0: &[Tag], exif: &[Tag]) -> Vec<u8> {
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let ifd_len = |n: usize, tags: &[Tag]| -> usize {
        2 + 12 * n
            + 4
            + tags
                .iter()
                .map(|t| t.2.len())
                .filter(|&l| l > 4)
                .sum::<usize>()
    };
    let mut ifd0 = ifd0.to_vec();
    let n0 = ifd0.len() + usize::from(!exif.is_empty());
    let exif_at = 8 + ifd_len(n0, &ifd0);
    if !exif.is_empty() {
        ifd0.push(Tag(0x8769, 4, w32(exif_at as u32).to_vec()));
    }
    let mut out = if big { b"MM".to_vec() } else { b"II".to_vec() };
    out.extend(w16(42));
    out.extend(w32(8));
    let write_ifd = |out: &mut Vec<u8>, tags: &[Tag]| {
        let start = out.len();
        let mut extra_at = start + 2 + 12 * tags.len() + 4;
        let mut extra: Vec<u8> = Vec::new();
        out.extend(w16(tags.len() as u16));
        for Tag(tag, kind, value) in tags {
            out.extend(w16(*tag));
            out.extend(w16(*kind));
            let count = if *kind == 3 {
                value.len() / 2
            } else {
                value.len()
            };
            out.extend(w32(count as u32));
            if value.len() <= 4 {
                let mut field = value.clone();
                field.resize(4, 0);
                out.extend(field);
            } else {
                out.extend(w32(extra_at as u32));
                extra_at += value.len();
                extra.extend(value);
            }
        }
        out.extend(w32(0));
        out.extend(extra);
    };
    write_ifd(&mut out, &ifd0);
    if !exif.is_empty() {
        assert_eq!(out.len(), exif_at);
        write_ifd(&mut out, exif);
    }
    out
}

/// A DateTimeOriginal block (`offset`: OffsetTimeOriginal too).
fn dated(big: bool, date: &str, offset: Option<&str>) -> Vec<u8> {
    let mut exif = vec![ascii(0x9003, date)];
    if let Some(o) = offset {
        exif.push(ascii(0x9011, o));
    }
    tiff(big, &[], &exif)
}

/// A real 16x8 JPEG (a few hundred bytes) carrying `exif` in its APP1, if any.
fn jpeg(
    exif: Option<Vec<u8>>,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 32) as u8, 128])
    });
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 80);
    if let Some(e) = exif {
        enc.set_exif_metadata(e)?;
    }
    enc.write_image(img.as_raw(), width, height, ExtendedColorType::Rgb8)?;
    Ok(out)
}

fn preprocessor() -> Preprocessor {
    Preprocessor::new(PreprocessConfig {
        shortest_edge: 4,
        crop_height: 4,
        crop_width: 4,
        ..PreprocessConfig::default()
    })
}

#[test]
fn datetimes_parse_to_epoch_ms() {
    assert_eq!(parse_datetime(b"1970:01:01 00:00:00"), Some(0));
    assert_eq!(parse_datetime(b"2024:02:29 13:45:07"), Some(LEAP_DAY_MS));
    assert_eq!(parse_datetime(b"1969:12:31 23:59:59"), Some(-1000));
    // Bytes after the 19 (a NUL, sub-seconds some writers add) are ignored.
    assert_eq!(parse_datetime(b"2024:02:29 13:45:07.25"), Some(LEAP_DAY_MS));
    for bad in [
        &b"0000:00:00 00:00:00"[..],
        b"2023:02:29 00:00:00",
        b"2024:13:01 00:00:00",
        b"2024:01:01 24:00:00",
        b"2024-01-01 00:00:00",
        b"    :  :     :  :  ",
        b"2024:01:01",
        b"+024:01:01 00:00:00",
        b"2024:01:01 00:00:\xff\xff",
    ] {
        assert_eq!(
            parse_datetime(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn offsets_parse_to_minutes() {
    assert_eq!(parse_offset(b"+09:00"), Some(540));
    assert_eq!(parse_offset(b"-03:30"), Some(-210));
    assert_eq!(parse_offset(b"+00:00"), Some(0));
    for bad in [
        &b"09:00"[..],
        b"+9:00",
        b"+15:00",
        b"+09:60",
        b"+09-00",
        b"",
        b"   :  ",
    ] {
        assert_eq!(
            parse_offset(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn date_taken_reads_both_byte_orders() {
    for big in [false, true] {
        let block = dated(big, "2024:02:29 13:45:07", None);
        assert_eq!(date_taken(&block), Some(LEAP_DAY_MS), "big {big}");
        // With the APP1's own prefix, as a JPEG's header hands it over.
        let prefixed = [b"Exif\0\0".as_slice(), &block].concat();
        assert_eq!(date_taken(&prefixed), Some(LEAP_DAY_MS), "big {big}");
    }
}

#[test]
fn an_offset_gives_the_real_instant() {
    for big in [false, true] {
        let tokyo = dated(big, "2024:02:29 13:45:07", Some("+09:00"));
        assert_eq!(date_taken(&tokyo), Some(LEAP_DAY_MS - 9 * 3_600_000));
        let west = dated(big, "2024:02:29 13:45:07", Some("-03:30"));
        assert_eq!(date_taken(&west), Some(LEAP_DAY_MS + 210 * 60_000));
        // A malformed offset is ignored: local time as written.
        let odd = dated(big, "2024:02:29 13:45:07", Some("+9h"));
        assert_eq!(date_taken(&odd), Some(LEAP_DAY_MS));
    }
}

#[test]
fn fallbacks_digitized_then_ifd0_datetime() {
    let digitized = tiff(
        false,
        &[],
        &[
            ascii(0x9004, "2020:01:02 03:04:05"),
            ascii(0x9012, "+01:00"),
        ],
    );
    let jan2 = parse_datetime(b"2020:01:02 03:04:05");
    assert_eq!(date_taken(&digitized), jan2.map(|ms| ms - 3_600_000));
    // IFD0's DateTime, with OffsetTime from the Exif IFD.
    let modified = tiff(
        true,
        &[ascii(0x0132, "2020:01:02 03:04:05")],
        &[ascii(0x9010, "-01:00")],
    );
    assert_eq!(date_taken(&modified), jan2.map(|ms| ms + 3_600_000));
    // IFD0's DateTime with no Exif IFD at all.
    let bare = tiff(false, &[ascii(0x0132, "2020:01:02 03:04:05")], &[]);
    assert_eq!(date_taken(&bare), jan2);
    // A malformed DateTimeOriginal falls through to DateTimeDigitized, then DateTime.
    let bad_original = tiff(
        false,
        &[ascii(0x0132, "2019:05:06 07:08:09")],
        &[
            ascii(0x9003, "0000:00:00 00:00:00"),
            ascii(0x9004, "2020:01:02 03:04:05"),
        ],
    );
    assert_eq!(date_taken(&bad_original), jan2);
    let both_bad = tiff(
        false,
        &[ascii(0x0132, "2019:05:06 07:08:09")],
        &[
            ascii(0x9003, "    :  :     :  :  "),
            ascii(0x9004, "garbage"),
        ],
    );
    assert_eq!(
        date_taken(&both_bad),
        parse_datetime(b"2019:05:06 07:08:09")
    );
    // The original wins over the others when it is good.
    let all = tiff(
        false,
        &[ascii(0x0132, "2019:05:06 07:08:09")],
        &[
            ascii(0x9004, "2020:01:02 03:04:05"),
            ascii(0x9003, "2024:02:29 13:45:07"),
        ],
    );
    assert_eq!(date_taken(&all), Some(LEAP_DAY_MS));
}

#[test]
fn no_date_is_none() {
    assert_eq!(date_taken(b""), None);
    assert_eq!(date_taken(b"Exif\0\0"), None);
    assert_eq!(date_taken(b"XX*\0\x08\0\0\0"), None);
    // Orientation only.
    assert_eq!(
        date_taken(&tiff(true, &[short(0x0112, 6, true)], &[])),
        None
    );
    // A date stored with the wrong type (SHORT) is not a date.
    let wrong_type = tiff(false, &[], &[Tag(0x9003, 3, vec![1, 0])]);
    assert_eq!(date_taken(&wrong_type), None);
    // Its value offset points past the end.
    let mut cut = dated(false, "2024:02:29 13:45:07", None);
    cut.truncate(cut.len() - 10);
    assert_eq!(date_taken(&cut), None);
}

#[test]
fn orientation_and_date_come_from_one_reader() {
    for big in [false, true] {
        let block = tiff(
            big,
            &[short(0x0112, 6, big)],
            &[ascii(0x9003, "2024:02:29 13:45:07")],
        );
        assert_eq!(orientation_value(&block), Some(6));
        assert_eq!(date_taken(&block), Some(LEAP_DAY_MS));
    }
}

#[test]
fn hostile_blocks_never_panic() {
    let good = tiff(
        false,
        &[
            short(0x0112, 3, false),
            ascii(0x0132, "2019:05:06 07:08:09"),
        ],
        &[
            ascii(0x9003, "2024:02:29 13:45:07"),
            ascii(0x9011, "+02:00"),
        ],
    );
    let right = Some(LEAP_DAY_MS - 2 * 3_600_000);
    assert_eq!(date_taken(&good), right);
    for cut in 0..good.len() {
        orientation_value(&good[..cut]);
        let read = date_taken(&good[..cut]);
        // A cut block may lose the offset or the original, never invent a date.
        assert!(
            read.is_none()
                || read == right
                || read == Some(LEAP_DAY_MS)
                || read == parse_datetime(b"2019:05:06 07:08:09"),
            "cut {cut}: {read:?}"
        );
    }
    let mut state = 7u64;
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..3 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = (state >> 33) as usize % b.len();
            b[at] = (state >> 20) as u8;
        }
        orientation_value(&b);
        if let Some(ms) = date_taken(&b) {
            // Whatever it reads is a real date (years 1..=9999, offset within 14 h).
            assert!(ms > -62_135_700_000_000 && ms < 253_402_400_000_000, "{ms}");
        }
    }
    // A directory claiming 65535 entries is read only up to MAX_IFD_ENTRIES.
    let mut crowded = good.clone();
    crowded[8] = 0xFF;
    crowded[9] = 0xFF;
    assert_eq!(orientation_value(&crowded), Some(3));
}

#[test]
fn jpegs_carry_their_date_through_the_decode() -> TestResult {
    let p = preprocessor();
    for big in [false, true] {
        let with = jpeg(
            Some(dated(big, "2024:02:29 13:45:07", Some("+01:00"))),
            16,
            8,
        )?;
        assert!(with.len() < 1500, "a small fixture: {} bytes", with.len());
        let image = p.decode_for_model(&with)?;
        assert_eq!(image.reduction, 1);
        assert_eq!(image.taken_ms, Some(LEAP_DAY_MS - 3_600_000), "big {big}");
        let (pixels, taken) = p.preprocess_dated(&with)?;
        assert_eq!(taken, image.taken_ms);
        assert_eq!(pixels, p.preprocess(&with)?);
    }
    // No EXIF, and EXIF with a malformed date: no date, the photo still decodes.
    let none = jpeg(None, 16, 8)?;
    assert_eq!(p.decode_for_model(&none)?.taken_ms, None);
    let malformed = jpeg(Some(dated(false, "2024:02:30 99:00:00", None)), 16, 8)?;
    assert_eq!(p.decode_for_model(&malformed)?.taken_ms, None);
    Ok(())
}

#[test]
fn the_reduced_decode_reads_the_date_too() -> TestResult {
    // 64x32 against a 4-pixel target: decoded at a reduced DCT scale.
    let p = preprocessor();
    let big = jpeg(Some(dated(true, "2024:02:29 13:45:07", None)), 64, 32)?;
    let image = p.decode_for_model(&big)?;
    assert!(image.reduction > 1, "reduction {}", image.reduction);
    assert_eq!(image.taken_ms, Some(LEAP_DAY_MS));
    Ok(())
}
