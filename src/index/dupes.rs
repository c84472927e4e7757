//! Near-duplicates: groups of photos whose embeddings are within a cosine threshold of each
//! other, found without comparing every pair, and the rule that says which photo of a group
//! to keep ("select all but the best").
//!
//! It must not do I/O, use threads or a clock (it runs in the page's worker too), compare all
//! N² pairs, or panic on any input; it knows entries only through [`Entry`] sizes and dates.
//!
//! Method: random-hyperplane LSH (Charikar, "Similarity estimation techniques from rounding
//! algorithms", STOC 2002), then exact checks. The rows are centred on their mean first (a
//! hyperplane through the data's centre splits it evenly; CLIP embeddings share a large
//! common component, so uncentred hyperplanes would put most photos on the same side). Each
//! of `L` tables hashes a row to the signs of `k` projections; rows sharing a bucket in any
//! table are candidates, and a candidate pair joins a group (union-find) when the cosine of
//! the *stored* rows is `>= threshold` (so no group is ever false; exact up to 1e-6 of
//! rounding). Two rows at centred angle `θ` share one sign with probability `p = 1 − θ/π`,
//! a bucket with `p^k`, some bucket with `1 − (1 − p^k)^L`. For a pair exactly at the
//! threshold `t`, the centred cosine is about `1 − (1 − t)/r²` (`r²` the rows' mean squared
//! distance from their mean), which gives `p`; [`plan`] picks `k` minimising the estimated
//! work `L·(k + N/2^(k+1))` (projections plus verifying background collisions) with `L` the
//! fewest tables reaching a pair recall of [`TARGET_PAIR_RECALL`] at the threshold.
//!
//! Recall trade-off: a pair *at* the threshold is missed with probability ≈ 1 −
//! [`TARGET_PAIR_RECALL`] (1%); a pair further inside (a real duplicate, cos ≈ 0.98–1 for a
//! threshold of 0.95) is missed far less often, and a photo is lost from its group only if it
//! misses *every* other member. Groups are connected components (single linkage): a chain
//! `a ~ b ~ c` is one group even if `a` and `c` are further apart than the threshold. A
//! bucket larger than [`MAX_BUCKET`] (many near-identical photos) compares each member only
//! with the [`MAX_BUCKET`] members before it in a per-table shuffled order, which bounds the
//! work at `O(N·MAX_BUCKET)` per table at a small cost in recall within such a crowd.

use std::cmp::Ordering;

use super::rank::dot;
use super::{EmbeddingIndex, Entry};
// The hyperplanes come from SplitMix64, so they (and the groups) are the same on every run
// and target.
use crate::splitmix::SplitMix64 as SplitMix;

/// The pair recall [`plan`] aims at for a pair exactly at the threshold.
pub const TARGET_PAIR_RECALL: f64 = 0.99;
/// The lowest threshold accepted: below it "duplicates" are merely similar photos, and the
/// tables needed grow without bound.
pub const MIN_THRESHOLD: f32 = 0.5;
/// Most tables [`plan`] will use.
pub const MAX_TABLES: usize = 64;
/// A bucket member is compared with at most this many others of its bucket.
pub const MAX_BUCKET: usize = 1024;
/// Allowance for rounding in the exact check (`dot >= threshold - EPSILON`).
const EPSILON: f32 = 1e-6;

/// Everything that can go wrong here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DupesError {
    #[error("the duplicate threshold must be a cosine between {min} and 1, not {threshold}")]
    BadThreshold { threshold: f32, min: f32 },
    #[error("the embedding matrix has {values} values, not a whole number of {dim}-value rows")]
    BadMatrix { values: usize, dim: usize },
}

/// The LSH parameters for one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Sign bits per table (`k`).
    pub bits: usize,
    /// Tables (`L`).
    pub tables: usize,
    /// Estimated probability that a pair exactly at the threshold shares a bucket.
    pub pair_recall: f64,
}

/// What a run did, for the report and the CLI's `--json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub plan: Plan,
    /// Bucket-mate pairs considered over all tables.
    pub candidate_pairs: u64,
    /// Of those, the pairs whose cosine was computed (not already in one group).
    pub verified_pairs: u64,
}

/// The groups (positions into the matrix, each ascending; groups by size descending, then
/// by first position), at least two members each.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    pub groups: Vec<Vec<usize>>,
    pub stats: Stats,
}

/// One duplicate group as shown: the photo to keep and the others (positions into the
/// index's entries; `others` ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    pub keep: usize,
    pub others: Vec<usize>,
}

