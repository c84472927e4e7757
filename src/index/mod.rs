//! The embedding index: one entry per indexed photo (its path and file identity) and an
//! `N x dim` row-major matrix of L2-normalised embeddings, in insertion order. It is what
//! the CLI and the page search against, and what they persist (through [`store`]).
//!
//! It must not do I/O, know about files, the browser or the encoder: callers hand it
//! metadata and embeddings, and bytes for persistence. No input (an embedding, a query, a
//! byte string read back) may make it panic; every failure is an [`IndexError`].
//!
//! Reference semantics (DESIGN.md, "Score"): every stored row and every query is
//! L2-normalised, the score is their dot product — the cosine similarity, with no logit
//! scale — ranked descending, ties broken by insertion order (the earlier entry wins).
//! Combined queries (several positives, negatives, exclusions) follow [`rank::query_vector`].
//!
//! Invariants kept by every method: `matrix.len() == entries.len() * dim`; ids are unique,
//! strictly increasing in insertion order and below `next_id` (so ids are never reused, and
//! an id's position is found by binary search); paths are unique; every row has unit norm.

pub mod dupes;
pub mod export;
pub mod filters;
pub mod journal;
pub mod query;
pub mod rank;
mod remove;
pub mod store;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use rank::{dot, l2_normalize, query_vector, top_k, NEGATIVE_WEIGHT};
pub use store::{FORMAT_VERSION, MAGIC};

/// One indexed file: its stable id, the path it was indexed under and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Stable for the life of the index (kept across replacement, never reused).
    pub id: u64,
    /// The path as the caller gave it (relative path in a dropped folder, or CLI argument).
    pub path: String,
    pub size_bytes: u64,
    /// Last modification time, milliseconds since the Unix epoch.
    pub modified_ms: i64,
    /// SHA-256 of the file's bytes.
    pub content_hash: [u8; 32],
    /// When the photo was taken, from its EXIF (`model::preprocess::exif::date_taken`, ms
    /// since the epoch); `None` when it has none, or was indexed before this was recorded.
    #[serde(default)]
    pub taken_ms: Option<i64>,
}

impl Entry {
    /// This entry without its id.
    pub fn meta(&self) -> EntryMeta {
        EntryMeta {
            path: self.path.clone(),
            size_bytes: self.size_bytes,
            modified_ms: self.modified_ms,
            content_hash: self.content_hash,
            taken_ms: self.taken_ms,
        }
    }
}

/// What a caller knows about a file before it has an id: an [`Entry`] without `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryMeta {
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub content_hash: [u8; 32],
    #[serde(default)]
    pub taken_ms: Option<i64>,
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub id: u64,
    /// Position of the entry in insertion order (index into [`EmbeddingIndex::entries`]).
    pub index: usize,
    /// Cosine similarity with the query, in `[-1, 1]`.
    pub score: f32,
}

/// A combined query; see [`rank::query_vector`] for how it becomes one vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// What to look for (text or image embeddings). At least one is required.
    pub positive: Vec<Vec<f32>>,
    /// What to look away from.
    pub negative: Vec<Vec<f32>>,
    /// Entry ids never to return.
    pub exclude: Vec<u64>,
}

