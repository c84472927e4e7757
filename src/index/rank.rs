//! Ranking arithmetic: the dot product, L2 normalisation, the combined-query vector and a
//! bounded top-k selection. These are the hot loops of a search over every indexed photo.
//!
//! It must not allocate per candidate, sort all N scores, or panic on any value (NaN
//! included); it knows nothing of entries, paths or storage. [`dot`] is written so that
//! LLVM auto-vectorises it (16 independent accumulators over fixed-size chunks), with
//! `+simd128` on wasm32 and SSE/AVX natively; no `unsafe`, no intrinsics.
//!
//! Reference semantics (DESIGN.md, "Score"): score = cosine similarity = dot product of
//! L2-normalised vectors, no logit scale; descending; ties broken by insertion order (the
//! lower `Match::index` wins). A combined query is
//! `q = normalise(mean(normalise(p_i)) - 0.5 * mean(normalise(n_j)))`
//! (see [`query_vector`]), as in the usual CLIP "positive minus negative prompt" recipe.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{IndexError, Match, Query};

/// How strongly the mean negative is subtracted from the mean positive in [`query_vector`].
pub const NEGATIVE_WEIGHT: f32 = 0.5;

/// Independent accumulators in [`dot`]: 4 SIMD registers of f32x4 (wasm simd128, SSE) or 2
/// of f32x8 (AVX), enough to hide the add latency.
const LANES: usize = 16;

/// The dot product of `a` and `b` over their common length (the shorter one's).
///
/// Summation order differs from a left-to-right loop (16 partial sums, then the tail), so
/// results may differ from a naive sum in the last bits.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let a = a.get(..len).unwrap_or_default();
    let b = b.get(..len).unwrap_or_default();
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((sum, &xi), &yi) in acc.iter_mut().zip(x).zip(y) {
            *sum += xi * yi;
        }
    }
    let mut tail = 0.0f32;
    for (&xi, &yi) in a_tail.iter().zip(b_tail) {
        tail += xi * yi;
    }
    // Pairwise reduction of the partial sums: 16 -> 8 -> 4 -> 2 -> 1.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (l, h) in low.iter_mut().zip(high.iter()) {
            *l += *h;
        }
    }
    acc.first().copied().unwrap_or(0.0) + tail
}

