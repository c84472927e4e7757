//! The download's decisions, each a plain function of what was seen: how an HTTP status is
//! taken, whether a ranged answer is the file we were downloading, the file's size and
//! published SHA-256 from an answer's headers, when to retry and how long to wait, which
//! stored chunks a resumed download keeps, and what a failed verification leads to.
//!
//! Nothing here does I/O; the engine ([`super::download`]) asks and acts. Reference:
//! RFC 9110 (status codes, Range, Content-Range, entity tags) and huggingface_hub's
//! `hf_hub_download` (`X-Linked-Etag`, `X-Linked-Size`).

use std::ops::Range;

use super::chunker::{ChunkLayout, ContentRange};
use super::store::StoredChunk;
use crate::hub::{parse_hex32, sha256_from_etag, WEIGHTS_FILE};

/// Consecutive failed attempts before giving up and showing Retry.
pub const MAX_TRIES: u32 = 5;
/// The first backoff; it doubles with each failure (1, 2, 4, 8 s).
pub const FIRST_BACKOFF_MS: f64 = 1000.0;
/// Progress reports at most this often.
pub const PROGRESS_EVERY_MS: f64 = 120.0;

/// The headers of an answer the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub content_range: Option<String>,
    pub content_length: Option<String>,
    pub etag: Option<String>,
    pub x_linked_etag: Option<String>,
    pub x_linked_size: Option<String>,
}

impl Headers {
    fn length(&self) -> Option<u64> {
        self.content_length
            .as_deref()
            .and_then(|v| v.trim().parse().ok())
    }
}

/// What an unsuccessful HTTP status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusVerdict {
    /// 404 for the weights: ask whether the revision has `pytorch_model.bin` instead.
    AskForPytorch,
    NotFound,
    /// 401 or 403: private or gated.
    Refused,
    /// 416: the file is not the size we thought: start over.
    Changed,
    /// Worth another try with backoff.
    Transient,
    /// Any other status: an error in words.
    Other,
}

pub fn classify_status(file: &str, status: u16) -> StatusVerdict {
    match status {
        404 if file == WEIGHTS_FILE => StatusVerdict::AskForPytorch,
        404 | 410 => StatusVerdict::NotFound,
        401 | 403 => StatusVerdict::Refused,
        416 => StatusVerdict::Changed,
        408 | 425 | 429 | 500..=599 => StatusVerdict::Transient,
        _ => StatusVerdict::Other,
    }
}

/// The size of the file from the answer to `bytes=0-`: `Content-Range`'s total, else
/// `Content-Length`, else `X-Linked-Size`.
pub fn size_from_headers(h: &Headers) -> Option<u64> {
    h.content_range
        .as_deref()
        .and_then(ContentRange::parse)
        .filter(|r| r.first == 0)
        .and_then(|r| r.total)
        .or_else(|| h.length())
        .or_else(|| {
            h.x_linked_size
                .as_deref()
                .and_then(|v| v.trim().parse().ok())
        })
}

/// The SHA-256 the hub published for this answer's file: `X-Linked-Etag`, else `ETag`,
/// when either is 64 hex digits.
pub fn expected_sha256(h: &Headers) -> Option<[u8; 32]> {
    h.x_linked_etag
        .as_deref()
        .and_then(sha256_from_etag)
        .or_else(|| h.etag.as_deref().and_then(sha256_from_etag))
}

fn strip_weak(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Whether the answer's entity tag says the file is another one than we started with
/// (weak and strong forms of one tag are the same file; a missing tag says nothing).
pub fn etag_changed(started_with: Option<&str>, now: Option<&str>) -> bool {
    match (started_with, now) {
        (Some(a), Some(b)) => strip_weak(a) != strip_weak(b),
        _ => false,
    }
}

/// How to use the answer to a Range request for chunks `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangedVerdict {
    /// Stream it; the first `skip` bytes lie before the run (a server that ignored Range).
    Use { skip: u64 },
    /// The file on the hub is not the one we were downloading: start over.
    Changed,
    /// Not a 200 or 206: see [`classify_status`].
    Status(u16),
}