/// Everything that can go wrong in this module. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    #[error(
        "the embedding has {got_dim} values, but this index holds {expected_dim}-value embeddings"
    )]
    DimMismatch { expected_dim: usize, got_dim: usize },
    #[error("the embedding's value at position {position} is not a finite number")]
    NonFinite { position: usize },
    #[error("the embedding is all zeros (or its parts cancel out), so it has no direction")]
    ZeroVector,
    #[error("the query is blank: it needs at least one positive embedding")]
    EmptyQuery,
    #[error("no indexed entry has id {id}")]
    UnknownId { id: u64 },
    #[error(
        "the path is {len_bytes} bytes long; an index stores paths of at most {max_bytes} bytes"
    )]
    PathTooLong { len_bytes: usize, max_bytes: u64 },
    #[error("the index has used up its ids (next id {next_id})")]
    IdsExhausted { next_id: u64 },
    #[error(
        "the index file is {len_bytes} bytes, too short to be a clipseek index \
         (at least {min_bytes} bytes)"
    )]
    Truncated { len_bytes: usize, min_bytes: usize },
    #[error("not a clipseek index: the file does not start with the clipseek index signature")]
    BadMagic,
    #[error(
        "the index file has format version {found}, but this clipseek reads version \
         {supported}; rebuild the index"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error(
        "the index file is damaged or incomplete (its SHA-256 checksum does not match); \
         rebuild the index"
    )]
    ChecksumMismatch {
        stored_sha256: [u8; 32],
        computed_sha256: [u8; 32],
    },
    #[error(
        "this index was made with another model (`{index_model}`, not `{expected_model}`); \
         embeddings of different models cannot be compared, so the index must be rebuilt"
    )]
    ModelMismatch {
        index_model: String,
        expected_model: String,
    },
    #[error("the index file's header is malformed: {reason}")]
    MalformedHeader { reason: String },
    #[error("entry {position} of the index file is malformed: {reason}")]
    MalformedEntry { position: usize, reason: String },
    #[error(
        "the index file claims {count} entries of dimension {dim} (at least \
         {min_bytes_per_entry} bytes each), but only {available_bytes} bytes follow its header"
    )]
    CountExceedsData {
        count: u64,
        dim: usize,
        min_bytes_per_entry: usize,
        available_bytes: usize,
    },
    #[error(
        "the index file's embedding matrix is {found_bytes} bytes, but {count} entries of \
         dimension {dim} need {expected_bytes} bytes"
    )]
    MatrixSizeMismatch {
        count: usize,
        dim: usize,
        expected_bytes: usize,
        found_bytes: usize,
    },
}

/// Entries plus their embedding matrix; see the module docs for the invariants.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingIndex {
    model_id: String,
    dim: usize,
    entries: Vec<Entry>,
    /// `entries.len() x dim`, row-major, rows L2-normalised.
    matrix: Vec<f32>,
    next_id: u64,
    /// Path -> id (ids, unlike positions, do not shift when an entry is removed).
    id_by_path: HashMap<String, u64>,
    /// Content hash -> ids with that hash, ascending (a photo may be present twice).
    ids_by_hash: HashMap<[u8; 32], Vec<u64>>,
}

impl EmbeddingIndex {
    /// An empty index for embeddings of `model_id` with `dim` values each.
    pub fn new(model_id: impl Into<String>, dim: usize) -> Self {
        Self {
            model_id: model_id.into(),
            dim,
            entries: Vec::new(),
            matrix: Vec::new(),
            next_id: 0,
            id_by_path: HashMap::new(),
            ids_by_hash: HashMap::new(),
        }
    }

    /// Builds an index from parts read back from storage, checking every invariant.
    /// Rows must already be unit-length (within 1e-3); they are not renormalised.
    pub(crate) fn from_parts(
        model_id: String,
        dim: usize,
        entries: Vec<Entry>,
        matrix: Vec<f32>,
        next_id: u64,
    ) -> Result<Self, IndexError> {
        let expected_values = entries.len().checked_mul(dim);
        if expected_values != Some(matrix.len()) || (dim == 0 && !entries.is_empty()) {
            let found_bytes = matrix.len().saturating_mul(4);
            return Err(IndexError::MatrixSizeMismatch {
                count: entries.len(),
                dim,
                expected_bytes: expected_values.map_or(usize::MAX, |v| v.saturating_mul(4)),
                found_bytes,
            });
        }
        let mut index = Self::new(model_id, dim);
        index.next_id = next_id;
        let mut previous_id: Option<u64> = None;
        for (position, (entry, row)) in entries
            .iter()
            .zip(matrix.chunks_exact(dim.max(1)))
            .enumerate()
        {
            let malformed = |reason: String| IndexError::MalformedEntry { position, reason };
            if previous_id.is_some_and(|p| entry.id <= p) {
                return Err(malformed(format!(
                    "id {} does not increase on the entry before it",
                    entry.id
                )));
            }
            if entry.id >= next_id {
                return Err(malformed(format!(
                    "id {} is not below the index's next id {next_id}",
                    entry.id
                )));
            }
            if index.id_by_path.contains_key(&entry.path) {
                return Err(malformed(format!("path {:?} appears twice", entry.path)));
            }
            if let Some(offset) = row.iter().position(|v| !v.is_finite()) {
                return Err(malformed(format!(
                    "embedding value {offset} is not a finite number"
                )));
            }
            let norm_sq: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            if (norm_sq - 1.0).abs() > 1e-3 {
                return Err(malformed(format!(
                    "embedding is not unit-length (squared norm {norm_sq})"
                )));
            }
            previous_id = Some(entry.id);
            index.id_by_path.insert(entry.path.clone(), entry.id);
            index
                .ids_by_hash
                .entry(entry.content_hash)
                .or_default()
                .push(entry.id);
        }
        index.entries = entries;
        index.matrix = matrix;
        Ok(index)
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Values per embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id the next new entry will get (ids are never reused, even after `clear`).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// All entries, in insertion order (`Match::index` points into this).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The whole `len() x dim()` row-major matrix of unit-length embeddings.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    pub fn entry(&self, id: u64) -> Option<&Entry> {
        self.entries.get(self.position_of(id)?)
    }

