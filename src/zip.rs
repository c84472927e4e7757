//! Zip archives of *stored* (uncompressed) members, read and written in memory: the export
//! archive (`index::export`) and PyTorch checkpoints (`model::torch_bin`, which `torch.save`
//! writes as a zip of stored members) share it.
//!
//! It must not do I/O, trust a count, length or offset before bounding it by the bytes that
//! are there, or panic on any input. Reference: PKWARE's APPNOTE.TXT (local headers, central
//! directory, end record; CRC-32 with polynomial 0xEDB88320). Compressed members are listed
//! with their method and never inflated; zip64 is refused (nothing here is over 4 GiB).

pub const LOCAL_SIG: u32 = 0x0403_4b50;
pub const CENTRAL_SIG: u32 = 0x0201_4b50;
pub const END_SIG: u32 = 0x0605_4b50;
const LOCAL_HEADER_BYTES: usize = 30;
const CENTRAL_HEADER_BYTES: usize = 46;
const END_BYTES: usize = 22;
/// 1980-01-01 00:00 in MS-DOS form (the core has no clock).
const DOS_DATE: u16 = (1 << 5) | 1;
/// General-purpose flag bit 11: names are UTF-8.
const UTF8_NAMES: u16 = 1 << 11;

/// Why bytes are not a readable zip. Each message is a sentence fragment its caller frames.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZipError {
    #[error("the file is not a zip archive")]
    NotAnArchive,
    #[error("the archive is damaged: {reason}")]
    Damaged { reason: String },
    #[error("`{name}` in the archive is damaged (its CRC-32 does not match)")]
    CrcMismatch { name: String },
    #[error("the archive would be {bytes} bytes; a zip without zip64 holds at most 4 GiB")]
    TooLarge { bytes: u64 },
}

/// One member: its name, compression method (0 = stored), its bytes as stored and where
/// they start in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: String,
    pub method: u16,
    pub data: &'a [u8],
    pub offset: usize,
}

/// True when `bytes` start like a zip archive.
pub fn is_archive(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&LOCAL_SIG.to_le_bytes()[..])
        || bytes.get(..4) == Some(&END_SIG.to_le_bytes()[..])
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (ISO-HDLC, as zip uses).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        let slot = CRC_TABLE.get(((c ^ u32::from(b)) & 0xFF) as usize).copied();
        c = slot.unwrap_or(0) ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// A zip of stored members, in order.
