//! The model hub's protocol without any I/O: where a model's files live
//! (`{hub}/{model}/resolve/{revision}/{file}`), what the page's URL parameters may say,
//! how large the chunks of a file are, how the hub's entity tags and API carry a file's
//! SHA-256, and the throughput and size arithmetic of progress lines. How a file is cut
//! into chunks lives in `model_cache::chunker` (re-exported here), what a download does in
//! `model_cache`.
//!
//! It must not fetch, store or know about the browser; it is tested natively here. Reference: the Hugging Face hub's
//! `resolve` endpoint as `huggingface_hub.hf_hub_url` builds it (revision percent-encoded,
//! so `refs/pr/15` becomes `refs%2Fpr%2F15`) and RFC 9110 for ranges and entity tags.

pub use crate::model_cache::chunker::{range_header, ChunkLayout, ContentRange};

/// The public hub.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// OpenAI's CLIP ViT-B/32.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";
/// The revision of [`DEFAULT_MODEL`] that publishes `model.safetensors` (the main branch
/// has only `pytorch_model.bin`); candle's CLIP example pins the same one.
pub const DEFAULT_REVISION: &str = "refs/pr/15";
/// Largest chunk of the model cache: a 605 MB ViT-B/32 is ~75 records, and a dropped
/// connection loses at most this much.
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;
/// Smallest chunk chosen automatically (smaller files are kept whole).
pub const MIN_AUTO_CHUNK_BYTES: u64 = 256 << 10;
/// Automatic chunks aim at no fewer than this many per file, so that what a dropped
/// connection loses stays a small part of any file.
pub const MIN_AUTO_CHUNKS: u64 = 64;
/// Smallest and largest chunk sizes `chunk_kb` may ask for.
pub const MIN_CHUNK_BYTES: u64 = 1 << 10;
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// The small JSON files, fetched whole.
pub const JSON_FILES: [&str; 3] = ["config.json", "preprocessor_config.json", "tokenizer.json"];
/// The weights, fetched in chunks with Range requests.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The file some checkpoints publish instead of [`WEIGHTS_FILE`]; we cannot read it.
pub const PYTORCH_FILE: &str = "pytorch_model.bin";

/// A URL parameter that cannot be used, as one plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("The hub address \"{hub}\" is not an http:// or https:// address.")]
    BadHub { hub: String },
    #[error(
        "The model name \"{model}\" is not a hub model name like \"openai/clip-vit-base-patch32\"."
    )]
    BadModel { model: String },
    #[error("The revision \"{revision}\" is not a branch, tag, commit or pull-request ref.")]
    BadRevision { revision: String },
    #[error(
        "chunk_kb must be a whole number of KiB between {min_kb} and {max_kb}, not \"{value}\"."
    )]
    BadChunkSize {
        value: String,
        min_kb: u64,
        max_kb: u64,
    },
}

/// Where the model comes from and how it is chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// Base URL without a trailing slash.
    pub hub: String,
    /// `org/name`.
    pub model: String,
    /// Decoded (`refs/pr/15`); encoded only in URLs.
    pub revision: String,
    /// `chunk_kb` when given; otherwise [`auto_chunk_bytes`] of the file's size.
    pub chunk_bytes: Option<u64>,
}

impl Default for ModelSource {
    fn default() -> Self {
        Self {
            hub: DEFAULT_HUB.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            revision: DEFAULT_REVISION.to_owned(),
            chunk_bytes: None,
        }
    }
}

