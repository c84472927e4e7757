//! Files the app refused, remembered: a file the workers could not read (a TIFF or camera
//! RAW, a damaged JPEG) is listed as skipped once, and a later drop of the very same file —
//! same dropped path, size and modified date — is listed again with its reason *without*
//! being read whole and hashed again. An edited file (another size or date) is tried again.
//!
//! Only answers about the file's own bytes are remembered ([`Refused::record`] is for the
//! worker's "could not read this photo" reply and for a head that names a format the app
//! cannot decode); a worker crash, a failed send or a file the browser could not open
//! (permission, vanished) may go away and is never remembered. The key is the path as the
//! browser gives it (`DCIM/sub/x.tif`), not the stored alias, so it does not depend on
//! where folder identity places the drop. It must not read files or know the browser:
//! the shell filters a drop with [`Refused::split`] before placing it, and persists what
//! [`Refused::record`] returns through `PhotoStore::put_refused`. Reference: issue 8,
//! item 5, "Cost proportional to the change".

use std::collections::HashMap;

use super::library::{root_of, DropFile};

/// A refused file's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefusedKey {
    /// The dropped folder's name (empty for a loose file).
    pub folder: String,
    /// The path inside that folder (a loose file's name).
    pub rel: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
}

impl RefusedKey {
    /// The key of a file dropped as `path` (`folder/rel` or a bare name).
    pub fn new(path: &str, size_bytes: u64, modified_ms: i64) -> Self {
        let (folder, rel) = match root_of(path) {
            Some(root) => (root, path.get(root.len() + 1..).unwrap_or_default()),
            None => ("", path),
        };
        Self {
            folder: folder.to_owned(),
            rel: rel.to_owned(),
            size_bytes,
            modified_ms,
        }
    }

    /// The path the browser gave (`folder/rel`, or the bare name).
    pub fn path(&self) -> String {
        if self.folder.is_empty() {
            self.rel.clone()
        } else {
            format!("{}/{}", self.folder, self.rel)
        }
    }
}

/// One remembered refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedFile {
    pub key: RefusedKey,
    /// The sentence listed beside it.
    pub reason: String,
}

/// Every remembered refusal.
#[derive(Debug, Clone, Default)]
pub struct Refused {
    by_key: HashMap<RefusedKey, String>,
}

impl Refused {
    /// From what the store remembers.
    pub fn new(stored: impl IntoIterator<Item = RefusedFile>) -> Self {
        Self {
            by_key: stored.into_iter().map(|f| (f.key, f.reason)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Why this very file was refused before, if it was.
    pub fn reason(&self, key: &RefusedKey) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    /// Remembers a refusal; returns the record to persist, or `None` when the store already
    /// holds this file with this reason.
    pub fn record(&mut self, key: RefusedKey, reason: String) -> Option<RefusedFile> {
        if self.by_key.get(&key) == Some(&reason) {
            return None;
        }
        self.by_key.insert(key.clone(), reason.clone());
        Some(RefusedFile { key, reason })
    }

    /// Forgets everything ("Clear index" clears the store's list too).
    pub fn clear(&mut self) {
        self.by_key.clear();
    }

    /// Splits a drop: the files to place and read, and the refused ones (dropped path and
    /// reason, in the drop's order) to list as skipped without reading them.
    pub fn split<T>(&self, files: Vec<DropFile<T>>) -> (Vec<DropFile<T>>, Vec<(String, String)>) {
        let mut keep = Vec::with_capacity(files.len());
        let mut skipped = Vec::new();
        for f in files {
            let key = RefusedKey::new(&f.path, f.size_bytes, f.modified_ms);
            match self.reason(&key) {
                Some(reason) => skipped.push((f.path, reason.to_owned())),
                None => keep.push(f),
            }
        }
        (keep, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, t: i64) -> DropFile<u32> {
        DropFile {
            path: path.to_owned(),
            folder: path.contains('/').then_some(0),
            size_bytes: size,
            modified_ms: t,
            handle: 7,
        }
    }

    const WHY: &str = "TIFF files cannot be read by clipseek.";

    #[test]
    fn a_key_splits_folder_and_relative_path() {
        let k = RefusedKey::new("DCIM/sub/x.tif", 3, 4);
        assert_eq!((k.folder.as_str(), k.rel.as_str()), ("DCIM", "sub/x.tif"));
        assert_eq!(k.path(), "DCIM/sub/x.tif");
        let loose = RefusedKey::new("x.tif", 3, 4);
        assert_eq!((loose.folder.as_str(), loose.rel.as_str()), ("", "x.tif"));
        assert_eq!(loose.path(), "x.tif");
    }

    #[test]
    fn a_refused_file_dropped_again_is_listed_not_read() {
        let mut r = Refused::default();
        let first = r.record(RefusedKey::new("DCIM/a.tif", 100, 9), WHY.into());
        assert!(first.is_some());
        let (keep, skipped) = r.split(vec![file("DCIM/a.tif", 100, 9), file("DCIM/b.jpg", 5, 9)]);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep.first().map(|f| f.path.as_str()), Some("DCIM/b.jpg"));
        assert_eq!(skipped, vec![("DCIM/a.tif".to_owned(), WHY.to_owned())]);
    }

    #[test]
    fn an_edited_file_is_tried_again() {
        let mut r = Refused::default();
        assert!(r
            .record(RefusedKey::new("DCIM/a.tif", 100, 9), WHY.into())
            .is_some());
        let (keep, skipped) = r.split(vec![
            file("DCIM/a.tif", 101, 9),
            file("DCIM/a.tif", 100, 10),
        ]);
        assert_eq!(keep.len(), 2);
        assert!(skipped.is_empty());
    }

    #[test]
    fn the_same_name_in_another_folder_is_another_file() {
        let mut r = Refused::default();
        assert!(r
            .record(RefusedKey::new("DCIM/a.tif", 100, 9), WHY.into())
            .is_some());
        let (keep, skipped) = r.split(vec![file("Camera/a.tif", 100, 9), file("a.tif", 100, 9)]);
        assert_eq!(keep.len(), 2);
        assert!(skipped.is_empty());
    }

    #[test]
    fn recording_the_same_refusal_twice_persists_once() {
        let mut r = Refused::default();
        let k = RefusedKey::new("DCIM/a.tif", 100, 9);
        assert!(r.record(k.clone(), WHY.into()).is_some());
        assert!(r.record(k.clone(), WHY.into()).is_none());
        // A new reason replaces the old one and is persisted.
        assert!(r.record(k.clone(), "Damaged.".into()).is_some());
        assert_eq!(r.reason(&k), Some("Damaged."));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn refusals_come_back_from_the_store_and_clear() {
        let stored = vec![RefusedFile {
            key: RefusedKey::new("x.nef", 1, 2),
            reason: WHY.into(),
        }];
        let mut r = Refused::new(stored);
        assert_eq!(r.reason(&RefusedKey::new("x.nef", 1, 2)), Some(WHY));
        r.clear();
        assert!(r.is_empty());
    }
}