pub fn ranged_answer(
    status: u16,
    h: &Headers,
    layout: &ChunkLayout,
    run: &Range<u64>,
    etag: Option<&str>,
) -> RangedVerdict {
    let bytes = layout.bytes_of(run);
    let changed = etag_changed(etag, h.etag.as_deref());
    match status {
        206 => {
            let fits = match h.content_range.as_deref().and_then(ContentRange::parse) {
                Some(r) => r.first == bytes.start && r.total.is_none_or(|t| t == layout.size_bytes),
                // Content-Range not exposed to us: the length must still match.
                None => h.length().is_none_or(|n| n == bytes.end - bytes.start),
            };
            if !fits || changed {
                RangedVerdict::Changed
            } else {
                RangedVerdict::Use { skip: 0 }
            }
        }
        // The server ignored Range: read from the start, dropping what we have.
        200 => {
            if h.length().is_some_and(|n| n != layout.size_bytes) || changed {
                RangedVerdict::Changed
            } else {
                RangedVerdict::Use { skip: bytes.start }
            }
        }
        other => RangedVerdict::Status(other),
    }
}

/// What to do after the `tries`-th transient failure in a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryVerdict {
    /// The page's security policy refused the hub: no retry helps.
    Blocked,
    /// Offline with nothing saved yet.
    Offline,
    /// Too many failures: show Retry.
    GiveUp,
    /// Wait, then make attempt `attempt`.
    Wait { attempt: u32, wait_ms: f64 },
}

pub fn after_failure(tries: u32, blocked: bool, offline: bool, saved_bytes: u64) -> RetryVerdict {
    if blocked {
        return RetryVerdict::Blocked;
    }
    if offline && saved_bytes == 0 {
        return RetryVerdict::Offline;
    }
    if tries >= MAX_TRIES {
        return RetryVerdict::GiveUp;
    }
    RetryVerdict::Wait {
        attempt: tries + 1,
        wait_ms: FIRST_BACKOFF_MS * f64::from(1u32 << tries.saturating_sub(1).min(4)),
    }
}

/// Counts failures in a row; a saved chunk starts the count again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tries {
    count: u32,
}

impl Tries {
    /// One more failure; `progressed` when chunks were saved since the last attempt.
    pub fn failed(&mut self, progressed: bool) -> u32 {
        if progressed {
            self.count = 0;
        }
        self.count += 1;
        self.count
    }
}

/// The hub changed the file under us at most once per download; the second time is
/// [`super::DownloadError::Unstable`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    count: u32,
}

impl Changes {
    /// Records a change; `false` once there were too many.
    pub fn changed(&mut self) -> bool {
        self.count += 1;
        self.count <= 1
    }
}

/// Which stored chunks a resumed download keeps: those at an index of `layout` with its
/// exact length. Returns the chunks by index and the indices to delete.
pub fn resume_plan<B>(
    layout: &ChunkLayout,
    stored: Vec<StoredChunk<B>>,
) -> (Vec<Option<StoredChunk<B>>>, Vec<u64>) {
    let mut present: Vec<Option<StoredChunk<B>>> = std::iter::repeat_with(|| None)
        .take(layout.count() as usize)
        .collect();
    let mut delete = Vec::new();
    for chunk in stored {
        let fits = chunk.len == layout.len_of(chunk.index);
        match present.get_mut(chunk.index as usize) {
            Some(slot) if fits => *slot = Some(chunk),
            _ => delete.push(chunk.index),
        }
    }
    (present, delete)
}

/// Whether a chunk read back from storage is the one we stored.
pub fn chunk_intact(recorded_sha_hex: &str, recorded_len: u64, sha: &[u8; 32], len: u64) -> bool {
    recorded_len == len && parse_hex32(recorded_sha_hex) == Some(*sha)
}

/// Whether the whole file's hash is the published one (`expected` in hex, any case).
pub fn whole_file_matches(expected_hex: &str, got: &[u8; 32]) -> bool {
    parse_hex32(expected_hex) == Some(*got)
}

