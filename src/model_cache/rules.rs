//! The download's decisions, each a plain function of what was seen: how an HTTP status is
//! taken, whether a ranged answer is the file we were downloading (entity tag, published
//! SHA-256 and size), the file's size and published SHA-256 from an answer's headers and
//! whether that size is believable, when a silent connection counts as stalled, when to
//! retry and how long to wait, which stored chunks a resumed download keeps, and what a
//! failed verification leads to.
//!
//! Nothing here does I/O; the engine ([`super::download`]) asks and acts. Reference:
//! RFC 9110 (status codes, Range, Content-Range, entity tags) and huggingface_hub's
//! `hf_hub_download` (`X-Linked-Etag`, `X-Linked-Size`).

use std::ops::Range;

use super::chunker::{ChunkLayout, ContentRange};
use super::store::{FileManifest, StoredChunk};
use crate::hub::{parse_hex32, sha256_from_etag, WEIGHTS_FILE};

/// Consecutive failed attempts before giving up and showing Retry.
pub const MAX_TRIES: u32 = 5;
/// The first backoff; it doubles with each failure (1, 2, 4, 8 s).
pub const FIRST_BACKOFF_MS: f64 = 1000.0;
/// Progress reports at most this often.
pub const PROGRESS_EVERY_MS: f64 = 120.0;
/// A connection that sends nothing (no answer, or no byte of its body) for this long is
/// given up and the download resumed from its last stored chunk. huggingface_hub waits
/// 10 s by default; a little more here, since a stall costs only a Range request.
pub const STALL_MS: f64 = 15_000.0;
/// The largest weights file believed. The largest CLIP checkpoints in the hub layout
/// (ViT-bigG/14 in f32) are about 10 GB; the page could not hold more anyway. A size above
/// this is a lying or broken hub, refused before anything is allocated for it.
pub const MAX_WEIGHTS_BYTES: u64 = 16 << 30;
/// The largest JSON file believed (CLIP's tokenizer.json is 2-4 MB; multilingual ones
/// about 20 MB).
pub const MAX_SMALL_BYTES: u64 = 64 << 20;
/// A file is cut into at most this many chunks: a larger chunk size is used rather than
/// more chunks (bounds the bookkeeping a stored manifest can ask for).
pub const MAX_CHUNKS: u64 = 1 << 16;

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

/// Whether `size_bytes` is believable for `file`: `Err(limit)` when it is larger than any
/// such file of a CLIP checkpoint could be.
pub fn believable_size(file: &str, size_bytes: u64) -> Result<(), u64> {
    let limit = if file == WEIGHTS_FILE {
        MAX_WEIGHTS_BYTES
    } else {
        MAX_SMALL_BYTES
    };
    if size_bytes > limit {
        Err(limit)
    } else {
        Ok(())
    }
}

/// The chunk size for a file of `size_bytes` when `wanted` was asked for: `wanted`, or
/// larger when it would cut the file into more than [`MAX_CHUNKS`] chunks.
pub fn chunk_bytes(size_bytes: u64, wanted: u64) -> u64 {
    wanted.max(1).max(size_bytes.div_ceil(MAX_CHUNKS))
}

/// Whether a stored manifest can be resumed: a believable size, at most [`MAX_CHUNKS`]
/// chunks. Anything else (written by a broken hub or an older version) is started over.
pub fn manifest_resumable(file: &str, m: &FileManifest) -> bool {
    believable_size(file, m.size_bytes).is_ok()
        && ChunkLayout::new(m.size_bytes, m.chunk_bytes).count() <= MAX_CHUNKS
}

/// Whether two manifests describe the same file on the hub: the same size, entity tag
/// (when both have one) and published SHA-256 (when both have one). A verification that
/// fails for the same file means corrupt bytes; for another file, that the hub changed it.
pub fn same_file(a: &FileManifest, b: &FileManifest) -> bool {
    let sha = match (a.sha256.as_deref(), b.sha256.as_deref()) {
        (Some(x), Some(y)) => parse_hex32(x) == parse_hex32(y),
        _ => true,
    };
    a.size_bytes == b.size_bytes && !etag_changed(a.etag.as_deref(), b.etag.as_deref()) && sha
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

/// Whether the answer says the file is another one than `started` describes: its entity
/// tag, its published SHA-256 (`X-Linked-Etag`) or its `X-Linked-Size` differ. Each is
/// compared only when both sides have it.
pub fn answer_changed(started: &FileManifest, h: &Headers) -> bool {
    let sha = match (
        started.sha256.as_deref().and_then(parse_hex32),
        expected_sha256(h),
    ) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    let size = h
        .x_linked_size
        .as_deref()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n != started.size_bytes);
    etag_changed(started.etag.as_deref(), h.etag.as_deref()) || sha || size
}

