//! Where the page keeps its photos between visits: the [`PhotoStore`] trait (one record per
//! indexed photo with its embedding, one thumbnail per photo, the files the app refused,
//! the folder claims of each tab and the index's generation) and [`MemoryPhotoStore`], its
//! in-memory implementation for native tests.
//!
//! The browser's implementation is `web::library::Library` (IndexedDB); both pass one
//! contract suite ([`super::photo_contract`]). A store decides nothing about what to index
//! (that is `page::library` and `ingest`); it keeps two promises of its own, checked inside
//! the transaction that writes: a save made for an older generation of the index (a
//! "Clear index" happened since, maybe in another tab) stores nothing, and a save into a
//! folder another tab claimed ([`Claim`]) stores nothing. A batch is all or nothing; a
//! failed write is an error, never silence. Reference: `model_cache::store` (the same
//! shape for the model's chunks), DESIGN.md "The page: two tabs".

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::library::root_of;
use super::refused::{RefusedFile, RefusedKey};

/// One stored photo.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoRecord {
    /// The stored path (`FOLDER/relative/name.jpg`, or a loose file's name): the key.
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub content_hash: [u8; 32],
    /// When the photo was taken, from its EXIF (ms since the epoch); `None` when it has
    /// none, or was stored before the date was recorded (such records load as they are).
    pub taken_ms: Option<i64>,
    pub model_id: String,
    /// Insertion order: an entry keeps its number when it is replaced.
    pub seq: f64,
    pub embedding: Vec<f32>,
    /// Decoded by the browser, not PIL-exact (`page::browser_decode`).
    pub browser_decoded: bool,
}

impl PhotoRecord {
    /// What the index keeps of this record (all but the model, sequence and embedding).
    pub fn meta(&self) -> crate::index::EntryMeta {
        crate::index::EntryMeta {
            path: self.path.clone(),
            size_bytes: self.size_bytes,
            modified_ms: self.modified_ms,
            content_hash: self.content_hash,
            taken_ms: self.taken_ms,
        }
    }
}

/// Where a photo's thumbnail comes from when it is saved; `B` is the store's blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Thumb<B> {
    /// A new JPEG.
    Jpeg(B),
    /// Copy the thumbnail of another stored photo (same content, another path).
    CopyOf(String),
    /// No thumbnail (an old one at this path is removed).
    None,
}

/// A tab's claim on a new folder's name (or a new loose file's name): `name` is the stored
/// root (`DCIM (2)`), `owner` says which placement of which tab made it
/// (`page::tabs::TabId::owner`). Two tabs never both get one name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    pub name: String,
    pub owner: String,
}

/// What a save must find in the store to go ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveGuard {
    /// The generation of the index the photos belong to ([`Loaded::generation`], or what
    /// [`PhotoStore::clear`] returned).
    pub generation: u64,
    /// Names this batch writes into under a claim of this tab: each must still be claimed
    /// by that owner. Photos under names not listed here (folders found again) need none.
    pub claims: Vec<Claim>,
}

/// Everything [`PhotoStore::load_all`] reads at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Every readable record, by `seq` ascending.
    pub records: Vec<PhotoRecord>,
    /// The keys of records that could not be read (listed, never a panic).
    pub unreadable: Vec<String>,
    /// The index's generation: 0 for a new store, one more after each clear.
    pub generation: u64,
}

/// Why the photo storage failed. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoStoreError {
    #[error("The browser's storage for this site is full.")]
    Full,
    #[error("The browser refused to {op}: {message}")]
    Failed { op: &'static str, message: String },
    #[error("The stored record of {path} could not be read back: {message}")]
    Unreadable { path: String, message: String },
    #[error("The index was cleared (in this tab or another) after these photos were indexed, so they were not saved.")]
    Cleared { expected: u64, stored: u64 },
    #[error("Another tab has just stored a folder called {name}, so these photos were not saved under that name.")]
    FolderTaken { name: String },
}

/// The name a stored path is claimed under: its folder, or a loose file's own name.
pub fn claim_name(path: &str) -> &str {
    root_of(path).unwrap_or(path)
}

