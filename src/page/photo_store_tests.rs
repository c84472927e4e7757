use super::super::photo_contract::{run_all, CASES};
use super::super::testing::block_on;
use super::*;

#[test]
fn the_memory_store_passes_the_contract() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let report = block_on(run_all(&store))?;
    let failed: Vec<String> = report
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failed.is_empty(), "contract failures: {failed:#?}");
    assert_eq!(report.len(), CASES.len());
    Ok(())
}

fn record(path: &str, seq: f64) -> PhotoRecord {
    PhotoRecord {
        path: path.to_owned(),
        size_bytes: 10,
        modified_ms: 5,
        content_hash: [1; 32],
        taken_ms: None,
        model_id: "m".into(),
        seq,
        embedding: vec![1.0, 0.0],
        browser_decoded: false,
    }
}

#[test]
fn a_full_store_saves_nothing_of_the_batch_that_hit_the_quota() -> Result<(), String> {
    let s = MemoryPhotoStore::new();
    s.limit_writes(Some(2));
    let batch: Vec<(PhotoRecord, Thumb<Rc<[u8]>>)> = (0..3)
        .map(|i| (record(&format!("A/{i}.jpg"), f64::from(i)), Thumb::None))
        .collect();
    let guard = SaveGuard::default();
    assert_eq!(
        block_on(s.save(&batch, &guard))?,
        Err(PhotoStoreError::Full)
    );
    let loaded = block_on(s.load_all())?.map_err(|e| e.to_string())?;
    assert!(loaded.records.is_empty());
    s.limit_writes(None);
    assert!(block_on(s.save(&batch, &guard))?.is_ok());
    let loaded = block_on(s.load_all())?.map_err(|e| e.to_string())?;
    assert_eq!(loaded.records.len(), 3);
    Ok(())
}

#[test]
fn claim_names_are_the_folder_or_the_loose_file() {
    assert_eq!(claim_name("DCIM (2)/a/b.jpg"), "DCIM (2)");
    assert_eq!(claim_name("loose.jpg"), "loose.jpg");
    assert!(under_name("DCIM/x.jpg", "DCIM"));
    assert!(under_name("DCIM", "DCIM"));
    assert!(!under_name("DCIM (2)/x.jpg", "DCIM"));
    assert!(!under_name("DCIMX/x.jpg", "DCIM"));
}

#[test]
fn errors_are_plain_sentences() {
    let e = PhotoStoreError::FolderTaken {
        name: "DCIM (2)".into(),
    };
    assert!(e.to_string().contains("DCIM (2)"));
    let e = PhotoStoreError::Cleared {
        expected: 1,
        stored: 2,
    };
    assert!(e.to_string().starts_with("The index was cleared"));
}

/// A store with one flaw, to show that the contract catches it.
#[derive(Clone)]
struct Flawed {
    inner: MemoryPhotoStore,
    flaw: Flaw,
}

#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    /// Saves whatever the generation.
    IgnoresGeneration,
    /// Writes photo by photo, keeping those before a failure.
    NotAtomic,
    /// Removes nothing.
    RemovesNothing,
    /// Claims every name for everyone.
    ClaimsAnything,
}

impl PhotoStore for Flawed {
    type Blob = Rc<[u8]>;

    fn blob(&self, bytes: &[u8]) -> Result<Self::Blob, PhotoStoreError> {
        self.inner.blob(bytes)
    }
    async fn blob_bytes(&self, blob: &Self::Blob) -> Result<Vec<u8>, PhotoStoreError> {
        self.inner.blob_bytes(blob).await
    }
    async fn load_all(&self) -> Result<Loaded, PhotoStoreError> {
        self.inner.load_all().await
    }
    async fn get(&self, path: &str) -> Result<Option<PhotoRecord>, PhotoStoreError> {
        self.inner.get(path).await
    }
    async fn save(
        &self,
        photos: &[(PhotoRecord, Thumb<Self::Blob>)],
        guard: &SaveGuard,
    ) -> Result<(), PhotoStoreError> {
        match self.flaw {
            Flaw::IgnoresGeneration => {
                let guard = SaveGuard {
                    generation: self.inner.generation().await?,
                    claims: guard.claims.clone(),
                };
                self.inner.save(photos, &guard).await
            }
            Flaw::NotAtomic => {
                for photo in photos {
                    self.inner.save(std::slice::from_ref(photo), guard).await?;
                }
                Ok(())
            }
            _ => self.inner.save(photos, guard).await,
        }
    }
    async fn thumbs(&self, paths: &[String]) -> Result<Vec<Option<Self::Blob>>, PhotoStoreError> {
        self.inner.thumbs(paths).await
    }
    async fn remove(&self, paths: &[String]) -> Result<(), PhotoStoreError> {
        if self.flaw == Flaw::RemovesNothing {
            return Ok(());
        }
        self.inner.remove(paths).await
    }
    async fn clear(&self) -> Result<u64, PhotoStoreError> {
        self.inner.clear().await
    }
    async fn generation(&self) -> Result<u64, PhotoStoreError> {
        self.inner.generation().await
    }
    async fn claim(&self, claim: &Claim) -> Result<bool, PhotoStoreError> {
        if self.flaw == Flaw::ClaimsAnything {
            return Ok(true);
        }
        self.inner.claim(claim).await
    }
    async fn refused(&self) -> Result<Vec<RefusedFile>, PhotoStoreError> {
        self.inner.refused().await
    }
    async fn put_refused(&self, files: &[RefusedFile]) -> Result<(), PhotoStoreError> {
        self.inner.put_refused(files).await
    }
}

impl PlantUnreadable for Flawed {
    async fn plant_unreadable(&self, path: &str) -> Result<(), PhotoStoreError> {
        self.inner.plant_unreadable(path).await
    }
}

#[test]
fn the_contract_catches_each_flaw_in_the_case_about_it() -> Result<(), String> {
    let cases = [
        (
            Flaw::IgnoresGeneration,
            "a save made before a clear stores nothing",
        ),
        (
            Flaw::NotAtomic,
            "a batch is all or nothing: a refused claim midway stores none of it",
        ),
        (
            Flaw::RemovesNothing,
            "removing many photos removes exactly them and their thumbnails",
        ),
        (
            Flaw::ClaimsAnything,
            "a name is claimed by one owner; stored photos hold their name",
        ),
    ];
    for (flaw, case) in cases {
        let store = Flawed {
            inner: MemoryPhotoStore::new(),
            flaw,
        };
        let report = block_on(run_all(&store))?;
        let failed: Vec<&str> = report
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(name, _)| *name)
            .collect();
        assert!(
            failed.contains(&case),
            "{case:?} passed; failures: {failed:?}"
        );
    }
    Ok(())
}
