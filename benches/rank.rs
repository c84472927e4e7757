//! Ranking benchmarks: `search` (top-10, cosine) over 10k and 100k random unit-length
//! 512-d embeddings, and `dot` alone on one 512-d pair. Native only; the WASM figures
//! come from the browser bench.

use std::hint::black_box;

use clipseek::index::{dot, EmbeddingIndex, EntryMeta, IndexError};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const DIM: usize = 512;

/// xorshift64*: deterministic data without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next_f32()).collect()
    }
}

fn random_index(count: usize, rng: &mut XorShift) -> Result<EmbeddingIndex, IndexError> {
    let mut index = EmbeddingIndex::new("bench", DIM);
    for i in 0..count {
        let meta = EntryMeta {
            path: format!("photos/{i:06}.jpg"),
            size_bytes: 1 << 20,
            modified_ms: 0,
            content_hash: [0; 32],
            taken_ms: None,
        };
        index.upsert(meta, &rng.vector(DIM))?;
    }
    Ok(index)
}

fn bench_search(c: &mut Criterion) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let query = rng.vector(DIM);
    let mut group = c.benchmark_group("search_top10_512d");
    for count in [10_000usize, 100_000] {
        let index = match random_index(count, &mut rng) {
            Ok(index) => index,
            Err(e) => {
                eprintln!("could not build the bench index: {e}");
                return;
            }
        };
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &index, |b, index| {
            b.iter(|| index.search(black_box(&query), 10));
        });
    }
    group.finish();
}

fn bench_dot(c: &mut Criterion) {
    let mut rng = XorShift(42);
    let a = rng.vector(DIM);
    let b = rng.vector(DIM);
    c.bench_function("dot_512", |bench| {
        bench.iter(|| dot(black_box(&a), black_box(&b)));
    });
}

criterion_group!(benches, bench_search, bench_dot);
criterion_main!(benches);