/// Does the stored path `path` lie under the claim name `name`?
pub fn under_name(path: &str, name: &str) -> bool {
    path == name
        || path
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The page's photo storage.
///
/// Not `Send`: the browser runs it on one thread, so its futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait PhotoStore: Clone {
    /// How the store holds a thumbnail (a `Blob` in the browser).
    type Blob: Clone;

    /// Wraps JPEG bytes as a blob of this store (not stored yet).
    fn blob(&self, bytes: &[u8]) -> Result<Self::Blob, PhotoStoreError>;
    /// The bytes of a blob.
    async fn blob_bytes(&self, blob: &Self::Blob) -> Result<Vec<u8>, PhotoStoreError>;
    /// Every stored photo in insertion order, the unreadable keys and the generation.
    async fn load_all(&self) -> Result<Loaded, PhotoStoreError>;
    /// One photo's record; an unreadable record is [`PhotoStoreError::Unreadable`].
    async fn get(&self, path: &str) -> Result<Option<PhotoRecord>, PhotoStoreError>;
    /// Saves photos and their thumbnails in one transaction, all or nothing, if the store
    /// is still at `guard.generation` and holds every claim of `guard`.
    async fn save(
        &self,
        photos: &[(PhotoRecord, Thumb<Self::Blob>)],
        guard: &SaveGuard,
    ) -> Result<(), PhotoStoreError>;
    /// The thumbnails of `paths`, in order (`None` where there is none).
    async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Self::Blob>>, PhotoStoreError>;
    /// Removes photos (records and thumbnails) in one transaction; unknown paths are fine.
    async fn remove(&self, paths: &[String]) -> Result<(), PhotoStoreError>;
    /// Removes every photo, thumbnail, claim and refused file, and moves the generation
    /// on; returns the new generation.
    async fn clear(&self) -> Result<u64, PhotoStoreError>;
    /// The index's generation now.
    async fn generation(&self) -> Result<u64, PhotoStoreError>;
    /// Claims a name for a new folder: true when it was free (no claim and no stored photo
    /// under it) or is already this owner's; false when another owner or stored photos
    /// hold it. Atomic across tabs.
    async fn claim(&self, claim: &Claim) -> Result<bool, PhotoStoreError>;
    /// Every remembered refused file, by key.
    async fn refused(&self) -> Result<Vec<RefusedFile>, PhotoStoreError>;
    /// Remembers refused files (a file put again replaces its reason).
    async fn put_refused(&self, files: &[RefusedFile]) -> Result<(), PhotoStoreError>;
}

/// A way to plant damage in a store, for the contract suite: both implementations have
/// one, the page never calls it.
#[allow(async_fn_in_trait)]
pub trait PlantUnreadable {
    /// Writes a record at `path` that is not a photo record.
    async fn plant_unreadable(&self, path: &str) -> Result<(), PhotoStoreError>;
}

/// A stored record, or something that is not one (planted by the tests).
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Photo(PhotoRecord),
    Garbage,
}

#[derive(Debug, Clone, Default)]
struct Backing {
    photos: BTreeMap<String, Slot>,
    thumbs: BTreeMap<String, Rc<[u8]>>,
    claims: BTreeMap<String, String>,
    refused: BTreeMap<RefusedKey, String>,
    generation: u64,
    /// Records left to write before the store answers [`PhotoStoreError::Full`].
    writes_left: Option<u64>,
}

/// A [`PhotoStore`] in memory. Clones share their backing, as two tabs share one
/// IndexedDB database.
#[derive(Debug, Clone, Default)]
pub struct MemoryPhotoStore {
    backing: Rc<RefCell<Backing>>,
}

