//! The index as bytes: a versioned, checksummed format that the CLI writes to a file and
//! the page keeps in IndexedDB, and the reader that turns such bytes back into an
//! [`EmbeddingIndex`] or says plainly why it cannot.
//!
//! It must not do I/O, trust any count or length before bounding it by the bytes actually
//! present (no allocation from an unchecked number), or panic on any input.
//!
//! Format version 2, all integers little-endian:
//!
//! ```text
//! magic       16 bytes  b"CLIPSEEK-INDEX\0\0"
//! version     u32       2
//! header_len  u32       length of the header JSON
//! header      JSON      {"count": N, "dim": D, "model_id": "...", "next_id": I}
//! entries     N times   path_len u32, path (UTF-8), size_bytes u64, modified_ms i64,
//!                       content_hash [u8; 32], id u64, taken_ms i64 (the EXIF date
//!                       taken; i64::MIN when there is none)
//! matrix      N*D f32   row-major, rows L2-normalised, in entry order
//! checksum    32 bytes  SHA-256 of every byte before it
//! ```
//!
//! Version 1 (files written before the date taken was recorded) is the same without
//! `taken_ms`; it is still read, its entries with no date taken.
//!
//! Reading checks, in order: the magic (else "not a clipseek index"), the version, the
//! minimum length, the checksum (so any flipped or missing byte past the version field
//! reads as [`IndexError::ChecksumMismatch`], never as a confusing parse error), then the
//! header, the expected model, the entries and the matrix size, and the index invariants.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{EmbeddingIndex, Entry, IndexError};

/// The first 16 bytes of every index file.
pub const MAGIC: [u8; 16] = *b"CLIPSEEK-INDEX\0\0";

/// The format version this code writes (it also reads [`OLDEST_VERSION`] onwards).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version still read.
pub const OLDEST_VERSION: u32 = 1;
/// `taken_ms` of an entry with no date taken.
const NO_DATE: i64 = i64::MIN;

const CHECKSUM_BYTES: usize = 32;
/// `magic + version + header_len`
const PREFIX_BYTES: usize = MAGIC.len() + 4 + 4;
/// The smallest well-framed file: prefix and checksum (the header cannot be empty, so a
/// real file is longer).
pub const MIN_FILE_BYTES: usize = PREFIX_BYTES + CHECKSUM_BYTES;
/// The largest embedding width an index file may declare (CLIP's widest is 1280).
pub const MAX_DIM: usize = 65_536;
/// `path_len + size_bytes + modified_ms + content_hash + id + taken_ms` (version 1: no
/// `taken_ms`).
const fn entry_fixed_bytes(version: u32) -> usize {
    4 + 8 + 8 + 32 + 8 + if version >= 2 { 8 } else { 0 }
}

#[derive(Deserialize)]
struct Header {
    model_id: String,
    dim: u64,
    count: u64,
    next_id: u64,
}

