//! The download engine: fetching a model's files from the hub into a [`ChunkStore`]
//! (resumable, verified, with progress), generic over the store, the [`Hub`] and the
//! [`Env`] so that every path through it runs natively in tests.
//!
//! Layout in the store: one manifest per file — URL, size (from `Content-Range`, else
//! `Content-Length` of a `bytes=0-` answer, else `X-Linked-Size`), entity tag, the expected
//! SHA-256 when `X-Linked-Etag` or `ETag` is a 64-hex-digit SHA-256 (the hub's LFS files),
//! chunk size (`chunk_kb`, else `hub::auto_chunk_bytes`: 8 MiB for ViT-B/32, down to
//! 256 KiB for small files) and state (`downloading` → `verified`); and one record per
//! chunk: `{index, blob, sha256, len}`. The small JSON files are fetched whole as one
//! chunk. `model.safetensors` is fetched with Range requests, one per run of missing
//! chunks, and cut into chunks as the bytes stream in ([`super::chunker::Assembler`]); a
//! chunk is stored the moment it is complete, and a partial chunk is never stored. A
//! dropped connection is retried with backoff (1, 2, 4, 8 s; the count starts again
//! whenever a chunk was saved), then reported with a Retry button; a reload or a closed
//! tab resumes from the stored chunks, so only missing chunks are fetched. A connection
//! that goes silent (no answer, or no byte of its body, for `rules::STALL_MS`) is aborted
//! and counts as a dropped one ([`Watchdog`]); a hub answering 5xx is retried the same way
//! and then named as failing rather than unreachable. Sizes beyond any CLIP checkpoint
//! (`rules::believable_size`) are refused before anything is allocated or stored, and a
//! stored manifest asking for one is started over.
//!
//! Cancelling ("Stop and remove") is checked before every store write ([`Download::write`]):
//! a request still in flight when the model was removed can finish, but it never stores
//! anything again.
//!
//! Verified before anything may load it (only `verified` files are ever read by
//! [`super::open_verified`]): every chunk present with its exact length, so the total
//! size; the safetensors header parses and every tensor fits in the file; every tensor the
//! configuration needs is there with its shape; and, when the hub published one, the
//! SHA-256 of the whole file, computed in chunk order while streaming (chunks stored in an
//! earlier session are read back and hashed in their place; their own recorded SHA-256 is
//! checked on the way, and a chunk that changed in storage is fetched again). On a
//! whole-file mismatch or an unreadable header we drop ALL chunks and fetch the file once
//! more, rather than refetch everything while comparing per-chunk hashes: the hub
//! publishes only a whole-file hash, so our per-chunk hashes (of what we received) cannot
//! say which chunk was bad. A second mismatch is an error in words: a hub that serves a
//! corrupt file will not heal by retrying; the file's chunks are then dropped, so a later
//! Retry starts clean rather than failing on the same bytes forever. Before fetching again
//! the hub is asked afresh what the file is (size, entity tag, published SHA-256): when
//! that changed, the file was replaced on the hub, and the new file is checked against its
//! own hash, never the old one. Every decision is a function in
//! [`super::rules`]; this module only sequences them (`fetch`: the files; `stream`: a
//! run of chunks and the final check). It must not name the browser.

mod fetch;
mod stream;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use sha2::Sha256;

use super::chunker::ChunkLayout;
pub use super::error::DownloadError;
use super::net::{Answer, Env, Hub};
use super::progress::{Phase, Progress, Reporter};
use super::rules::{self, Changes, RetryVerdict, StatusVerdict, Tries};
use super::store::{ChunkStore, FileManifest, StoreError, StoredChunk};
use crate::hub::{format_bytes, ModelSource, JSON_FILES, PYTORCH_FILE};

/// Why one attempt failed, and whether to try again.
enum Failure {
    /// The network failed: retry with backoff.
    Transient(String),
    /// The hub answered a status worth another try (5xx, 408, 429): retry with backoff, or
    /// after the wait its `Retry-After` asked for (milliseconds, already bounded).
    Server(u16, Option<f64>),
    /// The file on the hub is not the one we were downloading: start over.
    Changed,
    /// No retry will help.
    Fatal(DownloadError),
}

