//! The export archive: an index taken elsewhere (the page's "Export" download, `clipseek
//! export`) and read back (`clipseek import`, `clipseek search` on an archive, the page's
//! "Import"). One zip holding `embeddings.npy` (float32, N×D, C order, L2-normalised rows)
//! and `manifest.json` (the model's id, revision and fingerprint; each photo's path, size,
//! modified time, SHA-256 and EXIF date taken, in row order) — a format numpy, Python and any zip tool read.
//!
//! It must not do I/O, trust a count, length or offset before bounding it by the bytes that
//! are there, or panic on any input; an archive that is not exactly right is refused with one
//! sentence saying what is wrong, and an archive made with another model is refused (its
//! embeddings cannot be compared with this model's).
//!
//! References: the NPY format v1.0 (numpy's `numpy/lib/format.py` docs: magic
//! `\x93NUMPY`, version, little-endian u16 header length, a Python dict literal padded with
//! spaces to a multiple of 64 bytes and ended by `\n`); PKWARE's APPNOTE.TXT for zip (local
//! headers, central directory, end record; CRC-32 with polynomial 0xEDB88320). The archive
//! is written *stored* (method 0, no compression) by this code: embeddings are float noise
//! that deflate barely shrinks (~7%), the page builds the download in memory without a
//! dependency, and it needs no zip64 below 4 GiB (about two million 512-d photos). Import
//! reads stored members only and says so for a compressed one.
//!
//! `manifest.json`:
//! ```json
//! {"format": "clipseek-export", "version": 1,
//!  "model": {"id": "clip-…#fp", "revision": "main" | null, "fingerprint": "fp" | null},
//!  "count": N, "dim": D,
//!  "photos": [{"path": "DCIM/a.jpg", "size": 123, "modified": 1700000000000, "sha256": "…",
//!              "taken": 1690000000000}]}
//! ```
//! `modified` is milliseconds since the Unix epoch; `taken` (the same unit; the rule of
//! `model::preprocess::exif::date_taken`) is there only for a photo whose EXIF gave a date
//! taken — archives written before it was recorded have none and import with no dates, so
//! the format stays version 1. A photo decoded by the browser rather than by our PIL-exact
//! decoders (the page's fallback for AVIF, HEIC, …) also has `"decoder": "browser"` (absent
//! otherwise; any other value is refused). Rows of `embeddings.npy` follow `photos`.
//! Imported photos get fresh ids in row order (so ties rank as before).

use serde::{Deserialize, Serialize};

use super::{EmbeddingIndex, Entry, IndexError};
use crate::zip::{self, ZipError};