impl MemoryPhotoStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// After `records` more records written, a save fails with [`PhotoStoreError::Full`]
    /// (`None` lifts the limit): the browser's quota, for tests.
    pub fn limit_writes(&self, records: Option<u64>) {
        self.backing.borrow_mut().writes_left = records;
    }

    fn check_guard(b: &Backing, guard: &SaveGuard) -> Result<(), PhotoStoreError> {
        if b.generation != guard.generation {
            return Err(PhotoStoreError::Cleared {
                expected: guard.generation,
                stored: b.generation,
            });
        }
        Ok(())
    }

    fn check_claim(b: &Backing, guard: &SaveGuard, path: &str) -> Result<(), PhotoStoreError> {
        let name = claim_name(path);
        for c in guard.claims.iter().filter(|c| c.name == name) {
            if b.claims.get(name) != Some(&c.owner) {
                return Err(PhotoStoreError::FolderTaken {
                    name: name.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl PhotoStore for MemoryPhotoStore {
    type Blob = Rc<[u8]>;

    fn blob(&self, bytes: &[u8]) -> Result<Self::Blob, PhotoStoreError> {
        Ok(Rc::from(bytes))
    }

    async fn blob_bytes(&self, blob: &Self::Blob) -> Result<Vec<u8>, PhotoStoreError> {
        Ok(blob.to_vec())
    }

    async fn load_all(&self) -> Result<Loaded, PhotoStoreError> {
        let b = self.backing.borrow();
        let mut loaded = Loaded {
            generation: b.generation,
            ..Loaded::default()
        };
        for (path, slot) in &b.photos {
            match slot {
                Slot::Photo(r) => loaded.records.push(r.clone()),
                Slot::Garbage => loaded.unreadable.push(path.clone()),
            }
        }
        loaded.records.sort_by(|a, b| a.seq.total_cmp(&b.seq));
        Ok(loaded)
    }

    async fn get(&self, path: &str) -> Result<Option<PhotoRecord>, PhotoStoreError> {
        match self.backing.borrow().photos.get(path) {
            None => Ok(None),
            Some(Slot::Photo(r)) => Ok(Some(r.clone())),
            Some(Slot::Garbage) => Err(PhotoStoreError::Unreadable {
                path: path.to_owned(),
                message: "it is not a photo record".into(),
            }),
        }
    }

    async fn save(
        &self,
        photos: &[(PhotoRecord, Thumb<Self::Blob>)],
        guard: &SaveGuard,
    ) -> Result<(), PhotoStoreError> {
        let mut b = self.backing.borrow_mut();
        Self::check_guard(&b, guard)?;
        // Written into a copy, kept only when every photo went in: all or nothing.
        let mut next = b.clone();
        for (photo, thumb) in photos {
            Self::check_claim(&next, guard, &photo.path)?;
            match next.writes_left {
                Some(0) => return Err(PhotoStoreError::Full),
                Some(n) => next.writes_left = Some(n - 1),
                None => {}
            }
            let blob = match thumb {
                Thumb::Jpeg(blob) => Some(blob.clone()),
                Thumb::CopyOf(source) => next.thumbs.get(source).cloned(),
                Thumb::None => None,
            };
            match blob {
                Some(blob) => next.thumbs.insert(photo.path.clone(), blob),
                None => next.thumbs.remove(&photo.path),
            };
            next.photos
                .insert(photo.path.clone(), Slot::Photo(photo.clone()));
        }
        *b = next;
        Ok(())
    }

    async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Self::Blob>>, PhotoStoreError> {
        let b = self.backing.borrow();
        Ok(paths.iter().map(|p| b.thumbs.get(p).cloned()).collect())
    }

    async fn remove(&self, paths: &[String]) -> Result<(), PhotoStoreError> {
        let mut b = self.backing.borrow_mut();
        for path in paths {
            b.photos.remove(path);
            b.thumbs.remove(path);
        }
        Ok(())
    }

    async fn clear(&self) -> Result<u64, PhotoStoreError> {
        let mut b = self.backing.borrow_mut();
        b.photos.clear();
        b.thumbs.clear();
        b.claims.clear();
        b.refused.clear();
        b.generation += 1;
        Ok(b.generation)
    }

    async fn generation(&self) -> Result<u64, PhotoStoreError> {
        Ok(self.backing.borrow().generation)
    }

    async fn claim(&self, claim: &Claim) -> Result<bool, PhotoStoreError> {
        let mut b = self.backing.borrow_mut();
        if let Some(owner) = b.claims.get(&claim.name) {
            return Ok(*owner == claim.owner);
        }
        if b.photos.keys().any(|p| under_name(p, &claim.name)) {
            return Ok(false);
        }
        b.claims.insert(claim.name.clone(), claim.owner.clone());
        Ok(true)
    }

    async fn refused(&self) -> Result<Vec<RefusedFile>, PhotoStoreError> {
        Ok(self
            .backing
            .borrow()
            .refused
            .iter()
            .map(|(key, reason)| RefusedFile {
                key: key.clone(),
                reason: reason.clone(),
            })
            .collect())
    }

    async fn put_refused(&self, files: &[RefusedFile]) -> Result<(), PhotoStoreError> {
        let mut b = self.backing.borrow_mut();
        for f in files {
            b.refused.insert(f.key.clone(), f.reason.clone());
        }
        Ok(())
    }
}

impl PlantUnreadable for MemoryPhotoStore {
    async fn plant_unreadable(&self, path: &str) -> Result<(), PhotoStoreError> {
        self.backing
            .borrow_mut()
            .photos
            .insert(path.to_owned(), Slot::Garbage);
        Ok(())
    }
}

#[cfg(test)]
#[path = "photo_store_tests.rs"]
mod tests;