impl Failure {
    /// The failure in words, for a warning.
    fn describe(&self) -> String {
        match self {
            Failure::Transient(detail) => detail.clone(),
            Failure::Server(status, _) => format!("HTTP {status}"),
            Failure::Changed => "the file changed on the hub".into(),
            Failure::Fatal(e) => e.to_string(),
        }
    }
}

impl From<DownloadError> for Failure {
    fn from(e: DownloadError) -> Self {
        Failure::Fatal(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Fatal(e.into())
    }
}

/// Where an in-progress weights download stands, kept across retries in one session.
struct Job<B> {
    manifest: FileManifest,
    layout: ChunkLayout,
    present: Vec<Option<StoredChunk<B>>>,
    /// The first chunk not yet accounted for (hashed and stored).
    next: u64,
    /// SHA-256 of chunks `0..next`, when the hub published the file's hash.
    hasher: Option<Sha256>,
}

impl<B> Job<B> {
    fn stored_bytes(&self) -> u64 {
        self.present.iter().flatten().map(|c| c.len).sum()
    }
}

/// What finishing a complete weights file led to.
enum Completed {
    Verified,
    /// Take stock from storage again.
    Again,
    /// Corrupt or replaced on the hub: start this file afresh (it was as given).
    Refetch(Box<FileManifest>),
}

/// Downloads a model into its store.
pub struct Download<S: ChunkStore, H: Hub, E: Env> {
    source: ModelSource,
    store: S,
    hub: H,
    env: E,
    on_progress: Box<dyn Fn(&Progress)>,
    cancelled: Cell<bool>,
    reporter: RefCell<Reporter>,
}

impl<S: ChunkStore, H: Hub + Default, E: Env + Default> Download<S, H, E> {
    /// A download through the default hub client and host (the browser's).
    pub fn new(source: ModelSource, store: S, on_progress: Box<dyn Fn(&Progress)>) -> Self {
        Self::with_parts(source, store, H::default(), E::default(), on_progress)
    }
}

impl<S: ChunkStore, H: Hub, E: Env> Download<S, H, E> {
    pub fn with_parts(
        source: ModelSource,
        store: S,
        hub: H,
        env: E,
        on_progress: Box<dyn Fn(&Progress)>,
    ) -> Self {
        Self {
            source,
            store,
            hub,
            env,
            on_progress,
            cancelled: Cell::new(false),
            reporter: RefCell::default(),
        }
    }

    /// Stops the download at the next chance (the request in flight is aborted).
    pub fn cancel(&self) {
        self.cancelled.set(true);
        self.hub.abort();
    }

    fn check_cancelled(&self) -> Result<(), DownloadError> {
        if self.cancelled.get() {
            Err(DownloadError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The store, for a write: refused once the download was cancelled, so that a request
    /// that was still in flight when the model was removed cannot store it again.
    fn write(&self) -> Result<&S, DownloadError> {
        self.check_cancelled()?;
        Ok(&self.store)
    }

    fn report(&self, phase: Phase, done: u64, total: Option<u64>, force: bool) {
        let now = self.env.now_ms();
        let progress = self
            .reporter
            .borrow_mut()
            .report(now, phase, done, total, force);
        if let Some(p) = progress {
            (self.on_progress)(&p);
        }
    }

    /// Counts and reports a failed verification (the file is fetched again).
    fn verification_failed(&self, reason: String, total: Option<u64>) {
        self.reporter.borrow_mut().verification_failed();
        self.report(Phase::Refetching { reason }, 0, total, true);
    }

    /// Fetches whatever is missing and verifies it. Returns once every file is verified.
    pub async fn run(&self) -> Result<(), DownloadError> {
        self.report(Phase::Starting, 0, None, true);
        for file in JSON_FILES {
            self.with_retries(file, || self.fetch_small(file)).await?;
        }
        self.fetch_weights().await
    }

    /// Runs `attempt` until it succeeds, retrying transient failures with backoff.
    async fn with_retries<F, Fut>(&self, file: &str, attempt: F) -> Result<(), DownloadError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut tries = Tries::default();
        let mut changes = Changes::default();
        loop {
            self.check_cancelled()?;
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Changed) => {
                    self.store.reset_file(file).await?;
                    if !changes.changed() {
                        return Err(DownloadError::Unstable { file: file.into() });
                    }
                }
                Err(Failure::Transient(detail)) => {
                    let n = tries.failed(false);
                    self.give_up_or_wait(n, detail, None, 0, None).await?;
                }
                Err(Failure::Server(status, after)) => {
                    let n = tries.failed(false);
                    let asked = Some((status, after));
                    self.give_up_or_wait(n, format!("HTTP {status}"), asked, 0, None)
                        .await?;
                }
            }
        }
    }

