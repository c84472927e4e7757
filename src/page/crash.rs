//! The crash budget of an indexing run: per photo, not per session. When a vision worker
//! dies, the photos of the job it was running are suspects: each is charged one crash and
//! tried again alone; a photo charged [`CRASHES_PER_PHOTO`] times is skipped with a plain
//! reason, and the run goes on on a fresh worker in the dead one's slot. Jobs that were
//! only waiting behind it (a worker handles one message at a time, in order) are not
//! charged: they go back to the queue as they were. Only crashes with no photo to blame (a
//! worker that dies while loading) can end the run, after [`CRASHES_WITHOUT_PROGRESS`] of
//! them in a row with no photo encoded and no worker loaded in between.
//!
//! It must not know about the browser or the workers' messages: `page::run` tells it which
//! jobs a dead worker held, oldest first, and does what the [`Verdict`] says. Reference:
//! issue 8, "Crash budget per photo, not per session".

use std::collections::HashMap;

/// Crashes a photo may be running in before it is skipped.
pub const CRASHES_PER_PHOTO: u32 = 2;
/// Crashes in a row with nothing to blame (no photo running) before the run gives up.
pub const CRASHES_WITHOUT_PROGRESS: u32 = 3;

/// Why a photo that keeps killing its worker is skipped.
pub const CRASH_REASON: &str = "The encoder stopped twice while reading this photo (it may be \
too large or damaged), so it was skipped.";

/// A photo of the run (its position in indexing order).
pub type Key = usize;

/// What a dead worker held: the keys of each of its jobs, in the order they were sent
/// (the first was running, the others waiting behind it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lost {
    pub jobs: Vec<Vec<Key>>,
}

/// What to do about a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Suspects under their budget: encode again, one at a time.
    pub retry_alone: Vec<Key>,
    /// Photos that never ran: back to the queue, uncharged.
    pub requeue: Vec<Key>,
    /// Photos that used up their budget: list them as skipped ([`CRASH_REASON`]).
    pub skipped: Vec<Key>,
    /// Nothing could be blamed too many times in a row: stop the run.
    pub give_up: bool,
}

/// Crashes charged so far in one run.
#[derive(Debug, Clone, Default)]
pub struct CrashBudget {
    charged: HashMap<Key, u32>,
    without_progress: u32,
}

impl CrashBudget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Crashes charged to `key`.
    pub fn charged(&self, key: Key) -> u32 {
        self.charged.get(&key).copied().unwrap_or(0)
    }

    /// Something worked (a job answered, a worker loaded): blameless crashes start over.
    pub fn progress(&mut self) {
        self.without_progress = 0;
    }

    /// A worker died holding `lost`.
    pub fn crashed(&mut self, lost: Lost) -> Verdict {
        let mut verdict = Verdict::default();
        let mut jobs = lost.jobs.into_iter().filter(|j| !j.is_empty());
        match jobs.next() {
            Some(running) => {
                for key in running {
                    let n = self.charged.entry(key).or_insert(0);
                    *n += 1;
                    if *n >= CRASHES_PER_PHOTO {
                        verdict.skipped.push(key);
                    } else {
                        verdict.retry_alone.push(key);
                    }
                }
            }
            None => {
                self.without_progress += 1;
                verdict.give_up = self.without_progress >= CRASHES_WITHOUT_PROGRESS;
            }
        }
        verdict.requeue = jobs.flatten().collect();
        verdict
    }
}

#[cfg(test)]
#[path = "crash_tests.rs"]
mod tests;