    pub fn entry_by_path(&self, path: &str) -> Option<&Entry> {
        self.entry(*self.id_by_path.get(path)?)
    }

    /// The stored (L2-normalised) embedding of entry `id`.
    pub fn embedding(&self, id: u64) -> Option<&[f32]> {
        self.row(self.position_of(id)?)
    }

    /// Adds an entry, or replaces the entry with the same path in place (keeping its id and
    /// position). The embedding must have `dim()` finite values, not all zero; it is stored
    /// L2-normalised. Nothing changes when an error is returned. Returns the entry's id.
    pub fn upsert(&mut self, meta: EntryMeta, embedding: &[f32]) -> Result<u64, IndexError> {
        if embedding.len() != self.dim {
            return Err(IndexError::DimMismatch {
                expected_dim: self.dim,
                got_dim: embedding.len(),
            });
        }
        if u32::try_from(meta.path.len()).is_err() {
            return Err(IndexError::PathTooLong {
                len_bytes: meta.path.len(),
                max_bytes: u64::from(u32::MAX),
            });
        }
        let mut row = embedding.to_vec();
        l2_normalize(&mut row)?;

        let existing = self
            .id_by_path
            .get(&meta.path)
            .and_then(|&id| Some((id, self.position_of(id)?)));
        if let Some((id, position)) = existing {
            let dim = self.dim;
            let (Some(entry), Some(stored)) = (
                self.entries.get_mut(position),
                self.matrix.get_mut(position * dim..(position + 1) * dim),
            ) else {
                // Unreachable while the invariants hold; an error rather than a panic.
                return Err(IndexError::UnknownId { id });
            };
            stored.copy_from_slice(&row);
            let old_hash = entry.content_hash;
            *entry = Entry {
                id,
                path: meta.path,
                size_bytes: meta.size_bytes,
                modified_ms: meta.modified_ms,
                content_hash: meta.content_hash,
                taken_ms: meta.taken_ms,
            };
            if old_hash != meta.content_hash {
                self.forget_hash(&old_hash, id);
                self.remember_hash(meta.content_hash, id);
            }
            return Ok(id);
        }

        let id = self.next_id;
        let next_id = id
            .checked_add(1)
            .ok_or(IndexError::IdsExhausted { next_id: id })?;
        self.next_id = next_id;
        self.id_by_path.insert(meta.path.clone(), id);
        self.remember_hash(meta.content_hash, id);
        self.entries.push(Entry {
            id,
            path: meta.path,
            size_bytes: meta.size_bytes,
            modified_ms: meta.modified_ms,
            content_hash: meta.content_hash,
            taken_ms: meta.taken_ms,
        });
        self.matrix.extend_from_slice(&row);
        Ok(id)
    }

