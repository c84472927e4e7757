//! Writes an export archive (`index::export`) of synthetic photos with planted
//! near-duplicate pairs, for the model of another archive: the page's browser test of the
//! duplicate finder at 20,000 photos imports it (tests/e2e/search.e2e.mjs, s5).
//!
//! `cargo run --release --example synthetic_archive -- MODEL_ARCHIVE ROWS PAIRS OUT`
//! prints `{"rows", "dim", "model", "pairs": [[PATH, PATH]...]}`. Rows lean on a shared
//! direction as CLIP photos do (cosine about 0.5 between unrelated rows); each planted
//! pair is at about 0.98.

use clipseek::index::dupes::synthetic::planted;
use clipseek::index::export::{export, import};
use clipseek::index::{EmbeddingIndex, EntryMeta};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, rows, pairs, out] = args.as_slice() else {
        return Err("usage: synthetic_archive MODEL_ARCHIVE ROWS PAIRS OUT".into());
    };
    let model = import(&std::fs::read(from)?, None)?;
    let (model_id, dim) = (model.index.model_id().to_owned(), model.index.dim());
    let (rows, pairs): (usize, usize) = (rows.parse()?, pairs.parse()?);
    let data = planted(rows, dim, pairs, 2, 0.99, 1.0, 20_000);
    let mut index = EmbeddingIndex::new(model_id.clone(), dim);
    let path = |i: usize| format!("synthetic/{:03}/{i:05}.jpg", i / 1000);
    for (i, row) in data.matrix.chunks_exact(dim).enumerate() {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let meta = EntryMeta {
            path: path(i),
            size_bytes: 1000 + i as u64,
            modified_ms: 1_600_000_000_000 + i as i64 * 1000,
            content_hash: hash,
            taken_ms: None,
        };
        index.upsert(meta, row)?;
    }
    std::fs::write(out, export(&index, model.revision.as_deref())?)?;
    let planted: Vec<Vec<String>> = data
        .groups
        .iter()
        .map(|g| g.iter().map(|&i| path(i)).collect())
        .collect();
    let report = serde_json::json!({
        "rows": rows, "dim": dim, "model": model_id, "pairs": planted,
    });
    println!("{report}");
    Ok(())
}
