//! Which results are selected, for acting on several at once (copy their paths, download
//! the originals, remove them from the index): a click on a result's check toggles it, a
//! shift-click adds the run from the last one clicked, Space toggles the focused result,
//! Ctrl+A (⌘A) selects every shown result, Esc clears; "select all but the best" of the
//! duplicates sets it. Photos that leave the index leave the selection.
//!
//! It must not touch the DOM; `web::actions` reads the keys and clicks and draws the marks.
//! Reference: the WAI-ARIA Authoring Practices' multi-select listbox conventions (Space
//! toggles, Shift extends from the anchor, Ctrl+A selects all, Esc clears).

use std::collections::BTreeSet;

/// What a key does to the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Toggle the focused result.
    Toggle,
    All,
    Clear,
}

/// The action of a key (`key` as `KeyboardEvent.key` names it) with Ctrl or ⌘ held or not.
pub fn key_action(key: &str, ctrl_or_meta: bool) -> Option<KeyAction> {
    match key {
        " " | "Spacebar" if !ctrl_or_meta => Some(KeyAction::Toggle),
        "a" | "A" if ctrl_or_meta => Some(KeyAction::All),
        "Escape" => Some(KeyAction::Clear),
        _ => None,
    }
}

/// The selected entry ids and where the last click was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    picked: BTreeSet<u64>,
    anchor: Option<u64>,
}

impl Selection {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.picked.contains(&id)
    }

    pub fn len(&self) -> usize {
        self.picked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.picked.is_empty()
    }

    /// The selected ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.picked.iter().copied().collect()
    }

    /// A click (or Space) on `id`: selected unless it was, and the anchor of the next
    /// shift-click.
    pub fn toggle(&mut self, id: u64) {
        if !self.picked.remove(&id) {
            self.picked.insert(id);
        }
        self.anchor = Some(id);
    }

    /// A shift-click on `id` with the results shown in `shown` order: every result from
    /// the anchor to `id` (either way) is selected. Without an anchor among the shown
    /// results it is a plain toggle.
    pub fn extend(&mut self, shown: &[u64], id: u64) {
        let at = shown.iter().position(|&s| s == id);
        let from = self.anchor.and_then(|a| shown.iter().position(|&s| s == a));
        match (from, at) {
            (Some(from), Some(at)) => {
                let (lo, hi) = (from.min(at), from.max(at));
                self.picked
                    .extend(shown.get(lo..=hi).unwrap_or_default().iter().copied());
                self.anchor = Some(id);
            }
            _ => self.toggle(id),
        }
    }

    /// Ctrl+A: every shown result (added to what is selected).
    pub fn all(&mut self, shown: &[u64]) {
        self.picked.extend(shown.iter().copied());
    }

    pub fn clear(&mut self) {
        self.picked.clear();
        self.anchor = None;
    }

    /// Exactly `ids` (e.g. the duplicates to remove).
    pub fn set(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.picked = ids.into_iter().collect();
        self.anchor = None;
    }

    /// Keeps only the ids `exists` says are still in the index.
    pub fn retain(&mut self, exists: impl Fn(u64) -> bool) {
        self.picked.retain(|&id| exists(id));
        if self.anchor.is_some_and(|a| !exists(a)) {
            self.anchor = None;
        }
    }

    /// The selection bar's sentence.
    pub fn summary(&self) -> String {
        match self.picked.len() {
            0 => String::new(),
            1 => "1 photo selected".to_owned(),
            n => format!("{n} photos selected"),
        }
    }
}

/// The question asked before removing `n` photos from the index.
pub fn remove_question(n: usize) -> String {
    let photos = if n == 1 {
        "1 photo".to_owned()
    } else {
        format!("{n} photos")
    };
    format!(
        "Remove {photos} from the index? The files themselves stay where they are; \
         dropping their folder again indexes them again."
    )
}

/// What "Download selected" says of the photos it could not download (their originals are
/// not held by this page since a reload).
pub fn not_downloaded_line(missing: usize, downloaded: usize) -> String {
    let d = if downloaded == 1 { "" } else { "s" };
    match missing {
        0 => format!("Downloading {downloaded} photo{d}."),
        m => format!(
            "Downloading {downloaded} photo{d}; {m} {} not held by this page since it was \
             reloaded: drop {} folder again to download {}.",
            if m == 1 { "is" } else { "are" },
            if m == 1 { "its" } else { "their" },
            if m == 1 { "it" } else { "them" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_toggle_and_shift_clicks_extend_from_the_anchor() {
        let shown = [10, 11, 12, 13, 14];
        let mut s = Selection::new();
        s.toggle(11);
        s.extend(&shown, 13);
        assert_eq!(s.ids(), [11, 12, 13]);
        // Backwards from the new anchor (13).
        s.extend(&shown, 10);
        assert_eq!(s.ids(), [10, 11, 12, 13]);
        s.toggle(12);
        assert_eq!(s.ids(), [10, 11, 13]);
        assert_eq!(s.summary(), "3 photos selected");
    }

    #[test]
    fn a_shift_click_without_a_shown_anchor_toggles() {
        let mut s = Selection::new();
        s.extend(&[1, 2, 3], 2);
        assert_eq!(s.ids(), [2]);
        s.toggle(9); // anchor 9 is not shown
        s.extend(&[1, 2, 3], 3);
        assert_eq!(s.ids(), [2, 3, 9]);
    }

    #[test]
    fn all_clear_set_and_retain() {
        let mut s = Selection::new();
        s.toggle(5);
        s.all(&[1, 2]);
        assert_eq!(s.ids(), [1, 2, 5]);
        s.retain(|id| id != 5);
        assert_eq!(s.ids(), [1, 2]);
        // The anchor went with 5: a shift-click toggles.
        s.extend(&[1, 2, 3], 3);
        assert_eq!(s.ids(), [1, 2, 3]);
        s.set([7, 8]);
        assert_eq!(s.ids(), [7, 8]);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.summary(), "");
    }

    #[test]
    fn keys() {
        assert_eq!(key_action(" ", false), Some(KeyAction::Toggle));
        assert_eq!(key_action("a", true), Some(KeyAction::All));
        assert_eq!(key_action("A", true), Some(KeyAction::All));
        assert_eq!(key_action("a", false), None);
        assert_eq!(key_action(" ", true), None);
        assert_eq!(key_action("Escape", false), Some(KeyAction::Clear));
        assert_eq!(key_action("Enter", false), None);
    }

    #[test]
    fn sentences() {
        assert!(remove_question(1).starts_with("Remove 1 photo from the index?"));
        assert!(remove_question(3).starts_with("Remove 3 photos from"));
        assert_eq!(not_downloaded_line(0, 2), "Downloading 2 photos.");
        assert_eq!(
            not_downloaded_line(1, 1),
            "Downloading 1 photo; 1 is not held by this page since it was reloaded: drop its \
             folder again to download it."
        );
    }
}
