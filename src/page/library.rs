//! Folder identity: where the files of a drop go in the index, so that no drop ever
//! overwrites or removes a photo it has no right to.
//!
//! The index keys photos by a path `root/relative/name.jpg`. The browser tells us, for a
//! dropped or picked folder, only its name and, per file, the relative path, the size and
//! the modified date (content hashes come later, from the workers, once a file is read).
//! The rule ([`Known::place_folder`]): a dropped folder *is* a stored folder of the same name
//! (`DCIM`, or one of its aliases `DCIM (2)`, `DCIM (3)`, …) when more of its files are found
//! there with the same relative path, size and date than are found there with the same path
//! but another size or date; of those, the one with the largest lead wins. Anything else is
//! a new folder, stored under the first free alias, so that two phones' `DCIM` folders with
//! the same file names are two folders. Loose files ([`Known::place_loose`]) are never
//! replaced either: a file whose name is stored with another size or date is stored as
//! `name (2).jpg`. Photos of a re-dropped folder that are no longer in it are only
//! *offered* for forgetting ([`ForgetOffer`]); the default keeps them. A folder that stays
//! connected and is walked again ([`Known::place_reconnected`]) is known to be the same
//! folder, so edits cannot outvote it: it is the stored folder of its family holding the
//! most of its relative paths, whatever their sizes and dates.
//!
//! It must not read files or know about the browser or the workers: `page::run` feeds it
//! names, sizes and dates. Reference: DESIGN.md "Folder identity"; issue 8, item 5.

use std::collections::{BTreeSet, HashMap, HashSet};

/// What the browser says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Path inside its folder (`sub/name.jpg`), or the bare name of a loose file.
    pub rel: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
}

impl FileFacts {
    pub fn new(rel: impl Into<String>, size_bytes: u64, modified_ms: i64) -> Self {
        Self {
            rel: rel.into(),
            size_bytes,
            modified_ms,
        }
    }
}

/// Where a dropped folder was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPlace {
    /// The stored folder name its files go under (`DCIM` or `DCIM (2)`).
    pub root: String,
    /// It is a folder stored before (a re-drop), not a new one.
    pub same: bool,
    /// Files found in the stored folder with the same path, size and date.
    pub matched: usize,
    /// Files found there with the same path but another size or date (edited photos).
    pub changed: usize,
}

/// The photos stored so far (and those placed by this drop), by path.
#[derive(Debug, Default, Clone)]
pub struct Known {
    files: HashMap<String, (u64, i64)>,
    roots: HashSet<String>,
}

/// The root of a stored path: its first component, if it has more than one.
pub fn root_of(path: &str) -> Option<&str> {
    path.split_once('/').map(|(root, _)| root)
}

/// `name (k)` for k ≥ 2: the alias number, when `candidate` is an alias of `name`.
fn alias_number(candidate: &str, name: &str) -> Option<u32> {
    let rest = candidate.strip_prefix(name)?.strip_prefix(" (")?;
    let k = rest.strip_suffix(')')?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) || k.starts_with('0') {
        return None;
    }
    k.parse::<u32>().ok().filter(|k| *k >= 2)
}

/// `name (k)`, with `(k)` before the extension of a file name (`IMG (2).jpg`).
fn numbered(name: &str, k: u32, keep_extension: bool) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if keep_extension && !stem.is_empty() => format!("{stem} ({k}).{ext}"),
        _ => format!("{name} ({k})"),
    }
}