    /// After the `tries`-th failure in a row (`status`: the hub's answer, when it was one,
    /// with the wait its `Retry-After` asked for): an error once there were too many, else a
    /// backoff wait.
    async fn give_up_or_wait(
        &self,
        tries: u32,
        detail: String,
        status: Option<(u16, Option<f64>)>,
        saved_bytes: u64,
        total: Option<u64>,
    ) -> Result<(), DownloadError> {
        self.check_cancelled()?;
        let hub = &self.source.hub;
        let verdict = rules::after_failure(
            tries,
            self.env.blocked(hub),
            !self.env.online(),
            saved_bytes,
            status.and_then(|(_, after)| after),
        );
        match verdict {
            RetryVerdict::Blocked => Err(DownloadError::Blocked { hub: hub.clone() }),
            RetryVerdict::Offline => Err(DownloadError::Offline),
            RetryVerdict::GiveUp => Err(match status {
                Some((status, _)) => DownloadError::HubFailing {
                    hub: hub.clone(),
                    status,
                    saved: format_bytes(saved_bytes as f64),
                },
                None => DownloadError::Unreachable {
                    hub: hub.clone(),
                    detail,
                    saved: format_bytes(saved_bytes as f64),
                },
            }),
            RetryVerdict::Wait { attempt, wait_ms } => {
                let phase = Phase::Retrying {
                    attempt,
                    in_ms: wait_ms,
                };
                self.report(phase, saved_bytes, total, true);
                self.env.sleep_ms(wait_ms).await;
                self.reporter.borrow_mut().pause();
                self.check_cancelled()
            }
        }
    }

    /// Starts a request (following redirects), with a `Range` header if given; a hub that
    /// does not answer within `rules::STALL_MS` is given up (the request aborted).
    async fn request(&self, url: &str, range: Option<&str>) -> Result<H::Answer, Failure> {
        let answer = Watchdog::new(&self.env)
            .wait(self.hub.get(url, range))
            .await;
        let Some(answer) = answer else {
            self.hub.abort();
            return Err(Failure::Transient(stalled("no answer")));
        };
        let answer = answer.map_err(Failure::Transient)?;
        self.check_cancelled()?;
        Ok(answer)
    }

    /// The next piece of `answer`'s body, unless the connection stays silent for
    /// `rules::STALL_MS` (then the request is aborted: a transient failure).
    async fn next_piece(
        &self,
        watchdog: &mut Watchdog<'_, E>,
        answer: &mut H::Answer,
    ) -> Result<Option<Vec<u8>>, Failure> {
        match watchdog.wait(answer.next_piece()).await {
            Some(piece) => piece.map_err(Failure::Transient),
            None => {
                self.hub.abort();
                Err(Failure::Transient(stalled("no data")))
            }
        }
    }

    /// The whole body of a small file's answer, refused (unread) when it says or turns out
    /// larger than any such file can be.
    async fn small_body(&self, file: &str, answer: &mut H::Answer) -> Result<Vec<u8>, Failure> {
        let said = answer
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut watchdog = Watchdog::new(&self.env);
        let mut out = Vec::new();
        let mut too_large =
            said.and_then(|n| rules::believable_size(file, n).err().map(|l| (n, l)));
        while too_large.is_none() {
            let Some(piece) = self.next_piece(&mut watchdog, answer).await? else {
                return Ok(out);
            };
            out.extend_from_slice(&piece);
            let got = out.len() as u64;
            too_large = rules::believable_size(file, got).err().map(|l| (got, l));
        }
        answer.release().await;
        let (size, limit) = too_large.unwrap_or_default();
        Err(Failure::Fatal(too_large_error(file, size, limit)))
    }