/// LSH parameters for `n` rows whose mean squared distance from their mean is `spread`
/// (1 for rows spread evenly over the sphere, less when they share a common direction).
pub fn plan(n: usize, spread: f64, threshold: f32) -> Plan {
    let spread = if spread.is_finite() {
        spread.clamp(1e-6, 1.0)
    } else {
        1.0
    };
    let centred = (1.0 - (1.0 - f64::from(threshold)) / spread).clamp(-1.0, 1.0);
    let p = 1.0 - centred.acos() / std::f64::consts::PI;
    let n = n.max(2) as f64;
    let mut best: Option<(f64, Plan)> = None;
    for bits in 4..=24usize {
        let hit = p.powi(bits as i32);
        let tables = if hit >= 1.0 {
            1
        } else {
            let needed = (1.0 - TARGET_PAIR_RECALL).ln() / (1.0 - hit).ln();
            (needed.ceil().max(1.0) as usize).min(MAX_TABLES)
        };
        let pair_recall = 1.0 - (1.0 - hit).powi(tables as i32);
        let cost = tables as f64 * (bits as f64 + n / 2f64.powi(bits as i32 + 1));
        let candidate = Plan {
            bits,
            tables,
            pair_recall,
        };
        // Reaching the recall comes first; then the least work (or, if none reaches it
        // within MAX_TABLES, the best recall).
        let reaches = pair_recall >= TARGET_PAIR_RECALL - 1e-12;
        let better = match &best {
            None => true,
            Some((best_cost, b)) => {
                let best_reaches = b.pair_recall >= TARGET_PAIR_RECALL - 1e-12;
                if reaches != best_reaches {
                    reaches
                } else if reaches {
                    cost < *best_cost
                } else {
                    pair_recall > b.pair_recall
                }
            }
        };
        if better {
            best = Some((cost, candidate));
        }
    }
    best.map_or(
        Plan {
            bits: 8,
            tables: MAX_TABLES,
            pair_recall: 0.0,
        },
        |(_, plan)| plan,
    )
}

#[derive(Debug, Clone)]
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        // Path halving.
        loop {
            let Some(&p) = self.parent.get(x as usize) else {
                return x;
            };
            if p == x {
                return x;
            }
            let grand = self.parent.get(p as usize).copied().unwrap_or(p);
            if let Some(slot) = self.parent.get_mut(x as usize) {
                *slot = grand;
            }
            x = grand;
        }
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (sa, sb) = (
            self.size.get(ra as usize).copied().unwrap_or(1),
            self.size.get(rb as usize).copied().unwrap_or(1),
        );
        let (big, small) = if sa >= sb { (ra, rb) } else { (rb, ra) };
        if let Some(slot) = self.parent.get_mut(small as usize) {
            *slot = big;
        }
        if let Some(slot) = self.size.get_mut(big as usize) {
            *slot = sa + sb;
        }
    }
}

/// Groups of rows of the row-major, L2-normalised `matrix` (`dim` values per row) within
/// cosine `threshold` of each other, by the method in the module docs.
pub fn find_groups(matrix: &[f32], dim: usize, threshold: f32) -> Result<Groups, DupesError> {
    let rows = matrix.len().checked_div(dim).unwrap_or(0);
    let mut finder = Finder::new(rows, dim, threshold)?;
    if dim == 0 && !matrix.is_empty() {
        return Err(DupesError::BadMatrix {
            values: matrix.len(),
            dim,
        });
    }
    while !finder.step(matrix, u64::MAX)? {}
    Ok(finder.groups())
}

/// Where a [`Finder`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Summing rows from this one for the mean.
    Mean {
        row: usize,
    },
    /// Hashing rows from this one.
    Hash {
        row: usize,
    },
    /// Checking bucket-mates in `table`, from position `at` of its sorted order; the
    /// bucket holding `at` starts at `bucket`.
    Table {
        table: usize,
        at: usize,
        bucket: usize,
    },
    Done,
}

/// [`find_groups`] in slices: each [`Finder::step`] does a bounded amount of work, so the
/// page can look for duplicates among tens of thousands of photos between frames without
/// a worker. Every step must be given the same matrix (a changed index starts a new
/// finder); the groups are those [`find_groups`] gives.
#[derive(Debug, Clone)]
pub struct Finder {
    rows: usize,
    dim: usize,
    threshold: f32,
    phase: Phase,
    mean: Vec<f64>,
    plan: Plan,
    rng: SplitMix,
    planes: Vec<f32>,
    offsets: Vec<f32>,
    /// `hashes[row * tables + table]`.
    hashes: Vec<u32>,
    order: Vec<(u32, u32, u32)>,
    sets: UnionFind,
    candidate_pairs: u64,
    verified_pairs: u64,
}

