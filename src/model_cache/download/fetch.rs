//! The download's files: the small JSON files fetched whole, the weights started,
//! resumed and finished (verified and marked, or fetched once more). Part of
//! [`super::Download`]; the streaming of a run of chunks is in `stream`.

use sha2::{Digest, Sha256};

use super::{Completed, Download, DownloadError, Failure, Job};
use crate::hub::{published_sha256, to_hex, WEIGHTS_FILE};
use crate::model_cache::chunker::ChunkLayout;
use crate::model_cache::net::{Answer, Env, Hub};
use crate::model_cache::progress::Phase;
use crate::model_cache::rules::{self, Changes, Tries, VerifyVerdict};
use crate::model_cache::store::{ChunkStore, FileManifest, FileState, StoredChunk};

impl<S: ChunkStore, H: Hub, E: Env> Download<S, H, E> {
    /// Fetches a small file whole, checks it against a published SHA-256 and stores it.
    pub(super) async fn fetch_small(&self, file: &str) -> Result<(), Failure> {
        if let Some(m) = self.store.manifest(file).await? {
            if m.state == FileState::Verified {
                return Ok(());
            }
        }
        let url = self.source.url(file);
        let mut answer = self.request(&url, None).await?;
        if !(200..300).contains(&answer.status()) {
            let after = answer.header("retry-after");
            return Err(self.status_failure(file, answer.status(), after).await);
        }
        let headers = answer.headers();
        let expected = rules::expected_sha256(&headers);
        let bytes = self.small_body(file, &mut answer).await?;
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        let len = bytes.len() as u64;
        let mut manifest = FileManifest {
            url,
            size_bytes: len,
            etag: headers.etag,
            sha256: expected.map(|e| to_hex(&e)),
            chunk_bytes: len.max(1),
            state: FileState::Verified,
            refetched: false,
        };
        if expected.is_some_and(|e| e != sha) {
            // Fetched again once by the retry loop; a second mismatch is an error.
            let previous = self.store.manifest(file).await?;
            if previous.is_some_and(|m| m.refetched) {
                // Nothing of it is kept: a later Retry starts clean.
                self.store.reset_file(file).await?;
                return Err(Failure::Fatal(DownloadError::Checksum {
                    file: file.into(),
                }));
            }
            self.verification_failed(format!("{file} did not match its SHA-256 checksum"), None);
            manifest.state = FileState::Downloading;
            manifest.refetched = true;
            self.write()?.put_manifest(file, &manifest).await?;
            return Err(Failure::Transient("checksum mismatch".into()));
        }
        let blob = self
            .store
            .blob(&bytes)
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let chunk = StoredChunk {
            index: 0,
            blob,
            sha256: to_hex(&sha),
            len,
        };
        self.write()?.put_whole(file, &chunk, &manifest).await?;
        Ok(())
    }