pub fn write_stored(members: &[(&str, &[u8])]) -> Result<Vec<u8>, ZipError> {
    let total: u64 = members
        .iter()
        .map(|(name, data)| {
            (LOCAL_HEADER_BYTES + CENTRAL_HEADER_BYTES + 2 * name.len() + data.len()) as u64
        })
        .sum::<u64>()
        + END_BYTES as u64;
    if total > u64::from(u32::MAX) {
        return Err(ZipError::TooLarge { bytes: total });
    }
    // Every length and offset below is at most `total`, so fits in u32 (names are ours).
    let u32_of = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let u16_of = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(total as usize);
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len();
        let crc = crc32(data);
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        for v in [20u16, UTF8_NAMES, 0, 0, DOS_DATE] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, u32_of(data.len()), u32_of(data.len())] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&u16_of(name.len()).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        for v in [20u16, 20, UTF8_NAMES, 0, 0, DOS_DATE] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, u32_of(data.len()), u32_of(data.len())] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [u16_of(name.len()), 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&u32_of(offset).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len();
    out.extend_from_slice(&central);
    out.extend_from_slice(&END_SIG.to_le_bytes());
    for v in [0u16, 0, u16_of(members.len()), u16_of(members.len())] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&u32_of(central.len()).to_le_bytes());
    out.extend_from_slice(&u32_of(central_offset).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The members of a zip via its central directory, in order; stored ones CRC-checked.
pub fn read(bytes: &[u8]) -> Result<Vec<Member<'_>>, ZipError> {
    if !is_archive(bytes) {
        return Err(ZipError::NotAnArchive);
    }
    let damaged = |reason: &str| ZipError::Damaged {
        reason: reason.to_string(),
    };
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    let earliest = bytes
        .len()
        .saturating_sub(END_BYTES + usize::from(u16::MAX));
    let end = (earliest..=bytes.len().saturating_sub(END_BYTES))
        .rev()
        .find(|&at| u32_at(bytes, at) == Some(END_SIG))
        .ok_or_else(|| damaged("its end record is missing (the file may be cut short)"))?;
    let count = usize::from(u16_at(bytes, end + 10).unwrap_or(0));
    let central_len = u32_at(bytes, end + 12).unwrap_or(0) as usize;
    let central_offset = u32_at(bytes, end + 16).unwrap_or(0) as usize;
    if count == usize::from(u16::MAX) || central_offset == u32::MAX as usize {
        return Err(damaged(
            "it is a zip64 archive (over 4 GiB or 65,535 members), which is not read",
        ));
    }
    if central_offset
        .checked_add(central_len)
        .is_none_or(|e| e > end)
    {
        return Err(damaged("its central directory lies outside the file"));
    }
    let mut members = Vec::with_capacity(count.min(64));
    let mut at = central_offset;
    for _ in 0..count {
        let field = |offset: usize| u32_at(bytes, at + offset);
        if field(0) != Some(CENTRAL_SIG) {
            return Err(damaged("its central directory is malformed"));
        }
        let flags = u16_at(bytes, at + 8).unwrap_or(0);
        let method = u16_at(bytes, at + 10).unwrap_or(0);
        let crc = field(16).unwrap_or(0);
        let compressed = field(20).unwrap_or(0) as usize;
        let size = field(24).unwrap_or(0) as usize;
        let name_len = usize::from(u16_at(bytes, at + 28).unwrap_or(0));
        let extra_len = usize::from(u16_at(bytes, at + 30).unwrap_or(0));
        let comment_len = usize::from(u16_at(bytes, at + 32).unwrap_or(0));
        let local = field(42).unwrap_or(0) as usize;
        let name_bytes = bytes
            .get(at + CENTRAL_HEADER_BYTES..at + CENTRAL_HEADER_BYTES + name_len)
            .ok_or_else(|| damaged("its central directory is cut short"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        at += CENTRAL_HEADER_BYTES + name_len + extra_len + comment_len;
        if flags & 1 != 0 {
            return Err(damaged(&format!("`{name}` is encrypted")));
        }
        if u32_at(bytes, local) != Some(LOCAL_SIG) {
            return Err(damaged(&format!("the header of `{name}` is missing")));
        }
        let local_name_len = usize::from(u16_at(bytes, local + 26).unwrap_or(0));
        let local_extra_len = usize::from(u16_at(bytes, local + 28).unwrap_or(0));
        let data_start = local + LOCAL_HEADER_BYTES + local_name_len + local_extra_len;
        let data = bytes
            .get(data_start..data_start.saturating_add(compressed))
            .filter(|d| d.len() == compressed)
            .ok_or_else(|| damaged(&format!("`{name}` is cut short")))?;
        if method == 0 {
            if compressed != size {
                return Err(damaged(&format!("`{name}` has two different sizes")));
            }
            if crc32(data) != crc {
                return Err(ZipError::CrcMismatch { name });
            }
        }
        members.push(Member {
            name,
            method,
            data,
            offset: data_start,
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn members_round_trip_and_damage_is_named() -> Result<(), ZipError> {
        let zip = write_stored(&[("a/data.pkl", b"pickle"), ("a/data/0", &[1, 2, 3, 4])])?;
        let members = read(&zip)?;
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a/data.pkl", "a/data/0"]);
        assert_eq!(members[1].data, &[1, 2, 3, 4]);
        assert_eq!(read(b"not a zip"), Err(ZipError::NotAnArchive));
        for cut in [zip.len() - 1, zip.len() / 2, 10] {
            assert!(
                matches!(read(&zip[..cut]), Err(ZipError::Damaged { .. })),
                "cut at {cut}"
            );
        }
        let mut flipped = zip.clone();
        flipped[30 + "a/data.pkl".len()] ^= 1; // the first byte of the first member
        assert!(matches!(read(&flipped), Err(ZipError::CrcMismatch { .. })));
        Ok(())
    }
}
