//! The journal `clipseek index` appends to while it runs, so that a run that is killed
//! keeps every photo it finished: each encoded photo is one self-checked record (its
//! metadata and embedding), appended and synced batch by batch. The next run replays the
//! journal onto the index file it finds, skips the photos it already holds, and once the
//! new index file is safely in place removes the journal.
//!
//! It must not do I/O (the CLI reads and appends the file) nor trust a length before
//! bounding it by the bytes present: the tail of a journal cut by a kill (a record half
//! written) is simply where replay stops, never an error and never a panic.
//!
//! Format, integers little-endian:
//!
//! ```text
//! magic       16 bytes  b"CLIPSEEK-JOURNAL"
//! header_len  u32       length of the header JSON
//! header      JSON      {"model_id": "...", "dim": D}
//! sha256      32 bytes  of the header JSON
//! records     each: payload_len u32, payload, SHA-256 of the payload (32 bytes)
//! payload     path_len u32, path (UTF-8), size_bytes u64, modified_ms i64,
//!             content_hash [u8; 32], D x f32 embedding, then taken_ms i64 when the
//!             photo has an EXIF date taken (a journal written before the date was
//!             recorded has none: its records replay with no date)
//! ```

use sha2::{Digest, Sha256};

use super::EntryMeta;

/// The first 16 bytes of every journal.
pub const JOURNAL_MAGIC: [u8; 16] = *b"CLIPSEEK-JOURNAL";
/// The largest header read (a model id is short).
const MAX_HEADER_BYTES: usize = 1 << 16;

/// Why a journal cannot be replayed (its records are then not used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("it is not a clipseek journal")]
    NotAJournal,
    #[error("its header is damaged")]
    BadHeader,
    #[error("it was written for another model (`{found}`, not `{expected}`)")]
    OtherModel { found: String, expected: String },
}

/// What a journal holds: the records that read back whole, and how many bytes they and
/// the header take (an append continues from there, dropping a torn tail).
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub records: Vec<(EntryMeta, Vec<f32>)>,
    pub valid_bytes: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    model_id: String,
    dim: usize,
}

/// The start of a new journal for `model_id` with `dim`-value embeddings.
pub fn journal_start(model_id: &str, dim: usize) -> Vec<u8> {
    let header = serde_json::json!({ "model_id": model_id, "dim": dim }).to_string();
    let mut out = JOURNAL_MAGIC.to_vec();
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&Sha256::digest(header.as_bytes()));
    out
}

