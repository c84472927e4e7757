//! Zip archives of *stored* (uncompressed) members, read and written in memory: the export
//! archive (`index::export`) and PyTorch checkpoints (`model::torch_bin`, which `torch.save`
//! writes as a zip of stored members) share it.
//!
//! It must not do I/O, trust a count, length or offset before bounding it by the bytes that
//! are there, or panic on any input. Reference: PKWARE's APPNOTE.TXT (local headers, central
//! directory, end record; CRC-32 with polynomial 0xEDB88320). Compressed members are listed
//! with their method and never inflated; zip64 is refused (nothing here is over 4 GiB).

use std::ops::Range;

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
    #[error("the archive could not be read: {reason}")]
    Unreadable { reason: String },
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

/// A member as the central directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub method: u16,
    pub crc: u32,
    pub compressed_bytes: u64,
    /// Where its local header starts in the archive.
    pub header_offset: u64,
}

impl DirEntry {
    /// The fixed part of its local header (what [`locate`] needs).
    pub fn header_range(&self) -> Range<u64> {
        self.header_offset..self.header_offset + LOCAL_HEADER_BYTES as u64
    }
}

/// A member placed in the archive: its data's byte range, its header's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub name: String,
    pub method: u16,
    pub crc: u32,
    pub header_offset: u64,
    pub data: Range<u64>,
}

fn damaged(reason: &str) -> ZipError {
    ZipError::Damaged {
        reason: reason.to_string(),
    }
}

/// The end of an archive of `len_bytes` where its end record must lie (the last 22 bytes
/// plus a comment of at most 65535).
pub fn tail_range(len_bytes: u64) -> Range<u64> {
    len_bytes.saturating_sub((END_BYTES + usize::from(u16::MAX)) as u64)..len_bytes
}

/// From the bytes of [`tail_range`]: where the central directory lies, and how many
/// members it lists.
pub fn directory_range(tail: &[u8], len_bytes: u64) -> Result<(Range<u64>, usize), ZipError> {
    let tail_start = len_bytes.saturating_sub(tail.len() as u64);
    let end = (0..=tail.len().saturating_sub(END_BYTES))
        .rev()
        .find(|&at| u32_at(tail, at) == Some(END_SIG))
        .ok_or_else(|| damaged("its end record is missing (the file may be cut short)"))?;
    let count = usize::from(u16_at(tail, end + 10).unwrap_or(0));
    let central_len = u64::from(u32_at(tail, end + 12).unwrap_or(0));
    let central_offset = u64::from(u32_at(tail, end + 16).unwrap_or(0));
    if count == usize::from(u16::MAX) || central_offset == u64::from(u32::MAX) {
        return Err(damaged(
            "it is a zip64 archive (over 4 GiB or 65,535 members), which is not read",
        ));
    }
    if central_offset + central_len > tail_start + end as u64 {
        return Err(damaged("its central directory lies outside the file"));
    }
    Ok((central_offset..central_offset + central_len, count))
}

