//! Folders that stay connected (where the browser has the File System Access API): what a
//! walk of a remembered folder found against what the index holds of it, and what the page
//! says and offers.
//!
//! A walk lists every file's relative path, size and modified time (the browser's
//! `getFile()` reads no byte); [`diff`] sorts them into new, changed (another size or date:
//! an edited photo), unchanged (never read again) and gone (in the index, not in the
//! folder). The gone ones are never forgotten here: the run's forget offer (`page::run`,
//! `#forget-button`) asks, as after a re-drop lacking photos. Where the picker is missing,
//! [`offer`] says in one sentence why reconnecting is not offered.
//!
//! It must not name the browser's API or touch storage: `web` walks the handle and stores
//! it. Reference: issue 12 item 4; `ingest::plan` (unchanged by path, size and date).

use std::collections::{BTreeMap, BTreeSet};

/// One file of a walk: its path under the folder (`sub/x.jpg`), size and date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
}

/// What a walk found, by path under the folder, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub new: Vec<String>,
    pub changed: Vec<String>,
    pub gone: Vec<String>,
    pub unchanged: usize,
}

impl Diff {
    /// The paths whose bytes must be read (new and changed), sorted.
    pub fn to_read(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .new
            .iter()
            .chain(&self.changed)
            .map(String::as_str)
            .collect();
        all.sort_unstable();
        all
    }

    /// The sentence after a reconnect of `folder`.
    pub fn line(&self, folder: &str) -> String {
        if self.new.is_empty() && self.changed.is_empty() && self.gone.is_empty() {
            return format!("{folder} is reconnected: nothing changed since the last visit.");
        }
        let s = |n: usize| if n == 1 { "" } else { "s" };
        let mut parts = Vec::new();
        if !self.new.is_empty() {
            parts.push(format!("{} new photo{}", self.new.len(), s(self.new.len())));
        }
        if !self.changed.is_empty() {
            parts.push(format!("{} changed", self.changed.len()));
        }
        if !self.gone.is_empty() {
            parts.push(format!(
                "{} no longer there (kept until you forget them)",
                self.gone.len()
            ));
        }
        format!("{folder} is reconnected: {}.", parts.join(", "))
    }
}

/// Sorts a walk against `indexed`: the index's files under this folder, by path under it,
/// with their size and date.
pub fn diff(indexed: &BTreeMap<String, (u64, i64)>, walked: &[Seen]) -> Diff {
    let mut out = Diff::default();
    let mut seen = BTreeSet::new();
    for file in walked {
        if !seen.insert(file.path.as_str()) {
            continue;
        }
        match indexed.get(&file.path) {
            None => out.new.push(file.path.clone()),
            Some(&(size, date)) if (size, date) == (file.size_bytes, file.modified_ms) => {
                out.unchanged += 1
            }
            Some(_) => out.changed.push(file.path.clone()),
        }
    }
    out.gone = indexed
        .keys()
        .filter(|p| !seen.contains(p.as_str()))
        .cloned()
        .collect();
    out.new.sort_unstable();
    out.changed.sort_unstable();
    out
}

/// What the page offers for connected folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// "Choose folder (stays connected)", and "Reconnect Photos" when one is remembered.
    Connect { remembered: Option<String> },
    /// The folder input and drop only; the sentence says why.
    NotHere(&'static str),
}

/// Why reconnecting is not offered where the browser lacks the directory picker.
pub const NOT_HERE: &str = "This browser cannot keep access to a folder between visits \
    (it has no File System Access API), so drop or choose the folder again to pick up new photos.";

/// The offer, from whether `window.showDirectoryPicker` exists and the remembered folder.
pub fn offer(has_picker: bool, remembered: Option<&str>) -> Offer {
    if has_picker {
        Offer::Connect {
            remembered: remembered.map(str::to_owned),
        }
    } else {
        Offer::NotHere(NOT_HERE)
    }
}

/// The words of the reconnect button.
pub fn reconnect_label(folder: &str) -> String {
    format!("Reconnect {folder}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(path: &str, size: u64, date: i64) -> Seen {
        Seen {
            path: path.to_owned(),
            size_bytes: size,
            modified_ms: date,
        }
    }

    fn indexed(files: &[(&str, u64, i64)]) -> BTreeMap<String, (u64, i64)> {
        files
            .iter()
            .map(|&(p, s, d)| (p.to_owned(), (s, d)))
            .collect()
    }

    #[test]
    fn a_walk_sorts_into_new_changed_unchanged_and_gone() {
        let before = indexed(&[("a.jpg", 10, 1), ("b.jpg", 20, 2), ("sub/c.jpg", 30, 3)]);
        let walk = [
            seen("sub/c.jpg", 30, 3),
            seen("d.avif", 5, 9),
            seen("b.jpg", 21, 2),
            seen("a.jpg", 10, 1),
            // A path listed twice counts once.
            seen("a.jpg", 10, 1),
        ];
        let d = diff(&before, &walk);
        assert_eq!(d.new, vec!["d.avif"]);
        assert_eq!(d.changed, vec!["b.jpg"]);
        assert_eq!(d.unchanged, 2);
        assert!(d.gone.is_empty());
        assert_eq!(d.to_read(), vec!["b.jpg", "d.avif"]);
        // Only the date moved: changed too (an edit that kept the size).
        let d = diff(&before, &[seen("a.jpg", 10, 7)]);
        assert_eq!(d.changed, vec!["a.jpg"]);
        assert_eq!(d.gone, vec!["b.jpg", "sub/c.jpg"]);
    }

    #[test]
    fn the_sentence_says_what_changed_and_that_the_gone_are_kept() {
        let before = indexed(&[("a.jpg", 10, 1), ("b.jpg", 20, 2)]);
        let d = diff(&before, &[seen("a.jpg", 10, 1), seen("b.jpg", 20, 2)]);
        assert_eq!(
            d.line("Photos"),
            "Photos is reconnected: nothing changed since the last visit."
        );
        let d = diff(&before, &[seen("a.jpg", 11, 1), seen("n.jpg", 1, 1)]);
        assert_eq!(
            d.line("Photos"),
            "Photos is reconnected: 1 new photo, 1 changed, 1 no longer there (kept until you forget them)."
        );
        assert!(
            d.to_read().iter().all(|p| *p != "b.jpg"),
            "a gone file is never read"
        );
    }

    #[test]
    fn without_the_picker_the_page_says_why() {
        assert_eq!(offer(false, Some("Photos")), Offer::NotHere(NOT_HERE));
        assert!(NOT_HERE.contains("File System Access API"));
        assert_eq!(
            offer(true, Some("Photos")),
            Offer::Connect {
                remembered: Some("Photos".into())
            }
        );
        assert_eq!(offer(true, None), Offer::Connect { remembered: None });
        assert_eq!(reconnect_label("Photos"), "Reconnect Photos");
    }
}