impl Known {
    /// From the stored photos: (path, size, date) each.
    pub fn new<'a>(stored: impl IntoIterator<Item = (&'a str, u64, i64)>) -> Self {
        let mut known = Self::default();
        for (path, size, date) in stored {
            known.add(path.to_owned(), size, date);
        }
        known
    }

    fn add(&mut self, path: String, size: u64, date: i64) {
        if let Some(root) = root_of(&path) {
            self.roots.insert(root.to_owned());
        }
        self.files.insert(path, (size, date));
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Marks the folder name `root` as used although this tab holds none of its photos
    /// (another tab claimed it first, `page::tabs`): a new folder is never placed there.
    pub fn reserve_root(&mut self, root: &str) {
        self.roots.insert(root.to_owned());
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Does `path` hold a file with this size and date?
    pub fn holds(&self, path: &str, size: u64, date: i64) -> bool {
        self.files.get(path) == Some(&(size, date))
    }

    /// Stored folders that a dropped folder called `name` may be: `name` and its aliases,
    /// in alias order.
    pub fn family(&self, name: &str) -> Vec<String> {
        let mut out: Vec<(u32, &String)> = self
            .roots
            .iter()
            .filter_map(|r| {
                if r == name {
                    Some((1, r))
                } else {
                    alias_number(r, name).map(|k| (k, r))
                }
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// (matched, changed) of `files` against the stored folder `root`.
    pub fn compare(&self, root: &str, files: &[FileFacts]) -> (usize, usize) {
        let mut matched = 0;
        let mut changed = 0;
        for f in files {
            match self.files.get(&format!("{root}/{}", f.rel)) {
                Some(&(s, d)) if s == f.size_bytes && d == f.modified_ms => matched += 1,
                Some(_) => changed += 1,
                None => {}
            }
        }
        (matched, changed)
    }

    /// The first of `name`, `name (2)`, … that no stored folder uses.
    fn free_root(&self, name: &str) -> String {
        if !self.roots.contains(name) {
            return name.to_owned();
        }
        (2..)
            .map(|k| numbered(name, k, false))
            .find(|r| !self.roots.contains(r))
            .unwrap_or_else(|| format!("{name} (new)"))
    }

    /// Places a dropped folder (see the module's rule) and records its files as known, so
    /// that a second folder of the same drop is compared with it too.
    pub fn place_folder(&mut self, name: &str, files: &[FileFacts]) -> FolderPlace {
        let best = self
            .family(name)
            .into_iter()
            .map(|root| {
                let (matched, changed) = self.compare(&root, files);
                (root, matched, changed)
            })
            .filter(|(_, matched, changed)| matched > changed)
            // The largest lead; the first alias of equal ones (max_by_key keeps the last).
            .min_by_key(|(_, matched, changed)| std::cmp::Reverse(matched - changed));
        let place = match best {
            Some((root, matched, changed)) => FolderPlace {
                root,
                same: true,
                matched,
                changed,
            },
            None => FolderPlace {
                root: self.free_root(name),
                same: false,
                matched: 0,
                changed: 0,
            },
        };
        for f in files {
            let path = format!("{}/{}", place.root, f.rel);
            self.add(path, f.size_bytes, f.modified_ms);
        }
        place
    }

    /// Places a folder walked again through the handle it was indexed from (a reconnect):
    /// the stored folder of its family holding the most of its paths (the first alias of
    /// equal ones), even when most of them changed; one holding none of them is placed by
    /// the rule of [`Known::place_folder`].
    pub fn place_reconnected(&mut self, name: &str, files: &[FileFacts]) -> FolderPlace {
        let best = self
            .family(name)
            .into_iter()
            .map(|root| {
                let (matched, changed) = self.compare(&root, files);
                (root, matched, changed)
            })
            .filter(|(_, matched, changed)| matched + changed > 0)
            .min_by_key(|(_, matched, changed)| std::cmp::Reverse(matched + changed));
        let Some((root, matched, changed)) = best else {
            return self.place_folder(name, files);
        };
        for f in files {
            self.add(format!("{root}/{}", f.rel), f.size_bytes, f.modified_ms);
        }
        FolderPlace {
            root,
            same: true,
            matched,
            changed,
        }
    }

    /// The stored path of a loose file: its name when that is free or holds this very file
    /// (same size and date), else the first of `name (2).ext`, `name (3).ext`, … that is.
    pub fn place_loose(&mut self, file: &FileFacts) -> String {
        let fits = |known: &Self, path: &str| match known.files.get(path) {
            None => true,
            Some(&(s, d)) => s == file.size_bytes && d == file.modified_ms,
        };
        let path = std::iter::once(file.rel.clone())
            .chain((2..u32::MAX).map(|k| numbered(&file.rel, k, true)))
            .find(|p| fits(self, p))
            .unwrap_or_else(|| format!("{} (new)", file.rel));
        self.add(path.clone(), file.size_bytes, file.modified_ms);
        path
    }
}

/// One file of a drop, as the browser gives it, carrying the caller's handle (`T`: the
/// browser's `File`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropFile<T> {
    /// `folder/sub/name.jpg`, or the bare name of a loose file.
    pub path: String,
    /// Which of the drop's folders it came in (an index into its roots); `None`: loose.
    pub folder: Option<usize>,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub handle: T,
}

/// A file of a drop with the path it is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<T> {
    pub path: String,
    /// The path the browser gave (`DCIM/sub/x.jpg`), before folder identity placed it: the
    /// key of a refused file (`page::refused::RefusedKey`).
    pub dropped: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub handle: T,
}

/// A whole drop placed: its files with their stored paths (in the drop's order) and where
/// each of its folders went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedDrop<T> {
    pub files: Vec<Placed<T>>,
    pub folders: Vec<FolderPlace>,
}

/// How a drop's folders are told apart from stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Dropped or picked: [`Known::place_folder`].
    Dropped,
    /// Walked again through a remembered handle: [`Known::place_reconnected`].
    Reconnected,
}

