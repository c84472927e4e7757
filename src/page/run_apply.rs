//! The run's results, in indexing order, into storage and then into the index: finished
//! photos become a batch to save (a renamed or copied photo reuses its twin's embedding
//! and thumbnail), one save at a time; only a save that succeeded puts its photos in the
//! in-memory index. A failed save holds the run (nothing more is handed out) and keeps its
//! batch for Retry.
//!
//! It must not write storage itself: it returns [`Effect::Save`]. Reference: issue 8,
//! "A failed save".

use super::*;

impl<F: Clone, T: Clone> Indexer<F, T> {
    /// Applies finished photos in indexing order: failures are listed, the rest saved.
    pub(super) fn apply(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        let mut batch: Vec<ToSave<T>> = Vec::new();
        let mut requeued = false;
        let (Some(run), Some(index), Some(config)) =
            (self.run.as_mut(), self.index.as_ref(), self.config.as_ref())
        else {
            return;
        };
        while run.next_apply < run.limit {
            let key = run.next_apply;
            let Some(outcome) = run.finished.remove(&key) else {
                break;
            };
            if let Outcome::Duplicate { hash } = &outcome {
                let resolvable = index
                    .find_by_hash(hash)
                    .is_some_and(|e| index.embedding(e.id).is_some());
                if !resolvable {
                    // The entry it duplicates went away meanwhile: encode this photo after
                    // all (alone, without the hash shortcut), and wait for it.
                    run.solo.push_back(key);
                    requeued = true;
                    break;
                }
            }
            run.next_apply += 1;
            let Some(item) = run.items.get(key) else {
                continue;
            };
            let (embedding, hash, thumb, browser, taken_ms) = match outcome {
                Outcome::Embedded {
                    embedding,
                    hash,
                    thumb,
                    browser,
                    taken_ms,
                } => {
                    let thumb = thumb.map_or(ThumbOf::None, ThumbOf::New);
                    (embedding, hash, thumb, browser, taken_ms)
                }
                Outcome::Duplicate { hash } => {
                    let Some(source) = index.find_by_hash(&hash) else {
                        continue;
                    };
                    let Some(embedding) = index.embedding(source.id).map(<[f32]>::to_vec) else {
                        continue;
                    };
                    let browser = self.by_browser.contains(&hash);
                    let thumb = ThumbOf::CopyOf(source.path.clone());
                    (embedding, hash, thumb, browser, source.taken_ms)
                }
                Outcome::Failed(error) => {
                    run.failed += 1;
                    self.skipped.insert(item.path.clone(), error);
                    continue;
                }
                Outcome::Dropped => continue,
            };
            if let Err(e) = admissible(config.dim, &embedding) {
                run.failed += 1;
                let why = format!("The photo could not be indexed: {e}");
                self.skipped.insert(item.path.clone(), why);
                continue;
            }
            let seq = match self.seqs.get(&item.path) {
                Some(&s) => s,
                None => {
                    let s = self.next_seq;
                    self.next_seq += 1.0;
                    s
                }
            };
            let record = Stored {
                path: item.path.clone(),
                size_bytes: item.size_bytes,
                modified_ms: item.modified_ms,
                content_hash: hash,
                taken_ms,
                model_id: config.model_id.clone(),
                seq,
                embedding,
                browser_decoded: browser,
            };
            batch.push(ToSave { record, thumb });
        }
        run.rate.record(now, run.next_apply as f64);
        if !batch.is_empty() {
            self.queue_save(batch, out);
        }
        self.report(now, false);
        if requeued {
            self.dispatch(out);
        }
        self.maybe_finish(now, out);
    }

    /// Saves `photos` now, or after the save in flight.
    fn queue_save(&mut self, photos: Vec<ToSave<T>>, out: &mut Vec<Effect<F, T>>) {
        self.saves.waiting.extend(photos);
        self.send_next_save(out);
    }

    fn send_next_save(&mut self, out: &mut Vec<Effect<F, T>>) {
        if self.saves.in_flight.is_some() || self.saves.waiting.is_empty() {
            return;
        }
        let id = BatchId(self.saves.next_id);
        self.saves.next_id = self.saves.next_id.wrapping_add(1);
        let photos = std::mem::take(&mut self.saves.waiting);
        out.push(Effect::Save {
            batch: id,
            photos: photos.clone(),
        });
        self.saves.in_flight = Some((Batch { id, photos }, None));
    }

    /// The batch is stored: its photos enter the index.
    pub(super) fn save_done(&mut self, now: f64, id: BatchId, out: &mut Vec<Effect<F, T>>) {
        let batch = match self.saves.in_flight.take() {
            Some((batch, _)) if batch.id == id => batch,
            other => {
                // Not the batch in flight (a stale answer): nothing changes.
                self.saves.in_flight = other;
                return;
            }
        };
        let mut paths = Vec::with_capacity(batch.photos.len());
        if let Some(index) = self.index.as_mut() {
            for p in batch.photos {
                let r = p.record;
                let meta = r.meta();
                let reused = matches!(p.thumb, ThumbOf::CopyOf(_));
                match index.upsert(meta, &r.embedding) {
                    Ok(_) => {
                        if r.browser_decoded {
                            self.by_browser.insert(r.content_hash);
                        }
                        self.skipped.remove(&r.path);
                        self.seqs.insert(r.path.clone(), r.seq);
                        if let Some(run) = self.run.as_mut() {
                            if reused {
                                run.reused += 1;
                            } else {
                                run.added += 1;
                            }
                        }
                        paths.push(r.path);
                    }
                    Err(e) => {
                        let why = format!("The photo could not be indexed: {e}");
                        self.skipped.insert(r.path, why);
                        if let Some(run) = self.run.as_mut() {
                            run.failed += 1;
                        }
                    }
                }
            }
        }
        out.push(Effect::Indexed { paths });
        self.send_next_save(out);
        self.dispatch(out);
        self.report(now, true);
        self.maybe_finish(now, out);
    }

    /// The batch could not be stored: the run holds, the batch waits for Retry.
    pub(super) fn save_failed(&mut self, id: BatchId, error: SaveError) {
        let Some((batch, failed)) = self.saves.in_flight.as_mut() else {
            return;
        };
        if batch.id != id {
            return;
        }
        let n = batch.photos.len();
        let photos = if n == 1 { "1 photo" } else { "photos" };
        let sentence = match error {
            SaveError::Quota => format!(
                "The browser's storage is full, so {} could not be saved. Free some disk \
                 space, then press Retry (the photos already saved are kept).",
                if n == 1 {
                    photos.to_owned()
                } else {
                    format!("{n} {photos}")
                }
            ),
            SaveError::Other(why) => format!(
                "The index could not be saved ({why}). Press Retry to try again (the photos \
                 already saved are kept)."
            ),
        };
        *failed = Some(sentence);
    }

    /// Sends the failed batch again.
    pub(super) fn retry_save(&mut self, out: &mut Vec<Effect<F, T>>) {
        let Some((batch, failed)) = self.saves.in_flight.as_mut() else {
            return;
        };
        if failed.take().is_none() {
            // Not failed: it is still in flight.
            return;
        }
        out.push(Effect::Save {
            batch: batch.id,
            photos: batch.photos.clone(),
        });
    }
}
