//! A run's life outside the scheduling: the index restored from storage when the model
//! opens, the run's end (the sentence, the forget offer, the next drop, the idle timer),
//! the progress line, the index changed outside runs (forget, remove, clear) and the idle
//! release of the photo encoders.
//!
//! It must not hand out work (that is `run_workers`) or save (that is `run_apply`).
//! Reference: issue 8, item 1 ("restore at start-up", "status sentences").

use super::*;

impl<F: Clone, T: Clone> Indexer<F, T> {
    /// Builds the index from what storage held.
    pub(super) fn open(&mut self, config: Config, stored: Vec<Stored>, unreadable: usize) {
        let mut index = EmbeddingIndex::new(config.model_id.clone(), config.dim);
        let mut other_model = 0;
        let mut bad = unreadable;
        self.seqs.clear();
        self.by_browser.clear();
        self.next_seq = 0.0;
        for r in stored {
            if r.model_id != config.model_id {
                other_model += 1;
                continue;
            }
            let meta = r.meta();
            match index.upsert(meta, &r.embedding) {
                Ok(_) => {
                    if r.browser_decoded {
                        self.by_browser.insert(r.content_hash);
                    }
                    self.next_seq = self.next_seq.max(r.seq + 1.0);
                    self.seqs.insert(r.path, r.seq);
                }
                Err(_) => bad += 1,
            }
        }
        self.note = match (other_model, bad) {
            (0, 0) => None,
            (n, 0) => Some(format!(
                "Ready. {n} saved photos were indexed with another model; drop their folders \
                 again to index them with this one."
            )),
            (_, n) => Some(format!(
                "Ready. {n} saved index records were unreadable and were skipped; drop their \
                 folders again to index them."
            )),
        };
        self.line = match index.len() {
            0 => "No photos indexed yet.".to_owned(),
            1 => "1 photo in the index.".to_owned(),
            n => format!("{n} photos in the index."),
        };
        self.index = Some(index);
        self.config = Some(config);
        self.stopped = false;
    }

    /// Ends the run once every photo is applied and saved.
    pub(super) fn maybe_finish(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        let done = self
            .run
            .as_ref()
            .is_some_and(|r| r.next_apply >= r.limit && r.finished.is_empty());
        if done && self.saves.is_idle() {
            self.finish(now, out);
        }
    }

    pub(super) fn finish(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        let Some(run) = self.run.take() else { return };
        // Photos no longer in a re-dropped folder are kept, and offered for forgetting.
        let vanished: Vec<String> = match (&self.index, run.cancelled) {
            (Some(index), false) => run
                .vanished
                .iter()
                .filter_map(|id| index.entry(*id).map(|e| e.path.clone()))
                .collect(),
            _ => Vec::new(),
        };
        let kept = vanished.len();
        self.forget = ForgetOffer::new(vanished);
        self.line = RunSummary {
            cancelled: run.cancelled,
            done: run.next_apply.min(run.limit).saturating_sub(run.discarded),
            total: run.items.len(),
            added: run.added,
            reused: run.reused,
            unchanged: run.unchanged,
            failed: run.failed,
            kept,
            seconds: (now - run.started_ms) / 1000.0,
        }
        .sentence();
        self.progress = (run.limit as f64, Some(run.limit.max(1) as f64));
        out.push(Effect::RunEnded);
        self.maybe_start(now, out);
        self.release_when_idle(out);
    }

    /// Rewrites the progress line (at most every [`PROGRESS_EVERY_MS`] unless `force`).
    pub(super) fn report(&mut self, now: f64, force: bool) {
        if !force && now - self.last_progress_ms < PROGRESS_EVERY_MS {
            return;
        }
        self.last_progress_ms = now;
        let workers = self.pool.workers();
        let Some(run) = &self.run else { return };
        let done = run.next_apply.min(run.limit);
        self.progress = (done as f64, Some(run.limit as f64));
        let mut line = format!("{done} of {} photos", run.limit);
        if run.paused {
            line.push_str(" · paused");
        } else {
            if let Some(rate) = run.rate.per_second() {
                line.push_str(&format!(" · {rate:.1} photos/s"));
            }
            if let Some(eta) = run.rate.eta_seconds((run.limit - done) as f64) {
                line.push_str(&format!(" · {} left", format_eta(eta)));
            }
        }
        if run.unchanged > 0 {
            line.push_str(&format!(" · {} already indexed", run.unchanged));
        }
        line.push_str(&format!(
            " · {workers} encoder worker{}",
            if workers == 1 { "" } else { "s" }
        ));
        self.line = line;
    }

    /// Forgets the offered photos (those no longer in their folder): their paths, to
    /// remove from storage.
    pub fn forget_offered(&mut self) -> Vec<String> {
        let Some(offer) = self.forget.take() else {
            return Vec::new();
        };
        let removed = self.forget_paths(offer.paths);
        let n = removed.len();
        self.line = format!("Forgot {n} photo{}.", if n == 1 { "" } else { "s" });
        removed
    }