/// Places one drop or pick (`roots`: the names of its folders) against `known`.
pub fn place_drop<T>(
    known: &mut Known,
    roots: &[String],
    files: Vec<DropFile<T>>,
    origin: Origin,
) -> PlacedDrop<T> {
    let mut groups: Vec<Vec<FileFacts>> = vec![Vec::new(); roots.len()];
    let rel_of = |f: &DropFile<T>, name: &str| {
        f.path
            .strip_prefix(name)
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or(&f.path)
            .to_owned()
    };
    for f in &files {
        if let (Some(i), Some(name)) = (f.folder, f.folder.and_then(|i| roots.get(i))) {
            if let Some(group) = groups.get_mut(i) {
                group.push(FileFacts::new(rel_of(f, name), f.size_bytes, f.modified_ms));
            }
        }
    }
    let folders: Vec<FolderPlace> = roots
        .iter()
        .zip(&groups)
        .map(|(name, group)| match origin {
            Origin::Dropped => known.place_folder(name, group),
            Origin::Reconnected => known.place_reconnected(name, group),
        })
        .collect();
    let files = files
        .into_iter()
        .map(|f| {
            let folder = f
                .folder
                .and_then(|i| Some((folders.get(i)?, roots.get(i)?)));
            let path = match folder {
                Some((place, name)) => format!("{}/{}", place.root, rel_of(&f, name)),
                None => {
                    known.place_loose(&FileFacts::new(f.path.clone(), f.size_bytes, f.modified_ms))
                }
            };
            Placed {
                path,
                dropped: f.path,
                size_bytes: f.size_bytes,
                modified_ms: f.modified_ms,
                handle: f.handle,
            }
        })
        .collect();
    PlacedDrop { files, folders }
}

/// Photos of re-dropped folders that are no longer in them: offered, never removed unasked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetOffer {
    /// Their stored paths.
    pub paths: Vec<String>,
    /// The folders they were in, in name order.
    pub folders: BTreeSet<String>,
}

impl ForgetOffer {
    /// The offer for `paths` (stored paths; their folders are taken from them).
    pub fn new(paths: Vec<String>) -> Option<Self> {
        if paths.is_empty() {
            return None;
        }
        let folders = paths
            .iter()
            .map(|p| root_of(p).unwrap_or("the dropped files").to_owned())
            .collect();
        Some(Self { paths, folders })
    }

    /// The button's words: "Forget 3 photos no longer in DCIM".
    pub fn label(&self) -> String {
        let n = self.paths.len();
        let photos = if n == 1 { "photo" } else { "photos" };
        let folders: Vec<&str> = self.folders.iter().map(String::as_str).collect();
        let place = match folders.as_slice() {
            [] => "the dropped folder".to_owned(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        format!("Forget {n} {photos} no longer in {place}")
    }
}

#[cfg(test)]
#[path = "library_tests.rs"]
mod tests;
