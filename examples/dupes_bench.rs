//! Times the near-duplicate finder (`index::dupes`) and a compound query's ranking
//! (`index::query`) on synthetic embeddings with planted duplicate groups, and checks that
//! the finder returns exactly the planted groups.
//!
//! `cargo run --release --example dupes_bench [N] [DIM]` (default 50000 x 512). Unrelated
//! rows either spread evenly (`shared 0`) or leaning on one common direction (`shared 1`:
//! cosine about 0.5 between unrelated rows, as CLIP photos are); 500 groups of 4 rows at
//! about 0.98 from each other; threshold 0.95. Text encoding is not included in the query
//! figure (the encoder's cost per text is in BENCHMARKS.md).

use std::time::Instant;

use clipseek::index::dupes::{find_groups, synthetic::planted};
use clipseek::index::{query, EmbeddingIndex, EntryMeta};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let dim: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(512);
    let threshold = 0.95;
    for shared in [0.0, 1.0] {
        let data = planted(n, dim, 500, 4, 0.99, shared, 11);
        let mut want = data.groups.clone();
        want.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.first().cmp(&b.first()))
        });
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let started = Instant::now();
            let found = find_groups(&data.matrix, dim, threshold)?;
            times.push(started.elapsed().as_secs_f64());
            last = Some(found);
        }
        let found = last.ok_or("no run")?;
        times.sort_by(f64::total_cmp);
        println!(
            "duplicates n={n} dim={dim} shared={shared} threshold={threshold}: median {:.3} s \
             (runs {:.3?}), bits {} tables {} pair recall {:.4}, candidate pairs {}, verified \
             pairs {} ({:.5} of all N²/2), groups {} (planted {}), exact: {}",
            times[times.len() / 2],
            times,
            found.stats.plan.bits,
            found.stats.plan.tables,
            found.stats.plan.pair_recall,
            found.stats.candidate_pairs,
            found.stats.verified_pairs,
            found.stats.verified_pairs as f64 / (n as f64 * (n as f64 - 1.0) / 2.0),
            found.groups.len(),
            want.len(),
            found.groups == want
        );
        if found.groups != want {
            return Err("the finder did not return exactly the planted groups".into());
        }

        // A compound query over the same rows: `a + b -c` with three text-like vectors.
        let mut index = EmbeddingIndex::new("bench", dim);
        for (i, row) in data.matrix.chunks_exact(dim).enumerate() {
            index.upsert(
                EntryMeta {
                    path: format!("{i}.jpg"),
                    size_bytes: 0,
                    modified_ms: 0,
                    content_hash: [0; 32],
                    taken_ms: None,
                },
                row,
            )?;
        }
        let parsed = query::parse("golden retriever + beach -2:leash")?;
        let vectors: Vec<Vec<f32>> = (0..3)
            .map(|k| {
                data.matrix
                    .get(k * dim..(k + 1) * dim)
                    .unwrap_or_default()
                    .to_vec()
            })
            .collect();
        let texts = parsed.texts();
        let lookup = |t: &str| {
            texts
                .iter()
                .position(|x| *x == t)
                .and_then(|i| vectors.get(i).cloned())
        };
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let found = query::search(&index, &parsed, lookup, 50)?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            if found.len() != 50.min(n) {
                return Err("wrong number of results".into());
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "compound query (parse done, 3 terms combined, {n} rows ranked, top 50): median {:.2} ms, min {:.2} ms",
            times[times.len() / 2],
            times[0]
        );
    }
    Ok(())
}