/// Writes `index` in format version [`FORMAT_VERSION`].
pub fn encode(index: &EmbeddingIndex) -> Vec<u8> {
    let header = serde_json::json!({
        "model_id": index.model_id(),
        "dim": index.dim(),
        "count": index.len(),
        "next_id": index.next_id(),
    })
    .to_string();
    let paths_bytes: usize = index.entries().iter().map(|e| e.path.len()).sum();
    let capacity = PREFIX_BYTES
        + header.len()
        + index.len() * entry_fixed_bytes(FORMAT_VERSION)
        + paths_bytes
        + index.matrix().len() * 4
        + CHECKSUM_BYTES;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    // Lengths past u32::MAX cannot occur: `upsert` refuses such paths, and a model id of
    // 4 GiB is not a model id. Saturating keeps this infallible; such a file would fail
    // to read back with an error rather than load wrong.
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    for entry in index.entries() {
        let path_len = u32::try_from(entry.path.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&path_len.to_le_bytes());
        out.extend_from_slice(entry.path.as_bytes());
        out.extend_from_slice(&entry.size_bytes.to_le_bytes());
        out.extend_from_slice(&entry.modified_ms.to_le_bytes());
        out.extend_from_slice(&entry.content_hash);
        out.extend_from_slice(&entry.id.to_le_bytes());
        out.extend_from_slice(&entry.taken_ms.unwrap_or(NO_DATE).to_le_bytes());
    }
    for value in index.matrix() {
        out.extend_from_slice(&value.to_le_bytes());
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    out
}

/// Reads bytes written by [`encode`]; see the module docs for the order of the checks.
/// With `expected_model_id`, an index made with another model is [`IndexError::ModelMismatch`].
pub fn decode(bytes: &[u8], expected_model_id: Option<&str>) -> Result<EmbeddingIndex, IndexError> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes.get(..magic_len) != MAGIC.get(..magic_len) {
        return Err(IndexError::BadMagic);
    }
    let truncated = || IndexError::Truncated {
        len_bytes: bytes.len(),
        min_bytes: MIN_FILE_BYTES,
    };
    let mut prefix = Reader::new(bytes.get(MAGIC.len()..).unwrap_or_default());
    let version = prefix.u32().ok_or_else(truncated)?;
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(IndexError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes.len() < MIN_FILE_BYTES {
        return Err(truncated());
    }
    let (content, stored) = bytes
        .split_at_checked(bytes.len() - CHECKSUM_BYTES)
        .ok_or_else(truncated)?;
    let computed: [u8; 32] = Sha256::digest(content).into();
    if computed.as_slice() != stored {
        let mut stored_sha256 = [0u8; 32];
        stored_sha256.copy_from_slice(stored);
        return Err(IndexError::ChecksumMismatch {
            stored_sha256,
            computed_sha256: computed,
        });
    }

    // From here on the bytes are as the writer left them: errors mean a faulty writer.
    let mut reader = Reader::new(content.get(MAGIC.len() + 4..).unwrap_or_default());
    let malformed_header = |reason: String| IndexError::MalformedHeader { reason };
    let header_len = reader
        .u32()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed_header("the header length is missing".into()))?;
    let header_bytes = reader.take(header_len).ok_or_else(|| {
        malformed_header(format!(
            "the header length {header_len} runs past the end of the file"
        ))
    })?;
    let header: Header = serde_json::from_slice(header_bytes)
        .map_err(|e| malformed_header(format!("the header is not the expected JSON ({e})")))?;
    if let Some(expected) = expected_model_id {
        if header.model_id != expected {
            return Err(IndexError::ModelMismatch {
                index_model: header.model_id,
                expected_model: expected.to_string(),
            });
        }
    }
    // An empty index claiming a vast dim would otherwise load, and every caller sizing a
    // query or a row buffer from `dim()` would then try to allocate it.
    let dim = usize::try_from(header.dim)
        .ok()
        .filter(|&dim| dim <= MAX_DIM)
        .ok_or_else(|| {
            malformed_header(format!(
                "dim {} is more than the {MAX_DIM} any embedding has",
                header.dim
            ))
        })?;
    if dim == 0 && header.count > 0 {
        return Err(malformed_header(format!(
            "dim is 0 but there are {} entries",
            header.count
        )));
    }

    // Bound the count by the bytes present before allocating anything from it.
    let available_bytes = reader.remaining();
    let count_exceeds = |min_bytes_per_entry: usize| IndexError::CountExceedsData {
        count: header.count,
        dim,
        min_bytes_per_entry,
        available_bytes,
    };
    let min_bytes_per_entry = dim
        .checked_mul(4)
        .and_then(|row| row.checked_add(entry_fixed_bytes(version)))
        .ok_or_else(|| count_exceeds(usize::MAX))?;
    let count = usize::try_from(header.count)
        .ok()
        .filter(|&count| count <= available_bytes / min_bytes_per_entry)
        .ok_or_else(|| count_exceeds(min_bytes_per_entry))?;

    let mut entries = Vec::with_capacity(count);
    for position in 0..count {
        let entry =
            read_entry(&mut reader, version).map_err(|reason| IndexError::MalformedEntry {
                position,
                reason: reason.to_string(),
            })?;
        entries.push(entry);
    }

    // `count * dim * 4 <= available_bytes` was checked above, so this cannot overflow.
    let expected_bytes = count * dim * 4;
    let matrix_bytes = reader.rest();
    if matrix_bytes.len() != expected_bytes {
        return Err(IndexError::MatrixSizeMismatch {
            count,
            dim,
            expected_bytes,
            found_bytes: matrix_bytes.len(),
        });
    }
    let (values, _) = matrix_bytes.as_chunks::<4>();
    let matrix: Vec<f32> = values.iter().map(|b| f32::from_le_bytes(*b)).collect();

    EmbeddingIndex::from_parts(header.model_id, dim, entries, matrix, header.next_id)
}

