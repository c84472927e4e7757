//! The run's side of the photo encoders: starting the pool, loading one worker at a time,
//! handing out batches in indexing order, reading their answers, and what a crash, a
//! failure or a switch to the CPU engine means for the run (`page::crash` charges the
//! photos). Also the search by photo, which borrows a ready worker.
//!
//! It must not post anything itself: it returns effects. Reference: issue 8, item 1.

use super::*;

impl<F: Clone, T: Clone> Indexer<F, T> {
    pub(super) fn worker_input(
        &mut self,
        now: f64,
        input: Input<F, T>,
        out: &mut Vec<Effect<F, T>>,
    ) {
        match input {
            Input::Started(worker) => {
                if let Some(w) = self.pool.by_id(worker) {
                    w.started = true;
                }
                self.load_next(out);
            }
            Input::Loading(worker, fraction) => {
                if let Some(w) = self.pool.by_id(worker) {
                    w.load_fraction = fraction;
                }
            }
            Input::Loaded {
                worker,
                model_id,
                engine,
                detail,
                fallback,
            } => self.loaded(now, worker, &model_id, engine, detail, fallback, out),
            Input::Switched {
                worker,
                engine,
                detail,
                reason,
            } => {
                if let Some(w) = self.pool.by_id(worker) {
                    w.engine = Some(engine);
                    w.detail = Some(detail);
                    out.push(Effect::Fallback(reason));
                }
            }
            Input::Failed { worker, error } => self.worker_failed(worker, &error, out),
            Input::Encoded {
                worker,
                job,
                answers,
            } => self.encoded(now, worker, job, answers, out),
            Input::Crashed { worker, message } => self.crashed(now, worker, &message, out),
            Input::SpawnFailed(worker) => {
                out.push(Effect::Warn(format!(
                    "a photo encoder (worker {}) could not be started",
                    worker.0
                )));
                self.pool.vacate(worker);
            }
            Input::SendFailed { worker, job } => self.send_failed(now, worker, job, out),
            _ => {}
        }
    }

    /// Starts the vision workers if none run.
    pub(super) fn ensure_pool(&mut self, out: &mut Vec<Effect<F, T>>) {
        let Some(config) = &self.config else { return };
        let count = config.pool_size;
        out.extend(self.pool.fill(count).into_iter().map(Effect::Spawn));
    }

    pub(super) fn load_next(&mut self, out: &mut Vec<Effect<F, T>>) {
        let Some(config) = &self.config else { return };
        let message = load_message(config);
        if let Some(worker) = self.pool.next_to_load() {
            out.push(Effect::Send { worker, message });
        }
    }