/// Member names inside the archive.
pub const EMBEDDINGS_NAME: &str = "embeddings.npy";
pub const MANIFEST_NAME: &str = "manifest.json";
/// `manifest.json`'s `format` and `version`.
pub const FORMAT: &str = "clipseek-export";
pub const VERSION: u32 = 1;
/// A manifest photo's `decoder` when the browser decoded it (the only value there is).
pub const DECODER_BROWSER: &str = "browser";

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Everything that can go wrong writing or reading an archive. Each message is a sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExportError {
    #[error("not a clipseek export: the file is not a zip archive")]
    NotAnArchive,
    #[error("the archive is damaged: {reason}")]
    Damaged { reason: String },
    #[error(
        "`{name}` in the archive is compressed (method {method}); clipseek reads archives \
         it wrote (stored, uncompressed) — zip it again without compression (`zip -0`)"
    )]
    Compressed { name: String, method: u16 },
    #[error("`{name}` in the archive is damaged (its CRC-32 does not match)")]
    CrcMismatch { name: String },
    #[error(
        "the archive has no `{name}`; a clipseek export holds embeddings.npy and manifest.json"
    )]
    MissingMember { name: String },
    #[error(
        "the archive would be {bytes} bytes; a zip without zip64 holds at most 4 GiB \
         (export fewer photos)"
    )]
    TooLarge { bytes: u64 },
    #[error("embeddings.npy is not a valid NPY file: {reason}")]
    NpyHeader { reason: String },
    #[error("embeddings.npy holds `{descr}` values; a clipseek export holds float32 (`<f4`)")]
    NpyDtype { descr: String },
    #[error("embeddings.npy is in Fortran order; a clipseek export is in C (row) order")]
    NpyFortranOrder,
    #[error("embeddings.npy has shape {shape}; a clipseek export is a two-dimensional N×D matrix")]
    NpyShape { shape: String },
    #[error("embeddings.npy's data is {found_bytes} bytes, but its shape needs {expected_bytes}")]
    NpyDataSize {
        expected_bytes: u64,
        found_bytes: usize,
    },
    #[error("manifest.json is not valid: {reason}")]
    Manifest { reason: String },
    #[error("manifest.json says format `{format}` version {version}; this clipseek reads `{FORMAT}` version {VERSION}")]
    ManifestFormat { format: String, version: u32 },
    #[error(
        "manifest.json lists {manifest} photos but embeddings.npy has {rows} rows; they must match"
    )]
    CountMismatch { manifest: usize, rows: usize },
    #[error(
        "manifest.json says {manifest}-value embeddings but embeddings.npy rows have {columns}"
    )]
    DimMismatch { manifest: usize, columns: usize },
    #[error(
        "row {row} of embeddings.npy has a value that is not a finite number (column {column})"
    )]
    NonFinite { row: usize, column: usize },
    #[error("row {row} of embeddings.npy is not L2-normalised (its length is {norm})")]
    NotNormalised { row: usize, norm: f64 },
    #[error("manifest.json lists the photo `{path}` twice")]
    DuplicatePath { path: String },
    #[error("photo {row} of manifest.json has the SHA-256 `{text}`, which is not 64 hex digits")]
    BadHash { row: usize, text: String },
    #[error(
        "this archive was made with another model (`{archive_model}`, not `{expected_model}`); \
         embeddings of different models cannot be compared, so it cannot be imported"
    )]
    ModelMismatch {
        archive_model: String,
        expected_model: String,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestModel {
    pub id: String,
    pub revision: Option<String>,
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestPhoto {
    pub path: String,
    pub size: u64,
    pub modified: i64,
    pub sha256: String,
    /// [`DECODER_BROWSER`] for a photo the browser decoded; absent for ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<String>,
    /// The EXIF date taken, ms since the epoch (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model: ManifestModel,
    pub count: usize,
    pub dim: usize,
    pub photos: Vec<ManifestPhoto>,
}

/// An archive read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub index: EmbeddingIndex,
    /// The model revision the archive names, if it named one.
    pub revision: Option<String>,
    /// The paths of the photos the browser decoded (`decoder: "browser"`).
    pub by_browser: std::collections::BTreeSet<String>,
}

/// The fingerprint part of a model id (`…#fingerprint`), if it has one.
pub fn fingerprint(model_id: &str) -> Option<&str> {
    model_id.split_once('#').map(|(_, fp)| fp)
}

/// True when `bytes` start like a zip archive (so a caller can tell an archive from an
/// index file).
pub fn is_archive(bytes: &[u8]) -> bool {
    zip::is_archive(bytes)
}

impl From<ZipError> for ExportError {
    fn from(e: ZipError) -> Self {
        match e {
            ZipError::NotAnArchive => Self::NotAnArchive,
            ZipError::Damaged { reason } => Self::Damaged { reason },
            ZipError::CrcMismatch { name } => Self::CrcMismatch { name },
            ZipError::TooLarge { bytes } => Self::TooLarge { bytes },
            ZipError::Unreadable { reason } => Self::Damaged { reason },
        }
    }
}

fn write_zip(members: &[(&str, &[u8])]) -> Result<Vec<u8>, ExportError> {
    Ok(zip::write_stored(members)?)
}

/// The stored members (name, bytes); a compressed one is refused only if we read it (others,
/// e.g. a README, may be anything).
fn read_zip(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, ExportError> {
    let mut members = Vec::new();
    for m in zip::read(bytes)? {
        if m.method == 0 {
            members.push((m.name, m.data));
        } else if m.name == EMBEDDINGS_NAME || m.name == MANIFEST_NAME {
            return Err(ExportError::Compressed {
                name: m.name,
                method: m.method,
            });
        }
    }
    Ok(members)
}

/// Writes `index` as an export archive; `revision` is the model revision to record.
pub fn export(index: &EmbeddingIndex, revision: Option<&str>) -> Result<Vec<u8>, ExportError> {
    export_marked(index, revision, |_| false)
}

/// [`export`], marking `decoder: "browser"` on the photos `by_browser` says the browser
/// decoded.
pub fn export_marked(
    index: &EmbeddingIndex,
    revision: Option<&str>,
    by_browser: impl Fn(&Entry) -> bool,
) -> Result<Vec<u8>, ExportError> {
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: VERSION,
        model: ManifestModel {
            id: index.model_id().to_string(),
            revision: revision.map(str::to_string),
            fingerprint: fingerprint(index.model_id()).map(str::to_string),
        },
        count: index.len(),
        dim: index.dim(),
        photos: index
            .entries()
            .iter()
            .map(|e| ManifestPhoto {
                path: e.path.clone(),
                size: e.size_bytes,
                modified: e.modified_ms,
                sha256: e.content_hash.iter().map(|b| format!("{b:02x}")).collect(),
                decoder: by_browser(e).then(|| DECODER_BROWSER.to_owned()),
                taken: e.taken_ms,
            })
            .collect(),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Manifest {
        reason: e.to_string(),
    })?;
    let npy = npy_bytes(index.matrix(), index.len(), index.dim());
    write_zip(&[
        (EMBEDDINGS_NAME, npy.as_slice()),
        (MANIFEST_NAME, manifest.as_slice()),
    ])
}

/// Reads an export archive, checking everything (see the module docs). With
/// `expected_model_id`, an archive of another model is [`ExportError::ModelMismatch`].
pub fn import(bytes: &[u8], expected_model_id: Option<&str>) -> Result<Imported, ExportError> {
    let members = read_zip(bytes)?;
    let member = |name: &str| {
        members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, data)| *data)
            .ok_or_else(|| ExportError::MissingMember {
                name: name.to_string(),
            })
    };
    let manifest: Manifest =
        serde_json::from_slice(member(MANIFEST_NAME)?).map_err(|e| ExportError::Manifest {
            reason: e.to_string(),
        })?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(ExportError::ManifestFormat {
            format: manifest.format,
            version: manifest.version,
        });
    }
    if let Some(expected) = expected_model_id {
        if manifest.model.id != expected {
            return Err(ExportError::ModelMismatch {
                archive_model: manifest.model.id,
                expected_model: expected.to_string(),
            });
        }
    }
    let (rows, columns, matrix) = read_npy(member(EMBEDDINGS_NAME)?)?;
    if manifest.count != manifest.photos.len() {
        return Err(ExportError::Manifest {
            reason: format!(
                "its count ({}) is not the number of photos it lists ({})",
                manifest.count,
                manifest.photos.len()
            ),
        });
    }
    if manifest.photos.len() != rows {
        return Err(ExportError::CountMismatch {
            manifest: manifest.photos.len(),
            rows,
        });
    }
    if manifest.dim != columns {
        return Err(ExportError::DimMismatch {
            manifest: manifest.dim,
            columns,
        });
    }
    for (row, values) in matrix.chunks_exact(columns.max(1)).enumerate() {
        if let Some(column) = values.iter().position(|v| !v.is_finite()) {
            return Err(ExportError::NonFinite { row, column });
        }
        let norm = values
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        // The index's own tolerance (store.rs reads rows within 1e-3 of unit length).
        if (norm * norm - 1.0).abs() > 1e-3 {
            return Err(ExportError::NotNormalised { row, norm });
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(rows);
    let mut entries = Vec::with_capacity(rows);
    let mut by_browser = std::collections::BTreeSet::new();
    for (row, photo) in manifest.photos.into_iter().enumerate() {
        match photo.decoder.as_deref() {
            None => {}
            Some(DECODER_BROWSER) => {
                by_browser.insert(photo.path.clone());
            }
            Some(other) => {
                return Err(ExportError::Manifest {
                    reason: format!(
                        "photo {row} names the decoder `{other}`, where only `{DECODER_BROWSER}` is known"
                    ),
                })
            }
        }
        if !seen.insert(photo.path.clone()) {
            return Err(ExportError::DuplicatePath { path: photo.path });
        }
        let content_hash = parse_sha256(&photo.sha256).ok_or_else(|| ExportError::BadHash {
            row,
            text: photo.sha256.clone(),
        })?;
        entries.push(Entry {
            id: row as u64,
            path: photo.path,
            size_bytes: photo.size,
            modified_ms: photo.modified,
            content_hash,
            taken_ms: photo.taken,
        });
    }
    let index =
        EmbeddingIndex::from_parts(manifest.model.id, columns, entries, matrix, rows as u64)?;
    Ok(Imported {
        index,
        revision: manifest.model.revision,
        by_browser,
    })
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *slot = u8::try_from(digit(*pair.first()?)? * 16 + digit(*pair.get(1)?)?).ok()?;
    }
    Some(out)
}