/// One record: a photo's metadata and embedding.
pub fn journal_record(meta: &EntryMeta, embedding: &[f32]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(4 + meta.path.len() + 48 + embedding.len() * 4);
    payload.extend_from_slice(
        &u32::try_from(meta.path.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    payload.extend_from_slice(meta.path.as_bytes());
    payload.extend_from_slice(&meta.size_bytes.to_le_bytes());
    payload.extend_from_slice(&meta.modified_ms.to_le_bytes());
    payload.extend_from_slice(&meta.content_hash);
    for v in embedding {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    if let Some(taken) = meta.taken_ms {
        payload.extend_from_slice(&taken.to_le_bytes());
    }
    let mut out = Vec::with_capacity(payload.len() + 36);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&payload);
    out.extend_from_slice(&Sha256::digest(&payload));
    out
}

/// Reads a journal written for `model_id`: every whole record up to the first that is
/// cut short or fails its checksum.
pub fn read_journal(bytes: &[u8], model_id: &str) -> Result<Replay, JournalError> {
    let mut r = Cursor { bytes, at: 0 };
    if r.take(JOURNAL_MAGIC.len()) != Some(&JOURNAL_MAGIC[..]) {
        return Err(JournalError::NotAJournal);
    }
    let header_len = r.u32().ok_or(JournalError::BadHeader)? as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(JournalError::BadHeader);
    }
    let header = r.take(header_len).ok_or(JournalError::BadHeader)?;
    let sha = r.take(32).ok_or(JournalError::BadHeader)?;
    if Sha256::digest(header).as_slice() != sha {
        return Err(JournalError::BadHeader);
    }
    let header: Header = serde_json::from_slice(header).map_err(|_| JournalError::BadHeader)?;
    if header.model_id != model_id {
        return Err(JournalError::OtherModel {
            found: header.model_id,
            expected: model_id.to_owned(),
        });
    }
    let mut records = Vec::new();
    let mut valid_bytes = r.at;
    while let Some(record) = read_record(&mut r, header.dim) {
        records.push(record);
        valid_bytes = r.at;
    }
    Ok(Replay {
        records,
        valid_bytes,
    })
}

fn read_record(r: &mut Cursor<'_>, dim: usize) -> Option<(EntryMeta, Vec<f32>)> {
    let len = r.u32()? as usize;
    let payload = r.take(len)?;
    let sha = r.take(32)?;
    if Sha256::digest(payload).as_slice() != sha {
        return None;
    }
    let mut p = Cursor {
        bytes: payload,
        at: 0,
    };
    let path_len = p.u32()? as usize;
    let path = std::str::from_utf8(p.take(path_len)?).ok()?.to_owned();
    let size_bytes = u64::from_le_bytes(p.take(8)?.try_into().ok()?);
    let modified_ms = i64::from_le_bytes(p.take(8)?.try_into().ok()?);
    let content_hash: [u8; 32] = p.take(32)?.try_into().ok()?;
    let rest = p.take(dim.checked_mul(4)?)?;
    let taken_ms = match payload.len() - p.at {
        0 => None,
        8 => Some(i64::from_le_bytes(p.take(8)?.try_into().ok()?)),
        _ => return None,
    };
    if p.at != payload.len() {
        return None;
    }
    let embedding = rest
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((
        EntryMeta {
            path,
            size_bytes,
            modified_ms,
            content_hash,
            taken_ms,
        },
        embedding,
    ))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u8) -> EntryMeta {
        EntryMeta {
            path: format!("photos/{i}.jpg"),
            size_bytes: u64::from(i) * 1000,
            modified_ms: -i64::from(i),
            content_hash: [i; 32],
            taken_ms: None,
        }
    }

    fn journal(n: u8) -> Vec<u8> {
        let mut bytes = journal_start("m", 3);
        for i in 0..n {
            bytes.extend(journal_record(&meta(i), &[f32::from(i), 0.5, -1.0]));
        }
        bytes
    }

    #[test]
    fn records_read_back_as_written() -> Result<(), JournalError> {
        let bytes = journal(5);
        let replay = read_journal(&bytes, "m")?;
        assert_eq!(replay.valid_bytes, bytes.len());
        assert_eq!(replay.records.len(), 5);
        for (i, (m, e)) in replay.records.iter().enumerate() {
            assert_eq!(*m, meta(i as u8));
            assert_eq!(*e, vec![i as f32, 0.5, -1.0]);
        }
        Ok(())
    }

    #[test]
    fn dates_taken_read_back_and_old_records_have_none() -> Result<(), JournalError> {
        let dated = |i: u8, taken_ms| EntryMeta {
            taken_ms,
            ..meta(i)
        };
        let mut bytes = journal_start("m", 3);
        let written = [
            dated(0, Some(1_709_214_307_000)),
            dated(1, None),
            dated(2, Some(-1)),
        ];
        for m in &written {
            bytes.extend(journal_record(m, &[1.0, 0.0, 0.0]));
        }
        let replay = read_journal(&bytes, "m")?;
        let read: Vec<EntryMeta> = replay.records.into_iter().map(|(m, _)| m).collect();
        assert_eq!(read, written);
        Ok(())
    }

    #[test]
    fn a_journal_cut_anywhere_replays_its_whole_records_only() -> Result<(), JournalError> {
        let bytes = journal(4);
        let start = journal_start("m", 3).len();
        let record = (bytes.len() - start) / 4;
        for cut in start..bytes.len() {
            let replay = read_journal(&bytes[..cut], "m")?;
            let whole = (cut - start) / record;
            assert_eq!(replay.records.len(), whole, "cut at {cut}");
            assert_eq!(replay.valid_bytes, start + whole * record);
        }
        // A flipped byte ends the replay at that record.
        let mut bad = bytes.clone();
        bad[start + record + 10] ^= 1;
        assert_eq!(read_journal(&bad, "m")?.records.len(), 1);
        Ok(())
    }

    #[test]
    fn other_files_and_other_models_are_refused() {
        assert_eq!(
            read_journal(b"CLIPSEEK-INDEX\0\0", "m"),
            Err(JournalError::NotAJournal)
        );
        let bytes = journal(1);
        assert_eq!(
            read_journal(&bytes[..20], "m"),
            Err(JournalError::BadHeader)
        );
        assert!(matches!(
            read_journal(&bytes, "other"),
            Err(JournalError::OtherModel { .. })
        ));
        let mut huge = JOURNAL_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_journal(&huge, "m"), Err(JournalError::BadHeader));
    }
}