    /// Downloads, resumes and verifies `model.safetensors`.
    pub(super) async fn fetch_weights(&self) -> Result<(), DownloadError> {
        let file = WEIGHTS_FILE;
        let mut job: Option<Job<S::Blob>> = None;
        let mut tries = Tries::default();
        let mut changes = Changes::default();
        // The file as it was when its verification failed: the next start compares.
        let mut failed_as: Option<FileManifest> = None;
        loop {
            self.check_cancelled()?;
            if job.is_none() {
                match self.store.manifest(file).await? {
                    Some(m) if m.state == FileState::Verified => {
                        let total = m.size_bytes;
                        self.report(Phase::Verifying, total, Some(total), true);
                        return Ok(());
                    }
                    Some(m) if !rules::manifest_resumable(file, &m) => {
                        self.env.warn(&format!(
                            "clipseek: the stored download of {file} cannot be resumed (size {} in chunks of {} bytes); starting it again",
                            m.size_bytes, m.chunk_bytes
                        ));
                        self.store.reset_file(file).await?;
                    }
                    Some(m) => job = Some(self.resume_job(m).await?),
                    None => {}
                }
            }
            let saved_before = job.as_ref().map_or(0, Job::stored_bytes);
            let outcome = match job.as_mut() {
                Some(j) => self.advance(j).await,
                None => {
                    let started = self
                        .start_job(&mut job, failed_as.as_ref(), &mut changes)
                        .await;
                    if job.is_some() {
                        failed_as = None;
                    }
                    started
                }
            };
            match outcome {
                Ok(()) => {
                    let Some(j) = job.as_mut() else { continue };
                    if j.next < j.layout.count() {
                        continue;
                    }
                    match self.complete(j).await? {
                        Completed::Verified => return Ok(()),
                        Completed::Again => job = None,
                        Completed::Refetch(was) => {
                            failed_as = Some(*was);
                            job = None;
                        }
                    }
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Changed) => {
                    self.store.reset_file(file).await?;
                    job = None;
                    if !changes.changed() {
                        return Err(DownloadError::Unstable { file: file.into() });
                    }
                }
                Err(Failure::Transient(detail)) => {
                    let saved = job.as_ref().map_or(0, Job::stored_bytes);
                    let n = tries.failed(saved > saved_before);
                    let total = job.as_ref().map(|j| j.layout.size_bytes);
                    self.give_up_or_wait(n, detail, None, saved, total).await?;
                }
                Err(Failure::Server(status, after)) => {
                    let saved = job.as_ref().map_or(0, Job::stored_bytes);
                    let n = tries.failed(saved > saved_before);
                    let total = job.as_ref().map(|j| j.layout.size_bytes);
                    let detail = format!("HTTP {status}");
                    self.give_up_or_wait(n, detail, Some((status, after)), saved, total)
                        .await?;
                }
            }
        }
    }

    /// Verifies a complete file and marks it verified, or starts it again once.
    pub(super) async fn complete(&self, j: &mut Job<S::Blob>) -> Result<Completed, DownloadError> {
        match self.verify(j).await {
            Ok(()) => {
                j.manifest.state = FileState::Verified;
                self.write()?
                    .put_manifest(WEIGHTS_FILE, &j.manifest)
                    .await?;
                let total = j.layout.size_bytes;
                self.report(Phase::Verifying, total, Some(total), true);
                Ok(Completed::Verified)
            }
            Err(Failure::Changed) => {
                // Whatever comes next, these bytes are of no use: drop them all, so that
                // neither a Retry nor a later visit checks them again.
                self.store.reset_file(WEIGHTS_FILE).await?;
                match rules::after_bad_file(j.manifest.refetched) {
                    VerifyVerdict::Corrupt => Err(DownloadError::Checksum {
                        file: WEIGHTS_FILE.into(),
                    }),
                    VerifyVerdict::RefetchOnce => {
                        self.verification_failed(
                            "model.safetensors did not pass verification (its SHA-256 checksum or header did not match)".into(),
                            Some(j.layout.size_bytes),
                        );
                        // Fetched again from a fresh start, which asks the hub what the
                        // file is now: if it changed, the new file has its own hash.
                        Ok(Completed::Refetch(Box::new(j.manifest.clone())))
                    }
                }
            }
            Err(Failure::Fatal(e)) => Err(e),
            Err(failure @ (Failure::Transient(_) | Failure::Server(..))) => {
                self.env.warn(&format!(
                    "clipseek: {WEIGHTS_FILE} is not complete after all ({}); taking stock of what is stored",
                    failure.describe()
                ));
                Ok(Completed::Again)
            }
        }
    }

    /// A job for a download begun earlier: what is stored, in order.
    pub(super) async fn resume_job(
        &self,
        manifest: FileManifest,
    ) -> Result<Job<S::Blob>, DownloadError> {
        let layout = ChunkLayout::new(manifest.size_bytes, manifest.chunk_bytes);
        let stored = self.store.chunks(WEIGHTS_FILE).await?;
        let (present, stale) = rules::resume_plan(&layout, stored);
        for index in stale {
            self.store.delete_chunk(WEIGHTS_FILE, index).await?;
        }
        let hasher = manifest.sha256.as_ref().map(|_| Sha256::new());
        Ok(Job {
            manifest,
            layout,
            present,
            next: 0,
            hasher,
        })
    }