impl Finder {
    /// A finder for `rows` rows of `dim` values at `threshold`.
    pub fn new(rows: usize, dim: usize, threshold: f32) -> Result<Self, DupesError> {
        if !(threshold.is_finite() && (MIN_THRESHOLD..=1.0).contains(&threshold)) {
            return Err(DupesError::BadThreshold {
                threshold,
                min: MIN_THRESHOLD,
            });
        }
        // Positions are kept as u32 (half the memory of the per-table sort keys).
        let rows = rows.min(u32::MAX as usize);
        Ok(Self {
            rows,
            dim,
            threshold,
            phase: if rows == 0 || dim == 0 {
                Phase::Done
            } else {
                Phase::Mean { row: 0 }
            },
            mean: vec![0.0; dim],
            plan: plan(rows, 1.0, threshold),
            rng: SplitMix(0x636C_6970_7365_656B ^ dim as u64),
            planes: Vec::new(),
            offsets: Vec::new(),
            hashes: Vec::new(),
            order: Vec::new(),
            sets: UnionFind::new(rows),
            candidate_pairs: 0,
            verified_pairs: 0,
        })
    }

    /// How far it got, from 0 to 1 (the mean, the hashes, then each table, by rows).
    pub fn progress(&self) -> f64 {
        let rows = self.rows.max(1) as f64;
        let stages = (self.plan.tables + 2) as f64;
        let done = match self.phase {
            Phase::Mean { row } => row as f64 / rows,
            Phase::Hash { row } => 1.0 + row as f64 / rows,
            Phase::Table { table, at, .. } => 2.0 + table as f64 + at as f64 / rows,
            Phase::Done => stages,
        };
        (done / stages).clamp(0.0, 1.0)
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Does about `work` multiply-adds more (at least one row or one bucket member) on
    /// `matrix`; true when the search is complete.
    pub fn step(&mut self, matrix: &[f32], work: u64) -> Result<bool, DupesError> {
        if matrix.len() != self.rows * self.dim && self.phase != Phase::Done {
            return Err(DupesError::BadMatrix {
                values: matrix.len(),
                dim: self.dim,
            });
        }
        let mut left = work.max(1);
        while left > 0 {
            let spent = match self.phase {
                Phase::Mean { row } => self.mean_rows(matrix, row, left),
                Phase::Hash { row } => self.hash_rows(matrix, row, left),
                Phase::Table { table, at, bucket } => self.check(matrix, table, at, bucket, left),
                Phase::Done => return Ok(true),
            };
            left = left.saturating_sub(spent.max(1));
        }
        Ok(self.is_done())
    }

    /// Rows a step may take when each costs `per_row`, from `row` (at least one).
    fn take(&self, row: usize, per_row: u64, left: u64) -> usize {
        let fit = (left / per_row.max(1)).max(1);
        let fit = usize::try_from(fit).unwrap_or(usize::MAX);
        self.rows.saturating_sub(row).min(fit)
    }

    fn mean_rows(&mut self, matrix: &[f32], row: usize, left: u64) -> u64 {
        let dim = self.dim;
        let count = self.take(row, dim as u64, left);
        let part = matrix
            .get(row * dim..(row + count) * dim)
            .unwrap_or_default();
        for r in part.chunks_exact(dim) {
            for (m, &x) in self.mean.iter_mut().zip(r) {
                *m += f64::from(x);
            }
        }
        if row + count < self.rows {
            self.phase = Phase::Mean { row: row + count };
        } else {
            self.start_hashing();
        }
        (count * dim) as u64
    }

    fn start_hashing(&mut self) {
        let (n, dim) = (self.rows, self.dim);
        for m in &mut self.mean {
            *m /= n.max(1) as f64;
        }
        // Mean squared distance from the mean, for unit rows: 1 - |mean|^2.
        let spread = 1.0 - self.mean.iter().map(|m| m * m).sum::<f64>();
        let mean: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        self.plan = plan(n, spread, self.threshold);
        let planes_count = self.plan.bits * self.plan.tables;
        let rng = &mut self.rng;
        self.planes = (0..planes_count * dim)
            .map(|_| rng.gaussian() as f32)
            .collect();
        // Sign of (x - mean) . r  ==  sign of x . r - mean . r.
        self.offsets = self
            .planes
            .chunks_exact(dim)
            .map(|r| dot(&mean, r))
            .collect();
        self.hashes = vec![0u32; n * self.plan.tables];
        self.phase = Phase::Hash { row: 0 };
    }

    fn hash_rows(&mut self, matrix: &[f32], row: usize, left: u64) -> u64 {
        let (dim, tables, bits) = (self.dim, self.plan.tables, self.plan.bits);
        let per_row = (self.planes.len()) as u64;
        let count = self.take(row, per_row, left);
        let mut projections = vec![0.0f32; bits * tables];
        let part = matrix
            .get(row * dim..(row + count) * dim)
            .unwrap_or_default();
        let out = self
            .hashes
            .get_mut(row * tables..(row + count) * tables)
            .unwrap_or_default();
        for (r, out) in part.chunks_exact(dim).zip(out.chunks_exact_mut(tables)) {
            project(r, &self.planes, dim, &mut projections);
            let mut signs = projections.iter().zip(&self.offsets);
            for h in out.iter_mut() {
                let mut code = 0u32;
                for bit in 0..bits {
                    if let Some((&p, &offset)) = signs.next() {
                        if p >= offset {
                            code |= 1 << bit;
                        }
                    }
                }
                *h = code;
            }
        }
        if row + count < self.rows {
            self.phase = Phase::Hash { row: row + count };
        } else {
            self.start_table(0);
        }
        count as u64 * per_row
    }

    /// Sorts the rows by their hash in `table` (shuffled within a bucket).
    fn start_table(&mut self, table: usize) {
        if table >= self.plan.tables {
            self.phase = Phase::Done;
            return;
        }
        let tables = self.plan.tables;
        let salt = self.rng.next_u64();
        let hashes = &self.hashes;
        self.order.clear();
        self.order.extend((0..self.rows as u32).map(|i| {
            let h = hashes.get(i as usize * tables + table).copied();
            // The shuffle key decides who a member of an over-full bucket is compared with.
            let shuffle = (u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt) >> 32;
            (h.unwrap_or(0), shuffle as u32, i)
        }));
        self.order.sort_unstable();
        self.phase = Phase::Table {
            table,
            at: 0,
            bucket: 0,
        };
    }

    /// Compares bucket members from position `at` with the members before them.
    fn check(&mut self, matrix: &[f32], table: usize, at: usize, bucket: usize, left: u64) -> u64 {
        let dim = self.dim;
        let row_of = |i: u32| {
            let start = i as usize * dim;
            matrix.get(start..start + dim).unwrap_or_default()
        };
        let (mut at, mut bucket, mut spent) = (at, bucket, 0u64);
        while at < self.order.len() && spent < left {
            let Some(&(code, _, b)) = self.order.get(at) else {
                break;
            };
            if self.order.get(bucket).map(|e| e.0) != Some(code) {
                bucket = at;
            }
            let from = bucket.max(at.saturating_sub(MAX_BUCKET));
            for k in from..at {
                let Some(&(_, _, a)) = self.order.get(k) else {
                    continue;
                };
                self.candidate_pairs += 1;
                spent += 1;
                if self.sets.find(a) == self.sets.find(b) {
                    continue;
                }
                self.verified_pairs += 1;
                spent += dim as u64;
                if dot(row_of(a), row_of(b)) >= self.threshold - EPSILON {
                    self.sets.union(a, b);
                }
            }
            at += 1;
            spent += 1;
        }
        if at < self.order.len() {
            self.phase = Phase::Table { table, at, bucket };
        } else {
            self.start_table(table + 1);
        }
        spent
    }

    /// The groups found (all of them once [`Finder::is_done`]).
    pub fn groups(&mut self) -> Groups {
        let sets = &mut self.sets;
        let mut by_root: std::collections::HashMap<u32, Vec<usize>> =
            std::collections::HashMap::new();
        for i in 0..self.rows as u32 {
            let root = sets.find(i);
            if sets.size.get(root as usize).copied().unwrap_or(1) > 1 {
                by_root.entry(root).or_default().push(i as usize);
            }
        }
        // Members were pushed in ascending order; sort the groups (hash map order is arbitrary).
        let mut groups: Vec<Vec<usize>> = by_root.into_values().collect();
        groups.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.first().cmp(&b.first()))
        });
        Groups {
            groups,
            stats: Stats {
                plan: self.plan,
                candidate_pairs: self.candidate_pairs,
                verified_pairs: self.verified_pairs,
            },
        }
    }
}