/// The `count` entries of a central directory (its bytes, as [`directory_range`] gave).
pub fn parse_directory(central: &[u8], count: usize) -> Result<Vec<DirEntry>, ZipError> {
    let mut entries = Vec::with_capacity(count.min(1024));
    let mut at = 0usize;
    for _ in 0..count {
        let field = |offset: usize| u32_at(central, at + offset);
        if field(0) != Some(CENTRAL_SIG) {
            return Err(damaged("its central directory is malformed"));
        }
        let flags = u16_at(central, at + 8).unwrap_or(0);
        let name_len = usize::from(u16_at(central, at + 28).unwrap_or(0));
        let extra_len = usize::from(u16_at(central, at + 30).unwrap_or(0));
        let comment_len = usize::from(u16_at(central, at + 32).unwrap_or(0));
        let name_bytes = central
            .get(at + CENTRAL_HEADER_BYTES..at + CENTRAL_HEADER_BYTES + name_len)
            .ok_or_else(|| damaged("its central directory is cut short"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        if flags & 1 != 0 {
            return Err(damaged(&format!("`{name}` is encrypted")));
        }
        let (compressed, size) = (field(20).unwrap_or(0), field(24).unwrap_or(0));
        let method = u16_at(central, at + 10).unwrap_or(0);
        if method == 0 && compressed != size {
            return Err(damaged(&format!("`{name}` has two different sizes")));
        }
        entries.push(DirEntry {
            name,
            method,
            crc: field(16).unwrap_or(0),
            compressed_bytes: u64::from(compressed),
            header_offset: u64::from(field(42).unwrap_or(0)),
        });
        at += CENTRAL_HEADER_BYTES + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// Places `entry`'s data after its local header (`header`: the bytes of
/// [`DirEntry::header_range`], or fewer when the file ends there).
pub fn locate(entry: &DirEntry, header: &[u8]) -> Result<Located, ZipError> {
    let name = &entry.name;
    if u32_at(header, 0) != Some(LOCAL_SIG) {
        return Err(damaged(&format!("the header of `{name}` is missing")));
    }
    let name_len = u64::from(u16_at(header, 26).unwrap_or(0));
    let extra_len = u64::from(u16_at(header, 28).unwrap_or(0));
    let start = entry.header_offset + LOCAL_HEADER_BYTES as u64 + name_len + extra_len;
    Ok(Located {
        name: name.clone(),
        method: entry.method,
        crc: entry.crc,
        header_offset: entry.header_offset,
        data: start..start + entry.compressed_bytes,
    })
}

/// Refuses members that end past the file, or whose headers and data share a byte with
/// another member or with the central directory (a well-formed archive never does: one
/// member's bytes read as another's would pass any per-member check).
pub fn check_layout(
    members: &[Located],
    central: &Range<u64>,
    len_bytes: u64,
) -> Result<(), ZipError> {
    let mut spans: Vec<(u64, u64, &str)> = members
        .iter()
        .map(|m| (m.header_offset, m.data.end, m.name.as_str()))
        .collect();
    if let Some((_, _, name)) = spans.iter().find(|(_, end, _)| *end > len_bytes) {
        return Err(damaged(&format!("`{name}` is cut short")));
    }
    spans.push((central.start, central.end, "the central directory"));
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, end, a), (start, _, b)] = pair {
            if start < end {
                return Err(damaged(&format!("`{a}` and `{b}` overlap")));
            }
        }
    }
    Ok(())
}

/// Byte ranges of `bytes` as the ranged readers ask for them (a range past the end is an
/// error).
pub fn memory_reader(
    bytes: &[u8],
) -> impl Fn(Range<u64>) -> std::future::Ready<Result<Vec<u8>, String>> + '_ {
    move |range| {
        let got = slice(bytes, &range).map(<[u8]>::to_vec);
        std::future::ready(got.ok_or_else(|| "outside the file".to_string()))
    }
}

fn slice<'a>(bytes: &'a [u8], range: &Range<u64>) -> Option<&'a [u8]> {
    bytes.get(usize::try_from(range.start).ok()?..usize::try_from(range.end).ok()?)
}

/// The members of a zip via its central directory, in order; stored ones CRC-checked.
pub fn read(bytes: &[u8]) -> Result<Vec<Member<'_>>, ZipError> {
    Ok(read_located(bytes)?
        .into_iter()
        .map(|m| Member {
            data: slice(bytes, &m.data).unwrap_or_default(),
            offset: m.data.start as usize,
            name: m.name,
            method: m.method,
        })
        .collect())
}

/// [`read`], giving where each member's data lies rather than the data.
pub fn read_located(bytes: &[u8]) -> Result<Vec<Located>, ZipError> {
    let len = bytes.len() as u64;
    let located = now_or_never(locate_ranged(len, memory_reader(bytes)))
        .unwrap_or_else(|| Err(damaged("it could not be read")))
        .map_err(|e| match e {
            // Only a range past the end fails to read from memory: the file is short.
            ZipError::Unreadable { .. } => damaged("it is cut short"),
            other => other,
        })?
        .0;
    for m in &located {
        if m.method == 0 && crc32(slice(bytes, &m.data).unwrap_or_default()) != m.crc {
            return Err(ZipError::CrcMismatch {
                name: m.name.clone(),
            });
        }
    }
    Ok(located)
}

