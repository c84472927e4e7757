//! The two EXIF facts a photo's decode reads from its TIFF-structured EXIF block (what the
//! decoders hand back: a JPEG's APP1 after `Exif\0\0`, a PNG's `eXIf`, a WebP's `EXIF`):
//! the orientation PIL applies, and the date the photo was taken.
//!
//! Date taken, in order of preference: `DateTimeOriginal` (0x9003, Exif IFD) with
//! `OffsetTimeOriginal` (0x9011), else `DateTimeDigitized` (0x9004) with
//! `OffsetTimeDigitized` (0x9012), else IFD0's `DateTime` (0x0132) with `OffsetTime`
//! (0x9010); a malformed or blank date falls through to the next. The answer is
//! milliseconds since the Unix epoch. With its offset (`+HH:MM` / `-HH:MM`) that is the real
//! instant; without one (most cameras write none) the wall-clock time as written is read as
//! if it were UTC — "local time as written", the same number on every machine, so a photo
//! taken at 09:00 on holiday sorts and filters as 09:00 that day wherever it is viewed.
//!
//! It must not panic or allocate from a count in the bytes: every offset is checked against
//! the bytes present, a directory is read for at most [`MAX_IFD_ENTRIES`] entries, and
//! anything not understood is `None`. References: Exif 2.32 (CIPA DC-008) §4.6.2–4.6.5
//! (TIFF header `II`/`MM`, 42, IFD0 offset; 12-byte entries; values of 4 bytes or less
//! inline), tags 0x8769 (Exif IFD pointer), 0x0112; Pillow's `ImageOps.exif_transpose` for
//! the orientation (SHORT, or a LONG read the same way).

/// Entries read per TIFF directory.
pub const MAX_IFD_ENTRIES: usize = 512;

/// `(date tag, its offset tag, true when the date lives in IFD0)`, best first.
const DATE_TAGS: [(u16, u16, bool); 3] = [
    (0x9003, 0x9011, false),
    (0x9004, 0x9012, false),
    (0x0132, 0x9010, true),
];

/// A TIFF block and its byte order.
struct Tiff<'a> {
    bytes: &'a [u8],
    big: bool,
}

/// One directory entry: its type, count and where its value (or value's offset) sits.
struct Field {
    kind: u16,
    count: u32,
    at: usize,
}

impl<'a> Tiff<'a> {
    fn new(exif: &'a [u8]) -> Option<Self> {
        let bytes = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
        let big = match bytes.get(0..4)? {
            [0x49, 0x49, 42, 0] => false,
            [0x4D, 0x4D, 0, 42] => true,
            _ => return None,
        };
        Some(Self { bytes, big })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn ifd0(&self) -> Option<usize> {
        usize::try_from(self.u32_at(4)?).ok()
    }

    /// The Exif IFD's position (IFD0's pointer, a LONG or IFD value).
    fn exif_ifd(&self) -> Option<usize> {
        let field = self.find(self.ifd0()?, 0x8769)?;
        if field.kind != 4 && field.kind != 13 {
            return None;
        }
        usize::try_from(self.u32_at(field.at)?).ok()
    }

    /// `tag`'s entry in the directory at `ifd`.
    fn find(&self, ifd: usize, tag: u16) -> Option<Field> {
        let count = usize::from(self.u16_at(ifd)?).min(MAX_IFD_ENTRIES);
        (0..count).find_map(|n| {
            let entry = ifd.checked_add(2 + n * 12)?;
            if self.u16_at(entry)? != tag {
                return None;
            }
            Some(Field {
                kind: self.u16_at(entry + 2)?,
                count: self.u32_at(entry + 4)?,
                at: entry + 8,
            })
        })
    }

    /// An ASCII value's bytes up to its first NUL (inline when 4 bytes or fewer).
    fn ascii(&self, field: &Field) -> Option<&'a [u8]> {
        if field.kind != 2 {
            return None;
        }
        let len = usize::try_from(field.count).ok()?;
        let start = if len <= 4 {
            field.at
        } else {
            usize::try_from(self.u32_at(field.at)?).ok()?
        };
        let text = self.bytes.get(start..start.checked_add(len)?)?;
        Some(text.split(|&b| b == 0).next().unwrap_or(text))
    }
}

/// The Orientation tag (0x0112) of IFD0, if present.
pub(super) fn orientation_value(exif: &[u8]) -> Option<u16> {
    let tiff = Tiff::new(exif)?;
    let field = tiff.find(tiff.ifd0()?, 0x0112)?;
    // SHORT (3) values sit in the first two bytes of the value field; PIL also reads a
    // LONG (4) the same way.
    match field.kind {
        3 => tiff.u16_at(field.at),
        4 => tiff.u32_at(field.at).and_then(|v| u16::try_from(v).ok()),
        _ => None,
    }
}

/// The date the photo was taken (see the module's rule), ms since the Unix epoch.
pub fn date_taken(exif: &[u8]) -> Option<i64> {
    let tiff = Tiff::new(exif)?;
    let ifd0 = tiff.ifd0()?;
    let exif_ifd = tiff.exif_ifd();
    DATE_TAGS
        .iter()
        .find_map(|&(date_tag, offset_tag, in_ifd0)| {
            let ifd = if in_ifd0 { ifd0 } else { exif_ifd? };
            let wall = parse_datetime(tiff.ascii(&tiff.find(ifd, date_tag)?)?)?;
            let offset_minutes = exif_ifd
                .and_then(|e| tiff.find(e, offset_tag))
                .and_then(|f| tiff.ascii(&f))
                .and_then(parse_offset);
            Some(wall - offset_minutes.unwrap_or(0) * 60_000)
        })
}

/// `YYYY:MM:DD HH:MM:SS` (trailing bytes ignored) -> milliseconds since the Unix epoch,
/// the wall-clock time read as UTC; `None` when blank, zero or out of range.
pub fn parse_datetime(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text.get(..19)?).ok()?;
    let bytes = s.as_bytes();
    let separators = [(4, b':'), (7, b':'), (10, b' '), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| bytes.get(i) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    let (hour, minute, second) = (digits(s, 11..13)?, digits(s, 14..16)?, digits(s, 17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let february = if leap { 29 } else { 28 };
    let month_days = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if year < 1 || day < 1 || day > max_day || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = crate::index::filters::days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// `+HH:MM` or `-HH:MM` -> minutes east of UTC (at most 14 hours either way).
pub fn parse_offset(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text.get(..6)?).ok()?;
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if s.as_bytes().get(3) != Some(&b':') {
        return None;
    }
    let (hours, minutes) = (digits(s, 1..3)?, digits(s, 4..6)?);
    (hours <= 14 && minutes <= 59).then_some(sign * (hours * 60 + minutes))
}

/// The decimal number in `s[range]`, digits only.
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

#[cfg(test)]
#[path = "exif_tests.rs"]
mod tests;