/// Lanes of [`project`]'s accumulators.
const PROJECT_LANES: usize = 8;

/// `out[p] = row · plane p` for the row-major `planes` (`dim` values each), four planes at a
/// time so that each load of `row` feeds four products (the hashing is a small matrix
/// product, and [`dot`] one plane at a time spends half its loads on `row`). Rounding
/// differs from [`dot`] in the last bits; only the signs are used, and they are the same on
/// every run.
fn project(row: &[f32], planes: &[f32], dim: usize, out: &mut [f32]) {
    if dim == 0 {
        out.fill(0.0);
        return;
    }
    let mut blocks = planes.chunks_exact(4 * dim);
    let mut outs = out.chunks_exact_mut(4);
    let (row_chunks, row_tail) = row.as_chunks::<PROJECT_LANES>();
    for (block, o) in (&mut blocks).zip(&mut outs) {
        let mut sums = [0.0f32; 4];
        for (plane, sum) in block.chunks_exact(dim).zip(sums.iter_mut()) {
            let (_, plane_tail) = plane.as_chunks::<PROJECT_LANES>();
            *sum = row_tail.iter().zip(plane_tail).map(|(x, y)| x * y).sum();
        }
        let (p0, rest) = block.split_at(dim);
        let (p1, rest) = rest.split_at(dim);
        let (p2, p3) = rest.split_at(dim);
        let (c0, _) = p0.as_chunks::<PROJECT_LANES>();
        let (c1, _) = p1.as_chunks::<PROJECT_LANES>();
        let (c2, _) = p2.as_chunks::<PROJECT_LANES>();
        let (c3, _) = p3.as_chunks::<PROJECT_LANES>();
        let mut acc = [[0.0f32; PROJECT_LANES]; 4];
        let [a0, a1, a2, a3] = &mut acc;
        for ((((x, y0), y1), y2), y3) in row_chunks.iter().zip(c0).zip(c1).zip(c2).zip(c3) {
            for (a, y) in [
                (&mut *a0, y0),
                (&mut *a1, y1),
                (&mut *a2, y2),
                (&mut *a3, y3),
            ] {
                for ((s, &xi), &yi) in a.iter_mut().zip(x).zip(y) {
                    *s += xi * yi;
                }
            }
        }
        for ((o, a), tail) in o.iter_mut().zip(&acc).zip(sums) {
            *o = a.iter().sum::<f32>() + tail;
        }
    }
    let rest_planes = blocks.remainder();
    for (plane, o) in rest_planes.chunks_exact(dim).zip(outs.into_remainder()) {
        *o = dot(row, plane);
    }
}