/// One entry of the entry table, or a phrase saying what is wrong with it.
fn read_entry(reader: &mut Reader<'_>, version: u32) -> Result<Entry, &'static str> {
    const SHORT: &str = "it runs past the end of the file";
    let path_len = reader
        .u32()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(SHORT)?;
    let path = reader.take(path_len).ok_or(SHORT)?;
    let path = std::str::from_utf8(path).map_err(|_| "its path is not UTF-8")?;
    let size_bytes = reader.u64().ok_or(SHORT)?;
    let modified_ms = reader.array::<8>().map(i64::from_le_bytes).ok_or(SHORT)?;
    let content_hash = reader.array::<32>().ok_or(SHORT)?;
    let id = reader.u64().ok_or(SHORT)?;
    let taken_ms = if version >= 2 {
        let ms = reader.array::<8>().map(i64::from_le_bytes).ok_or(SHORT)?;
        (ms != NO_DATE).then_some(ms)
    } else {
        None
    };
    Ok(Entry {
        id,
        path: path.to_string(),
        size_bytes,
        modified_ms,
        content_hash,
        taken_ms,
    })
}

/// A cursor over bytes whose reads return `None` instead of running past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (taken, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*taken)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array::<8>().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{meta, XorShift};
    use super::*;

    const MODEL: &str = "openai/clip-vit-base-patch32";

    fn sample(n: usize, dim: usize) -> Result<EmbeddingIndex, IndexError> {
        use super::super::EntryMeta;
        let mut rng = XorShift::new(11);
        let mut index = EmbeddingIndex::new(MODEL, dim);
        for i in 0..n {
            // Some with a date taken (one before 1970), some without.
            let taken_ms = [None, Some(1_709_214_307_000), Some(-86_400_000)][i % 3];
            let m = EntryMeta {
                taken_ms,
                ..meta(&format!("photos/ünïcode {i}.jpg"))
            };
            index.upsert(m, &rng.vector(dim))?;
        }
        // A removal leaves a gap in the ids, which must survive the round trip.
        index.remove_path("photos/ünïcode 1.jpg");
        Ok(index)
    }

    /// Replaces the trailing checksum with the right one for the (edited) content.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let content_len = bytes.len().saturating_sub(CHECKSUM_BYTES);
        bytes.truncate(content_len);
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum);
        bytes
    }

    /// A well-sealed file with the given header JSON and body (entries + matrix).
    fn file_with(header: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&[0u8; CHECKSUM_BYTES]);
        reseal(bytes)
    }

    fn entry_bytes(path: &[u8], id: u64) -> Vec<u8> {
        let mut bytes = (path.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(path);
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&2i64.to_le_bytes());
        bytes.extend_from_slice(&[7u8; 32]);
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&NO_DATE.to_le_bytes());
        bytes
    }

    fn unit_row_bytes(dim: usize) -> Vec<u8> {
        (0..dim)
            .flat_map(|i| if i == 0 { 1.0f32 } else { 0.0 }.to_le_bytes())
            .collect()
    }

    #[test]
    fn round_trip_keeps_everything() -> Result<(), IndexError> {
        for (n, dim) in [(0, 0), (0, 5), (1, 3), (17, 19), (40, 512)] {
            let index = sample(n, dim)?;
            let bytes = index.to_bytes();
            let back = EmbeddingIndex::from_bytes(&bytes, Some(MODEL))?;
            assert_eq!(back, index);
            assert_eq!(EmbeddingIndex::from_bytes(&bytes, None)?, index);
            assert_eq!(back.to_bytes(), bytes);
        }
        // The read-back index behaves like the original, new ids included.
        let index = sample(10, 8)?;
        let mut back = EmbeddingIndex::from_bytes(&index.to_bytes(), None)?;
        let probe = XorShift::new(5).vector(8);
        assert_eq!(back.search(&probe, 4)?, index.search(&probe, 4)?);
        let new_id = back.upsert(meta("new.jpg"), &probe)?;
        assert_eq!(new_id, index.next_id());
        Ok(())
    }

    #[test]
    fn layout_is_as_documented() -> Result<(), IndexError> {
        let mut index = EmbeddingIndex::new("m", 2);
        index.upsert(meta("ab"), &[0.0, 2.0])?;
        let bytes = index.to_bytes();
        assert_eq!(&bytes[..16], b"CLIPSEEK-INDEX\0\0");
        assert_eq!(&bytes[16..20], &2u32.to_le_bytes());
        let header_len = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[24..24 + header_len])
            .map_err(|e| IndexError::MalformedHeader {
                reason: e.to_string(),
            })?;
        assert_eq!(
            header,
            serde_json::json!({"model_id": "m", "dim": 2, "count": 1, "next_id": 1})
        );
        let body = &bytes[24 + header_len..];
        assert_eq!(body.len(), 4 + 2 + 8 + 8 + 32 + 8 + 8 + 2 * 4 + 32);
        assert_eq!(&body[..6], &[2, 0, 0, 0, b'a', b'b']);
        assert_eq!(&body[62..70], &i64::MIN.to_le_bytes(), "no date taken");
        assert_eq!(&body[70..78], &[0, 0, 0, 0, 0, 0, 0x80, 0x3f]);
        let checksum: [u8; 32] = Sha256::digest(&bytes[..bytes.len() - 32]).into();
        assert_eq!(&bytes[bytes.len() - 32..], &checksum);
        Ok(())
    }

    #[test]
    fn any_flipped_byte_is_detected() -> Result<(), IndexError> {
        let bytes = sample(5, 7)?.to_bytes();
        for at in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] ^= mask;
                let err = EmbeddingIndex::from_bytes(&bad, Some(MODEL));
                match at {
                    0..16 => assert_eq!(err, Err(IndexError::BadMagic), "byte {at}"),
                    16..20 => assert!(
                        matches!(
                            err,
                            Err(IndexError::UnsupportedVersion { supported: 2, .. })
                        ),
                        "byte {at}: {err:?}"
                    ),
                    _ => assert!(
                        matches!(err, Err(IndexError::ChecksumMismatch { .. })),
                        "byte {at}: {err:?}"
                    ),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn truncation_is_detected_at_every_length() -> Result<(), IndexError> {
        let bytes = sample(3, 4)?.to_bytes();
        for len in 0..bytes.len() {
            let err = EmbeddingIndex::from_bytes(&bytes[..len], None);
            if len < MIN_FILE_BYTES {
                assert_eq!(
                    err,
                    Err(IndexError::Truncated {
                        len_bytes: len,
                        min_bytes: MIN_FILE_BYTES
                    })
                );
            } else {
                // The last 32 bytes are then not the checksum of what precedes them.
                assert!(
                    matches!(err, Err(IndexError::ChecksumMismatch { .. })),
                    "len {len}: {err:?}"
                );
            }
        }
        // Extra bytes at the end are caught the same way.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            EmbeddingIndex::from_bytes(&longer, None),
            Err(IndexError::ChecksumMismatch { .. })
        ));
        Ok(())
    }

    #[test]
    fn other_files_are_not_a_clipseek_index() {
        for other in [
            &b"\xff\xd8\xff\xe0 a jpeg"[..],
            b"CLIPSEEK-INDEX\0\x01 and more bytes to be long enough, really long enough",
            b"{\"model_id\": \"m\"}",
            b"c",
            b"clipseek-index\0\0\x01\0\0\0",
        ] {
            assert_eq!(
                EmbeddingIndex::from_bytes(other, None),
                Err(IndexError::BadMagic)
            );
        }
        // A prefix of the signature is a cut-off index, not another file.
        assert!(matches!(
            EmbeddingIndex::from_bytes(b"CLIP", None),
            Err(IndexError::Truncated { len_bytes: 4, .. })
        ));
        let message = IndexError::BadMagic.to_string();
        assert!(message.contains("not a clipseek index"));
    }

    #[test]
    fn newer_versions_are_refused_by_number() -> Result<(), IndexError> {
        let mut bytes = sample(2, 3)?.to_bytes();
        bytes[16..20].copy_from_slice(&3u32.to_le_bytes());
        let bytes = reseal(bytes);
        assert_eq!(
            EmbeddingIndex::from_bytes(&bytes, None),
            Err(IndexError::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        );
        // Even without a valid checksum (a future format may checksum differently).
        for version in [0u32, 3] {
            let mut short = MAGIC.to_vec();
            short.extend_from_slice(&version.to_le_bytes());
            assert!(matches!(
                EmbeddingIndex::from_bytes(&short, None),
                Err(IndexError::UnsupportedVersion { found, .. }) if found == version
            ));
        }
        Ok(())
    }

    /// A version-1 file (written before the date taken was recorded): the same layout
    /// without `taken_ms`, read with no dates.
    #[test]
    fn version_1_files_still_read() -> Result<(), IndexError> {
        let index = sample(7, 4)?;
        let v2 = index.to_bytes();
        let header_len = u32::from_le_bytes([v2[20], v2[21], v2[22], v2[23]]) as usize;
        let mut v1 = v2[..24 + header_len].to_vec();
        v1[16..20].copy_from_slice(&1u32.to_le_bytes());
        let mut at = 24 + header_len;
        for _ in index.entries() {
            let path_len = u32::from_le_bytes([v2[at], v2[at + 1], v2[at + 2], v2[at + 3]]);
            let fixed = 4 + path_len as usize + 8 + 8 + 32 + 8;
            v1.extend_from_slice(&v2[at..at + fixed]);
            at += fixed + 8;
        }
        v1.extend_from_slice(&v2[at..]);
        let back = EmbeddingIndex::from_bytes(&reseal(v1), Some(MODEL))?;
        assert_eq!(back.matrix(), index.matrix());
        assert!(index.entries().iter().any(|e| e.taken_ms.is_some()));
        for (old, new) in back.entries().iter().zip(index.entries()) {
            assert_eq!(old.taken_ms, None);
            assert_eq!(
                Entry {
                    taken_ms: None,
                    ..new.clone()
                },
                *old
            );
        }
        Ok(())
    }

    #[test]
    fn another_model_is_refused() -> Result<(), IndexError> {
        let bytes = sample(2, 3)?.to_bytes();
        let err = EmbeddingIndex::from_bytes(&bytes, Some("laion/CLIP-ViT-B-32"));
        assert_eq!(
            err,
            Err(IndexError::ModelMismatch {
                index_model: MODEL.to_string(),
                expected_model: "laion/CLIP-ViT-B-32".to_string(),
            })
        );
        let message = err
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("another model"), "{message}");
        assert!(message.contains("must be rebuilt"), "{message}");
        Ok(())
    }

    #[test]
    fn malformed_headers_are_reported() {
        let cases = [
            "not json",
            "{\"model_id\": \"m\", \"dim\": 2}",
            "{\"model_id\": 5, \"dim\": 2, \"count\": 0, \"next_id\": 0}",
            "{\"model_id\": \"m\", \"dim\": -2, \"count\": 0, \"next_id\": 0}",
            "{\"model_id\": \"m\", \"dim\": 0, \"count\": 3, \"next_id\": 9}",
        ];
        for header in cases {
            let err = EmbeddingIndex::from_bytes(&file_with(header, &[]), None);
            assert!(
                matches!(err, Err(IndexError::MalformedHeader { .. })),
                "{header}: {err:?}"
            );
        }
        // A header length past the end of the file (with a valid checksum).
        let mut bytes = file_with("{}", &[]);
        bytes[20..24].copy_from_slice(&1000u32.to_le_bytes());
        let err = EmbeddingIndex::from_bytes(&reseal(bytes), None);
        assert!(
            matches!(err, Err(IndexError::MalformedHeader { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn huge_counts_are_refused_without_allocating() {
        for (count, dim) in [
            (u64::MAX, 512u64),
            (1u64 << 40, 512),
            (2, 1u64 << 62),
            (1, u64::MAX),
            (3, 2),
        ] {
            let header = format!(
                "{{\"model_id\": \"m\", \"dim\": {dim}, \"count\": {count}, \"next_id\": 9}}"
            );
            let mut body = entry_bytes(b"a", 0);
            body.extend_from_slice(&unit_row_bytes(2));
            let err = EmbeddingIndex::from_bytes(&file_with(&header, &body), None);
            assert!(
                matches!(
                    err,
                    Err(IndexError::CountExceedsData { .. } | IndexError::MalformedHeader { .. })
                ),
                "count {count} dim {dim}: {err:?}"
            );
        }
    }

    #[test]
    fn inconsistent_bodies_are_reported() {
        let header = "{\"model_id\": \"m\", \"dim\": 2, \"count\": 1, \"next_id\": 5}";
        let good_entry = entry_bytes(b"a.jpg", 3);
        let row = unit_row_bytes(2);

        let mut ok = good_entry.clone();
        ok.extend_from_slice(&row);
        assert!(EmbeddingIndex::from_bytes(&file_with(header, &ok), None).is_ok());

        // Matrix too long / too short.
        let mut long = ok.clone();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(
            EmbeddingIndex::from_bytes(&file_with(header, &long), None),
            Err(IndexError::MatrixSizeMismatch {
                count: 1,
                dim: 2,
                expected_bytes: 8,
                found_bytes: 12
            })
        );
        // A path length that runs past the end of the file.
        let mut runaway = entry_bytes(b"a.jpg", 3);
        runaway[..4].copy_from_slice(&1000u32.to_le_bytes());
        runaway.extend_from_slice(&row);
        assert!(matches!(
            EmbeddingIndex::from_bytes(&file_with(header, &runaway), None),
            Err(IndexError::MalformedEntry { position: 0, .. })
        ));
        // A path that is not UTF-8.
        let mut not_utf8 = entry_bytes(b"a\xff.jpg", 3);
        not_utf8.extend_from_slice(&row);
        assert!(matches!(
            EmbeddingIndex::from_bytes(&file_with(header, &not_utf8), None),
            Err(IndexError::MalformedEntry { position: 0, .. })
        ));
        // An id not below next_id.
        let mut big_id = entry_bytes(b"a.jpg", 5);
        big_id.extend_from_slice(&row);
        assert!(matches!(
            EmbeddingIndex::from_bytes(&file_with(header, &big_id), None),
            Err(IndexError::MalformedEntry { position: 0, .. })
        ));
        // Rows that are not unit length or not finite.
        for bad_row in [[0.0f32, 0.0], [f32::NAN, 0.0], [3.0, 4.0]] {
            let mut body = good_entry.clone();
            body.extend(bad_row.iter().flat_map(|v| v.to_le_bytes()));
            assert!(matches!(
                EmbeddingIndex::from_bytes(&file_with(header, &body), None),
                Err(IndexError::MalformedEntry { position: 0, .. })
            ));
        }
        // Duplicate paths, and ids out of order.
        let header2 = "{\"model_id\": \"m\", \"dim\": 2, \"count\": 2, \"next_id\": 5}";
        for (second_path, second_id) in [(&b"a.jpg"[..], 4u64), (b"b.jpg", 2), (b"b.jpg", 3)] {
            let mut body = good_entry.clone();
            body.extend(entry_bytes(second_path, second_id));
            body.extend_from_slice(&row);
            body.extend_from_slice(&row);
            assert!(matches!(
                EmbeddingIndex::from_bytes(&file_with(header2, &body), None),
                Err(IndexError::MalformedEntry { position: 1, .. })
            ));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift::new(99);
        let good = file_with(
            "{\"model_id\": \"m\", \"dim\": 2, \"count\": 1, \"next_id\": 5}",
            &[entry_bytes(b"a.jpg", 3), unit_row_bytes(2)].concat(),
        );
        for _ in 0..2000 {
            // Random edits of a valid file, resealed so they get past the checksum.
            let mut bytes = good.clone();
            for _ in 0..1 + rng.below(4) {
                let at = 20 + rng.below(bytes.len() - 20 - CHECKSUM_BYTES);
                bytes[at] = rng.next_u64() as u8;
            }
            let result = EmbeddingIndex::from_bytes(&reseal(bytes), None);
            if let Ok(index) = result {
                assert_eq!(index.matrix().len(), index.len() * index.dim());
            }
            // Pure noise after the magic and version.
            let mut noise = MAGIC.to_vec();
            noise.extend_from_slice(&1u32.to_le_bytes());
            noise.extend((0..rng.below(200)).map(|_| rng.next_u64() as u8));
            if let Ok(index) = EmbeddingIndex::from_bytes(&reseal(noise), None) {
                assert_eq!(index.matrix().len(), index.len() * index.dim());
            }
        }
    }
}
