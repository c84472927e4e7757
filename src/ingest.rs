//! What to index from a set of picked or dropped files, without touching any: which files
//! are candidates (by name or first bytes, as the CLI decides), the order they are indexed
//! in (so ties rank as the CLI ranks them), which ones are unchanged since the last time,
//! which index entries disappeared from a re-dropped folder, and how many encoder workers
//! the machine can afford.
//!
//! It must not read files, talk to workers or know about the browser: `page::run` feeds it
//! file names, sizes and dates. Reference: the CLI's `collect`/`walk` (sorted, recursive,
//! `looks_like_image`) in `src/bin/clipseek.rs`, and `EmbeddingIndex::unchanged`.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::index::EmbeddingIndex;

/// File name extensions taken as images without looking at the bytes (the CLI's list).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "dib",
];

/// How many leading bytes [`looks_like_image_bytes`] needs.
pub const SNIFF_BYTES: usize = 16;

/// Does the name end in an image extension?
pub fn has_image_extension(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rsplit_once('.')
        .map(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Do the first bytes look like an image format we know (whatever the name says)?
pub fn looks_like_image_bytes(head: &[u8]) -> bool {
    image::guess_format(head).is_ok()
}

/// Why a file whose first bytes name an image format this build cannot decode (TIFF, and
/// so most camera RAW files, which are TIFF inside; AVIF, HDR, …) is refused without being
/// read whole: the sentence listed beside it, `None` for a decodable format or no image.
/// The page remembers it (`page::refused`), so a re-drop does not read it again.
pub fn refusal_for_head(head: &[u8]) -> Option<String> {
    let format = image::guess_format(head).ok()?;
    if format.reading_enabled() {
        return None;
    }
    let name = format.extensions_str().first().copied().unwrap_or("this");
    Some(format!(
        "clipseek cannot read {} images (camera RAW files are often TIFF inside); save it as JPEG or PNG to index it.",
        name.to_ascii_uppercase()
    ))
}

/// Orders relative paths component by component, as Rust's `Path` (and so the CLI's
/// sorted walk) does: `a/x` before `a-b/x`, although `-` sorts before `/` as text.
pub fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// A file offered for indexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Relative path in the dropped folder (`folder/sub/photo.jpg`), or the bare name.
    pub path: String,
    pub size_bytes: u64,
    pub modified_ms: i64,
}

/// What one drop asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices into the sorted candidates that must be encoded, in indexing order.
    pub encode: Vec<usize>,
    /// How many candidates are already indexed with the same size and date.
    pub unchanged: usize,
    /// Index entries under a re-dropped folder whose file is no longer in it (deleted or
    /// renamed): removed once the run completes.
    pub vanished: Vec<u64>,
}

/// Sorts `candidates` into indexing order (dropping repeated paths, the first kept) and
/// plans the run against `index`. `roots` are the folders dropped whole (the first path
/// component of their files): entries under them that are not among the candidates have
/// vanished. Loose files never make anything vanish.
pub fn plan(index: &EmbeddingIndex, candidates: &mut Vec<Candidate>, roots: &[String]) -> Plan {
    candidates.sort_by(|a, b| path_order(&a.path, &b.path));
    candidates.dedup_by(|a, b| a.path == b.path);
    let mut out = Plan::default();
    for (i, c) in candidates.iter().enumerate() {
        if index
            .unchanged(&c.path, c.size_bytes, c.modified_ms)
            .is_some()
        {
            out.unchanged += 1;
        } else {
            out.encode.push(i);
        }
    }
    let present: HashSet<&str> = candidates.iter().map(|c| c.path.as_str()).collect();
    let prefixes: Vec<String> = roots
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| format!("{r}/"))
        .collect();
    for entry in index.entries() {
        let under_root = prefixes.iter().any(|p| entry.path.starts_with(p.as_str()));
        if under_root && !present.contains(entry.path.as_str()) {
            out.vanished.push(entry.id);
        }
    }
    out
}