    /// Drops `paths` from the index in one pass (`EmbeddingIndex::remove_paths`): those it
    /// held, in the order given. Also what another tab's removal does here.
    pub fn forget_paths(&mut self, paths: Vec<String>) -> Vec<String> {
        let Some(index) = self.index.as_mut() else {
            return Vec::new();
        };
        let held: Vec<String> = paths
            .into_iter()
            .filter(|p| index.entry_by_path(p).is_some())
            .collect();
        index.remove_paths(&held);
        for path in &held {
            self.seqs.remove(path);
            self.originals.remove(path);
        }
        if let Some(offer) = self.forget.take() {
            let gone: std::collections::HashSet<&String> = held.iter().collect();
            let left = offer.paths.into_iter().filter(|p| !gone.contains(p));
            self.forget = ForgetOffer::new(left.collect());
        }
        held
    }

    /// Photos another tab saved, read back from storage: those of this tab's model enter
    /// the index (replacing an entry of the same path). Their paths, for new thumbnails.
    pub fn load_stored(&mut self, stored: Vec<Stored>) -> Vec<String> {
        let (Some(index), Some(config)) = (self.index.as_mut(), self.config.as_ref()) else {
            return Vec::new();
        };
        let mut paths = Vec::with_capacity(stored.len());
        for r in stored {
            if r.model_id != config.model_id {
                continue;
            }
            let meta = r.meta();
            if index.upsert(meta, &r.embedding).is_ok() {
                if r.browser_decoded {
                    self.by_browser.insert(r.content_hash);
                }
                self.next_seq = self.next_seq.max(r.seq + 1.0);
                self.seqs.insert(r.path.clone(), r.seq);
                self.skipped.remove(&r.path);
                paths.push(r.path);
            }
        }
        paths
    }

    /// The store was cleared elsewhere: the run and its unsaved photos are given up (its
    /// workers stopped, so no late answer is saved into the new generation), the index,
    /// skipped list and forget offer emptied, and the index rebuilt from `stored`.
    pub(super) fn reload(
        &mut self,
        stored: Vec<Stored>,
        unreadable: usize,
        out: &mut Vec<Effect<F, T>>,
    ) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let cancelled = self.run.take().map(|r| r.limit);
        out.extend(self.pool.clear().into_iter().map(Effect::Terminate));
        self.jobs.clear();
        self.saves = Saves::default();
        self.skipped.clear();
        self.forget = None;
        self.originals.clear();
        // The store's claims and refused files went with the clear.
        self.forget_claims();
        self.claiming = None;
        self.refused.clear();
        self.open(config, stored, unreadable);
        if cancelled.is_some() {
            self.note = Some(
                "The index was cleared in another tab, so the photos being indexed here were \
                 not saved; drop them again to index them."
                    .to_owned(),
            );
            out.push(Effect::RunEnded);
        }
        self.progress = (0.0, None);
    }

    /// Forgets the folder names claimed or reserved (the store cleared them).
    fn forget_claims(&mut self) {
        self.claims.clear();
        self.reserved.clear();
    }

    /// Removes one photo from the index: its path, to remove from storage.
    pub fn remove(&mut self, id: u64) -> Option<String> {
        let index = self.index.as_mut()?;
        let path = index.entry(id)?.path.clone();
        index.remove(id);
        self.seqs.remove(&path);
        Some(path)
    }

    /// Empties the index, the skipped list, the refused files and the claims (storage is
    /// cleared by the caller).
    pub fn clear(&mut self) {
        if let Some(index) = self.index.as_mut() {
            index.clear();
        }
        self.seqs.clear();
        self.by_browser.clear();
        self.skipped.clear();
        self.refused.clear();
        self.forget_claims();
        self.forget = None;
        self.line = "The index was cleared.".to_owned();
        self.progress = (0.0, None);
    }

    /// Stops the photo encoders after `idle_s` with nothing to do.
    pub(super) fn release_when_idle(&mut self, out: &mut Vec<Effect<F, T>>) {
        self.pool_activity = self.pool_activity.wrapping_add(1);
        let seconds = self
            .config
            .as_ref()
            .map_or(ingest::IDLE_RELEASE_S, |c| c.idle_release_s);
        out.push(Effect::StartIdleTimer {
            generation: self.pool_activity,
            ms: seconds.saturating_mul(1000),
        });
    }

    pub(super) fn idle_timer(&mut self, generation: u32, out: &mut Vec<Effect<F, T>>) {
        let idle = self.pool_activity == generation
            && self.run.is_none()
            && self.pending_image.is_none()
            && self.pool.is_idle();
        if idle {
            out.extend(self.pool.clear().into_iter().map(Effect::Terminate));
        }
    }
}
