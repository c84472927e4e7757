//! The "Duplicates" view's state: near-duplicate groups of the index at an adjustable
//! threshold, found by `index::dupes::Finder` in bounded slices (the driver runs one slice
//! per task, so the page never stops answering), each group split into the photo to keep
//! (largest, then newest) and the others; "select all but the best"; and the folding of
//! results, one tile per group with a count.
//!
//! It must not touch the DOM or time anything (the driver decides how many slices fit in a
//! frame); a changed index starts the search again rather than mixing two indexes.
//! Reference: issue 11 item 2; `index::dupes` (the method and its figures).

use std::collections::HashMap;

use crate::index::dupes::{split_best, Finder, MIN_THRESHOLD};
use crate::index::{EmbeddingIndex, Match};

/// The threshold at first (the CLI's default).
pub const DEFAULT_THRESHOLD: f32 = 0.95;
/// Multiply-adds per slice: about 5–20 ms of wasm SIMD work.
pub const SLICE_WORK: u64 = 4_000_000;

/// One group, by entry ids: the one to keep and the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub keep: u64,
    pub others: Vec<u64>,
}

/// The index a search ran on: (length, next id) change with every insert and removal.
type Version = (usize, u64);

fn version(index: &EmbeddingIndex) -> Version {
    (index.len(), index.next_id())
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Running { finder: Box<Finder>, on: Version },
    Found { groups: Vec<Group>, on: Version },
}

/// What a slice did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// More slices are needed; the fraction done.
    Running(f64),
    /// The groups are found (or nothing runs).
    Done,
}

/// The view's state.
#[derive(Debug, Clone)]
pub struct Duplicates {
    threshold: f32,
    state: State,
    /// Entry id -> its group's number, for folding.
    group_of: HashMap<u64, usize>,
}

impl Default for Duplicates {
    fn default() -> Self {
        Self::new()
    }
}

impl Duplicates {
    pub fn new() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            state: State::Idle,
            group_of: HashMap::new(),
        }
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Starts looking in `index` (again, if it ran before).
    pub fn start(&mut self, index: &EmbeddingIndex) {
        self.group_of.clear();
        self.state = match Finder::new(index.len(), index.dim(), self.threshold) {
            Ok(finder) => State::Running {
                finder: Box::new(finder),
                on: version(index),
            },
            // Unreachable with a clamped threshold; an empty answer rather than a panic.
            Err(_) => State::Found {
                groups: Vec::new(),
                on: version(index),
            },
        };
    }

    /// A new threshold (clamped to what the finder accepts); true when a search must run
    /// again for it.
    pub fn set_threshold(&mut self, threshold: f32) -> bool {
        let t = if threshold.is_finite() {
            threshold.clamp(MIN_THRESHOLD, 1.0)
        } else {
            DEFAULT_THRESHOLD
        };
        let changed = (t - self.threshold).abs() > f32::EPSILON;
        self.threshold = t;
        changed && !matches!(self.state, State::Idle)
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// One slice of about `work` multiply-adds. An index that changed since the search
    /// started (or was found) starts it again.
    pub fn step(&mut self, index: &EmbeddingIndex, work: u64) -> Step {
        let now = version(index);
        let stale = match &self.state {
            State::Idle => return Step::Done,
            State::Running { on, .. } | State::Found { on, .. } => *on != now,
        };
        if stale {
            self.start(index);
        }
        let State::Running { finder, on } = &mut self.state else {
            return Step::Done;
        };
        let on = *on;
        match finder.step(index.matrix(), work) {
            Ok(false) => Step::Running(finder.progress()),
            Ok(true) | Err(_) => {
                let found = finder.groups();
                let groups: Vec<Group> = found
                    .groups
                    .iter()
                    .filter_map(|g| split_best(g, index.entries()))
                    .filter_map(|g| {
                        let id = |p: usize| index.entries().get(p).map(|e| e.id);
                        Some(Group {
                            keep: id(g.keep)?,
                            others: g.others.iter().filter_map(|&p| id(p)).collect(),
                        })
                    })
                    .collect();
                self.group_of = groups
                    .iter()
                    .enumerate()
                    .flat_map(|(n, g)| {
                        std::iter::once(g.keep)
                            .chain(g.others.iter().copied())
                            .map(move |id| (id, n))
                    })
                    .collect();
                self.state = State::Found { groups, on };
                Step::Done
            }
        }
    }

    /// The groups, once found for the index as it is.
    pub fn groups(&self, index: &EmbeddingIndex) -> Option<&[Group]> {
        match &self.state {
            State::Found { groups, on } if *on == version(index) => Some(groups),
            _ => None,
        }
    }

    /// "Select all but the best": every group's others.
    pub fn all_but_best(&self, index: &EmbeddingIndex) -> Vec<u64> {
        self.groups(index)
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g.others.iter().copied())
            .collect()
    }

    /// The view's sentence.
    pub fn line(&self, index: &EmbeddingIndex) -> String {
        let t = self.threshold;
        match &self.state {
            State::Idle => String::new(),
            State::Running { finder, .. } => format!(
                "Looking for near-duplicates at cosine {t:.2} or more… {:.0}%",
                finder.progress() * 100.0
            ),
            State::Found { .. } => match self.groups(index) {
                None => {
                    "The index changed since these groups were found: find them again.".to_owned()
                }
                Some([]) => format!("No near-duplicates at cosine {t:.2} or more."),
                Some(groups) => {
                    let photos: usize = groups.iter().map(|g| 1 + g.others.len()).sum();
                    let g = groups.len();
                    format!(
                        "{g} group{} of near-duplicates ({photos} photos) at cosine {t:.2} or \
                         more; the first of each is the one to keep (the largest file, then \
                         the newest).",
                        if g == 1 { "" } else { "s" }
                    )
                }
            },
        }
    }

    /// Folds `matches` (in their order): the first shown member of a group stands for it,
    /// with the number of its group's members among `matches`; the others are left out.
    /// Unfolded (count 1 each) until the groups are found for this index.
    pub fn fold(&self, index: &EmbeddingIndex, matches: Vec<Match>) -> Vec<(Match, usize)> {
        if self.groups(index).is_none() {
            return matches.into_iter().map(|m| (m, 1)).collect();
        }
        let mut out: Vec<(Match, usize)> = Vec::with_capacity(matches.len());
        let mut tile_of_group: HashMap<usize, usize> = HashMap::new();
        for m in matches {
            match self.group_of.get(&m.id) {
                Some(g) => match tile_of_group.get(g) {
                    Some(&tile) => {
                        if let Some(t) = out.get_mut(tile) {
                            t.1 += 1;
                        }
                    }
                    None => {
                        tile_of_group.insert(*g, out.len());
                        out.push((m, 1));
                    }
                },
                None => out.push((m, 1)),
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "duplicates_tests.rs"]
mod tests;