    /// The SHA-256 the hub's API publishes for the weights, for when the file's own answer
    /// does not carry it (the real hub redirects LFS files to a CDN whose headers do not).
    /// Any failure means `None`, said as a warning: the size and header checks remain.
    pub(super) async fn published_sha256(&self) -> Option<[u8; 32]> {
        let url = self.source.info_url();
        let found = async {
            let mut answer = self.request(&url, None).await.map_err(|f| f.describe())?;
            if !(200..300).contains(&answer.status()) {
                return Err(format!("HTTP {}", answer.status()));
            }
            let json = self
                .small_body("api.json", &mut answer)
                .await
                .map_err(|f| f.describe())?;
            published_sha256(&json, WEIGHTS_FILE)
                .ok_or_else(|| format!("it lists no SHA-256 for {WEIGHTS_FILE}"))
        }
        .await;
        match found {
            Ok(sha) => Some(sha),
            Err(e) => {
                self.env.warn(&format!(
                    "clipseek: {WEIGHTS_FILE} will be checked by size and header only: the hub's answer carries no SHA-256 and its API ({url}) did not give one ({e})"
                ));
                None
            }
        }
    }

    /// The first request of a new download: `bytes=0-`, whose answer says the size.
    /// `failed_as`: the file as it was when its verification failed in this session; the
    /// same file again is marked `refetched` (a second failure is corrupt), another one
    /// means the hub replaced it (counted in `changes`).
    pub(super) async fn start_job(
        &self,
        job: &mut Option<Job<S::Blob>>,
        failed_as: Option<&FileManifest>,
        changes: &mut Changes,
    ) -> Result<(), Failure> {
        let file = WEIGHTS_FILE;
        let url = self.source.url(file);
        let mut answer = self.request(&url, Some("bytes=0-")).await?;
        let status = answer.status();
        if status != 206 && status != 200 {
            let after = answer.header("retry-after");
            return Err(self.status_failure(file, status, after).await);
        }
        let headers = answer.headers();
        let Some(size) = rules::size_from_headers(&headers) else {
            answer.release().await;
            return Err(Failure::Fatal(DownloadError::BadFile {
                file: file.into(),
                message: "the hub did not say how large it is".into(),
            }));
        };
        if let Err(limit) = rules::believable_size(file, size) {
            answer.release().await;
            return Err(Failure::Fatal(super::too_large_error(file, size, limit)));
        }
        let sha256 = match rules::expected_sha256(&headers) {
            Some(s) => Some(s),
            None => self.published_sha256().await,
        };
        let mut manifest = FileManifest {
            url,
            size_bytes: size,
            etag: headers.etag,
            sha256: sha256.map(|s| to_hex(&s)),
            chunk_bytes: rules::chunk_bytes(size, self.source.chunk_bytes_for(size)),
            state: FileState::Downloading,
            refetched: false,
        };
        if let Some(was) = failed_as {
            manifest.refetched = rules::same_file(was, &manifest);
            if !manifest.refetched {
                self.env.warn(&format!(
                    "clipseek: {file} changed on the hub while it was downloading; downloading the new one"
                ));
                if !changes.changed() {
                    answer.release().await;
                    return Err(Failure::Fatal(DownloadError::Unstable {
                        file: file.into(),
                    }));
                }
            }
        }
        self.write()?.put_manifest(file, &manifest).await?;
        let mut new_job = self.resume_job(manifest).await?;
        let run = 0..new_job.layout.count();
        let result = self.consume(&mut new_job, &mut answer, run, 0).await;
        *job = Some(new_job);
        result
    }
}
