//! What a download reports while it runs: its [`Phase`], bytes done of the total, the
//! throughput and time left over a sliding window, and how many verifications failed; and
//! the [`Reporter`] that throttles reports to one per [`PROGRESS_EVERY_MS`] unless a
//! report must not be skipped.
//!
//! Pure arithmetic on the times it is given; the page turns a [`Progress`] into words.

use crate::hub::Rate;

use super::rules::PROGRESS_EVERY_MS;

/// What a download is doing, for the progress bar and its text line.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Fetching the small files or starting the weights.
    Starting,
    /// Streaming the weights.
    Fetching,
    /// Reading back chunks stored earlier to hash them in order.
    Checking,
    /// Waiting `in_ms` before try `attempt` after a failure.
    Retrying { attempt: u32, in_ms: f64 },
    /// Checking the complete file.
    Verifying,
    /// Verification failed; the file is being fetched again.
    Refetching { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of the weights stored (plus the chunk in flight).
    pub done_bytes: u64,
    pub total_bytes: Option<u64>,
    pub bytes_per_s: Option<f64>,
    pub eta_s: Option<f64>,
    /// Verification failures so far (each one caused a refetch).
    pub verify_failures: u32,
}

/// Turns the download's events into throttled [`Progress`] reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    rate: Rate,
    last_report_ms: Option<f64>,
    verify_failures: u32,
}

impl Default for Reporter {
    fn default() -> Self {
        Self {
            rate: Rate::new(5000.0),
            last_report_ms: None,
            verify_failures: 0,
        }
    }
}

impl Reporter {
    /// The report for `phase` at `now_ms`, or `None` when one was sent less than
    /// [`PROGRESS_EVERY_MS`] ago and `force` is not set. Fetching feeds the rate.
    pub fn report(
        &mut self,
        now_ms: f64,
        phase: Phase,
        done: u64,
        total: Option<u64>,
        force: bool,
    ) -> Option<Progress> {
        if phase == Phase::Fetching {
            self.rate.record(now_ms, done as f64);
        }
        let recent = self
            .last_report_ms
            .is_some_and(|t| now_ms - t < PROGRESS_EVERY_MS);
        if !force && recent {
            return None;
        }
        self.last_report_ms = Some(now_ms);
        Some(Progress {
            phase,
            done_bytes: done,
            total_bytes: total,
            bytes_per_s: self.rate.per_second(),
            eta_s: total.and_then(|t| self.rate.eta_seconds(t.saturating_sub(done) as f64)),
            verify_failures: self.verify_failures,
        })
    }

    /// Forgets the throughput history (after a wait, which must not count).
    pub fn pause(&mut self) {
        self.rate.reset();
    }

    /// Counts a failed verification.
    pub fn verification_failed(&mut self) {
        self.verify_failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_throttled_unless_forced() {
        let mut r = Reporter::default();
        assert!(r.report(1000.0, Phase::Starting, 0, None, false).is_some());
        assert!(r
            .report(1050.0, Phase::Fetching, 10, Some(100), false)
            .is_none());
        assert!(r
            .report(1050.0, Phase::Verifying, 100, Some(100), true)
            .is_some());
        assert!(r
            .report(1200.0, Phase::Fetching, 20, Some(100), false)
            .is_some());
    }

    #[test]
    fn rate_and_time_left_come_from_fetching_only() -> Result<(), String> {
        let mut r = Reporter::default();
        r.report(0.0, Phase::Fetching, 0, Some(3000), true);
        let p = r
            .report(1000.0, Phase::Fetching, 1000, Some(3000), true)
            .ok_or("no report")?;
        assert_eq!(p.bytes_per_s, Some(1000.0));
        assert_eq!(p.eta_s, Some(2.0));
        // Checking does not feed the rate; a pause forgets it.
        r.pause();
        let p = r
            .report(5000.0, Phase::Checking, 1000, Some(3000), true)
            .ok_or("no report")?;
        assert_eq!(p.bytes_per_s, None);
        r.verification_failed();
        let p = r
            .report(6000.0, Phase::Verifying, 0, None, true)
            .ok_or("no report")?;
        assert_eq!((p.verify_failures, p.eta_s), (1, None));
        Ok(())
    }
}