/// Lists and places the members of an archive of `len_bytes` that is read by byte range
/// through `read`, reading no member's data: its first bytes, its tail, its central
/// directory and one 30-byte local header per member, the layout checked as [`read`]
/// checks it. Members are not CRC-checked here (that needs their whole bytes): the caller
/// checks those it reads whole ([`crc32`] against [`Located::crc`]) and says what vouches
/// for the rest. `read` answering fewer bytes than asked is an error.
pub async fn locate_ranged<F, Fut>(
    len_bytes: u64,
    read: F,
) -> Result<(Vec<Located>, Range<u64>), ZipError>
where
    F: Fn(Range<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, String>>,
{
    let get = |range: Range<u64>| {
        let want = range.end.saturating_sub(range.start);
        let fut = read(range);
        async move {
            let bytes = fut
                .await
                .map_err(|reason| ZipError::Unreadable { reason })?;
            if bytes.len() as u64 != want {
                return Err(ZipError::Unreadable {
                    reason: format!("asked for {want} bytes, got {}", bytes.len()),
                });
            }
            Ok(bytes)
        }
    };
    if !is_archive(&get(0..4.min(len_bytes)).await?) {
        return Err(ZipError::NotAnArchive);
    }
    let tail = get(tail_range(len_bytes)).await?;
    let (central, count) = directory_range(&tail, len_bytes)?;
    let entries = parse_directory(&get(central.clone()).await?, count)?;
    let mut located = Vec::with_capacity(entries.len());
    for e in &entries {
        let header = e.header_range();
        if header.end > len_bytes {
            return Err(damaged(&format!("`{}` is cut short", e.name)));
        }
        located.push(locate(e, &get(header).await?)?);
    }
    check_layout(&located, &central, len_bytes)?;
    Ok((located, central))
}

/// The output of a future that is ready at once (reads from memory or a local file), or
/// `None` if it would wait: how the ranged readers are run natively.
pub fn now_or_never<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
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

    /// The central directory entries' offsets in `zip` (found by signature).
    fn central_entries(zip: &[u8]) -> Vec<usize> {
        (0..zip.len().saturating_sub(4))
            .filter(|&at| u32_at(zip, at) == Some(CENTRAL_SIG))
            .collect()
    }

    fn ranged(zip: &[u8]) -> Result<Vec<Located>, ZipError> {
        let read = |r: Range<u64>| {
            std::future::ready(Ok::<_, String>(
                zip[r.start as usize..r.end as usize].to_vec(),
            ))
        };
        now_or_never(locate_ranged(zip.len() as u64, read))
            .unwrap_or(Err(ZipError::NotAnArchive))
            .map(|(located, _)| located)
    }

    #[test]
    fn ranged_reads_place_members_as_the_whole_read_does() -> Result<(), ZipError> {
        let zip = write_stored(&[("a/data.pkl", b"pickle"), ("a/data/0", &[1, 2, 3, 4])])?;
        let whole = read(&zip)?;
        let located = ranged(&zip)?;
        assert_eq!(located, read_located(&zip)?);
        for (m, l) in whole.iter().zip(&located) {
            assert_eq!(m.name, l.name);
            assert_eq!(m.data, &zip[l.data.start as usize..l.data.end as usize]);
            assert_eq!(crc32(m.data), l.crc);
        }
        // A reader that answers short is an error, never a shorter member.
        let short = |r: Range<u64>| {
            let end = (r.end as usize).min(zip.len() - 1);
            std::future::ready(Ok::<_, String>(
                zip[(r.start as usize).min(end)..end].to_vec(),
            ))
        };
        assert!(matches!(
            now_or_never(locate_ranged(zip.len() as u64, short)),
            Some(Err(ZipError::Unreadable { .. }))
        ));
        Ok(())
    }

    #[test]
    fn overlapping_or_out_of_range_members_are_refused() -> Result<(), ZipError> {
        let zip = write_stored(&[("a/data.pkl", b"pickle"), ("a/data/0", &[1, 2, 3, 4])])?;
        let entries = central_entries(&zip);
        assert_eq!(entries.len(), 2);
        let patch = |at: usize, value: u32| {
            let mut z = zip.clone();
            z[at..at + 4].copy_from_slice(&value.to_le_bytes());
            z
        };
        let second = entries[1];
        let central_start = entries[0] as u32;
        let cases = [
            // The second entry points at the first member's header: one member's bytes twice.
            (patch(second + 42, 0), "overlap"),
            // The first member claims more bytes than lie before the second one.
            (
                {
                    let z = patch(entries[0] + 20, 20);
                    let mut z2 = z.clone();
                    z2[entries[0] + 24..entries[0] + 28].copy_from_slice(&20u32.to_le_bytes());
                    z2
                },
                "overlap",
            ),
            // The second member runs into the central directory.
            (
                {
                    let z = patch(second + 20, 40);
                    let mut z2 = z.clone();
                    z2[second + 24..second + 28].copy_from_slice(&40u32.to_le_bytes());
                    z2
                },
                "overlap",
            ),
            // A header placed past the end of the file.
            (patch(second + 42, central_start + 10_000), "cut short"),
        ];
        for (bad, says) in cases {
            for got in [read_located(&bad), ranged(&bad)] {
                match got {
                    Err(ZipError::Damaged { reason }) => {
                        assert!(reason.contains(says), "{reason} (wanted {says})")
                    }
                    other => panic!("{other:?} (wanted {says})"),
                }
            }
        }
        Ok(())
    }
}
