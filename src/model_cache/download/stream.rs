//! Streaming the weights: chunks stored earlier hashed in their place, each run of
//! missing chunks fetched with one Range request and cut into chunks as it arrives, and
//! the complete file checked. Part of [`super::Download`].

use std::ops::Range;

use sha2::{Digest, Sha256};

use super::{Download, DownloadError, Failure, Job, Watchdog};
use crate::hub::{format_bytes, to_hex, WEIGHTS_FILE};
use crate::model::config::ClipConfig;
use crate::model::weights::{SafetensorsHeader, Towers};
use crate::model_cache::chunker::{range_header, Assembler, CutChunk};
use crate::model_cache::net::{Answer, Env, Hub};
use crate::model_cache::progress::Phase;
use crate::model_cache::reader::{read_small, ChunkFile};
use crate::model_cache::rules::{self, RangedVerdict};
use crate::model_cache::store::{ChunkStore, StoreError, StoredChunk};

impl<S: ChunkStore, H: Hub, E: Env> Download<S, H, E> {
    /// Accounts for chunks from `job.next` on: stored ones are hashed in place (when a
    /// whole-file hash is expected), each run of missing ones is fetched with one Range
    /// request. Returns when every chunk is stored, or at the first failure.
    pub(super) async fn advance(&self, job: &mut Job<S::Blob>) -> Result<(), Failure> {
        let count = job.layout.count();
        while job.next < count {
            self.check_cancelled()?;
            let i = job.next;
            if let Some(chunk) = job.present.get(i as usize).cloned().flatten() {
                self.account_stored(job, chunk).await?;
                continue;
            }
            let mut end = i + 1;
            while end < count && job.present.get(end as usize).is_some_and(Option::is_none) {
                end += 1;
            }
            self.fetch_run(job, i..end).await?;
        }
        Ok(())
    }

    /// Hashes a chunk stored earlier in its place (when a whole-file hash is expected); a
    /// chunk that changed in storage is deleted, to be fetched again.
    pub(super) async fn account_stored(
        &self,
        job: &mut Job<S::Blob>,
        chunk: StoredChunk<S::Blob>,
    ) -> Result<(), Failure> {
        let i = chunk.index;
        if job.hasher.is_some() {
            let size = job.layout.size_bytes;
            self.report(Phase::Checking, job.layout.range(i).end, Some(size), false);
            let bytes = self
                .store
                .read(&chunk.blob, 0..chunk.len)
                .await
                .map_err(|e| Failure::Transient(e.to_string()))?;
            let sha: [u8; 32] = Sha256::digest(&bytes).into();
            if !rules::chunk_intact(&chunk.sha256, chunk.len, &sha, bytes.len() as u64) {
                self.env.warn(&format!(
                    "clipseek: chunk {i} of {WEIGHTS_FILE} changed in storage; fetching it again"
                ));
                self.store.delete_chunk(WEIGHTS_FILE, i).await?;
                if let Some(slot) = job.present.get_mut(i as usize) {
                    *slot = None;
                }
                return Ok(());
            }
            if let Some(h) = job.hasher.as_mut() {
                h.update(&bytes);
            }
        }
        job.next += 1;
        Ok(())
    }

    /// Fetches chunks `run` with one Range request.
    pub(super) async fn fetch_run(
        &self,
        job: &mut Job<S::Blob>,
        run: Range<u64>,
    ) -> Result<(), Failure> {
        let range = range_header(&job.layout, &run);
        let mut answer = self.request(&job.manifest.url, Some(&range)).await?;
        let verdict = rules::ranged_answer(
            answer.status(),
            &answer.headers(),
            &job.layout,
            &run,
            &job.manifest,
        );
        match verdict {
            RangedVerdict::Use { skip } => self.consume(job, &mut answer, run, skip).await,
            RangedVerdict::Changed => Err(Failure::Changed),
            RangedVerdict::Status(s) => {
                let after = answer.header("retry-after");
                Err(self.status_failure(WEIGHTS_FILE, s, after).await)
            }
        }
    }

    /// Streams `answer` (which starts `skip` bytes before chunk `run.start`) into the
    /// chunks of `run`, storing each chunk as soon as it is complete; then lets go of the
    /// connection unless the answer ended exactly there.
    pub(super) async fn consume(
        &self,
        job: &mut Job<S::Blob>,
        answer: &mut H::Answer,
        run: Range<u64>,
        skip: u64,
    ) -> Result<(), Failure> {
        let mut watchdog = Watchdog::new(&self.env);
        let mut result = self
            .stream_into(job, answer, run, skip, &mut watchdog)
            .await;
        if result.is_ok() {
            // Normally the answer ends exactly here; reading its end (rather than
            // cancelling) lets the request finish cleanly.
            match self.next_piece(&mut watchdog, answer).await {
                Ok(None) => return result,
                Ok(Some(_)) => {}
                Err(e) => result = Err(e),
            }
        }
        // More bytes than asked for, or a failure: let go of the connection.
        answer.release().await;
        result
    }