    /// Removes entry `id`; the others keep their order and ids. False if there is none.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(position) = self.position_of(id) else {
            return false;
        };
        let start = position * self.dim;
        let end = start + self.dim;
        if end > self.matrix.len() {
            return false;
        }
        self.matrix.drain(start..end);
        let entry = self.entries.remove(position);
        self.id_by_path.remove(&entry.path);
        self.forget_hash(&entry.content_hash, id);
        true
    }

    /// Removes the entry indexed under `path`. False if there is none.
    pub fn remove_path(&mut self, path: &str) -> bool {
        match self.id_by_path.get(path) {
            Some(&id) => self.remove(id),
            None => false,
        }
    }

    /// Removes every entry; keeps the model, the dimension and `next_id` (ids stay unique).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.matrix.clear();
        self.id_by_path.clear();
        self.ids_by_hash.clear();
    }

    /// The id of the entry at `path` if it was indexed with this size and modification
    /// time, i.e. the file need not be encoded again.
    pub fn unchanged(&self, path: &str, size_bytes: u64, modified_ms: i64) -> Option<u64> {
        self.entry_by_path(path)
            .filter(|e| e.size_bytes == size_bytes && e.modified_ms == modified_ms)
            .map(|e| e.id)
    }

    /// The earliest entry whose file had this content hash (a renamed or copied file can
    /// reuse its embedding).
    pub fn find_by_hash(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.entry(*self.ids_by_hash.get(hash)?.first()?)
    }

    /// The `k` entries most similar (cosine) to `query`, best first. The query is
    /// normalised here; it must have `dim()` finite values, not all zero.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Match>, IndexError> {
        if query.len() != self.dim {
            return Err(IndexError::DimMismatch {
                expected_dim: self.dim,
                got_dim: query.len(),
            });
        }
        let mut q = query.to_vec();
        l2_normalize(&mut q)?;
        Ok(self.rank(&q, k, &[]))
    }

    /// The `k` best entries for a combined query ([`rank::query_vector`]), minus its
    /// `exclude` list, best first.
    pub fn search_query(&self, query: &Query, k: usize) -> Result<Vec<Match>, IndexError> {
        let q = query_vector(query, self.dim)?;
        Ok(self.rank(&q, k, &query.exclude))
    }

    /// The `k` entries most similar to entry `id`'s image, best first, excluding itself.
    pub fn similar(&self, id: u64, k: usize) -> Result<Vec<Match>, IndexError> {
        let row = self.embedding(id).ok_or(IndexError::UnknownId { id })?;
        Ok(self.rank(row, k, &[id]))
    }

    /// The index as versioned, checksummed bytes ([`store`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        store::encode(self)
    }

    /// Reads bytes written by [`Self::to_bytes`]. With `expected_model_id`, an index made
    /// with another model is refused ([`IndexError::ModelMismatch`]).
    pub fn from_bytes(bytes: &[u8], expected_model_id: Option<&str>) -> Result<Self, IndexError> {
        store::decode(bytes, expected_model_id)
    }

    /// Scores every row against the unit-length `q` and keeps the best `k`.
    fn rank(&self, q: &[f32], k: usize, exclude: &[u64]) -> Vec<Match> {
        if k == 0 || self.dim == 0 {
            return Vec::new();
        }
        let mut excluded = exclude.to_vec();
        excluded.sort_unstable();
        let candidates = self
            .matrix
            .chunks_exact(self.dim)
            .zip(&self.entries)
            .enumerate()
            .filter(|(_, (_, entry))| excluded.binary_search(&entry.id).is_err())
            .map(|(index, (row, entry))| Match {
                id: entry.id,
                index,
                score: dot(q, row),
            });
        top_k(candidates, k)
    }

    fn position_of(&self, id: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    fn row(&self, position: usize) -> Option<&[f32]> {
        let start = position.checked_mul(self.dim)?;
        self.matrix.get(start..start.checked_add(self.dim)?)
    }

    fn remember_hash(&mut self, hash: [u8; 32], id: u64) {
        let ids = self.ids_by_hash.entry(hash).or_default();
        if let Err(at) = ids.binary_search(&id) {
            ids.insert(at, id);
        }
    }

    fn forget_hash(&mut self, hash: &[u8; 32], id: u64) {
        if let Some(ids) = self.ids_by_hash.get_mut(hash) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.ids_by_hash.remove(hash);
            }
        }
    }
}

/// Helpers shared by the tests of this module and its children.
#[cfg(test)]
pub(crate) mod test_support {
    /// xorshift64*: a tiny deterministic generator, so tests need no dependency.
    pub struct XorShift(u64);