    /// Turns an unsuccessful HTTP status into a failure (`retry_after`: the answer's
    /// `Retry-After` header, read for statuses worth another try).
    async fn status_failure(
        &self,
        file: &str,
        status: u16,
        retry_after: Option<String>,
    ) -> Failure {
        match rules::classify_status(file, status) {
            StatusVerdict::AskForPytorch => Failure::Fatal(if self.has_pytorch_file().await {
                DownloadError::OnlyPytorch {
                    model: self.source.model.clone(),
                    revision: self.source.revision.clone(),
                }
            } else {
                self.not_found(file)
            }),
            StatusVerdict::NotFound => Failure::Fatal(self.not_found(file)),
            StatusVerdict::Refused => Failure::Fatal(DownloadError::Refused {
                file: file.into(),
                status,
            }),
            StatusVerdict::Changed => Failure::Changed,
            StatusVerdict::Transient => Failure::Server(
                status,
                retry_after.and_then(|v| rules::retry_after_ms(&v, self.env.now_ms())),
            ),
            StatusVerdict::Other => Failure::Fatal(DownloadError::Http {
                file: file.into(),
                status,
            }),
        }
    }

    /// Whether the revision publishes `pytorch_model.bin` (asked with a one-byte Range).
    async fn has_pytorch_file(&self) -> bool {
        let url = self.source.url(PYTORCH_FILE);
        match self.hub.get(&url, Some("bytes=0-0")).await {
            Ok(mut answer) => {
                answer.release().await;
                (200..300).contains(&answer.status())
            }
            Err(e) => {
                self.env.warn(&format!(
                    "clipseek: could not ask whether {url} exists ({e}); saying the weights are missing"
                ));
                false
            }
        }
    }

    fn not_found(&self, file: &str) -> DownloadError {
        DownloadError::NotFound {
            file: file.into(),
            model: self.source.model.clone(),
            revision: self.source.revision.clone(),
        }
    }
}

fn stalled(what: &str) -> String {
    format!("{what} from the hub for {:.0} s", rules::STALL_MS / 1000.0)
}

fn too_large_error(file: &str, size_bytes: u64, limit_bytes: u64) -> DownloadError {
    DownloadError::TooLarge {
        file: file.into(),
        size: format_bytes(size_bytes as f64),
        limit: format_bytes(limit_bytes as f64),
    }
}

/// Waits for futures (an answer, the next piece of a body) unless the connection stays
/// silent for [`rules::STALL_MS`]. One timer serves a whole stream: it is set once and,
/// when it fires while pieces still arrive, set again for what is left of the current
/// wait, so a fast stream costs one timer per `STALL_MS`, not one per piece. The future
/// waited for is always polled before the timer (with a clock that never waits, as in
/// the native tests, only a future that never comes times out).
pub(super) struct Watchdog<'a, E: Env> {
    env: &'a E,
    timer: Option<Pin<Box<dyn Future<Output = ()> + 'a>>>,
}

impl<'a, E: Env> Watchdog<'a, E> {
    pub(super) fn new(env: &'a E) -> Self {
        Self { env, timer: None }
    }

    /// `fut`'s output, or `None` when `rules::STALL_MS` passed without it.
    pub(super) async fn wait<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        let env = self.env;
        let started = env.now_ms();
        let mut fut = pin!(fut);
        loop {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(env.sleep_ms(rules::STALL_MS)));
            let first = poll_fn(|cx| {
                if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Some(v));
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if first.is_some() {
                return first;
            }
            // The timer fired: was it this wait that lasted, or an earlier one's timer?
            let left = rules::STALL_MS - (env.now_ms() - started);
            if left <= 0.0 {
                self.timer = None;
                return None;
            }
            self.timer = Some(Box::pin(env.sleep_ms(left)));
        }
    }
}