/// What a failed check of the complete file (hash or header) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyVerdict {
    /// Drop every chunk and fetch the file once more.
    RefetchOnce,
    /// It failed after a refetch already: a hub serving a corrupt file will not heal.
    Corrupt,
}

pub fn after_bad_file(already_refetched: bool) -> VerifyVerdict {
    if already_refetched {
        VerifyVerdict::Corrupt
    } else {
        VerifyVerdict::RefetchOnce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "content-range" => h.content_range = v,
                "content-length" => h.content_length = v,
                "etag" => h.etag = v,
                "x-linked-etag" => h.x_linked_etag = v,
                _ => h.x_linked_size = v,
            }
        }
        h
    }

    #[test]
    fn statuses() {
        use StatusVerdict::*;
        assert_eq!(classify_status(WEIGHTS_FILE, 404), AskForPytorch);
        assert_eq!(classify_status("config.json", 404), NotFound);
        assert_eq!(classify_status(WEIGHTS_FILE, 410), NotFound);
        assert_eq!(classify_status("config.json", 401), Refused);
        assert_eq!(classify_status("config.json", 403), Refused);
        assert_eq!(classify_status(WEIGHTS_FILE, 416), Changed);
        for s in [408, 425, 429, 500, 502, 503, 599] {
            assert_eq!(classify_status(WEIGHTS_FILE, s), Transient, "{s}");
        }
        for s in [300, 400, 418, 451] {
            assert_eq!(classify_status(WEIGHTS_FILE, s), Other, "{s}");
        }
    }

    #[test]
    fn size_comes_from_content_range_then_length_then_linked_size() {
        let both = h(&[
            ("content-range", "bytes 0-9/1000"),
            ("content-length", "10"),
        ]);
        assert_eq!(size_from_headers(&both), Some(1000));
        // A Content-Range that does not start at 0, or without a total, says nothing.
        let odd = h(&[("content-range", "bytes 5-9/1000"), ("content-length", "5")]);
        assert_eq!(size_from_headers(&odd), Some(5));
        let star = h(&[("content-range", "bytes 0-9/*"), ("x-linked-size", "77")]);
        assert_eq!(size_from_headers(&star), Some(77));
        assert_eq!(size_from_headers(&h(&[("content-length", "x")])), None);
        assert_eq!(size_from_headers(&Headers::default()), None);
    }

    #[test]
    fn the_published_hash_prefers_x_linked_etag() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let both = h(&[
            ("x-linked-etag", &format!("\"{a}\"")),
            ("etag", &format!("\"{b}\"")),
        ]);
        assert_eq!(expected_sha256(&both), Some([0xaa; 32]));
        let git = h(&[
            ("x-linked-etag", "\"0123456789\""),
            ("etag", &format!("W/\"{b}\"")),
        ]);
        assert_eq!(expected_sha256(&git), Some([0xbb; 32]));
        assert_eq!(expected_sha256(&h(&[("etag", "\"abc\"")])), None);
    }

    #[test]
    fn entity_tags() {
        assert!(!etag_changed(Some("\"a\""), Some("W/\"a\"")));
        assert!(etag_changed(Some("\"a\""), Some("\"b\"")));
        assert!(!etag_changed(None, Some("\"b\"")));
        assert!(!etag_changed(Some("\"a\""), None));
    }

    #[test]
    fn ranged_answers() {
        let l = ChunkLayout::new(100, 10);
        let run = 3..5;
        let ok = h(&[("content-range", "bytes 30-49/100"), ("etag", "\"e\"")]);
        assert_eq!(
            ranged_answer(206, &ok, &l, &run, Some("\"e\"")),
            RangedVerdict::Use { skip: 0 }
        );
        assert_eq!(
            ranged_answer(206, &ok, &l, &run, Some("\"f\"")),
            RangedVerdict::Changed
        );
        let moved = h(&[("content-range", "bytes 31-49/100")]);
        assert_eq!(
            ranged_answer(206, &moved, &l, &run, None),
            RangedVerdict::Changed
        );
        let resized = h(&[("content-range", "bytes 30-49/120")]);
        assert_eq!(
            ranged_answer(206, &resized, &l, &run, None),
            RangedVerdict::Changed
        );
        // Without Content-Range (not exposed by CORS) the length decides.
        let len_ok = h(&[("content-length", "20")]);
        assert_eq!(
            ranged_answer(206, &len_ok, &l, &run, None),
            RangedVerdict::Use { skip: 0 }
        );
        let len_bad = h(&[("content-length", "21")]);
        assert_eq!(
            ranged_answer(206, &len_bad, &l, &run, None),
            RangedVerdict::Changed
        );
        assert_eq!(
            ranged_answer(206, &Headers::default(), &l, &run, None),
            RangedVerdict::Use { skip: 0 }
        );
        // Range ignored: the whole file, of which the first 30 bytes are skipped.
        let whole = h(&[("content-length", "100")]);
        assert_eq!(
            ranged_answer(200, &whole, &l, &run, None),
            RangedVerdict::Use { skip: 30 }
        );
        let other = h(&[("content-length", "99")]);
        assert_eq!(
            ranged_answer(200, &other, &l, &run, None),
            RangedVerdict::Changed
        );
        assert_eq!(
            ranged_answer(503, &whole, &l, &run, None),
            RangedVerdict::Status(503)
        );
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let waits: Vec<RetryVerdict> = (1..=5).map(|t| after_failure(t, false, false, 0)).collect();
        assert_eq!(
            waits,
            vec![
                RetryVerdict::Wait {
                    attempt: 2,
                    wait_ms: 1000.0
                },
                RetryVerdict::Wait {
                    attempt: 3,
                    wait_ms: 2000.0
                },
                RetryVerdict::Wait {
                    attempt: 4,
                    wait_ms: 4000.0
                },
                RetryVerdict::Wait {
                    attempt: 5,
                    wait_ms: 8000.0
                },
                RetryVerdict::GiveUp,
            ]
        );
        assert_eq!(after_failure(1, true, false, 0), RetryVerdict::Blocked);
        assert_eq!(after_failure(1, false, true, 0), RetryVerdict::Offline);
        // Offline with something saved: keep trying (the connection may come back).
        assert!(matches!(
            after_failure(1, false, true, 10),
            RetryVerdict::Wait { .. }
        ));
    }

    #[test]
    fn a_saved_chunk_restarts_the_count_and_a_second_change_is_too_many() {
        let mut t = Tries::default();
        assert_eq!(
            (t.failed(false), t.failed(false), t.failed(false)),
            (1, 2, 3)
        );
        assert_eq!(t.failed(true), 1);
        let mut c = Changes::default();
        assert!(c.changed());
        assert!(!c.changed());
    }

    fn stored(index: u64, len: u64) -> StoredChunk<()> {
        StoredChunk {
            index,
            blob: (),
            sha256: String::new(),
            len,
        }
    }

    #[test]
    fn resume_keeps_chunks_that_fit_the_layout() {
        let l = ChunkLayout::new(25, 10);
        let (present, delete) = resume_plan(
            &l,
            vec![stored(0, 10), stored(1, 9), stored(2, 5), stored(3, 10)],
        );
        let kept: Vec<Option<u64>> = present
            .iter()
            .map(|c| c.as_ref().map(|c| c.index))
            .collect();
        assert_eq!(kept, vec![Some(0), None, Some(2)]);
        assert_eq!(delete, vec![1, 3]);
    }

    #[test]
    fn verification_decisions() {
        let sha = [0xab; 32];
        assert!(chunk_intact(&"ab".repeat(32), 4, &sha, 4));
        assert!(chunk_intact(&"AB".repeat(32), 4, &sha, 4));
        assert!(!chunk_intact(&"ab".repeat(32), 4, &sha, 5));
        assert!(!chunk_intact(&"ac".repeat(32), 4, &sha, 4));
        assert!(whole_file_matches(&"AB".repeat(32), &sha));
        assert!(!whole_file_matches("xyz", &sha));
        assert_eq!(after_bad_file(false), VerifyVerdict::RefetchOnce);
        assert_eq!(after_bad_file(true), VerifyVerdict::Corrupt);
    }
}
