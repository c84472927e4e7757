//! What narrows and orders a result list after ranking: a minimum score (with the "no good
//! match" answer when nothing passes), a folder of the dropped tree, a date range, and the
//! order (by score, or by date taken: the EXIF date recorded when the photo was indexed,
//! [`Entry::taken_ms`], else the file's modified time) — pure functions the page and the
//! CLI share.
//!
//! It must not rank (that is [`super::rank`]) or read files: the EXIF date is read while
//! the photo is decoded (`model::preprocess::exif`, whose rule it follows: with an offset
//! the real instant, without one the wall-clock time as written, read as UTC); the file
//! time is real UTC.

use super::{Entry, Match};

/// Results after the minimum-score filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filtered {
    /// At least one match scored `>= min_score` (these, in their order).
    Matches(Vec<Match>),
    /// Nothing passed: the page says "no good match"; `best` is the best score there was
    /// (`None` when there were no results at all), so it can say how close that came.
    NoGoodMatch { best: Option<f32> },
}

/// Keeps the matches scoring at least `min_score` (NaN scores never pass).
pub fn min_score(matches: &[Match], min_score: f32) -> Filtered {
    let kept: Vec<Match> = matches
        .iter()
        .copied()
        .filter(|m| m.score >= min_score)
        .collect();
    if kept.is_empty() {
        let best = matches
            .iter()
            .map(|m| m.score)
            .filter(|s| !s.is_nan())
            .reduce(f32::max);
        Filtered::NoGoodMatch { best }
    } else {
        Filtered::Matches(kept)
    }
}

/// True when `path` lies inside `folder` (whole path components: `a/b` holds `a/b/c.jpg`,
/// not `a/bc.jpg`). An empty folder holds everything.
pub fn in_folder(path: &str, folder: &str) -> bool {
    let folder = folder.trim_end_matches('/');
    folder.is_empty()
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Milliseconds since the Unix epoch, inclusive bounds; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl DateRange {
    pub fn contains(&self, ms: i64) -> bool {
        self.from_ms.is_none_or(|f| ms >= f) && self.to_ms.is_none_or(|t| ms <= t)
    }
}

/// The order of a result list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Best score first (the ranking's own order).
    #[default]
    Score,
    /// Newest first by date taken, then by score.
    DateNewest,
    /// Oldest first by date taken, then by score.
    DateOldest,
}

/// The date a photo was taken: its EXIF date if known, else its file's modified time.
pub fn date_of(entry: &Entry) -> i64 {
    entry.taken_ms.unwrap_or(entry.modified_ms)
}

/// Restricts `matches` to `folder` and `range` and orders them by `sort`. `date` gives a
/// match's date (see [`date_of`]); `path` its path. Matches whose entry is unknown
/// (`path` answers `None`) are dropped. The sort is stable: equal dates keep rank order.
pub fn narrow(
    matches: &[Match],
    path: impl Fn(&Match) -> Option<String>,
    date: impl Fn(&Match) -> i64,
    folder: &str,
    range: DateRange,
    sort: SortBy,
) -> Vec<Match> {
    let mut kept: Vec<(i64, Match)> = matches
        .iter()
        .filter(|m| path(m).is_some_and(|p| in_folder(&p, folder)))
        .map(|m| (date(m), *m))
        .filter(|(d, _)| range.contains(*d))
        .collect();
    match sort {
        SortBy::Score => {}
        SortBy::DateNewest => kept.sort_by_key(|k| std::cmp::Reverse(k.0)),
        SortBy::DateOldest => kept.sort_by_key(|k| k.0),
    }
    kept.into_iter().map(|(_, m)| m).collect()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(index: usize, score: f32) -> Match {
        Match {
            id: index as u64,
            index,
            score,
        }
    }

    #[test]
    fn min_score_keeps_or_says_no_good_match() {
        let all = [m(0, 0.31), m(1, 0.25), m(2, 0.2)];
        assert_eq!(
            min_score(&all, 0.25),
            Filtered::Matches(vec![m(0, 0.31), m(1, 0.25)])
        );
        assert_eq!(
            min_score(&all, 0.4),
            Filtered::NoGoodMatch { best: Some(0.31) }
        );
        assert_eq!(min_score(&[], 0.0), Filtered::NoGoodMatch { best: None });
        assert_eq!(
            min_score(&[m(0, f32::NAN)], -1.0),
            Filtered::NoGoodMatch { best: None }
        );
    }

    #[test]
    fn folders_match_whole_components() {
        assert!(in_folder("DCIM/2024/a.jpg", "DCIM"));
        assert!(in_folder("DCIM/2024/a.jpg", "DCIM/2024/"));
        assert!(!in_folder("DCIM (2)/a.jpg", "DCIM"));
        assert!(!in_folder("DCIMX/a.jpg", "DCIM"));
        assert!(!in_folder("DCIM", "DCIM"));
        assert!(in_folder("anything.jpg", ""));
    }

    #[test]
    fn narrow_filters_and_sorts() {
        let matches = [m(0, 0.9), m(1, 0.8), m(2, 0.7), m(3, 0.6)];
        let paths = ["a/1.jpg", "b/2.jpg", "a/3.jpg", "a/4.jpg"];
        let dates = [300, 100, 200, 200];
        let path = |x: &Match| paths.get(x.index).map(|p| p.to_string());
        let date = |x: &Match| dates.get(x.index).copied().unwrap_or(0);
        let ids = |v: Vec<Match>| v.iter().map(|x| x.index).collect::<Vec<_>>();
        let all = DateRange::default();
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::Score)),
            [0, 1, 2, 3]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "a", all, SortBy::Score)),
            [0, 2, 3]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::DateNewest)),
            [0, 2, 3, 1]
        );
        assert_eq!(
            ids(narrow(&matches, path, date, "", all, SortBy::DateOldest)),
            [1, 2, 3, 0]
        );
        let range = DateRange {
            from_ms: Some(150),
            to_ms: Some(200),
        };
        assert_eq!(
            ids(narrow(&matches, path, date, "", range, SortBy::Score)),
            [2, 3]
        );
        let unknown = |x: &Match| (x.index != 1).then(|| "p.jpg".to_string());
        assert_eq!(
            ids(narrow(&matches, unknown, date, "", all, SortBy::Score)),
            [0, 2, 3]
        );
    }
}