pub fn ranged_answer(
    status: u16,
    h: &Headers,
    layout: &ChunkLayout,
    run: &Range<u64>,
    started: &FileManifest,
) -> RangedVerdict {
    let bytes = layout.bytes_of(run);
    let changed = answer_changed(started, h);
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

/// After the `tries`-th failure in a row; `retry_after_ms`: what the hub's `Retry-After`
/// asked for (see [`retry_after_ms`]), waited instead of a shorter backoff.
pub fn after_failure(
    tries: u32,
    blocked: bool,
    offline: bool,
    saved_bytes: u64,
    retry_after_ms: Option<f64>,
) -> RetryVerdict {
    if blocked {
        return RetryVerdict::Blocked;
    }
    if offline && saved_bytes == 0 {
        return RetryVerdict::Offline;
    }
    if tries >= MAX_TRIES {
        return RetryVerdict::GiveUp;
    }
    let backoff = FIRST_BACKOFF_MS * f64::from(1u32 << tries.saturating_sub(1).min(4));
    RetryVerdict::Wait {
        attempt: tries + 1,
        wait_ms: backoff.max(retry_after_ms.unwrap_or(0.0).min(MAX_RETRY_AFTER_MS)),
    }
}

/// The longest `Retry-After` honoured: a hub asking for more is waited this long (the
/// attempt after may meet another 503 and its own `Retry-After`).
pub const MAX_RETRY_AFTER_MS: f64 = 60_000.0;

/// A `Retry-After` header's wait in milliseconds from `now_ms` (Unix time): delay-seconds
/// (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`; a date past is 0), bounded
/// by [`MAX_RETRY_AFTER_MS`]. `None` for anything else.
pub fn retry_after_ms(value: &str, now_ms: f64) -> Option<f64> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<f64>().ok()? * 1000.0
    } else {
        http_date_ms(value)? - now_ms
    };
    Some(wait.clamp(0.0, MAX_RETRY_AFTER_MS))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the form HTTP servers send) as Unix