/// A parameter's trimmed value, `None` when missing or blank.
fn pick(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl ModelSource {
    /// Reads the page's URL parameters (already percent-decoded, as `URLSearchParams`
    /// gives them); a missing or empty parameter takes its default.
    pub fn from_params(
        hub: Option<&str>,
        model: Option<&str>,
        revision: Option<&str>,
        chunk_kb: Option<&str>,
    ) -> Result<Self, SourceError> {
        let mut source = Self::default();
        if let Some(hub) = pick(hub) {
            source.hub = parse_hub(hub)?;
        }
        if let Some(model) = pick(model) {
            if !valid_model(model) {
                return Err(SourceError::BadModel {
                    model: model.to_owned(),
                });
            }
            source.model = model.to_owned();
        }
        if let Some(revision) = pick(revision) {
            if !valid_revision(revision) {
                return Err(SourceError::BadRevision {
                    revision: revision.to_owned(),
                });
            }
            source.revision = revision.to_owned();
        }
        if let Some(value) = pick(chunk_kb) {
            source.chunk_bytes = Some(parse_chunk_kb(value)?);
        }
        Ok(source)
    }

    /// Names this model in the cache: the same hub, model and revision share one copy
    /// (the chunk size is not part of it; a download keeps the size it started with).
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.hub, self.model, self.revision)
    }

    /// `{hub}/{model}/resolve/{revision}/{file}` with the revision percent-encoded.
    pub fn url(&self, file: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.hub,
            self.model,
            encode_component(&self.revision),
            file
        )
    }

    /// The hub API's description of the repository at this revision, with each LFS file's
    /// SHA-256 (`?blobs=true`): where the hash comes from when the file's own answer hides
    /// it (the real hub redirects LFS files to a CDN whose headers do not carry it).
    pub fn info_url(&self) -> String {
        format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.hub,
            self.model,
            encode_component(&self.revision)
        )
    }

    /// The chunk size for a file of `size_bytes`.
    pub fn chunk_bytes_for(&self, size_bytes: u64) -> u64 {
        self.chunk_bytes
            .unwrap_or_else(|| auto_chunk_bytes(size_bytes))
    }

    /// Whether the hub is the loopback interface (a local mirror or the test hub).
    pub fn is_loopback(&self) -> bool {
        let host = self
            .hub
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let host = host.split(['/', ':']).next().unwrap_or_default();
        host == "127.0.0.1" || host == "localhost"
    }
}

/// The chunk size for a file of `size_bytes`: `size / 64` rounded up to 64 KiB, between
/// 256 KiB and 8 MiB. The 605 MB ViT-B/32 gets 8 MiB chunks (76 records); a 6.5 MB test
/// model 256 KiB ones, so a cut connection costs it a few percent rather than everything.
pub fn auto_chunk_bytes(size_bytes: u64) -> u64 {
    let step = 64 << 10;
    (size_bytes.div_ceil(MIN_AUTO_CHUNKS).div_ceil(step) * step)
        .clamp(MIN_AUTO_CHUNK_BYTES, DEFAULT_CHUNK_BYTES)
}

/// An http(s) base URL without a trailing slash, query, fragment or quotes.
fn parse_hub(hub: &str) -> Result<String, SourceError> {
    let trimmed = hub.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty()
            && !r.contains(['?', '#', ' ', '"', '\'', '<', '>', '\\'])
            && !r.starts_with('/')
    });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(SourceError::BadHub {
            hub: hub.to_owned(),
        })
    }
}

/// A branch, tag, commit or ref: `[A-Za-z0-9-_./]`, no empty or `..` segment.
fn valid_revision(revision: &str) -> bool {
    revision.len() <= 256
        && revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !revision
            .split('/')
            .any(|part| part.is_empty() || part == "..")
}