    pub(super) async fn stream_into(
        &self,
        job: &mut Job<S::Blob>,
        answer: &mut H::Answer,
        run: Range<u64>,
        skip: u64,
        watchdog: &mut Watchdog<'_, E>,
    ) -> Result<(), Failure> {
        let total = job.layout.size_bytes;
        let mut cut = Assembler::new(job.layout, run, skip);
        let mut stored = job.stored_bytes();
        while !cut.is_done() {
            self.check_cancelled()?;
            let piece = self
                .next_piece(watchdog, answer)
                .await?
                .ok_or_else(|| Failure::Transient("the connection closed early".into()))?;
            for chunk in cut.feed(&piece) {
                stored += chunk.bytes.len() as u64;
                self.keep_chunk(job, chunk).await?;
            }
            self.report(
                Phase::Fetching,
                stored + cut.pending_bytes(),
                Some(total),
                false,
            );
        }
        Ok(())
    }

    /// Stores a complete chunk and accounts for it.
    pub(super) async fn keep_chunk(
        &self,
        job: &mut Job<S::Blob>,
        cut: CutChunk,
    ) -> Result<(), Failure> {
        let blob = self
            .store
            .blob(&cut.bytes)
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let chunk = StoredChunk {
            index: cut.index,
            blob,
            sha256: to_hex(&cut.sha256),
            len: cut.bytes.len() as u64,
        };
        let total = job.layout.size_bytes;
        self.write()?
            .put_chunk(WEIGHTS_FILE, &chunk)
            .await
            .map_err(|e| match e {
                StoreError::Full => Failure::Fatal(DownloadError::Quota {
                    needed: format_bytes(total as f64),
                }),
                other => Failure::Fatal(DownloadError::Storage(other)),
            })?;
        if let Some(h) = job.hasher.as_mut() {
            h.update(&cut.bytes);
        }
        if let Some(slot) = job.present.get_mut(cut.index as usize) {
            *slot = Some(chunk);
        }
        job.next = cut.index + 1;
        Ok(())
    }

    /// Checks the complete file. `Failure::Changed` means corrupt (refetch once).
    pub(super) async fn verify(&self, job: &Job<S::Blob>) -> Result<(), Failure> {
        let total = job.layout.size_bytes;
        self.report(Phase::Verifying, total, Some(total), true);
        let mut blobs = Vec::with_capacity(job.present.len());
        for (i, chunk) in job.present.iter().enumerate() {
            match chunk {
                Some(c) if c.len == job.layout.len_of(i as u64) => blobs.push(c.blob.clone()),
                _ => return Err(Failure::Transient(format!("chunk {i} is missing"))),
            }
        }
        let weights = ChunkFile::new(self.store.clone(), job.layout, blobs);
        let header = match weights.header().await {
            Ok(h) => h,
            Err(DownloadError::BadFile { message, .. }) => {
                self.env.warn(&format!(
                    "{WEIGHTS_FILE}: unreadable header ({message}); fetching it again"
                ));
                return Err(Failure::Changed);
            }
            Err(e) => return Err(Failure::Fatal(e)),
        };
        if let (Some(expected), Some(hasher)) = (&job.manifest.sha256, &job.hasher) {
            let got: [u8; 32] = hasher.clone().finalize().into();
            if !rules::whole_file_matches(expected, &got) {
                self.env.warn(&format!(
                    "{WEIGHTS_FILE}: SHA-256 {}, expected {expected}",
                    to_hex(&got)
                ));
                return Err(Failure::Changed);
            }
        }
        self.check_against_config(&header).await
    }

    /// The configuration must find every tensor it needs (a wrong or partial checkpoint is
    /// not fixed by fetching it again).
    pub(super) async fn check_against_config(
        &self,
        header: &SafetensorsHeader,
    ) -> Result<(), Failure> {
        let config_json = read_small(&self.store, "config.json").await?;
        let config = ClipConfig::from_json(&config_json).map_err(|e| {
            Failure::Fatal(DownloadError::BadFile {
                file: "config.json".into(),
                message: e.to_string(),
            })
        })?;
        header.plan(&config, Towers::Both).map_err(|e| {
            Failure::Fatal(DownloadError::BadFile {
                file: WEIGHTS_FILE.into(),
                message: e.to_string(),
            })
        })?;
        Ok(())
    }
}
