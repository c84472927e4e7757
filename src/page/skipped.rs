//! The list of files that could not be indexed, kept with append semantics: each change
//! (a file skipped, its reason changed, a file indexed after all, the list cleared) is one
//! [`SkippedChange`] the view applies to the list it already shows, so a run of 20,000
//! photos costs one DOM node per skipped file, not a rebuild of the whole list after every
//! batch. The list stays in path order (as the page showed it), so an insertion names the
//! entry it goes before.
//!
//! It must not know the DOM: the shell drains [`SkippedList::take_changes`] after each batch
//! and applies them (insert the `li` before the one with `data-path == before`, set a
//! reason, remove one, empty the list). Reference: issue 8, item 5, "Cost proportional to
//! the change".

use std::collections::BTreeMap;

/// One change to the shown list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkippedChange {
    /// A new entry, placed before the entry of path `before` (`None`: at the end).
    Insert {
        path: String,
        reason: String,
        before: Option<String>,
    },
    /// The entry of `path` now gives this reason.
    Reason { path: String, reason: String },
    /// The entry of `path` goes (the file was indexed after all).
    Remove { path: String },
    /// Every entry goes.
    Clear,
}

/// The skipped files (path → reason) and the changes not yet shown.
#[derive(Debug, Clone, Default)]
pub struct SkippedList {
    entries: BTreeMap<String, String>,
    pending: Vec<SkippedChange>,
}

impl SkippedList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry in path order (a full render, e.g. at start-up).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> {
        self.entries.iter()
    }

    pub fn reason(&self, path: &str) -> Option<&str> {
        self.entries.get(path).map(String::as_str)
    }

    /// Lists `path` as skipped for `reason` (or gives its entry the new reason).
    pub fn insert(&mut self, path: String, reason: String) {
        match self.entries.get_mut(&path) {
            Some(old) if *old == reason => {}
            Some(old) => {
                old.clone_from(&reason);
                self.pending.push(SkippedChange::Reason { path, reason });
            }
            None => {
                let before = self
                    .entries
                    .range::<String, _>((
                        std::ops::Bound::Excluded(&path),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .map(|(p, _)| p.clone());
                self.entries.insert(path.clone(), reason.clone());
                self.pending.push(SkippedChange::Insert {
                    path,
                    reason,
                    before,
                });
            }
        }
    }

    /// The file at `path` was indexed after all: its entry goes. False if it had none.
    pub fn remove(&mut self, path: &str) -> bool {
        if self.entries.remove(path).is_none() {
            return false;
        }
        self.pending.push(SkippedChange::Remove {
            path: path.to_owned(),
        });
        true
    }

    /// Empties the list ("Clear index").
    pub fn clear(&mut self) {
        self.entries.clear();
        self.pending.clear();
        self.pending.push(SkippedChange::Clear);
    }

    /// The changes since the last call, in order, for the view to apply.
    pub fn take_changes(&mut self) -> Vec<SkippedChange> {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a view that applies the changes shows: (path, reason) in list order.
    fn apply(shown: &mut Vec<(String, String)>, changes: Vec<SkippedChange>) {
        for c in changes {
            match c {
                SkippedChange::Insert {
                    path,
                    reason,
                    before,
                } => {
                    let at = before
                        .and_then(|b| shown.iter().position(|(p, _)| *p == b))
                        .unwrap_or(shown.len());
                    shown.insert(at, (path, reason));
                }
                SkippedChange::Reason { path, reason } => {
                    for (p, r) in shown.iter_mut() {
                        if *p == path {
                            r.clone_from(&reason);
                        }
                    }
                }
                SkippedChange::Remove { path } => shown.retain(|(p, _)| *p != path),
                SkippedChange::Clear => shown.clear(),
            }
        }
    }

    fn full(list: &SkippedList) -> Vec<(String, String)> {
        list.iter().map(|(p, r)| (p.clone(), r.clone())).collect()
    }

    #[test]
    fn a_batch_yields_only_its_own_entries() {
        let mut list = SkippedList::new();
        list.insert("b.tif".into(), "TIFF".into());
        assert_eq!(list.take_changes().len(), 1);
        list.insert("c.tif".into(), "TIFF".into());
        list.insert("d.tif".into(), "TIFF".into());
        let changes = list.take_changes();
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .all(|c| matches!(c, SkippedChange::Insert { before: None, .. })));
        assert!(list.take_changes().is_empty());
    }

    #[test]
    fn insertions_keep_path_order_by_naming_the_next_entry() {
        let mut list = SkippedList::new();
        list.insert("m.jpg".into(), "x".into());
        list.insert("z.jpg".into(), "x".into());
        list.take_changes();
        list.insert("a.jpg".into(), "y".into());
        assert_eq!(
            list.take_changes(),
            vec![SkippedChange::Insert {
                path: "a.jpg".into(),
                reason: "y".into(),
                before: Some("m.jpg".into()),
            }]
        );
    }

    #[test]
    fn applying_the_changes_equals_a_full_render() {
        let mut list = SkippedList::new();
        let mut shown = Vec::new();
        let mut state = 17u32;
        for round in 0..40 {
            for _ in 0..7 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let path = format!("DCIM/{:03}.jpg", (state >> 8) % 60);
                match (state >> 4) % 4 {
                    0 => {
                        list.remove(&path);
                    }
                    1 => list.insert(path, format!("reason {round}")),
                    _ => list.insert(path, "TIFF".into()),
                }
            }
            if round == 20 {
                list.clear();
            }
            apply(&mut shown, list.take_changes());
            assert_eq!(shown, full(&list), "after round {round}");
        }
        assert!(!list.is_empty());
    }

    #[test]
    fn the_same_reason_again_changes_nothing_and_a_new_one_is_one_change() {
        let mut list = SkippedList::new();
        list.insert("a".into(), "r".into());
        list.take_changes();
        list.insert("a".into(), "r".into());
        assert!(list.take_changes().is_empty());
        list.insert("a".into(), "s".into());
        assert_eq!(
            list.take_changes(),
            vec![SkippedChange::Reason {
                path: "a".into(),
                reason: "s".into()
            }]
        );
        assert_eq!(list.reason("a"), Some("s"));
    }

    #[test]
    fn removing_an_unlisted_path_changes_nothing() {
        let mut list = SkippedList::new();
        assert!(!list.remove("a"));
        assert!(list.take_changes().is_empty());
    }

    #[test]
    fn clear_drops_pending_changes_for_one_clear() {
        let mut list = SkippedList::new();
        list.insert("a".into(), "r".into());
        list.clear();
        assert_eq!(list.take_changes(), vec![SkippedChange::Clear]);
        assert_eq!(list.len(), 0);
    }
}