/// `chunk_kb` in bytes, within [`MIN_CHUNK_BYTES`]..=[`MAX_CHUNK_BYTES`].
fn parse_chunk_kb(value: &str) -> Result<u64, SourceError> {
    value
        .parse::<u64>()
        .ok()
        .and_then(|kb| kb.checked_mul(1024))
        .filter(|b| (MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(b))
        .ok_or_else(|| SourceError::BadChunkSize {
            value: value.to_owned(),
            min_kb: MIN_CHUNK_BYTES / 1024,
            max_kb: MAX_CHUNK_BYTES / 1024,
        })
}

fn valid_model(model: &str) -> bool {
    let parts: Vec<&str> = model.split('/').collect();
    (1..=2).contains(&parts.len())
        && model.len() <= 200
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The SHA-256 an entity tag carries, if it is one: the hub's `X-Linked-Etag` (and the
/// `ETag` of LFS files) is the file's SHA-256 in hex, quoted, possibly weak (`W/`).
/// Git blob ids (40 hex digits) and anything else give `None`.
pub fn sha256_from_etag(etag: &str) -> Option<[u8; 32]> {
    let tag = etag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let tag = tag.trim_matches('"');
    parse_hex32(tag)
}

/// The SHA-256 the hub API's model info (see [`ModelSource::info_url`]) publishes for
/// `file`: `siblings[].lfs.sha256` of the entry whose `rfilename` is `file`. `None` when the
/// JSON is not such a document, the file is not listed, or it is not in LFS.
pub fn published_sha256(info_json: &[u8], file: &str) -> Option<[u8; 32]> {
    let info: serde_json::Value = serde_json::from_slice(info_json).ok()?;
    info.get("siblings")?
        .as_array()?
        .iter()
        .find(|s| s.get("rfilename").and_then(|n| n.as_str()) == Some(file))?
        .get("lfs")?
        .get("sha256")?
        .as_str()
        .and_then(parse_hex32)
}

/// 64 hex digits → 32 bytes.
pub fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// 32 bytes → 64 lowercase hex digits.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Throughput over a sliding window, for "12.3 MB/s, about 40 s left" lines. Feed it
/// `(time_ms, total_done)` samples; it keeps the last `window_ms`.
#[derive(Debug, Clone)]
pub struct Rate {
    window_ms: f64,
    samples: std::collections::VecDeque<(f64, f64)>,
}

impl Rate {
    pub fn new(window_ms: f64) -> Self {
        Self {
            window_ms,
            samples: Default::default(),
        }
    }

    /// Records that `done` units were complete at `now_ms`.
    pub fn record(&mut self, now_ms: f64, done: f64) {
        self.samples.push_back((now_ms, done));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now_ms - t > self.window_ms)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets the history (after a pause, so the paused time does not count).
    pub fn reset(&mut self) {
        self.samples.clear();
    }

    /// Units per second, once there is at least a quarter second of history.
    pub fn per_second(&self) -> Option<f64> {
        let (t0, d0) = *self.samples.front()?;
        let (t1, d1) = *self.samples.back()?;
        let dt = t1 - t0;
        (dt >= 250.0 && d1 >= d0).then(|| (d1 - d0) * 1000.0 / dt)
    }

    /// Seconds until `remaining` more units are done at the current rate.
    pub fn eta_seconds(&self, remaining: f64) -> Option<f64> {
        let rate = self.per_second()?;
        (rate > 0.0).then(|| remaining.max(0.0) / rate)
    }
}

/// "1.2 GB", "340 MB", "12 KB" (decimal units, as storage is sold).
pub fn format_bytes(bytes: f64) -> String {
    let bytes = bytes.max(0.0);
    if bytes >= 1e9 {
        format!("{:.2} GB", bytes / 1e9)
    } else if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else if bytes >= 1e3 {
        format!("{:.0} KB", bytes / 1e3)
    } else {
        format!("{bytes:.0} bytes")
    }
}

/// "about 3 min 20 s", "about 40 s", "under a second".
pub fn format_eta(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "a while".to_owned();
    }
    let s = seconds.round() as u64;
    if s == 0 {
        "under a second".to_owned()
    } else if s < 60 {
        format!("about {s} s")
    } else if s < 3600 {
        format!("about {} min {} s", s / 60, s % 60)
    } else {
        format!("about {} h {} min", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_source_points_at_the_revision_with_safetensors(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let s = ModelSource::from_params(None, None, None, None)?;
        assert_eq!(
            s.url("model.safetensors"),
            "https://huggingface.co/openai/clip-vit-base-patch32/resolve/refs%2Fpr%2F15/model.safetensors"
        );
        assert_eq!(s.chunk_bytes, None);
        assert_eq!(s.chunk_bytes_for(605_156_652), 8 << 20);
        assert_eq!(s.chunk_bytes_for(6_491_356), 256 << 10);
        assert_eq!(s.chunk_bytes_for(100_000_000), 1_572_864);
        assert!(!s.is_loopback());
        Ok(())
    }

    #[test]
    fn params_override_and_are_checked() -> Result<(), Box<dyn std::error::Error>> {
        let s = ModelSource::from_params(
            Some("http://127.0.0.1:8123/"),
            Some("tests/tiny-clip"),
            Some("main"),
            Some("64"),
        )?;
        assert_eq!(
            s.url("config.json"),
            "http://127.0.0.1:8123/tests/tiny-clip/resolve/main/config.json"
        );
        assert_eq!(s.chunk_bytes, Some(64 * 1024));
        assert_eq!(s.chunk_bytes_for(605_156_652), 64 * 1024);
        assert!(s.is_loopback());
        assert_eq!(s.key(), "http://127.0.0.1:8123|tests/tiny-clip|main");
        // Already-decoded and still-encoded revisions give the same URL.
        let a = ModelSource::from_params(None, None, Some("refs/pr/15"), None)?;
        assert_eq!(a.revision, DEFAULT_REVISION);
        assert!(ModelSource::from_params(Some("ftp://x"), None, None, None).is_err());
        assert!(ModelSource::from_params(Some("javascript:alert(1)"), None, None, None).is_err());
        assert!(ModelSource::from_params(None, Some("../etc"), None, None).is_err());
        assert!(ModelSource::from_params(None, Some("a/b/c"), None, None).is_err());
        assert!(ModelSource::from_params(None, None, Some("a/../b"), None).is_err());
        assert!(ModelSource::from_params(None, None, None, Some("0")).is_err());
        assert!(ModelSource::from_params(None, None, None, Some("x")).is_err());
        // Empty parameters mean "default".
        assert_eq!(
            ModelSource::from_params(Some(""), Some(" "), None, Some(""))?,
            ModelSource::default()
        );
        Ok(())
    }

    #[test]
    fn etags_that_are_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(sha256_from_etag(&format!("\"{hex}\"")), Some([0xaa; 32]));
        assert_eq!(sha256_from_etag(&format!("W/\"{hex}\"")), Some([0xaa; 32]));
        assert_eq!(sha256_from_etag(&hex), Some([0xaa; 32]));
        assert_eq!(sha256_from_etag(&format!("\"{}\"", "a".repeat(40))), None);
        assert_eq!(sha256_from_etag("\"abc-12\""), None);
        assert_eq!(sha256_from_etag(&format!("\"{}\"", "g".repeat(64))), None);
        assert_eq!(to_hex(&[0xaa; 32]), hex);
    }

    #[test]
    fn rate_and_eta() {
        let mut r = Rate::new(5000.0);
        assert_eq!(r.per_second(), None);
        r.record(0.0, 0.0);
        r.record(100.0, 10.0);
        assert_eq!(r.per_second(), None, "too little history");
        r.record(1000.0, 100.0);
        assert_eq!(r.per_second(), Some(100.0));
        assert_eq!(r.eta_seconds(50.0), Some(0.5));
        r.record(10_000.0, 100.0);
        r.record(11_000.0, 200.0);
        // The window dropped the samples older than 5 s (keeping two at least).
        assert_eq!(r.per_second(), Some(100.0));
        assert_eq!(format_eta(200.0), "about 3 min 20 s");
        assert_eq!(format_eta(0.2), "under a second");
        assert_eq!(format_bytes(605_000_000.0), "605.0 MB");
    }

    #[test]
    fn the_api_gives_the_lfs_sha256_of_a_file() {
        let source = ModelSource::from_params(
            Some("http://127.0.0.1:9/"),
            Some("openai/clip-vit-base-patch32"),
            Some("refs/pr/15"),
            None,
        )
        .unwrap_or_default();
        assert_eq!(
            source.info_url(),
            "http://127.0.0.1:9/api/models/openai/clip-vit-base-patch32/revision/refs%2Fpr%2F15?blobs=true"
        );
        let hash = "a".repeat(64);
        let json = format!(
            r#"{{"id":"m","siblings":[{{"rfilename":"config.json","size":4}},
            {{"rfilename":"model.safetensors","size":9,"lfs":{{"size":9,"sha256":"{hash}","pointerSize":134}}}}]}}"#
        );
        assert_eq!(
            published_sha256(json.as_bytes(), "model.safetensors"),
            parse_hex32(&hash)
        );
        assert_eq!(published_sha256(json.as_bytes(), "config.json"), None);
        assert_eq!(published_sha256(json.as_bytes(), "other.bin"), None);
        assert_eq!(
            published_sha256(b"<html>not json</html>", "model.safetensors"),
            None
        );
        assert_eq!(
            published_sha256(
                br#"{"siblings":[{"rfilename":"model.safetensors","lfs":{"sha256":"xyz"}}]}"#,
                "model.safetensors"
            ),
            None
        );
    }
}
