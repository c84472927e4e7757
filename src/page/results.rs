//! What the result grid shows for the search box's state (`page::search`): the index ranked
//! for the compound query (`index::query::search_with`, photos dropped on the box resolved
//! from the search state), then the minimum score ("no good match" when nothing passes),
//! the folder and the date range, the order, and the page of `k` — with the sentence above
//! the grid. The folders of the dropped tree that the folder filter offers.
//!
//! It must not touch the DOM or storage; `web::search` draws what [`shown`] returns.
//! Reference: issue 11 items 1, 3 and 4; `index::filters` holds the rules it applies.

use std::collections::BTreeSet;

use super::duplicates::Duplicates;
use super::search::{Filters, Query, Search};
use crate::index::filters::{self, DateRange, Filtered, SortBy};
use crate::index::query::search_with;
use crate::index::{EmbeddingIndex, Match};

/// The grid's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// In the order shown (at most `k`).
    pub matches: Vec<Match>,
    /// Per match, the photos its tile stands for (more than 1 for folded duplicates).
    pub counts: Vec<usize>,
    /// More results pass the filters than are shown.
    pub more: bool,
    /// The sentence above the grid (`#search-text`).
    pub line: String,
    /// A query ran and no result passed the minimum score.
    pub no_good_match: bool,
}

impl Shown {
    fn line(line: String) -> Self {
        Self {
            matches: Vec::new(),
            counts: Vec::new(),
            more: false,
            line,
            no_good_match: false,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The line with no query (`n` photos indexed).
pub fn idle_line(n: usize) -> String {
    if n == 0 {
        return "No photos are indexed yet: drop a folder of photos (or choose one) to start, \
                then describe what you are looking for."
            .to_owned();
    }
    format!(
        "Type to search {n} photo{}, or drop a photo on the search box to find similar ones. \
         Combine words and photos: dog -leash, beach + sunset, 2:golden retriever.",
        plural(n)
    )
}

/// The line for `shown` of `total` results that passed the filters, for `text`.
pub fn results_line(text: &str, shown: usize, total: usize, filters: &Filters) -> String {
    let order = match filters.sort {
        SortBy::Score => "best",
        SortBy::DateNewest => "newest",
        SortBy::DateOldest => "oldest",
    };
    let place = if filters.folder.is_empty() {
        String::new()
    } else {
        format!(" in {}", filters.folder)
    };
    if shown < total {
        format!("The {shown} {order} of {total} photos{place} for \u{201c}{text}\u{201d}.")
    } else {
        format!(
            "All {total} photo{}{place}, {order} first, for \u{201c}{text}\u{201d}.",
            plural(total)
        )
    }
}

/// "No good match": nothing scored `min_score` or more; `best` is how close it came.
pub fn no_good_match_line(text: &str, best: Option<f32>, min_score: f32) -> String {
    match best {
        Some(best) => format!(
            "No good match for \u{201c}{text}\u{201d}: the best score was {best:.4}, below the \
             minimum of {min_score:.2}. Lower the minimum score to see it."
        ),
        None => format!("No good match for \u{201c}{text}\u{201d}."),
    }
}

/// Ranks `index` for `search`'s query and applies its filters; the first `search.k()`.
pub fn shown(search: &Search, index: &EmbeddingIndex) -> Shown {
    shown_with(search, index, None)
}

/// [`shown`], with near-duplicates folded into one tile when the filters say so and
/// `dupes` has found the groups of this index.
pub fn shown_with(search: &Search, index: &EmbeddingIndex, dupes: Option<&Duplicates>) -> Shown {
    let n = index.len();
    let (text, query, texts) = match search.query() {
        Query::Terms { text, query, texts } if n > 0 => (text, query, texts),
        _ => return Shown::line(idle_line(n)),
    };
    let text_of = |t: &str| {
        texts
            .iter()
            .find(|(have, _)| have == t)
            .map(|(_, e)| e.clone())
    };
    let dropped = |name: &str| search.dropped(name).map(<[f32]>::to_vec);
    let ranked = match search_with(index, query, text_of, dropped, n) {
        Ok(r) => r,
        Err(e) => return Shown::line(format!("The search failed: {e}.")),
    };
    let f = search.filters();
    let passed = if f.min_score > 0.0 {
        match filters::min_score(&ranked, f.min_score) {
            Filtered::Matches(m) => m,
            Filtered::NoGoodMatch { best } => {
                let mut none = Shown::line(no_good_match_line(text, best, f.min_score));
                none.no_good_match = true;
                return none;
            }
        }
    } else {
        ranked
    };
    let entry = |m: &Match| index.entries().get(m.index).filter(|e| e.id == m.id);
    let kept = filters::narrow(
        &passed,
        |m| entry(m).map(|e| e.path.clone()),
        |m| entry(m).map_or(0, filters::date_of),
        &f.folder,
        f.range,
        f.sort,
    );
    if kept.is_empty() {
        return Shown::line(format!(
            "No result for \u{201c}{text}\u{201d} is in the chosen folder and dates."
        ));
    }
    let mut tiles = match dupes {
        Some(d) if f.fold => d.fold(index, kept),
        _ => kept.into_iter().map(|m| (m, 1)).collect(),
    };
    let total = tiles.len();
    let k = search.k();
    tiles.truncate(k);
    let (matches, counts): (Vec<Match>, Vec<usize>) = tiles.into_iter().unzip();
    Shown {
        line: results_line(text, matches.len(), total, f),
        more: total > k,
        matches,
        counts,
        no_good_match: false,
    }
}

/// Milliseconds since the Unix epoch of a `YYYY-MM-DD` day's start (UTC), as an
/// `<input type=date>` gives it; `None` for a blank or malformed value.
pub fn day_start_ms(value: &str) -> Option<i64> {
    let mut parts = value.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
        return None;
    }
    Some(crate::index::filters::days_from_civil(year, month, day) * 86_400_000)
}

/// The range of two date inputs: from the first day's start to the second day's end,
/// each side open when blank.
pub fn day_range(from: &str, to: &str) -> DateRange {
    DateRange {
        from_ms: day_start_ms(from),
        to_ms: day_start_ms(to).map(|t| t + 86_400_000 - 1),
    }
}

/// The last part of a stored path (`trip/beach/dog.jpg` -> `dog.jpg`), what a caption shows.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Every folder of the indexed paths (`a`, `a/b` for `a/b/c.jpg`), sorted.
pub fn folders(index: &EmbeddingIndex) -> Vec<String> {
    let mut out = BTreeSet::new();
    for entry in index.entries() {
        let path = entry.path.as_str();
        for (at, _) in path.match_indices('/') {
            match path.get(..at) {
                Some(dir) if !dir.is_empty() && !out.contains(dir) => {
                    out.insert(dir.to_owned());
                }
                _ => {}
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;