/// Memory one vision worker needs for a ViT-B/32-sized vision tower (88 M parameters as
/// f32 plus the wasm heap, activations of a batch and a decoded 12 MP photo).
pub const GB_PER_VIT_B32_WORKER: f64 = 1.5;
/// f32 bytes of the ViT-B/32 vision tower, the unit the budget above is scaled by.
pub const VIT_B32_VISION_BYTES: f64 = 352e6;
/// Most vision workers the page starts on its own.
pub const MAX_AUTO_WORKERS: usize = 4;
/// Most workers `workers=N` may ask for.
pub const MAX_WORKERS: usize = 16;

/// The rule, in words, for the page's tooltip.
pub const WORKER_RULE: &str = "Encoder workers: the number of CPU cores minus one, but no \
more than the device memory divided by 1.5 GB per ViT-B/32-sized worker (scaled for \
larger models), between 1 and 4. Set workers=N in the address to choose.";

/// How many vision workers to run: `min(cores - 1, floor(memory_gb / per_worker_gb))`
/// clamped to `1..=4`, where `per_worker_gb` is [`GB_PER_VIT_B32_WORKER`] scaled up for
/// vision towers larger than ViT-B/32's. Unknown cores count as 2; unknown memory (only
/// Chromium reports `navigator.deviceMemory`, capped at 8) does not limit. `requested`
/// (`workers=N`) wins, clamped to `1..=16`.
pub fn worker_count(
    hardware_concurrency: Option<f64>,
    device_memory_gb: Option<f64>,
    vision_f32_bytes: f64,
    requested: Option<usize>,
) -> usize {
    if let Some(n) = requested {
        return n.clamp(1, MAX_WORKERS);
    }
    let cores = hardware_concurrency
        .filter(|c| c.is_finite() && *c >= 1.0)
        .unwrap_or(2.0);
    let by_cores = (cores - 1.0).floor().max(0.0) as usize;
    let per_worker = GB_PER_VIT_B32_WORKER * (vision_f32_bytes / VIT_B32_VISION_BYTES).max(1.0);
    let by_memory = device_memory_gb
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| (m / per_worker).floor() as usize)
        .unwrap_or(usize::MAX);
    by_cores.min(by_memory).clamp(1, MAX_AUTO_WORKERS)
}

/// Seconds the photo encoders stay loaded after their last work by default: long enough for
/// another drop or a search by photo, short enough to give their memory (a vision tower
/// each, and its GPU device) back soon.
pub const IDLE_RELEASE_S: u32 = 60;

