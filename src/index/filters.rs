//! What narrows and orders a result list after ranking: a minimum score (with the "no good
//! match" answer when nothing passes), a folder of the dropped tree, a date range, and the
//! order (by score, or by date taken: EXIF `DateTimeOriginal` for a JPEG, else the file's
//! modified time) — pure functions the page and the CLI share.
//!
//! It must not rank (that is [`super::rank`]), read files or panic on any bytes: the EXIF
//! reader walks at most [`MAX_SEGMENTS`] JPEG segments and [`MAX_IFD_ENTRIES`] entries per
//! directory, checks every offset against the bytes present, and answers `None` for
//! anything it does not understand.
//!
//! References: JPEG markers (ITU-T T.81 Annex B), Exif 2.32 (CIPA DC-008) §4.6 — APP1
//! `Exif\0\0`, a TIFF header (`II`/`MM`, 42, IFD0 offset), IFD0 tag 0x8769 pointing at the
//! Exif IFD, tag 0x9003 `DateTimeOriginal`, ASCII `YYYY:MM:DD HH:MM:SS`. Exif times carry
//! no zone (unless `OffsetTimeOriginal`, not read here), so they are read as UTC wall-clock
//! time, the same way on every machine; the file time is real UTC.

use super::{Entry, Match};

/// JPEG segments read before giving up on finding EXIF.
pub const MAX_SEGMENTS: usize = 64;
/// Entries read per TIFF directory.
pub const MAX_IFD_ENTRIES: usize = 512;

/// Results after the minimum-score filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filtered {
    /// At least one match scored `>= min_score` (these, in their order).
    Matches(Vec<Match>),
    /// Nothing passed: the page says "no good match"; `best` is the best score there was
    /// (`None` when there were no results at all), so it can say how close that came.
    NoGoodMatch { best: Option<f32> },
}

/// Keeps the matches scoring at least `min_score` (NaN scores never pass).
pub fn min_score(matches: &[Match], min_score: f32) -> Filtered {
    let kept: Vec<Match> = matches
        .iter()
        .copied()
        .filter(|m| m.score >= min_score)
        .collect();
    if kept.is_empty() {
        let best = matches
            .iter()
            .map(|m| m.score)
            .filter(|s| !s.is_nan())
            .reduce(f32::max);
        Filtered::NoGoodMatch { best }
    } else {
        Filtered::Matches(kept)
    }
}

/// True when `path` lies inside `folder` (whole path components: `a/b` holds `a/b/c.jpg`,
/// not `a/bc.jpg`). An empty folder holds everything.
pub fn in_folder(path: &str, folder: &str) -> bool {
    let folder = folder.trim_end_matches('/');
    folder.is_empty()
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Milliseconds since the Unix epoch, inclusive bounds; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl DateRange {
    pub fn contains(&self, ms: i64) -> bool {
        self.from_ms.is_none_or(|f| ms >= f) && self.to_ms.is_none_or(|t| ms <= t)
    }
}

/// The order of a result list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Best score first (the ranking's own order).
    #[default]
    Score,
    /// Newest first by date taken, then by score.
    DateNewest,
    /// Oldest first by date taken, then by score.
    DateOldest,
}

/// The date a photo was taken: its EXIF date if known, else its file's modified time.
pub fn date_of(entry: &Entry, exif_ms: Option<i64>) -> i64 {
    exif_ms.unwrap_or(entry.modified_ms)
}

/// Restricts `matches` to `folder` and `range` and orders them by `sort`. `date` gives a
/// match's date (see [`date_of`]); `path` its path. Matches whose entry is unknown
/// (`path` answers `None`) are dropped. The sort is stable: equal dates keep rank order.
pub fn narrow(
    matches: &[Match],
    path: impl Fn(&Match) -> Option<String>,
    date: impl Fn(&Match) -> i64,
    folder: &str,
    range: DateRange,
    sort: SortBy,
) -> Vec<Match> {
    let mut kept: Vec<(i64, Match)> = matches
        .iter()
        .filter(|m| path(m).is_some_and(|p| in_folder(&p, folder)))
        .map(|m| (date(m), *m))
        .filter(|(d, _)| range.contains(*d))
        .collect();
    match sort {
        SortBy::Score => {}
        SortBy::DateNewest => kept.sort_by_key(|k| std::cmp::Reverse(k.0)),
        SortBy::DateOldest => kept.sort_by_key(|k| k.0),
    }
    kept.into_iter().map(|(_, m)| m).collect()
}