/// milliseconds.
fn http_date_ms(value: &str) -> Option<f64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else {
        return None;
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = crate::index::filters::days_from_civil(year, month, day);
    Some(((days * 86_400 + h * 3600 + m * 60 + sec) * 1000) as f64)
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

    fn started(etag: Option<&str>, sha: Option<&str>) -> FileManifest {
        FileManifest {
            url: String::new(),
            size_bytes: 100,
            etag: etag.map(str::to_owned),
            sha256: sha.map(str::to_owned),
            chunk_bytes: 10,
            state: crate::model_cache::store::FileState::Downloading,
            refetched: false,
        }
    }

    #[test]
    fn ranged_answers() {
        let none = started(None, None);
        let l = ChunkLayout::new(100, 10);
        let run = 3..5;
        let ok = h(&[("content-range", "bytes 30-49/100"), ("etag", "\"e\"")]);
        assert_eq!(
            ranged_answer(206, &ok, &l, &run, &started(Some("\"e\""), None)),
            RangedVerdict::Use { skip: 0 }
        );
        assert_eq!(
            ranged_answer(206, &ok, &l, &run, &started(Some("\"f\""), None)),
            RangedVerdict::Changed
        );
        let moved = h(&[("content-range", "bytes 31-49/100")]);
        assert_eq!(
            ranged_answer(206, &moved, &l, &run, &none),
            RangedVerdict::Changed
        );
        let resized = h(&[("content-range", "bytes 30-49/120")]);
        assert_eq!(
            ranged_answer(206, &resized, &l, &run, &none),
            RangedVerdict::Changed
        );
        // Without Content-Range (not exposed by CORS) the length decides.
        let len_ok = h(&[("content-length", "20")]);
        assert_eq!(
            ranged_answer(206, &len_ok, &l, &run, &none),
            RangedVerdict::Use { skip: 0 }
        );
        let len_bad = h(&[("content-length", "21")]);
        assert_eq!(
            ranged_answer(206, &len_bad, &l, &run, &none),
            RangedVerdict::Changed
        );
        assert_eq!(
            ranged_answer(206, &Headers::default(), &l, &run, &none),
            RangedVerdict::Use { skip: 0 }
        );
        // Range ignored: the whole file, of which the first 30 bytes are skipped.
        let whole = h(&[("content-length", "100")]);
        assert_eq!(
            ranged_answer(200, &whole, &l, &run, &none),
            RangedVerdict::Use { skip: 30 }
        );
        let other = h(&[("content-length", "99")]);
        assert_eq!(
            ranged_answer(200, &other, &l, &run, &none),
            RangedVerdict::Changed
        );
        assert_eq!(
            ranged_answer(503, &whole, &l, &run, &none),
            RangedVerdict::Status(503)
        );
    }

    #[test]
    fn an_answer_for_another_file_is_a_change_even_with_the_same_size_and_no_etag() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let l = ChunkLayout::new(100, 10);
        let run = 3..5;
        let was_a = started(None, Some(&a));
        // The published hash moved: the same bytes count, another file.
        let now_b = h(&[
            ("content-range", "bytes 30-49/100"),
            ("x-linked-etag", &format!("\"{b}\"")),
        ]);
        assert!(answer_changed(&was_a, &now_b));
        assert_eq!(
            ranged_answer(206, &now_b, &l, &run, &was_a),
            RangedVerdict::Changed
        );
        let still_a = h(&[
            ("content-range", "bytes 30-49/100"),
            ("x-linked-etag", &format!("\"{}\"", a.to_uppercase())),
        ]);
        assert_eq!(
            ranged_answer(206, &still_a, &l, &run, &was_a),
            RangedVerdict::Use { skip: 0 }
        );
        // X-Linked-Size says another size even where Content-Range is hidden.
        let resized = h(&[("content-length", "20"), ("x-linked-size", "101")]);
        assert!(answer_changed(&was_a, &resized));
        assert!(!answer_changed(
            &was_a,
            &h(&[("content-length", "20"), ("x-linked-size", "100")])
        ));
        // Nothing to compare: not a change.
        assert!(!answer_changed(&started(None, None), &now_b));
    }

    #[test]
    fn sizes_beyond_any_checkpoint_are_not_believed_and_chunks_are_bounded() {
        assert_eq!(believable_size(WEIGHTS_FILE, MAX_WEIGHTS_BYTES), Ok(()));
        assert_eq!(
            believable_size(WEIGHTS_FILE, MAX_WEIGHTS_BYTES + 1),
            Err(MAX_WEIGHTS_BYTES)
        );
        assert_eq!(
            believable_size("tokenizer.json", 1 << 40),
            Err(MAX_SMALL_BYTES)
        );
        assert_eq!(chunk_bytes(1000, 256), 256);
        assert_eq!(
            chunk_bytes(MAX_WEIGHTS_BYTES, 1024),
            MAX_WEIGHTS_BYTES / MAX_CHUNKS
        );
        assert_eq!(chunk_bytes(0, 0), 1);
        let mut m = started(None, None);
        assert!(manifest_resumable(WEIGHTS_FILE, &m));
        m.size_bytes = u64::MAX;
        assert!(!manifest_resumable(WEIGHTS_FILE, &m));
        m.size_bytes = MAX_WEIGHTS_BYTES;
        m.chunk_bytes = 1;
        assert!(!manifest_resumable(WEIGHTS_FILE, &m));
    }

    #[test]
    fn the_same_file_is_known_by_size_tag_and_hash() {
        let a = "a".repeat(64);
        let one = started(Some("\"x\""), Some(&a));
        assert!(same_file(&one, &one.clone()));
        let mut other = one.clone();
        other.sha256 = Some("b".repeat(64));
        assert!(!same_file(&one, &other));
        let mut other = one.clone();
        other.size_bytes += 1;
        assert!(!same_file(&one, &other));
        let mut other = one.clone();
        other.etag = Some("W/\"y\"".into());
        assert!(!same_file(&one, &other));
        // What one side does not know does not tell them apart.
        let mut unknown = one.clone();
        unknown.etag = None;
        unknown.sha256 = None;
        assert!(same_file(&one, &unknown));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_within_a_bound() {
        assert_eq!(retry_after_ms("30", 0.0), Some(30_000.0));
        assert_eq!(retry_after_ms(" 0 ", 5.0), Some(0.0));
        assert_eq!(retry_after_ms("99999999", 0.0), Some(MAX_RETRY_AFTER_MS));
        // 2026-10-21 07:28:00 UTC is 1_792_567_680 s after the epoch.
        let date = "Wed, 21 Oct 2026 07:28:00 GMT";
        let at = 1_792_567_680_000.0;
        assert_eq!(retry_after_ms(date, at - 4500.0), Some(4500.0));
        assert_eq!(retry_after_ms(date, at + 1.0), Some(0.0));
        assert_eq!(retry_after_ms(date, 0.0), Some(MAX_RETRY_AFTER_MS));
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Wed, 21 Oct 2026 07:28:00 PST",
            "Wed, 32 Oct 2026 07:28:00 GMT",
        ] {
            assert_eq!(retry_after_ms(bad, 0.0), None, "{bad}");
        }
        // A shorter Retry-After than the backoff does not shorten it.
        let wait = |after| match after_failure(3, false, false, 0, after) {
            RetryVerdict::Wait { wait_ms, .. } => wait_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(Some(10.0)), 4000.0);
        assert_eq!(wait(Some(9000.0)), 9000.0);
        assert_eq!(wait(None), 4000.0);
    }

    #[test]
    fn retries_back_off_then_give_up() {
        let waits: Vec<RetryVerdict> = (1..=5)
            .map(|t| after_failure(t, false, false, 0, None))
            .collect();
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
        assert_eq!(
            after_failure(1, true, false, 0, None),
            RetryVerdict::Blocked
        );
        assert_eq!(
            after_failure(1, false, true, 0, None),
            RetryVerdict::Offline
        );
        // Offline with something saved: keep trying (the connection may come back).
        assert!(matches!(
            after_failure(1, false, true, 10, None),
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
