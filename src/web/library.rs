//! The photo index kept in IndexedDB, with the interface `web::app` has always called:
//! [`Library`] is a thin wrapper over [`IdbPhotoStore`] (the browser's `PhotoStore`,
//! `super::photo_store`) whose methods answer in [`IdbError`] as before. Its `save` does
//! not check the generation or any claim (that needs the tab's `page::tabs::Tabs`); new
//! code calls [`Library::store`] and the `PhotoStore` methods, whose `save` does.
//!
//! It must not rank, decode or decide what to index (that is `index` and `ingest`), and
//! never loses a write silently: every function returns the storage error. Reference:
//! `EmbeddingIndex::upsert` (the in-memory twin of these records).

use web_sys::Blob;

use super::idb::{Database, IdbError};
pub use super::photo_store::IdbPhotoStore;
pub use crate::page::photo_store::PhotoRecord;
use crate::page::photo_store::{PhotoStore, PhotoStoreError};

/// Where a photo's thumbnail comes from when it is saved (a new JPEG Blob, a copy of
/// another stored photo's, or none).
pub type Thumb = crate::page::photo_store::Thumb<Blob>;

/// The error of the old interface, for a failure of the store.
fn old_error(e: PhotoStoreError) -> IdbError {
    match e {
        PhotoStoreError::Full => IdbError::QuotaExceeded,
        PhotoStoreError::Failed { op, message } => IdbError::Failed {
            op,
            name: "Error".into(),
            message,
        },
        other => IdbError::Failed {
            op: "use the stored index",
            name: "Error".into(),
            message: other.to_string(),
        },
    }
}

/// The stored photo index.
#[derive(Clone)]
pub struct Library {
    store: IdbPhotoStore,
}

impl Library {
    pub fn new(db: Database) -> Self {
        Self {
            store: IdbPhotoStore::new(db),
        }
    }

    /// The `PhotoStore` underneath (generation, claims, refused files, checked saves).
    pub fn store(&self) -> &IdbPhotoStore {
        &self.store
    }

    /// Every stored photo, in insertion order, and how many records were unreadable.
    pub async fn load_all(&self) -> Result<(Vec<PhotoRecord>, usize), IdbError> {
        let loaded = self.store.load_all().await.map_err(old_error)?;
        Ok((loaded.records, loaded.unreadable.len()))
    }

    /// Saves photos and their thumbnails in one transaction (all or nothing), without the
    /// generation and claim checks of `PhotoStore::save`.
    pub async fn save(&self, photos: &[(PhotoRecord, Thumb)]) -> Result<(), IdbError> {
        self.store
            .save_checked(photos, None)
            .await
            .map_err(old_error)
    }

    /// The thumbnails of `paths`, in order (`None` where there is none).
    pub async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Blob>>, IdbError> {
        self.store.thumbs(paths).await.map_err(old_error)
    }

    /// Removes photos (records and thumbnails).
    pub async fn remove(&self, paths: &[String]) -> Result<(), IdbError> {
        self.store.remove(paths).await.map_err(old_error)
    }

    /// Removes every photo (and moves the index's generation on).
    pub async fn clear(&self) -> Result<(), IdbError> {
        self.store.clear().await.map(drop).map_err(old_error)
    }
}