/// The `idle_s` URL parameter (tests shorten it): seconds from 1 to 86400, default
/// [`IDLE_RELEASE_S`].
pub fn idle_release_s(param: Option<&str>) -> Result<u32, String> {
    match param.map(str::trim) {
        None | Some("") => Ok(IDLE_RELEASE_S),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=86_400).contains(&n) => Ok(n),
            _ => Err(format!(
                "idle_s must be a whole number of seconds from 1 to 86400, not \"{v}\"."
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::EntryMeta;

    fn c(path: &str, size: u64, t: i64) -> Candidate {
        Candidate {
            path: path.into(),
            size_bytes: size,
            modified_ms: t,
        }
    }

    #[test]
    fn names_and_bytes() {
        assert!(has_image_extension("a/B.JPG"));
        assert!(has_image_extension("x.webp"));
        assert!(!has_image_extension("notes.txt"));
        assert!(!has_image_extension(".DS_Store"));
        assert!(!has_image_extension("jpg"));
        assert!(!has_image_extension("dir.jpg/readme"));
        assert!(looks_like_image_bytes(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]));
        assert!(looks_like_image_bytes(b"\x89PNG\r\n\x1a\n"));
        assert!(!looks_like_image_bytes(b"hello world"));
        assert!(!looks_like_image_bytes(b""));
    }

    #[test]
    fn a_tiff_or_raw_head_is_refused_by_its_first_bytes_and_a_jpeg_is_not() {
        let tiff_le = [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let tiff_be = [0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        for head in [tiff_le, tiff_be] {
            let why = refusal_for_head(&head);
            assert!(why.as_deref().is_some_and(|w| w.contains("TIF")), "{why:?}");
            // Still taken as an image, so it is listed rather than silently ignored.
            assert!(looks_like_image_bytes(&head));
        }
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1,
        ];
        assert_eq!(refusal_for_head(&jpeg), None);
        assert_eq!(refusal_for_head(b"plain text, no image"), None);
    }

    #[test]
    fn order_is_by_component_like_the_cli() {
        let mut paths = vec!["a-b/x.jpg", "a/y.jpg", "a/b/z.jpg", "B.jpg", "a.jpg"];
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(
            paths,
            ["B.jpg", "a/b/z.jpg", "a/y.jpg", "a-b/x.jpg", "a.jpg"]
        );
    }

    #[test]
    fn plan_skips_unchanged_and_finds_vanished() -> Result<(), Box<dyn std::error::Error>> {
        let mut index = EmbeddingIndex::new("m", 2);
        let meta = |p: &str, size: u64, t: i64| EntryMeta {
            path: p.into(),
            size_bytes: size,
            modified_ms: t,
            content_hash: [0; 32],
            taken_ms: None,
        };
        let kept = index.upsert(meta("f/a.jpg", 1, 1), &[1.0, 0.0])?;
        let gone = index.upsert(meta("f/old.jpg", 1, 1), &[1.0, 0.0])?;
        let elsewhere = index.upsert(meta("g/x.jpg", 1, 1), &[1.0, 0.0])?;
        let mut cands = vec![
            c("f/sub/c.jpg", 3, 3),
            c("f/a.jpg", 1, 1),
            c("f/b.jpg", 2, 2),
            c("f/b.jpg", 2, 2),
        ];
        let p = plan(&index, &mut cands, &["f".to_owned()]);
        let paths: Vec<&str> = cands.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["f/a.jpg", "f/b.jpg", "f/sub/c.jpg"]);
        assert_eq!(p.encode, vec![1, 2]);
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.vanished, vec![gone]);
        assert_ne!(kept, elsewhere);
        // A changed date means encode again; loose files make nothing vanish.
        let mut cands = vec![c("f/a.jpg", 1, 9)];
        let p = plan(&index, &mut cands, &[]);
        assert_eq!(p.encode, vec![0]);
        assert!(p.vanished.is_empty());
        Ok(())
    }

    #[test]
    fn worker_rule() {
        let b32 = VIT_B32_VISION_BYTES;
        assert_eq!(worker_count(Some(8.0), Some(8.0), b32, None), 4);
        assert_eq!(worker_count(Some(4.0), Some(8.0), b32, None), 3);
        assert_eq!(worker_count(Some(8.0), Some(4.0), b32, None), 2);
        assert_eq!(worker_count(Some(2.0), None, b32, None), 1);
        assert_eq!(worker_count(Some(1.0), Some(0.5), b32, None), 1);
        assert_eq!(worker_count(None, None, b32, None), 1);
        assert_eq!(worker_count(Some(16.0), None, b32, None), 4);
        // A ViT-L/14 vision tower (~1.2 GB of f32) needs more memory per worker.
        assert_eq!(worker_count(Some(16.0), Some(8.0), 1.2e9, None), 1);
        // Tiny models are budgeted as ViT-B/32.
        assert_eq!(worker_count(Some(16.0), Some(8.0), 1e6, None), 4);
        assert_eq!(worker_count(Some(2.0), Some(1.0), b32, Some(3)), 3);
        assert_eq!(worker_count(None, None, b32, Some(0)), 1);
        assert_eq!(worker_count(None, None, b32, Some(99)), 16);
    }

    #[test]
    fn idle_release_defaults_to_a_minute_and_refuses_nonsense() {
        assert_eq!(idle_release_s(None), Ok(IDLE_RELEASE_S));
        assert_eq!(idle_release_s(Some(" 5 ")), Ok(5));
        for bad in ["0", "-1", "1.5", "soon", "86401"] {
            let e = idle_release_s(Some(bad)).err().unwrap_or_default();
            assert!(e.contains(bad) && e.contains("idle_s"), "{bad}: {e}");
        }
    }
}