/// How two photos of a group compare as the one to keep: larger file first, then newer,
/// then the earlier position. `Less` means `a` is the better one to keep.
fn keep_order(a: (usize, &Entry), b: (usize, &Entry)) -> Ordering {
    b.1.size_bytes
        .cmp(&a.1.size_bytes)
        .then(b.1.modified_ms.cmp(&a.1.modified_ms))
        .then(a.0.cmp(&b.0))
}

/// "Select all but the best": splits a group (positions into `entries`) into the photo to
/// keep — the largest file, then the newest, then the earliest indexed — and the others in
/// position order. `None` for an empty group or a position outside `entries`.
pub fn split_best(group: &[usize], entries: &[Entry]) -> Option<DuplicateGroup> {
    let mut members = Vec::with_capacity(group.len());
    for &position in group {
        members.push((position, entries.get(position)?));
    }
    let keep = members.iter().copied().min_by(|&a, &b| keep_order(a, b))?.0;
    let mut others: Vec<usize> = group.iter().copied().filter(|&p| p != keep).collect();
    others.sort_unstable();
    others.dedup();
    Some(DuplicateGroup { keep, others })
}

/// The duplicate groups of `index` at `threshold`, each split by [`split_best`], in the
/// order of [`find_groups`].
pub fn duplicates(
    index: &EmbeddingIndex,
    threshold: f32,
) -> Result<(Vec<DuplicateGroup>, Stats), DupesError> {
    let found = find_groups(index.matrix(), index.dim(), threshold)?;
    let groups = found
        .groups
        .iter()
        .filter_map(|g| split_best(g, index.entries()))
        .collect();
    Ok((groups, found.stats))
}

/// Synthetic embeddings with planted duplicate groups, for the tests and the benchmark
/// (`examples/dupes_bench.rs`). Deterministic for a seed.
pub mod synthetic {
    use super::SplitMix;

    /// What [`planted`] makes.
    pub struct Planted {
        /// `n x dim`, row-major, rows L2-normalised.
        pub matrix: Vec<f32>,
        /// The planted groups (positions, ascending; groups by first position).
        pub groups: Vec<Vec<usize>>,
    }