    /// The content hashes of the index, to `only` this worker or to every ready one.
    pub(super) fn known_hashes(&self, only: Option<WorkerId>, out: &mut Vec<Effect<F, T>>) {
        let Some(index) = &self.index else { return };
        let hashes: Vec<Hash> = index.entries().iter().map(|e| e.content_hash).collect();
        for w in self.pool.iter().filter(|w| w.ready) {
            if only.is_none_or(|o| o == w.id) {
                out.push(Effect::Send {
                    worker: w.id,
                    message: ToWorker::KnownHashes {
                        hashes: hashes.clone(),
                    },
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn loaded(
        &mut self,
        now: f64,
        worker: WorkerId,
        model_id: &str,
        engine: EngineKind,
        detail: String,
        fallback: Option<String>,
        out: &mut Vec<Effect<F, T>>,
    ) {
        if self.config.as_ref().is_some_and(|c| c.model_id != model_id) {
            let message = "The photo encoder loaded a different model than the page; reload \
                           the page."
                .to_owned();
            return self.fail(message, false, out);
        }
        let Some(w) = self.pool.by_id(worker) else {
            return;
        };
        w.ready = true;
        w.loading = false;
        w.engine = Some(engine);
        w.detail = Some(detail);
        self.crashes.progress();
        if let Some(why) = fallback {
            out.push(Effect::Fallback(why));
        }
        self.load_next(out);
        self.known_hashes(Some(worker), out);
        self.retry_image(out);
        self.dispatch(out);
        self.report(now, true);
    }

    fn worker_failed(&mut self, worker: WorkerId, error: &str, out: &mut Vec<Effect<F, T>>) {
        let Some(slot) = self.pool.slot_of(worker) else {
            return;
        };
        let ready = self.pool.get(slot).is_some_and(|w| w.ready);
        if ready {
            // Under backend=webgpu a lost device stops the run; what was saved is kept.
            let message = format!(
                "The photo encoder stopped: {error} The photos indexed so far are kept; reload \
                 the page and drop the folder again to index the rest."
            );
            self.fail(message, false, out);
        } else {
            let retry = self
                .config
                .as_ref()
                .is_some_and(|c| c.backend != Backend::WebGpu);
            let message = format!("The photo encoder could not load the model: {error}");
            self.fail(message, retry, out);
        }
    }

    /// Hands batches to every ready worker with room, in indexing order.
    pub(super) fn dispatch(&mut self, out: &mut Vec<Effect<F, T>>) {
        if self.saves.error().is_some() {
            return;
        }
        let Some(run) = self.run.as_mut() else { return };
        if run.paused {
            return;
        }
        for slot in 0..self.pool.len() {
            while let Some(w) = self.pool.get_mut(slot).filter(|w| w.has_room()) {
                let (keys, solo) = if let Some(k) = run.solo.pop_front() {
                    (vec![k], true)
                } else if !run.cancelled && run.next_dispatch < run.items.len() {
                    let end = (run.next_dispatch + BATCH).min(run.items.len());
                    let keys: Vec<usize> = (run.next_dispatch..end).collect();
                    run.next_dispatch = end;
                    (keys, false)
                } else {
                    break;
                };
                let files: Vec<F> = keys
                    .iter()
                    .filter_map(|&k| run.items.get(k).map(|i| i.file.clone()))
                    .collect();
                let job = self.next_job;
                self.next_job = job.next();
                w.in_flight += 1;
                self.sent_jobs += 1;
                let message = ToWorker::Encode {
                    job,
                    keys: keys.iter().map(|&k| k as u32).collect(),
                    thumbnails: true,
                    // A retry encodes for real: its hash may be why it came back.
                    dedupe: !solo,
                };
                out.push(Effect::Encode {
                    worker: w.id,
                    message,
                    files,
                });
                let kind = JobKind::Index { keys };
                let info = Job {
                    worker: w.id,
                    sent: self.sent_jobs,
                    kind,
                };
                self.jobs.insert(job, info);
            }
        }
    }

    /// Takes a job back from its worker (a reply, or a failed send); `None` when the job
    /// is not that worker's (a stale reply).
    fn take_job(&mut self, worker: WorkerId, job: JobId) -> Option<JobKind> {
        if self.jobs.get(&job).is_none_or(|j| j.worker != worker) {
            return None;
        }
        if let Some(w) = self.pool.by_id(worker) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
        self.jobs.remove(&job).map(|j| j.kind)
    }

    fn encoded(
        &mut self,
        now: f64,
        worker: WorkerId,
        job: JobId,
        answers: Vec<Answer<T>>,
        out: &mut Vec<Effect<F, T>>,
    ) {
        let Some(kind) = self.take_job(worker, job) else {
            return;
        };
        self.crashes.progress();
        match kind {
            JobKind::Query { name } => {
                self.release_when_idle(out);
                match answers.into_iter().next().map(|a| a.result) {
                    Some(Ok(Photo::Embedded { embedding, .. })) => {
                        out.push(Effect::SearchImage { name, embedding })
                    }
                    _ => out.push(Effect::SaySearch(format!(
                        "{name} could not be read as a photo, so it cannot be searched by."
                    ))),
                }
            }
            JobKind::Index { .. } => {
                if let Some(run) = self.run.as_mut() {
                    for a in answers {
                        let outcome = match a.result {
                            Err(e) => Outcome::Failed(e),
                            Ok(Photo::Duplicate { hash }) => Outcome::Duplicate { hash },
                            Ok(Photo::Embedded {
                                embedding,
                                hash,
                                browser,
                                taken_ms,
                                ..
                            }) => Outcome::Embedded {
                                embedding,
                                hash,
                                thumb: a.thumb,
                                browser,
                                taken_ms,
                            },
                        };
                        run.finished.insert(a.key as usize, outcome);
                    }
                }
                self.apply(now, out);
                self.dispatch(out);
            }
        }
    }

    fn send_failed(&mut self, now: f64, worker: WorkerId, job: JobId, out: &mut Vec<Effect<F, T>>) {
        match self.take_job(worker, job) {
            Some(JobKind::Index { keys }) => {
                if let Some(run) = self.run.as_mut() {
                    for k in keys {
                        let why = "The photo could not be sent to the encoder.".to_owned();
                        run.finished.insert(k, Outcome::Failed(why));
                    }
                }
                self.apply(now, out);
            }
            Some(JobKind::Query { name }) => out.push(Effect::SaySearch(format!(
                "{name} could not be sent to the encoder."
            ))),
            None => {}
        }
    }

    /// A vision worker died: its running photos are charged one crash each and tried again
    /// alone, those waiting behind them go back to the queue, a photo charged twice is
    /// skipped (`page::crash`), and a fresh worker takes the dead one's slot.
    fn crashed(&mut self, now: f64, worker: WorkerId, message: &str, out: &mut Vec<Effect<F, T>>) {
        let Some(slot) = self.pool.slot_of(worker) else {
            return;
        };
        out.push(Effect::Warn(format!("a photo encoder stopped: {message}")));
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.worker == worker)
            .map(|(&id, _)| id)
            .collect();
        let mut held: Vec<Job> = ids.iter().filter_map(|id| self.jobs.remove(id)).collect();
        held.sort_by_key(|j| j.sent);
        let mut lost = Lost::default();
        for job in held {
            match job.kind {
                JobKind::Index { keys } => lost.jobs.push(keys),
                JobKind::Query { name } => {
                    // It ran (or waited) in the dead worker; it holds no photo of the run.
                    lost.jobs.push(Vec::new());
                    out.push(Effect::SaySearch(format!(
                        "The encoder stopped while reading {name}."
                    )));
                }
            }
        }
        let verdict = self.crashes.crashed(lost);
        if let Some(run) = self.run.as_mut() {
            for k in verdict.skipped {
                run.finished
                    .insert(k, Outcome::Failed(CRASH_REASON.to_owned()));
            }
            // Alone-retries first, in indexing order; then the untouched ones.
            for k in verdict.retry_alone.into_iter().chain(verdict.requeue) {
                run.solo.push_back(k);
            }
        }
        out.push(Effect::Terminate(worker));
        self.pool.vacate(worker);
        self.apply(now, out);
        if verdict.give_up {
            let message = format!(
                "The photo encoder stopped several times before it could encode anything \
                 ({message}); reload the page and try fewer photos at once."
            );
            return self.fail(message, false, out);
        }
        if let Some(fresh) = self.pool.refill(slot) {
            out.push(Effect::Spawn(fresh));
        }
        self.dispatch(out);
    }

    /// Search by a dropped photo: encoded by the least busy ready worker, or as soon as
    /// one is ready.
    pub(super) fn search_by_image(
        &mut self,
        name: String,
        mime: &str,
        file: F,
        out: &mut Vec<Effect<F, T>>,
    ) {
        if !ingest::has_image_extension(&name) && !mime.starts_with("image/") {
            return out.push(Effect::SaySearch(format!(
                "{name} is not a photo, so it cannot be searched by."
            )));
        }
        if self.config.is_none() {
            self.pending_image = Some((name, file));
            let line = "Searching by a photo needs the model: download it first.";
            return out.push(Effect::SaySearch(line.to_owned()));
        }
        self.ensure_pool(out);
        let Some(worker) = self.pool.least_busy() else {
            let line = format!("Loading the photo encoder to search by {name}…");
            self.pending_image = Some((name, file));
            return out.push(Effect::SaySearch(line));
        };
        let job = self.next_job;
        self.next_job = job.next();
        let message = ToWorker::Encode {
            job,
            keys: vec![0],
            thumbnails: false,
            dedupe: false,
        };
        if let Some(w) = self.pool.by_id(worker) {
            w.in_flight += 1;
        }
        self.sent_jobs += 1;
        out.push(Effect::Encode {
            worker,
            message,
            files: vec![file],
        });
        out.push(Effect::SaySearch(format!("Reading {name}…")));
        let kind = JobKind::Query { name };
        let sent = self.sent_jobs;
        self.jobs.insert(job, Job { worker, sent, kind });
    }

    /// The photo search that waited for the model or a worker.
    pub(super) fn retry_image(&mut self, out: &mut Vec<Effect<F, T>>) {
        if let Some((name, file)) = self.pending_image.take() {
            self.search_by_image(name, "image/", file, out);
        }
    }
}
