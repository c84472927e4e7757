//! The page's sentences about an indexing run: the line `#index-text` shows when a run
//! ends ("Indexed 12 new photos, 3 unchanged in 1.5 s."). Kept here so every wording is
//! tested natively.
//!
//! It must not count anything itself or know about the browser: `page::run` hands it the
//! run's counts. Reference: issue 8, item 1 ("status sentences").

/// What a finished (or cancelled) run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Cancelled: `done` of `total` photos were dealt with.
    pub cancelled: bool,
    pub done: usize,
    pub total: usize,
    /// Encoded and added (or replaced).
    pub added: usize,
    /// Reused from a photo with the same content (renamed or copied).
    pub reused: usize,
    /// Already indexed with the same size and date.
    pub unchanged: usize,
    /// Could not be read (listed as skipped).
    pub failed: usize,
    /// No longer in a re-dropped folder, kept (offered for forgetting).
    pub kept: usize,
    pub seconds: f64,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl RunSummary {
    /// The sentence for `#index-text`.
    pub fn sentence(&self) -> String {
        let mut out = if self.cancelled {
            format!("Cancelled after {} of {} photos", self.done, self.total)
        } else {
            format!("Indexed {}", plural(self.added, "new photo", "new photos"))
        };
        if self.reused > 0 {
            out.push_str(&format!(", {} reused (renamed or copied)", self.reused));
        }
        if self.unchanged > 0 {
            out.push_str(&format!(", {} unchanged", self.unchanged));
        }
        if self.failed > 0 {
            out.push_str(&format!(", {} could not be read", self.failed));
        }
        if self.kept > 0 {
            out.push_str(&format!(", {} no longer in the folder (kept)", self.kept));
        }
        out.push_str(&format!(" in {:.1} s.", self.seconds));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_run_counts_new_photos() {
        let s = RunSummary {
            added: 12,
            seconds: 1.54,
            ..RunSummary::default()
        };
        assert_eq!(s.sentence(), "Indexed 12 new photos in 1.5 s.");
    }

    #[test]
    fn one_photo_is_singular() {
        let s = RunSummary {
            added: 1,
            ..RunSummary::default()
        };
        assert_eq!(s.sentence(), "Indexed 1 new photo in 0.0 s.");
    }

    #[test]
    fn every_count_that_is_not_zero_is_said_in_order() {
        let s = RunSummary {
            added: 2,
            reused: 3,
            unchanged: 4,
            failed: 5,
            kept: 6,
            seconds: 2.0,
            ..RunSummary::default()
        };
        assert_eq!(
            s.sentence(),
            "Indexed 2 new photos, 3 reused (renamed or copied), 4 unchanged, 5 could not be \
             read, 6 no longer in the folder (kept) in 2.0 s."
        );
    }

    #[test]
    fn a_cancelled_run_says_how_far_it_got() {
        let s = RunSummary {
            cancelled: true,
            done: 8,
            total: 40,
            added: 8,
            seconds: 0.26,
            ..RunSummary::default()
        };
        assert_eq!(s.sentence(), "Cancelled after 8 of 40 photos in 0.3 s.");
    }

    #[test]
    fn nothing_new_is_still_a_sentence() {
        let s = RunSummary {
            unchanged: 28,
            seconds: 0.1,
            ..RunSummary::default()
        };
        assert_eq!(s.sentence(), "Indexed 0 new photos, 28 unchanged in 0.1 s.");
    }
}