    impl XorShift {
        pub fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in `[-1, 1)`.
        pub fn next_f32(&mut self) -> f32 {
            let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
            unit * 2.0 - 1.0
        }

        /// Uniform in `0..n` (`n > 0`).
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        pub fn vector(&mut self, dim: usize) -> Vec<f32> {
            (0..dim).map(|_| self.next_f32()).collect()
        }
    }

    pub fn meta(path: &str) -> super::EntryMeta {
        super::EntryMeta {
            path: path.to_string(),
            size_bytes: path.len() as u64,
            modified_ms: 1_700_000_000_000,
            content_hash: hash_of(path),
            taken_ms: None,
        }
    }

    pub fn hash_of(text: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).into()
    }

    /// A one-hot vector of length `dim` (0 <= `hot` < `dim`).
    pub fn one_hot(dim: usize, hot: usize) -> Vec<f32> {
        (0..dim).map(|i| if i == hot { 1.0 } else { 0.0 }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{hash_of, meta, one_hot, XorShift};
    use super::*;

    type TestResult = Result<(), IndexError>;

    fn paths(index: &EmbeddingIndex) -> Vec<&str> {
        index.entries().iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn new_index_is_empty() {
        let index = EmbeddingIndex::new("m", 4);
        assert_eq!(index.model_id(), "m");
        assert_eq!(index.dim(), 4);
        assert_eq!(index.len(), 0);
        assert!(index.is_empty());
        assert!(index.entries().is_empty());
    }

    #[test]
    fn upsert_normalises_and_assigns_increasing_ids() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let a = index.upsert(meta("a.jpg"), &[3.0, 4.0])?;
        let b = index.upsert(meta("b.jpg"), &[0.0, -2.0])?;
        assert!(b > a);
        assert_eq!(index.embedding(a), Some(&[0.6f32, 0.8][..]));
        assert_eq!(index.embedding(b), Some(&[0.0f32, -1.0][..]));
        assert_eq!(index.entry(b).map(|e| e.path.as_str()), Some("b.jpg"));
        assert_eq!(index.entry_by_path("a.jpg").map(|e| e.id), Some(a));
        assert_eq!(index.entry(99), None);
        assert_eq!(index.embedding(99), None);
        Ok(())
    }

    #[test]
    fn upsert_same_path_replaces_in_place_keeping_id_and_position() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 3);
        let a = index.upsert(meta("a"), &[1.0, 0.0, 0.0])?;
        let b = index.upsert(meta("b"), &[0.0, 1.0, 0.0])?;
        let c = index.upsert(meta("c"), &[0.0, 0.0, 1.0])?;
        let new_meta = EntryMeta {
            path: "b".to_string(),
            size_bytes: 77,
            modified_ms: -5,
            content_hash: hash_of("b, edited"),
            taken_ms: None,
        };
        let again = index.upsert(new_meta.clone(), &[2.0, 0.0, 0.0])?;
        assert_eq!(again, b);
        assert_eq!(index.len(), 3);
        assert_eq!(paths(&index), ["a", "b", "c"]);
        assert_eq!(
            index.entries().iter().map(|e| e.id).collect::<Vec<_>>(),
            [a, b, c]
        );
        let entry = index.entry(b).cloned();
        assert_eq!(
            entry,
            Some(Entry {
                id: b,
                path: new_meta.path,
                size_bytes: 77,
                modified_ms: -5,
                content_hash: new_meta.content_hash,
                taken_ms: None,
            })
        );
        assert_eq!(index.embedding(b), Some(&[1.0f32, 0.0, 0.0][..]));
        assert_eq!(index.embedding(c), Some(&[0.0f32, 0.0, 1.0][..]));
        // The hash lookup follows the new content.
        assert_eq!(index.find_by_hash(&hash_of("b")), None);
        assert_eq!(
            index.find_by_hash(&hash_of("b, edited")).map(|e| e.id),
            Some(b)
        );
        // The next new entry still gets a fresh id.
        let d = index.upsert(meta("d"), &[1.0, 1.0, 1.0])?;
        assert!(d > c);
        Ok(())
    }

    #[test]
    fn upsert_rejects_bad_embeddings_without_changing_anything() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 3);
        index.upsert(meta("a"), &[1.0, 2.0, 3.0])?;
        let before = index.clone();
        assert_eq!(
            index.upsert(meta("b"), &[1.0, 2.0]),
            Err(IndexError::DimMismatch {
                expected_dim: 3,
                got_dim: 2
            })
        );
        assert_eq!(
            index.upsert(meta("a"), &[1.0, f32::NAN, 0.0]),
            Err(IndexError::NonFinite { position: 1 })
        );
        assert_eq!(
            index.upsert(meta("b"), &[0.0, 0.0, f32::INFINITY]),
            Err(IndexError::NonFinite { position: 2 })
        );
        assert_eq!(
            index.upsert(meta("a"), &[0.0, 0.0, 0.0]),
            Err(IndexError::ZeroVector)
        );
        assert_eq!(index, before);
        Ok(())
    }

    #[test]
    fn upsert_normalises_extreme_but_finite_values() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let big = index.upsert(meta("big"), &[f32::MAX, f32::MAX])?;
        let tiny = index.upsert(meta("tiny"), &[f32::MIN_POSITIVE / 8.0, 0.0])?;
        let half_sqrt2 = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(index.embedding(big), Some(&[half_sqrt2, half_sqrt2][..]));
        assert_eq!(index.embedding(tiny), Some(&[1.0f32, 0.0][..]));
        Ok(())
    }

    #[test]
    fn remove_keeps_the_order_and_ids_of_the_others() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let a = index.upsert(meta("a"), &[1.0, 0.0])?;
        let b = index.upsert(meta("b"), &[1.0, 1.0])?;
        let c = index.upsert(meta("c"), &[1.0, 2.0])?;
        let d = index.upsert(meta("d"), &[1.0, 3.0])?;
        let e = index.upsert(meta("e"), &[1.0, 4.0])?;
        assert!(index.remove(c));
        assert!(!index.remove(c));
        assert!(index.remove_path("a"));
        assert!(!index.remove_path("a"));
        assert!(!index.remove(12345));
        assert_eq!(paths(&index), ["b", "d", "e"]);
        assert_eq!(index.entry(a), None);
        assert_eq!(index.entry_by_path("c"), None);
        for (id, i) in [(b, 1.0f32), (d, 3.0), (e, 4.0)] {
            let expected = {
                let mut v = vec![1.0, i];
                l2_normalize(&mut v)?;
                v
            };
            assert_eq!(index.embedding(id), Some(&expected[..]));
        }
        assert_eq!(index.matrix().len(), 3 * 2);
        // Re-adding a removed path makes a new entry at the end with a new id.
        let a2 = index.upsert(meta("a"), &[1.0, 0.0])?;
        assert!(a2 > e);
        assert_eq!(paths(&index), ["b", "d", "e", "a"]);
        Ok(())
    }

    #[test]
    fn clear_empties_but_never_reuses_ids() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let a = index.upsert(meta("a"), &[1.0, 0.0])?;
        index.clear();
        assert!(index.is_empty());
        assert!(index.matrix().is_empty());
        assert_eq!(index.entry_by_path("a"), None);
        assert_eq!(index.find_by_hash(&hash_of("a")), None);
        let again = index.upsert(meta("a"), &[1.0, 0.0])?;
        assert!(again > a);
        Ok(())
    }

    #[test]
    fn unchanged_needs_same_path_size_and_mtime() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let m = meta("photos/cat.jpg");
        let id = index.upsert(m.clone(), &[1.0, 0.0])?;
        assert_eq!(
            index.unchanged(&m.path, m.size_bytes, m.modified_ms),
            Some(id)
        );
        assert_eq!(
            index.unchanged(&m.path, m.size_bytes + 1, m.modified_ms),
            None
        );
        assert_eq!(
            index.unchanged(&m.path, m.size_bytes, m.modified_ms + 1),
            None
        );
        assert_eq!(
            index.unchanged("photos/dog.jpg", m.size_bytes, m.modified_ms),
            None
        );
        Ok(())
    }

    #[test]
    fn find_by_hash_returns_the_earliest_holder() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let shared = hash_of("same bytes");
        let with_hash = |path: &str| EntryMeta {
            content_hash: shared,
            ..meta(path)
        };
        index.upsert(meta("other"), &[0.0, 1.0])?;
        let first = index.upsert(with_hash("x/first.jpg"), &[1.0, 0.0])?;
        let second = index.upsert(with_hash("y/second.jpg"), &[1.0, 0.0])?;
        assert_eq!(index.find_by_hash(&shared).map(|e| e.id), Some(first));
        assert!(index.remove(first));
        assert_eq!(index.find_by_hash(&shared).map(|e| e.id), Some(second));
        assert!(index.remove_path("y/second.jpg"));
        assert_eq!(index.find_by_hash(&shared), None);
        assert_eq!(index.find_by_hash(&[0u8; 32]), None);
        Ok(())
    }

    #[test]
    fn search_ranks_by_cosine_and_normalises_the_query() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 3);
        let x = index.upsert(meta("x"), &[1.0, 0.0, 0.0])?;
        let xy = index.upsert(meta("xy"), &[1.0, 1.0, 0.0])?;
        let z = index.upsert(meta("z"), &[0.0, 0.0, 1.0])?;
        let found = index.search(&[10.0, 0.0, 0.0], 10)?;
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [x, xy, z]);
        assert_eq!(found.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1, 2]);
        let scores: Vec<f32> = found.iter().map(|m| m.score).collect();
        assert!((scores[0] - 1.0).abs() < 1e-6);
        assert!((scores[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert!(scores[2].abs() < 1e-6);
        assert_eq!(index.search(&[1.0, 0.0, 0.0], 1)?.len(), 1);
        assert!(index.search(&[1.0, 0.0, 0.0], 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn search_rejects_bad_queries() {
        let index = EmbeddingIndex::new("m", 3);
        assert_eq!(
            index.search(&[1.0], 5),
            Err(IndexError::DimMismatch {
                expected_dim: 3,
                got_dim: 1
            })
        );
        assert_eq!(index.search(&[0.0; 3], 5), Err(IndexError::ZeroVector));
        assert_eq!(
            index.search(&[f32::NAN, 1.0, 0.0], 5),
            Err(IndexError::NonFinite { position: 0 })
        );
        assert_eq!(index.search(&[1.0, 0.0, 0.0], 5), Ok(Vec::new()));
        assert_eq!(
            index.search_query(&Query::default(), 5),
            Err(IndexError::EmptyQuery)
        );
    }

    #[test]
    fn search_on_random_data_matches_a_full_sort() -> TestResult {
        let mut rng = XorShift::new(7);
        let dim = 24;
        let mut index = EmbeddingIndex::new("m", dim);
        for i in 0..300 {
            index.upsert(meta(&format!("{i}.jpg")), &rng.vector(dim))?;
        }
        let query = rng.vector(dim);
        let mut q = query.clone();
        l2_normalize(&mut q)?;
        let mut expected: Vec<Match> = index
            .entries()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                Some(Match {
                    id: e.id,
                    index: i,
                    score: dot(&q, index.embedding(e.id)?),
                })
            })
            .collect();
        expected.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.index.cmp(&b.index))
        });
        for k in [0, 1, 10, 300, 1000] {
            let found = index.search(&query, k)?;
            assert_eq!(found, expected[..k.min(300)]);
            assert!(found.iter().all(|m| m.score.is_finite()));
        }
        Ok(())
    }

    #[test]
    fn equal_scores_rank_in_insertion_order() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let mut ids = Vec::new();
        for i in 0..20 {
            // Every other entry is identical: equal scores must keep insertion order.
            let v = if i % 2 == 0 { [1.0, 0.0] } else { [0.0, 1.0] };
            ids.push(index.upsert(meta(&format!("{i}")), &v)?);
        }
        let found = index.search(&[1.0, 0.0], 5)?;
        assert_eq!(
            found.iter().map(|m| m.index).collect::<Vec<_>>(),
            [0, 2, 4, 6, 8]
        );
        // Replacing keeps the position, so the tie order is unchanged.
        index.upsert(meta("0"), &[1.0, 0.0])?;
        let again = index.search(&[1.0, 0.0], 5)?;
        assert_eq!(again, found);
        Ok(())
    }

    #[test]
    fn negatives_push_matching_items_down() -> TestResult {
        let dim = 4;
        let mut index = EmbeddingIndex::new("m", dim);
        // "dog on beach" shares the positive direction but also the negative one.
        let dog_beach = index.upsert(meta("dog_beach"), &[1.0, 1.0, 0.0, 0.0])?;
        let dog_park = index.upsert(meta("dog_park"), &[1.0, 0.0, 1.2, 0.0])?;
        let beach = index.upsert(meta("beach"), &[0.0, 1.0, 0.0, 0.0])?;
        let dog = one_hot(dim, 0);
        let beach_dir = one_hot(dim, 1);
        let plain = index.search_query(
            &Query {
                positive: vec![dog.clone()],
                ..Query::default()
            },
            3,
        )?;
        let with_negative = index.search_query(
            &Query {
                positive: vec![dog],
                negative: vec![beach_dir],
                exclude: Vec::new(),
            },
            3,
        )?;
        let rank_of = |found: &[Match], id| found.iter().position(|m| m.id == id);
        // Plain: dog_beach 0.71, dog_park 0.64, beach 0. With "not beach":
        // q = normalise(e0 - 0.5 e1): dog_park 0.57, dog_beach 0.32, beach -0.45.
        assert_eq!(rank_of(&plain, dog_beach), Some(0));
        assert_eq!(rank_of(&plain, dog_park), Some(1));
        assert_eq!(rank_of(&with_negative, dog_park), Some(0));
        assert_eq!(rank_of(&with_negative, dog_beach), Some(1));
        assert_eq!(rank_of(&with_negative, beach), Some(2));
        let score_of = |found: &[Match], id| found.iter().find(|m| m.id == id).map(|m| m.score);
        assert!(score_of(&with_negative, beach) < score_of(&plain, beach));
        Ok(())
    }

    #[test]
    fn exclude_removes_entries_from_results() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 2);
        let a = index.upsert(meta("a"), &[1.0, 0.0])?;
        let b = index.upsert(meta("b"), &[1.0, 0.1])?;
        let c = index.upsert(meta("c"), &[0.0, 1.0])?;
        let found = index.search_query(
            &Query {
                positive: vec![vec![1.0, 0.0]],
                negative: Vec::new(),
                exclude: vec![a, 999],
            },
            10,
        )?;
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [b, c]);
        Ok(())
    }

    #[test]
    fn similar_uses_the_image_as_query_and_excludes_itself() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 3);
        let a = index.upsert(meta("a"), &[1.0, 0.0, 0.0])?;
        let b = index.upsert(meta("b"), &[0.0, 1.0, 0.0])?;
        let a_near = index.upsert(meta("a_near"), &[0.9, 0.1, 0.0])?;
        let a_copy = index.upsert(meta("a_copy"), &[1.0, 0.0, 0.0])?;
        let found = index.similar(a, 10)?;
        assert_eq!(
            found.iter().map(|m| m.id).collect::<Vec<_>>(),
            [a_copy, a_near, b]
        );
        assert!((found[0].score - 1.0).abs() < 1e-6);
        assert_eq!(index.similar(a, 1)?.len(), 1);
        assert_eq!(
            index.similar(404, 3),
            Err(IndexError::UnknownId { id: 404 })
        );
        Ok(())
    }

    #[test]
    fn zero_dim_index_never_panics() {
        let mut index = EmbeddingIndex::new("m", 0);
        assert_eq!(index.upsert(meta("a"), &[]), Err(IndexError::ZeroVector));
        assert_eq!(index.search(&[], 3), Err(IndexError::ZeroVector));
        assert!(index.is_empty());
    }

    #[test]
    fn errors_read_as_sentences() {
        let message = IndexError::ModelMismatch {
            index_model: "openai/clip-vit-base-patch32".into(),
            expected_model: "openai/clip-vit-large-patch14".into(),
        }
        .to_string();
        assert!(message.contains("another model"));
        assert!(message.contains("must be rebuilt"));
        assert!(message.contains("openai/clip-vit-base-patch32"));
        assert!(IndexError::BadMagic
            .to_string()
            .contains("not a clipseek index"));
    }
}