/// Scales `v` to unit Euclidean length in place.
///
/// Errors: [`IndexError::NonFinite`] (first NaN or infinity; `v` unchanged) or
/// [`IndexError::ZeroVector`] (norm 0, including an empty `v`). The norm is computed in
/// f64, so huge (up to `f32::MAX`) and subnormal values are normalised correctly.
pub fn l2_normalize(v: &mut [f32]) -> Result<(), IndexError> {
    if let Some(position) = v.iter().position(|x| !x.is_finite()) {
        return Err(IndexError::NonFinite { position });
    }
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm <= 0.0 {
        return Err(IndexError::ZeroVector);
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    Ok(())
}

/// The unit-length vector a combined [`Query`] stands for, for embeddings of `dim` values:
/// each positive and negative is L2-normalised, then
/// `q = normalise(mean(positives) - NEGATIVE_WEIGHT * mean(negatives))`
/// (the negative term is absent when there are no negatives). `exclude` is not used here.
///
/// Errors: [`IndexError::EmptyQuery`] without positives; [`IndexError::DimMismatch`],
/// [`IndexError::NonFinite`] or [`IndexError::ZeroVector`] for a bad vector; and
/// [`IndexError::ZeroVector`] when the terms cancel out.
pub fn query_vector(query: &Query, dim: usize) -> Result<Vec<f32>, IndexError> {
    if query.positive.is_empty() {
        return Err(IndexError::EmptyQuery);
    }
    let mut q = mean_direction(&query.positive, dim)?;
    if !query.negative.is_empty() {
        let negative = mean_direction(&query.negative, dim)?;
        for (qi, ni) in q.iter_mut().zip(&negative) {
            *qi -= NEGATIVE_WEIGHT * ni;
        }
    }
    l2_normalize(&mut q)?;
    Ok(q)
}

/// The mean of the L2-normalised `vectors` (not itself normalised); `vectors` is non-empty.
fn mean_direction(vectors: &[Vec<f32>], dim: usize) -> Result<Vec<f32>, IndexError> {
    let mut sum = vec![0.0f32; dim];
    let mut unit = Vec::with_capacity(dim);
    for v in vectors {
        if v.len() != dim {
            return Err(IndexError::DimMismatch {
                expected_dim: dim,
                got_dim: v.len(),
            });
        }
        unit.clear();
        unit.extend_from_slice(v);
        l2_normalize(&mut unit)?;
        for (s, u) in sum.iter_mut().zip(&unit) {
            *s += u;
        }
    }
    let count = vectors.len() as f32;
    for s in &mut sum {
        *s /= count;
    }
    Ok(sum)
}

/// The ranking order: higher score first, NaN after every number, then lower `index`
/// (earlier insertion) first, then lower `id`. `Less` means `a` ranks before `b`.
pub fn rank_order(a: &Match, b: &Match) -> Ordering {
    compare_scores_descending(a.score, b.score)
        .then(a.index.cmp(&b.index))
        .then(a.id.cmp(&b.id))
}

fn compare_scores_descending(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // `partial_cmp` (not `total_cmp`) so that -0.0 and 0.0 tie.
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// A heap element ordered so that the worst-ranked match is the heap's maximum.
struct WorstOnTop(Match);

impl PartialEq for WorstOnTop {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for WorstOnTop {}

impl PartialOrd for WorstOnTop {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WorstOnTop {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(&self.0, &other.0)
    }
}

/// The best `k` of `candidates` in [`rank_order`] (best first), or all of them if there
/// are fewer. Keeps a bounded heap of `k` (O(N log k) time, O(k) memory), never sorting
/// all N; never allocates more than the candidates need, whatever `k` is.
pub fn top_k(candidates: impl IntoIterator<Item = Match>, k: usize) -> Vec<Match> {
    if k == 0 {
        return Vec::new();
    }
    let candidates = candidates.into_iter();
    let mut heap = BinaryHeap::with_capacity(k.min(candidates.size_hint().0));
    for candidate in candidates {
        if heap.len() < k {
            heap.push(WorstOnTop(candidate));
        } else if let Some(mut worst) = heap.peek_mut() {
            if rank_order(&candidate, &worst.0) == Ordering::Less {
                *worst = WorstOnTop(candidate);
            }
        }
    }
    // Ascending in `rank_order` is best first.
    heap.into_sorted_vec().into_iter().map(|m| m.0).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::XorShift;
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum()
    }

    fn matches_from(scores: &[f32]) -> Vec<Match> {
        scores
            .iter()
            .enumerate()
            .map(|(index, &score)| Match {
                id: 1000 + index as u64,
                index,
                score,
            })
            .collect()
    }

    /// The reference: a full sort, descending by score, ties by insertion order.
    fn full_sort(mut all: Vec<Match>) -> Vec<Match> {
        // `partial_cmp`, so that -0.0 and 0.0 tie (the scores here are never NaN).
        all.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(Ordering::Equal)
                .then(a.index.cmp(&b.index))
        });
        all
    }

    #[test]
    fn dot_matches_a_naive_sum_for_every_length() {
        let mut rng = XorShift::new(1);
        for len in 0..100 {
            let a = rng.vector(len);
            let b = rng.vector(len);
            let got = f64::from(dot(&a, &b));
            let want = naive_dot(&a, &b);
            assert!((got - want).abs() < 1e-4, "len {len}: {got} vs {want}");
        }
        let a = rng.vector(512);
        let b = rng.vector(512);
        assert!((f64::from(dot(&a, &b)) - naive_dot(&a, &b)).abs() < 1e-4);
    }

    #[test]
    fn dot_uses_the_common_length() {
        let a = [1.0, 2.0, 3.0, 100.0];
        let b = [1.0, 1.0, 1.0];
        assert_eq!(dot(&a, &b), 6.0);
        assert_eq!(dot(&b, &a), 6.0);
        assert_eq!(dot(&[], &a), 0.0);
        let long: Vec<f32> = (0..40).map(|i| i as f32).collect();
        assert_eq!(
            dot(&long, &long[..33]),
            naive_dot(&long[..33], &long[..33]) as f32
        );
    }

    #[test]
    fn l2_normalize_gives_unit_length_or_an_error() -> Result<(), IndexError> {
        let mut rng = XorShift::new(2);
        for len in 1..64 {
            let mut v = rng.vector(len);
            v[0] = 0.5; // never all zero
            l2_normalize(&mut v)?;
            assert!((naive_dot(&v, &v) - 1.0).abs() < 1e-5);
        }
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v)?;
        assert_eq!(v, [0.6, 0.8]);
        assert_eq!(l2_normalize(&mut []), Err(IndexError::ZeroVector));
        assert_eq!(l2_normalize(&mut [0.0, -0.0]), Err(IndexError::ZeroVector));
        let mut bad = [1.0, 2.0, f32::NEG_INFINITY];
        assert_eq!(
            l2_normalize(&mut bad),
            Err(IndexError::NonFinite { position: 2 })
        );
        assert_eq!(bad, [1.0, 2.0, f32::NEG_INFINITY]);
        Ok(())
    }

    #[test]
    fn top_k_equals_a_full_sort_on_random_scores() {
        let mut rng = XorShift::new(3);
        for n in [0usize, 1, 2, 7, 50, 333] {
            // Quantised scores, so that many of them tie.
            let scores: Vec<f32> = (0..n)
                .map(|_| (rng.next_f32() * 8.0).round() / 8.0)
                .collect();
            let all = matches_from(&scores);
            let sorted = full_sort(all.clone());
            for k in [0, 1, 10, n, n + 1, n + 100, usize::MAX] {
                let got = top_k(all.clone(), k);
                assert!(got == sorted[..k.min(n)], "n {n}, k {k}");
            }
        }
    }

    #[test]
    fn top_k_on_random_unique_scores_picks_the_largest() {
        let mut rng = XorShift::new(4);
        let scores: Vec<f32> = (0..5000).map(|_| rng.next_f32()).collect();
        let got = top_k(matches_from(&scores), 25);
        let want = full_sort(matches_from(&scores));
        assert_eq!(got, want[..25]);
    }

    #[test]
    fn ties_go_to_the_earlier_entry() {
        let got = top_k(matches_from(&[0.5, 0.9, 0.5, 0.9, 0.5, 0.9]), 4);
        let order: Vec<usize> = got.iter().map(|m| m.index).collect();
        assert_eq!(order, [1, 3, 5, 0]);
        // Negative and positive zero tie too.
        let got = top_k(matches_from(&[-0.0, 0.0, -0.0]), 3);
        assert_eq!(got.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1, 2]);
        // Candidates arriving out of insertion order still tie-break by `index`.
        let mut reversed = matches_from(&[0.3, 0.3, 0.3, 0.3]);
        reversed.reverse();
        let got = top_k(reversed, 2);
        assert_eq!(got.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn nan_scores_never_panic_and_rank_last() {
        let scores = [f32::NAN, 0.1, -f32::NAN, 0.7, f32::NAN, -1.0, f32::INFINITY];
        let got = top_k(matches_from(&scores), 10);
        let order: Vec<usize> = got.iter().map(|m| m.index).collect();
        assert_eq!(order, [6, 3, 1, 5, 0, 2, 4]);
        let best = top_k(matches_from(&scores), 3);
        assert!(best.iter().all(|m| !m.score.is_nan()));
        let all_nan = top_k(matches_from(&[f32::NAN; 5]), 2);
        assert_eq!(all_nan.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn query_vector_follows_the_documented_formula() -> Result<(), IndexError> {
        let query = Query {
            positive: vec![vec![2.0, 0.0, 0.0], vec![0.0, 3.0, 0.0]],
            negative: vec![vec![0.0, 0.0, 5.0]],
            exclude: vec![1, 2],
        };
        // mean(p) = (0.5, 0.5, 0), mean(n) = (0, 0, 1) -> (0.5, 0.5, -0.5), normalised.
        let q = query_vector(&query, 3)?;
        let s = 1.0 / 3.0f32.sqrt();
        for (got, want) in q.iter().zip([s, s, -s]) {
            assert!((got - want).abs() < 1e-6, "{q:?}");
        }
        let single = query_vector(
            &Query {
                positive: vec![vec![0.0, -4.0]],
                ..Query::default()
            },
            2,
        )?;
        assert_eq!(single, [0.0, -1.0]);
        Ok(())
    }

    #[test]
    fn query_vector_errors() {
        let blank = Query {
            positive: Vec::new(),
            negative: vec![vec![1.0, 0.0]],
            exclude: Vec::new(),
        };
        assert_eq!(query_vector(&blank, 2), Err(IndexError::EmptyQuery));
        let wrong_dim = Query {
            positive: vec![vec![1.0, 0.0]],
            negative: vec![vec![1.0, 0.0, 0.0]],
            exclude: Vec::new(),
        };
        assert_eq!(
            query_vector(&wrong_dim, 2),
            Err(IndexError::DimMismatch {
                expected_dim: 2,
                got_dim: 3
            })
        );
        let cancelling = Query {
            positive: vec![vec![1.0, 0.0], vec![-1.0, 0.0]],
            ..Query::default()
        };
        assert_eq!(query_vector(&cancelling, 2), Err(IndexError::ZeroVector));
        let nan = Query {
            positive: vec![vec![f32::NAN, 0.0]],
            ..Query::default()
        };
        assert_eq!(
            query_vector(&nan, 2),
            Err(IndexError::NonFinite { position: 0 })
        );
    }
}