/// An NPY v1.0 file of `rows x columns` little-endian float32 values.
pub fn npy_bytes(matrix: &[f32], rows: usize, columns: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    // magic (6) + version (2) + header length (2) + header, padded to 64, ending in '\n'.
    let unpadded = NPY_MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + matrix.len() * 4);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(
        &u16::try_from(header.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(header.as_bytes());
    for v in matrix {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads an NPY file of float32 values in C order: `(rows, columns, values)`. Versions
/// 1.0, 2.0 and 3.0 are read (they differ in the header length field and encoding).
pub fn read_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), ExportError> {
    let bad = |reason: &str| ExportError::NpyHeader {
        reason: reason.to_string(),
    };
    if bytes.get(..6) != Some(&NPY_MAGIC[..]) {
        return Err(bad("it does not start with the NPY signature"));
    }
    let major = *bytes
        .get(6)
        .ok_or_else(|| bad("it ends inside its header"))?;
    let (len_bytes, header_len) = match major {
        1 => (
            2,
            bytes
                .get(8..10)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
        ),
        2 | 3 => (
            4,
            bytes
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .map(|b: [u8; 4]| u32::from_le_bytes(b) as usize),
        ),
        other => {
            return Err(ExportError::NpyHeader {
                reason: format!("its format version {other} is not 1, 2 or 3"),
            })
        }
    };
    let header_len = header_len.ok_or_else(|| bad("it ends inside its header"))?;
    let data_start = 8 + len_bytes + header_len;
    let header = bytes
        .get(8 + len_bytes..data_start)
        .ok_or_else(|| bad("its header is longer than the file"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("its header is not text"))?;
    let dict = parse_header_dict(header).map_err(|reason| ExportError::NpyHeader { reason })?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in dict {
        match (key.as_str(), value) {
            ("descr", PyValue::Str(s)) => descr = Some(s),
            ("fortran_order", PyValue::Bool(b)) => fortran = Some(b),
            ("shape", PyValue::Tuple(t)) => shape = Some(t),
            (k, _) => {
                return Err(ExportError::NpyHeader {
                    reason: format!("its header has an unexpected entry `{k}`"),
                })
            }
        }
    }
    let descr = descr.ok_or_else(|| bad("its header has no `descr`"))?;
    if descr != "<f4" {
        return Err(ExportError::NpyDtype { descr });
    }
    if fortran.ok_or_else(|| bad("its header has no `fortran_order`"))? {
        return Err(ExportError::NpyFortranOrder);
    }
    let shape = shape.ok_or_else(|| bad("its header has no `shape`"))?;
    let (rows, columns) = match shape.as_slice() {
        [rows, columns] if *columns > 0 || *rows == 0 => (*rows, *columns),
        _ => {
            let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
            return Err(ExportError::NpyShape {
                shape: format!("({})", dims.join(", ")),
            });
        }
    };
    let data = bytes.get(data_start..).unwrap_or_default();
    let expected_bytes = rows.checked_mul(columns).and_then(|v| v.checked_mul(4));
    if expected_bytes != Some(data.len() as u64) {
        return Err(ExportError::NpyDataSize {
            expected_bytes: expected_bytes.unwrap_or(u64::MAX),
            found_bytes: data.len(),
        });
    }
    let (rows, columns) = match (usize::try_from(rows), usize::try_from(columns)) {
        (Ok(r), Ok(c)) => (r, c),
        _ => return Err(bad("its shape does not fit in memory")),
    };
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((rows, columns, values))
}

#[derive(Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the subset of Python literals an NPY header uses: a dict of string keys to
/// strings, booleans and tuples of non-negative integers.
fn parse_header_dict(text: &str) -> Result<Vec<(String, PyValue)>, String> {
    let mut p = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    p.skip_space();
    p.expect(b'{')?;
    let mut out = Vec::new();
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_space();
        p.expect(b':')?;
        p.skip_space();
        let value = match p.peek() {
            Some(b'\'' | b'"') => PyValue::Str(p.string()?),
            Some(b'(') => PyValue::Tuple(p.tuple()?),
            Some(b'T' | b'F') => PyValue::Bool(p.boolean()?),
            _ => return Err(format!("the value of `{key}` is not one NPY uses")),
        };
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("its header names `{key}` twice"));
        }
        out.push((key, value));
        p.skip_space();
        if !p.eat(b',') {
            p.skip_space();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_space();
    if p.at != p.s.len() {
        return Err("its header has text after the dictionary".to_string());
    }
    Ok(out)
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "its header has no `{}` where one belongs (byte {})",
                c as char, self.at
            ))
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self
            .peek()
            .filter(|c| *c == b'\'' || *c == b'"')
            .ok_or_else(|| format!("its header has no string at byte {}", self.at))?;
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = std::str::from_utf8(self.s.get(start..self.at).unwrap_or_default())
                    .map_err(|_| "its header is not text".to_string())?
                    .to_string();
                self.at += 1;
                return Ok(text);
            }
            if c == b'\\' {
                return Err("its header has an escaped string".to_string());
            }
            self.at += 1;
        }
        Err("its header has an unclosed string".to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        let rest = self.s.get(self.at..).unwrap_or_default();
        if rest.starts_with(b"True") {
            self.at += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.at += 5;
            Ok(false)
        } else {
            Err(format!("its header has a bad value at byte {}", self.at))
        }
    }

    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b')') {
                return Ok(out);
            }
            let start = self.at;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.at += 1;
            }
            let digits = std::str::from_utf8(self.s.get(start..self.at).unwrap_or_default())
                .unwrap_or_default();
            let value = digits
                .parse::<u64>()
                .map_err(|_| format!("its shape has a bad number at byte {start}"))?;
            if out.len() >= 32 {
                return Err("its shape has more than 32 dimensions".to_string());
            }
            out.push(value);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{meta, XorShift};
    use super::super::EntryMeta;
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn sample(n: usize, dim: usize) -> Result<EmbeddingIndex, IndexError> {
        let mut rng = XorShift::new(5);
        let mut index =
            EmbeddingIndex::new("clip-vit768x12-p32-224px-text512x12-d512#0123abcd", dim);
        for i in 0..n {
            let m = EntryMeta {
                taken_ms: i.is_multiple_of(2).then_some(1_690_000_000_000 + i as i64),
                ..meta(&format!("DCIM/é {i}.jpg"))
            };
            index.upsert(m, &rng.vector(dim))?;
        }
        // Removing one leaves a gap in the ids: import renumbers, order stays.
        index.remove_path("DCIM/é 1.jpg");
        Ok(index)
    }

    /// Rebuilds an archive with `edit` applied to one member's bytes.
    fn with_member(
        archive: &[u8],
        name: &str,
        edit: impl Fn(&mut Vec<u8>),
    ) -> Result<Vec<u8>, ExportError> {
        let members = read_zip(archive)?;
        let mut owned: Vec<(String, Vec<u8>)> =
            members.into_iter().map(|(n, d)| (n, d.to_vec())).collect();
        for (n, d) in &mut owned {
            if n == name {
                edit(d);
            }
        }
        let refs: Vec<(&str, &[u8])> = owned
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        write_zip(&refs)
    }

    #[test]
    fn npy_header_is_v1_and_aligned() -> TestResult {
        let bytes = npy_bytes(&[1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 3, 2);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len])?;
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + header_len + 6 * 4);
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 4],
            &1.0f32.to_le_bytes()
        );
        let (rows, columns, values) = read_npy(&bytes)?;
        assert_eq!((rows, columns), (3, 2));
        assert_eq!(values, [1.0, 0.0, 0.0, 1.0, 0.6, 0.8]);
        Ok(())
    }

    #[test]
    fn npy_headers_as_numpy_writes_them_are_read() -> TestResult {
        // numpy's own spelling of the same header, keys in another order, version 2.
        let header = "{'shape': (2, 1), 'fortran_order': False, 'descr': '<f4'}";
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u32 + 1).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        bytes.extend_from_slice(&(-1.0f32).to_le_bytes());
        assert_eq!(read_npy(&bytes)?, (2, 1, vec![1.0, -1.0]));
        Ok(())
    }

    #[test]
    fn bad_npy_files_are_refused_with_a_reason() {
        let good = npy_bytes(&[1.0, 0.0], 1, 2);
        let with_header = |h: &str| {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0u8; 8]);
            b
        };
        assert!(matches!(
            read_npy(b"NUMPY"),
            Err(ExportError::NpyHeader { .. })
        ));
        assert!(matches!(
            read_npy(&good[..9]),
            Err(ExportError::NpyHeader { .. })
        ));
        assert!(matches!(
            read_npy(&good[..40]),
            Err(ExportError::NpyHeader { .. })
        ));
        assert!(matches!(
            read_npy(&good[..good.len() - 1]),
            Err(ExportError::NpyDataSize {
                expected_bytes: 8,
                found_bytes: 7
            })
        ));
        assert_eq!(
            read_npy(&with_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }"
            )),
            Err(ExportError::NpyDtype {
                descr: "<f8".into()
            })
        );
        assert_eq!(
            read_npy(&with_header(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }"
            )),
            Err(ExportError::NpyFortranOrder)
        );
        assert_eq!(
            read_npy(&with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
            )),
            Err(ExportError::NpyShape {
                shape: "(2)".into()
            })
        );
        for h in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': (1,)}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)}",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (1, 2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)} x",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1, 2)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}",
            "{'descr: '<f4'}",
            "",
        ] {
            assert!(
                matches!(
                    read_npy(&with_header(h)),
                    Err(ExportError::NpyHeader { .. })
                ),
                "{h}"
            );
        }
        // A shape whose byte count overflows is a size error, not a huge allocation.
        assert!(matches!(
            read_npy(&with_header(&format!(
                "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
                u64::MAX / 2,
                4
            ))),
            Err(ExportError::NpyDataSize { .. })
        ));
    }

    #[test]
    fn export_then_import_gives_the_same_index_and_rankings() -> TestResult {
        let index = sample(40, 12)?;
        let archive = export(&index, Some("refs/pr/15"))?;
        assert!(is_archive(&archive));
        let imported = import(&archive, Some(index.model_id()))?;
        assert_eq!(imported.revision.as_deref(), Some("refs/pr/15"));
        let back = &imported.index;
        assert_eq!(back.model_id(), index.model_id());
        assert_eq!(back.len(), 39);
        assert_eq!(back.matrix(), index.matrix(), "bit-exact rows");
        for (a, b) in back.entries().iter().zip(index.entries()) {
            assert_eq!(
                (
                    &a.path,
                    a.size_bytes,
                    a.modified_ms,
                    a.content_hash,
                    a.taken_ms
                ),
                (
                    &b.path,
                    b.size_bytes,
                    b.modified_ms,
                    b.content_hash,
                    b.taken_ms
                )
            );
        }
        let mut rng = XorShift::new(9);
        for _ in 0..5 {
            let q = rng.vector(12);
            let paths = |i: &EmbeddingIndex| -> Result<Vec<(String, f32)>, IndexError> {
                Ok(i.search(&q, 39)?
                    .iter()
                    .filter_map(|m| i.entry(m.id).map(|e| (e.path.clone(), m.score)))
                    .collect())
            };
            assert_eq!(paths(back)?, paths(&index)?);
        }
        // The manifest is readable JSON in the documented shape.
        let members = read_zip(&archive)?;
        let manifest: serde_json::Value = serde_json::from_slice(
            members
                .iter()
                .find(|(n, _)| n == MANIFEST_NAME)
                .map(|(_, d)| *d)
                .ok_or("manifest")?,
        )?;
        assert_eq!(manifest["model"]["fingerprint"], "0123abcd");
        assert_eq!(manifest["photos"][0]["path"], "DCIM/é 0.jpg");
        assert_eq!(manifest["photos"][1]["path"], "DCIM/é 2.jpg");
        assert_eq!(manifest["photos"][0]["modified"], 1_700_000_000_000i64);
        assert_eq!(manifest["photos"][0]["taken"], 1_690_000_000_000i64);
        assert!(
            manifest["photos"][2].get("taken").is_none(),
            "no date: no key"
        );
        assert_eq!(manifest["count"], 39);
        assert_eq!(
            members.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            [EMBEDDINGS_NAME, MANIFEST_NAME]
        );
        // An empty index round-trips too.
        let empty = EmbeddingIndex::new("m", 8);
        let back = import(&export(&empty, None)?, None)?;
        assert_eq!(
            (back.index.len(), back.index.dim(), back.revision),
            (0, 8, None)
        );
        Ok(())
    }

    /// An archive from before the date taken was recorded (no `taken` keys) imports with
    /// no dates and everything else as it was.
    #[test]
    fn archives_without_dates_taken_still_import() -> TestResult {
        let index = sample(6, 4)?;
        let archive = export(&index, None)?;
        let old = with_member(&archive, MANIFEST_NAME, |bytes| {
            if let Ok(mut m) = serde_json::from_slice::<serde_json::Value>(bytes) {
                if let Some(photos) = m["photos"].as_array_mut() {
                    for p in photos {
                        p.as_object_mut().map(|o| o.remove("taken"));
                    }
                }
                *bytes = m.to_string().into_bytes();
            }
        })?;
        assert!(!String::from_utf8_lossy(&old).contains("\"taken\""));
        let back = import(&old, None)?.index;
        assert_eq!(back.len(), index.len());
        for (a, b) in back.entries().iter().zip(index.entries()) {
            assert_eq!(a.taken_ms, None);
            assert_eq!((&a.path, a.modified_ms), (&b.path, b.modified_ms));
        }
        Ok(())
    }

    #[test]
    fn photos_the_browser_decoded_are_marked_and_read_back() -> TestResult {
        let index = sample(4, 3)?;
        let marked = |e: &Entry| e.path.ends_with(" 2.jpg");
        let archive = export_marked(&index, None, marked)?;
        let imported = import(&archive, None)?;
        let expected: Vec<&str> = vec!["DCIM/é 2.jpg"];
        assert_eq!(imported.by_browser.iter().collect::<Vec<_>>(), expected);
        // Unmarked archives (and every archive from before the field) mark nothing.
        assert!(import(&export(&index, None)?, None)?.by_browser.is_empty());
        // Another decoder's name is refused, not ignored.
        let odd = with_member(&archive, MANIFEST_NAME, |m| {
            let text = String::from_utf8_lossy(m).replace("\"browser\"", "\"gimp\"");
            *m = text.into_bytes();
        })?;
        let err = import(&odd, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("the decoder `gimp`"), "{err}");
        Ok(())
    }

    #[test]
    fn another_models_archive_is_refused_with_a_sentence() -> TestResult {
        let archive = export(&sample(3, 4)?, None)?;
        let err = import(&archive, Some("clip-other#ffff"));
        assert!(matches!(err, Err(ExportError::ModelMismatch { .. })));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("another model") && message.contains("clip-other#ffff"));
        Ok(())
    }

    #[test]
    fn damaged_archives_are_refused_with_a_reason() -> TestResult {
        let archive = export(&sample(5, 4)?, None)?;
        assert_eq!(
            import(b"CLIPSEEK-INDEX", None),
            Err(ExportError::NotAnArchive)
        );
        assert_eq!(import(b"", None), Err(ExportError::NotAnArchive));
        assert!(matches!(
            import(&archive[..archive.len() - 30], None),
            Err(ExportError::Damaged { .. })
        ));
        // A flipped byte inside the embeddings.
        let mut flipped = archive.clone();
        // Local header (30) + name (14) + NPY header (64): row data from byte 108.
        flipped[120] ^= 0x40;
        assert!(matches!(
            import(&flipped, None),
            Err(ExportError::CrcMismatch { ref name }) if name == EMBEDDINGS_NAME
        ));
        // Every truncation and every single-byte corruption is an error or (a byte that
        // does not matter, e.g. a DOS date) the same index — never a panic.
        let reference = import(&archive, None)?;
        for cut in (0..archive.len()).step_by(7) {
            assert!(import(&archive[..cut], None).is_err(), "cut {cut}");
        }
        for at in 0..archive.len() {
            let mut b = archive.clone();
            b[at] = b[at].wrapping_add(0x5b);
            if let Ok(other) = import(&b, None) {
                assert_eq!(other.index.matrix(), reference.index.matrix(), "byte {at}");
            }
        }
        // Members missing, compressed, or wrong.
        let only_manifest = write_zip(&[(MANIFEST_NAME, &b"{}"[..])])?;
        assert_eq!(
            import(&only_manifest, None),
            Err(ExportError::Manifest {
                reason: "missing field `format` at line 1 column 2".into()
            })
        );
        let only_npy = write_zip(&[(EMBEDDINGS_NAME, npy_bytes(&[], 0, 4).as_slice())])?;
        assert_eq!(
            import(&only_npy, None),
            Err(ExportError::MissingMember {
                name: MANIFEST_NAME.into()
            })
        );
        let mut deflated = archive.clone();
        // Method field of the first central directory entry -> 8 (deflate).
        let central = (0..deflated.len() - 4)
            .find(|&i| deflated[i..i + 4] == zip::CENTRAL_SIG.to_le_bytes())
            .ok_or("central")?;
        deflated[central + 10] = 8;
        assert!(matches!(
            import(&deflated, None),
            Err(ExportError::Compressed { method: 8, .. })
        ));
        Ok(())
    }

    #[test]
    fn inconsistent_contents_are_refused_with_a_reason() -> TestResult {
        let index = sample(4, 3)?;
        let archive = export(&index, None)?;
        let manifest_edit = |from: &'static str, to: &'static str| {
            with_member(&archive, MANIFEST_NAME, move |d| {
                let text = String::from_utf8_lossy(d).replacen(from, to, 1);
                *d = text.into_bytes();
            })
        };
        assert!(matches!(
            import(&manifest_edit("\"count\": 3", "\"count\": 4")?, None),
            Err(ExportError::Manifest { .. })
        ));
        // Three photos listed, four rows.
        let four_rows = with_member(&archive, EMBEDDINGS_NAME, |d| {
            *d = npy_bytes(
                &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
                4,
                3,
            );
        })?;
        assert_eq!(
            import(&four_rows, None),
            Err(ExportError::CountMismatch {
                manifest: 3,
                rows: 4
            })
        );
        assert!(matches!(
            import(&manifest_edit("\"dim\": 3", "\"dim\": 5")?, None),
            Err(ExportError::DimMismatch {
                manifest: 5,
                columns: 3
            })
        ));
        assert!(matches!(
            import(&manifest_edit("\"version\": 1", "\"version\": 2")?, None),
            Err(ExportError::ManifestFormat { version: 2, .. })
        ));
        assert!(matches!(
            import(&manifest_edit("DCIM/é 2.jpg", "DCIM/é 0.jpg")?, None),
            Err(ExportError::DuplicatePath { .. })
        ));
        assert!(matches!(
            import(&manifest_edit("\"sha256\": \"", "\"sha256\": \"zz")?, None),
            Err(ExportError::BadHash { row: 0, .. })
        ));
        let npy_edit = |row: usize, value: f32| {
            with_member(&archive, EMBEDDINGS_NAME, move |d| {
                let start = d.len() - 3 * 3 * 4 + row * 3 * 4;
                d[start..start + 4].copy_from_slice(&value.to_le_bytes());
            })
        };
        assert_eq!(
            import(&npy_edit(1, f32::NAN)?, None),
            Err(ExportError::NonFinite { row: 1, column: 0 })
        );
        assert!(matches!(
            import(&npy_edit(2, 3.0)?, None),
            Err(ExportError::NotNormalised { row: 2, .. })
        ));
        Ok(())
    }
}