    fn normalised(mut v: Vec<f64>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        for x in &mut v {
            *x /= norm;
        }
        v.into_iter().map(|x| x as f32).collect()
    }

    /// `n` rows of `dim` values: `groups` groups of `group_size` near-copies (each at cosine
    /// `member_cos` from its group's centre, so about `member_cos²` from each other), the
    /// rest unrelated. With `shared > 0` every row leans towards one common direction (the
    /// cosine between unrelated rows is about `shared² / (1 + shared²)`), as CLIP's do.
    /// Group members are scattered over the positions.
    pub fn planted(
        n: usize,
        dim: usize,
        groups: usize,
        group_size: usize,
        member_cos: f64,
        shared: f64,
        seed: u64,
    ) -> Planted {
        let mut rng = SplitMix(seed);
        let scale = 1.0 / (dim.max(1) as f64).sqrt();
        let common: Vec<f64> = (0..dim).map(|_| rng.gaussian() * scale).collect();
        let common_norm = common.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        let random_row = |rng: &mut SplitMix| -> Vec<f64> {
            common
                .iter()
                .map(|c| rng.gaussian() * scale + shared * c / common_norm)
                .collect()
        };
        let planted_count = (groups * group_size).min(n);
        // Positions of planted rows: a deterministic scatter.
        let mut positions: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            positions.swap(i, j);
        }
        let mut matrix = vec![0.0f32; n * dim];
        let mut out_groups = Vec::new();
        let spread = (1.0 / (member_cos * member_cos) - 1.0).max(0.0).sqrt();
        let mut next = 0;
        for _ in 0..groups {
            if next + group_size > planted_count {
                break;
            }
            let centre = normalised(random_row(&mut rng));
            let mut members = Vec::with_capacity(group_size);
            for _ in 0..group_size {
                let noise: Vec<f64> = (0..dim).map(|_| rng.gaussian() * scale).collect();
                let noise_norm = noise.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
                let row = normalised(
                    centre
                        .iter()
                        .zip(&noise)
                        .map(|(&c, &e)| f64::from(c) + spread * e / noise_norm)
                        .collect(),
                );
                let position = positions.get(next).copied().unwrap_or(0);
                next += 1;
                if let Some(slot) = matrix.get_mut(position * dim..(position + 1) * dim) {
                    slot.copy_from_slice(&row);
                }
                members.push(position);
            }
            members.sort_unstable();
            out_groups.push(members);
        }
        for &position in positions.get(next..).unwrap_or_default() {
            let row = normalised(random_row(&mut rng));
            if let Some(slot) = matrix.get_mut(position * dim..(position + 1) * dim) {
                slot.copy_from_slice(&row);
            }
        }
        out_groups.sort_by_key(|g| g.first().copied());
        Planted {
            matrix,
            groups: out_groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::meta;
    use super::synthetic::planted;
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The reference: every pair, union-find.
    fn brute_force(matrix: &[f32], dim: usize, threshold: f32) -> Vec<Vec<usize>> {
        let n = matrix.len() / dim;
        let mut sets = UnionFind::new(n);
        let rows: Vec<&[f32]> = matrix.chunks_exact(dim).collect();
        for a in 0..n {
            for b in a + 1..n {
                if dot(rows[a], rows[b]) >= threshold - EPSILON {
                    sets.union(a as u32, b as u32);
                }
            }
        }
        let mut groups: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for i in 0..n {
            let root = sets.find(i as u32);
            groups.entry(root).or_default().push(i);
        }
        let mut groups: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.first().cmp(&b.first()))
        });
        groups
    }

    fn sorted_like_find_groups(mut groups: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        groups.sort_by(|a, b| {
            b.len()
                .cmp(&a.len())
                .then_with(|| a.first().cmp(&b.first()))
        });
        groups
    }

    #[test]
    fn project_equals_one_dot_per_plane() {
        let mut rng = super::super::test_support::XorShift::new(8);
        for (dim, planes) in [(512, 13), (37, 8), (5, 3), (1, 4), (16, 0)] {
            let row = rng.vector(dim);
            let matrix = rng.vector(dim * planes);
            let mut out = vec![f32::NAN; planes];
            project(&row, &matrix, dim, &mut out);
            for (p, got) in matrix.chunks_exact(dim).zip(&out) {
                let want = dot(&row, p);
                assert!((got - want).abs() < 1e-4, "dim {dim}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn plan_reaches_the_target_recall_with_few_tables() {
        for (n, spread, t) in [(50_000, 1.0, 0.95), (50_000, 0.5, 0.95), (1000, 1.0, 0.9)] {
            let p = plan(n, spread, t);
            assert!(p.pair_recall >= TARGET_PAIR_RECALL, "{p:?}");
            assert!(
                p.tables <= MAX_TABLES && (4..=24).contains(&p.bits),
                "{p:?}"
            );
        }
        // Identical only: one table is enough.
        let exact = plan(10_000, 1.0, 1.0);
        assert_eq!(exact.tables, 1);
        // A lower threshold needs more work.
        let loose = plan(50_000, 1.0, 0.8);
        let tight = plan(50_000, 1.0, 0.97);
        assert!(loose.tables * loose.bits > tight.tables * tight.bits);
    }

    #[test]
    fn matches_brute_force_on_small_random_sets() -> TestResult {
        for (seed, shared) in [(1u64, 0.0), (2, 1.0), (4, 0.5)] {
            let data = planted(600, 32, 20, 3, 0.985, shared, seed);
            for t in [0.9f32, 0.95, 0.99] {
                let found = find_groups(&data.matrix, 32, t)?;
                let want = brute_force(&data.matrix, 32, t);
                assert_eq!(found.groups, want, "seed {seed}, shared {shared}, t {t}");
            }
        }
        Ok(())
    }

    #[test]
    fn crowds_near_the_threshold_lose_few_and_never_link_falsely() -> TestResult {
        // Unrelated rows at cosine about 0.8 from each other and a threshold of 0.9: most
        // pairs sit near the threshold, the hard case for LSH. Every group found must lie
        // inside a true group, and nearly every photo of a true group must be found in it.
        let data = planted(600, 32, 20, 3, 0.985, 2.0, 3);
        let found = find_groups(&data.matrix, 32, 0.9)?;
        let want = brute_force(&data.matrix, 32, 0.9);
        let mut true_group = vec![usize::MAX; 600];
        for (g, members) in want.iter().enumerate() {
            for &m in members {
                true_group[m] = g;
            }
        }
        let mut recovered = 0usize;
        for group in &found.groups {
            let g = true_group[group[0]];
            assert!(g != usize::MAX && group.iter().all(|&m| true_group[m] == g));
            recovered += group.len();
        }
        let total: usize = want.iter().map(Vec::len).sum();
        assert!(recovered <= total);
        assert!(
            recovered as f64 >= 0.95 * total as f64,
            "{recovered} of {total}"
        );
        Ok(())
    }

    #[test]
    fn finds_every_planted_group_at_50000_by_512_and_no_other() -> TestResult {
        // Unrelated rows at cosine about 0.5 from each other (as CLIP photos are), groups of
        // 2 to 6 at about 0.98 within; threshold 0.95.
        let (n, dim) = (50_000, 512);
        let data = planted(n, dim, 500, 4, 0.99, 1.0, 11);
        let found = find_groups(&data.matrix, dim, 0.95)?;
        assert_eq!(found.groups, sorted_like_find_groups(data.groups.clone()));
        assert!(found.stats.plan.pair_recall >= TARGET_PAIR_RECALL);
        // Far fewer checks than the N^2/2 = 1.25e9 pairs of a full pass.
        assert!(found.stats.verified_pairs < 20_000_000, "{:?}", found.stats);
        Ok(())
    }

    #[test]
    fn identical_crowds_are_one_group_and_bounded() -> TestResult {
        // 3000 copies of one photo and 3000 of another: two groups, work bounded by
        // MAX_BUCKET per member.
        let dim = 16;
        let mut matrix = Vec::new();
        for i in 0..6000 {
            let mut row = vec![0.0f32; dim];
            row[if i % 2 == 0 { 0 } else { 5 }] = 1.0;
            matrix.extend_from_slice(&row);
        }
        let found = find_groups(&matrix, dim, 0.99)?;
        assert_eq!(found.groups.len(), 2);
        assert!(found.groups.iter().all(|g| g.len() == 3000));
        let bound = (6000 * MAX_BUCKET * found.stats.plan.tables) as u64;
        assert!(found.stats.candidate_pairs <= bound);
        Ok(())
    }

    #[test]
    fn slices_find_what_one_pass_finds() -> TestResult {
        let data = planted(900, 32, 25, 3, 0.985, 0.5, 7);
        let whole = find_groups(&data.matrix, 32, 0.95)?;
        assert!(!whole.groups.is_empty());
        for work in [1u64, 500, 40_000] {
            let mut finder = Finder::new(900, 32, 0.95)?;
            let mut last = 0.0;
            let mut steps = 0;
            while !finder.step(&data.matrix, work)? {
                let p = finder.progress();
                assert!(p >= last && p < 1.0, "progress {p} after {last}");
                last = p;
                steps += 1;
            }
            assert_eq!(finder.progress(), 1.0);
            assert!(steps > 2, "work {work}: {steps} steps");
            assert_eq!(finder.groups(), whole, "work {work}");
        }
        // A step is bounded: with a budget of one row's projections it hashes one row.
        let mut finder = Finder::new(900, 32, 0.95)?;
        finder.step(&data.matrix, 900 * 32)?;
        assert!(
            matches!(finder.phase, Phase::Hash { row: 0 }),
            "{:?}",
            finder.phase
        );
        let per_row = finder.planes.len() as u64;
        finder.step(&data.matrix, per_row)?;
        assert_eq!(finder.phase, Phase::Hash { row: 1 });
        // Another matrix (the index changed) is refused, not misread.
        assert_eq!(
            finder.step(&data.matrix[..32 * 10], 1),
            Err(DupesError::BadMatrix {
                values: 320,
                dim: 32
            })
        );
        Ok(())
    }

    #[test]
    fn degenerate_inputs_never_panic() -> TestResult {
        assert!(find_groups(&[], 0, 0.9)?.groups.is_empty());
        assert!(find_groups(&[], 8, 0.9)?.groups.is_empty());
        assert!(find_groups(&[1.0, 0.0], 2, 0.9)?.groups.is_empty());
        assert_eq!(
            find_groups(&[1.0, 0.0, 0.0], 2, 0.9),
            Err(DupesError::BadMatrix { values: 3, dim: 2 })
        );
        for bad in [0.49f32, 1.01, f32::NAN, f32::INFINITY, -1.0] {
            assert!(matches!(
                find_groups(&[1.0, 0.0], 2, bad),
                Err(DupesError::BadThreshold { .. })
            ));
        }
        // Threshold 1: exact copies only (up to rounding).
        let m = [0.6f32, 0.8, 0.6, 0.8, 0.8, 0.6];
        assert_eq!(find_groups(&m, 2, 1.0)?.groups, [vec![0, 1]]);
        Ok(())
    }

    fn entry(position: usize, size_bytes: u64, modified_ms: i64) -> Entry {
        let m = meta(&format!("{position}.jpg"));
        Entry {
            id: position as u64 * 10,
            path: m.path,
            size_bytes,
            modified_ms,
            content_hash: m.content_hash,
            taken_ms: None,
        }
    }

    #[test]
    fn split_best_keeps_the_largest_then_newest_then_first() {
        let entries = [
            entry(0, 100, 5),
            entry(1, 300, 1),
            entry(2, 300, 9),
            entry(3, 300, 9),
            entry(4, 50, 99),
        ];
        assert_eq!(
            split_best(&[0, 1, 2, 3, 4], &entries),
            Some(DuplicateGroup {
                keep: 2,
                others: vec![0, 1, 3, 4]
            })
        );
        assert_eq!(
            split_best(&[4, 0], &entries),
            Some(DuplicateGroup {
                keep: 0,
                others: vec![4]
            })
        );
        assert_eq!(
            split_best(&[1, 0], &entries),
            Some(DuplicateGroup {
                keep: 1,
                others: vec![0]
            })
        );
        assert_eq!(split_best(&[], &entries), None);
        assert_eq!(split_best(&[0, 9], &entries), None);
    }

    #[test]
    fn duplicates_of_an_index() -> TestResult {
        let mut index = EmbeddingIndex::new("m", 3);
        let mut add = |path: &str, size: u64, v: [f32; 3]| {
            index.upsert(
                super::super::EntryMeta {
                    size_bytes: size,
                    ..meta(path)
                },
                &v,
            )
        };
        add("a.jpg", 10, [1.0, 0.0, 0.0])?;
        add("b.jpg", 99, [0.0, 1.0, 0.0])?;
        add("a-copy.jpg", 20, [1.0, 0.01, 0.0])?;
        add("b-small.jpg", 5, [0.0, 1.0, 0.001])?;
        add("b-again.jpg", 5, [0.0, 1.0, 0.0])?;
        add("c.jpg", 5, [0.0, 0.0, 1.0])?;
        let (groups, _) = duplicates(&index, 0.99)?;
        assert_eq!(
            groups,
            [
                DuplicateGroup {
                    keep: 1,
                    others: vec![3, 4]
                },
                DuplicateGroup {
                    keep: 2,
                    others: vec![0]
                },
            ]
        );
        Ok(())
    }
}