/// `DateTimeOriginal` of a JPEG, as milliseconds since the Unix epoch (wall-clock time
/// read as UTC), or `None` when the bytes are not a JPEG, have no such tag, or it is
/// malformed (blank, `0000:00:00 00:00:00`, out-of-range fields).
pub fn jpeg_date_taken(bytes: &[u8]) -> Option<i64> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2usize;
    for _ in 0..MAX_SEGMENTS {
        // Fill bytes (0xFF repeated) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if bytes.get(at) != Some(&0xFF) {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        // Start of scan or end of image: no metadata after this point.
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        // Markers without a length.
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            at += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        if len < 2 {
            return None;
        }
        let body = bytes.get(at + 4..at + 2 + len)?;
        if marker == 0xE1 {
            if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                if let Some(ms) = exif_date_original(tiff) {
                    return Some(ms);
                }
            }
        }
        at += 2 + len;
    }
    None
}

/// Reads `DateTimeOriginal` from a TIFF block (the body of an EXIF APP1 after `Exif\0\0`).
pub fn exif_date_original(tiff: &[u8]) -> Option<i64> {
    let big = match tiff.get(..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = [
            *tiff.get(at)?,
            *tiff.get(at + 1)?,
            *tiff.get(at + 2)?,
            *tiff.get(at + 3)?,
        ];
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    // Finds `tag` in the directory at `ifd`: (type, count, value-or-offset field position).
    let find = |ifd: usize, tag: u16| -> Option<(u16, u32, usize)> {
        let count = usize::from(u16_at(ifd)?).min(MAX_IFD_ENTRIES);
        (0..count).find_map(|i| {
            let entry = ifd + 2 + i * 12;
            (u16_at(entry)? == tag).then_some(())?;
            Some((u16_at(entry + 2)?, u32_at(entry + 4)?, entry + 8))
        })
    };
    let ifd0 = u32_at(4)? as usize;
    let (kind, _, field) = find(ifd0, 0x8769)?;
    // LONG (4) or IFD (13).
    if kind != 4 && kind != 13 {
        return None;
    }
    let exif_ifd = u32_at(field)? as usize;
    let (kind, count, field) = find(exif_ifd, 0x9003)?;
    // ASCII, 20 bytes with the NUL (some writers omit it: 19).
    if kind != 2 || !(19..=64).contains(&count) {
        return None;
    }
    let offset = u32_at(field)? as usize;
    let text = tiff.get(offset..offset + 19)?;
    parse_exif_datetime(text)
}

/// `YYYY:MM:DD HH:MM:SS` -> milliseconds since the Unix epoch (as UTC).
pub fn parse_exif_datetime(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text.get(..19)?).ok()?;
    let bytes = s.as_bytes();
    let separators = [(4, b':'), (7, b':'), (10, b' '), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| bytes.get(i) != Some(&c)) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if year < 1 || day < 1 || day > max_day || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(index: usize, score: f32) -> Match {
        Match {
            id: index as u64,
            index,
            score,
        }
    }

    #[test]
    fn min_score_keeps_or_says_no_good_match() {
        let all = [m(0, 0.31), m(1, 0.25), m(2, 0.2)];
        assert_eq!(
            min_score(&all, 0.25),
            Filtered::Matches(vec![m(0, 0.31), m(1, 0.25)])
        );
        assert_eq!(
            min_score(&all, 0.4),
            Filtered::NoGoodMatch { best: Some(0.31) }
        );
        assert_eq!(min_score(&[], 0.0), Filtered::NoGoodMatch { best: None });
        assert_eq!(
            min_score(&[m(0, f32::NAN)], -1.0),
            Filtered::NoGoodMatch { best: None }
        );
    }

    #[test]
    fn folders_match_whole_components() {
        assert!(in_folder("DCIM/2024/a.jpg", "DCIM"));
        assert!(in_folder("DCIM/2024/a.jpg", "DCIM/2024/"));
        assert!(!in_folder("DCIM (2)/a.jpg", "DCIM"));
        assert!(!in_folder("DCIMX/a.jpg", "DCIM"));
        assert!(!in_folder("DCIM", "DCIM"));
        assert!(in_folder("anything.jpg", ""));
    }

    #[test]
    fn narrow_filters_and_sorts() {
        let matches = [m(0, 0.9), m(1, 0.8), m(2, 0.7), m(3, 0.6)];
        let paths = ["a/1.jpg", "b/2.jpg", "a/3.jpg", "a/4.jpg"];
        let dates = [300, 100, 200, 200];
        let path = |x: &Match| paths.get(x.index).map(|p| p.to_string());
        let date = |x: &Match| dates.get(x.index).copied().unwrap_or(0);
        let ids = |v: Vec<Match>| v.iter().map(|x| x.index).collect::<Vec<_>>();
        let all = DateRange::default();
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::Score)),
            [0, 1, 2, 3]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "a", all, SortBy::Score)),
            [0, 2, 3]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::DateNewest)),
            [0, 2, 3, 1]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::DateOldest)),
            [1, 2, 3, 0]
        );
        let range = DateRange {
            from_ms: Some(150),
            to_ms: Some(200),
        };
        assert_eq!(
            ids(narrow(&matches, path, date, "", range, SortBy::Score)),
            [2, 3]
        );
        let unknown = |x: &Match| (x.index != 1).then(|| "p.jpg".to_string());
        assert_eq!(
            ids(narrow(&matches, unknown, date, "", all, SortBy::Score)),
            [0, 2, 3]
        );
    }

    #[test]
    fn exif_datetimes_parse_to_epoch_ms() {
        assert_eq!(parse_exif_datetime(b"1970:01:01 00:00:00"), Some(0));
        assert_eq!(
            parse_exif_datetime(b"2024:02:29 13:45:07"),
            Some(1_709_214_307_000)
        );
        assert_eq!(parse_exif_datetime(b"1969:12:31 23:59:59"), Some(-1000));
        for bad in [
            &b"0000:00:00 00:00:00"[..],
            b"2023:02:29 00:00:00",
            b"2024:13:01 00:00:00",
            b"2024:01:01 24:00:00",
            b"2024-01-01 00:00:00",
            b"    :  :     :  :  ",
            b"2024:01:01",
            b"+024:01:01 00:00:00",
        ] {
            assert_eq!(
                parse_exif_datetime(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// A JPEG prefix with an EXIF APP1 holding DateTimeOriginal (`big`: Motorola order).
    fn jpeg_with_date(big: bool, date: &[u8]) -> Vec<u8> {
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
        let mut tiff = Vec::new();
        tiff.extend_from_slice(if big { b"MM" } else { b"II" });
        tiff.extend_from_slice(&w16(42));
        tiff.extend_from_slice(&w32(8));
        // IFD0 at 8: one entry, ExifIFD pointer -> 26.
        tiff.extend_from_slice(&w16(1));
        tiff.extend_from_slice(&w16(0x8769));
        tiff.extend_from_slice(&w16(4));
        tiff.extend_from_slice(&w32(1));
        tiff.extend_from_slice(&w32(26));
        tiff.extend_from_slice(&w32(0));
        // Exif IFD at 26: one entry, DateTimeOriginal, ASCII 20 at 44.
        tiff.extend_from_slice(&w16(1));
        tiff.extend_from_slice(&w16(0x9003));
        tiff.extend_from_slice(&w16(2));
        tiff.extend_from_slice(&w32(20));
        tiff.extend_from_slice(&w32(44));
        tiff.extend_from_slice(&w32(0));
        tiff.extend_from_slice(date);
        tiff.push(0);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut jpeg = vec![0xFF, 0xD8];
        // An APP0 first, as cameras write.
        jpeg.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x06, b'J', b'F', b'I', b'F']);
        jpeg.extend_from_slice(&[0xFF, 0xE1]);
        jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        jpeg.extend_from_slice(&app1);
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
        jpeg
    }

    #[test]
    fn jpeg_date_taken_reads_both_byte_orders() {
        for big in [false, true] {
            let jpeg = jpeg_with_date(big, b"2024:02:29 13:45:07");
            assert_eq!(jpeg_date_taken(&jpeg), Some(1_709_214_307_000), "big {big}");
        }
        assert_eq!(
            jpeg_date_taken(&jpeg_with_date(false, b"0000:00:00 00:00:00")),
            None
        );
        assert_eq!(jpeg_date_taken(b"\x89PNG\r\n"), None);
        assert_eq!(jpeg_date_taken(&[0xFF, 0xD8, 0xFF, 0xDA]), None);
    }

    #[test]
    fn hostile_jpegs_never_panic() {
        let good = jpeg_with_date(false, b"2024:02:29 13:45:07");
        let right = Some(1_709_214_307_000);
        for cut in 0..good.len() {
            let read = jpeg_date_taken(&good[..cut]);
            assert!(read.is_none() || read == right, "cut {cut}");
        }
        let mut state = 99u64;
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..3 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let at = (state >> 33) as usize % b.len();
                b[at] = (state >> 20) as u8;
            }
            if let Some(ms) = jpeg_date_taken(&b) {
                // Whatever it reads is a real date.
                assert!(ms > -62_135_596_800_000 && ms < 253_402_300_800_000);
            }
        }
        // A directory claiming 65535 entries is read only up to MAX_IFD_ENTRIES.
        let mut crowded = good.clone();
        let ifd0 = 2 + 8 + 4 + 6 + 8;
        assert_eq!(crowded[ifd0], 1, "IFD0's entry count");
        crowded[ifd0] = 0xFF;
        crowded[ifd0 + 1] = 0xFF;
        assert_eq!(jpeg_date_taken(&crowded), right);
    }
}
