//! Removing many entries at once: one pass over the matrix however many rows go, so
//! forgetting 20,000 of 50,000 photos costs one compaction, not 20,000 (each single
//! [`EmbeddingIndex::remove`] moves every row after the removed one).
//!
//! It must not change what a removal means: the kept entries keep their ids, their order
//! and their rows bit for bit; removed ids are never reused; the path and hash maps forget
//! exactly the removed entries. Reference: `Vec::retain`'s in-place compaction.

use std::collections::HashSet;

use super::EmbeddingIndex;

impl EmbeddingIndex {
    /// Removes every entry whose id is in `ids` (unknown ids are ignored), in one pass.
    /// Returns how many entries were removed.
    pub fn remove_many(&mut self, ids: &[u64]) -> usize {
        let doomed: HashSet<u64> = ids.iter().copied().collect();
        if doomed.is_empty() {
            return 0;
        }
        let dim = self.dim;
        let mut kept = 0usize;
        for position in 0..self.entries.len() {
            let Some(entry) = self.entries.get(position) else {
                break;
            };
            if doomed.contains(&entry.id) {
                continue;
            }
            if kept != position {
                // Rows move forward only, so the source is never overwritten before it
                // is read.
                self.matrix
                    .copy_within(position * dim..(position + 1) * dim, kept * dim);
            }
            kept += 1;
        }
        if kept == self.entries.len() {
            return 0;
        }
        let mut gone = Vec::with_capacity(self.entries.len() - kept);
        self.entries.retain(|e| {
            let keep = !doomed.contains(&e.id);
            if !keep {
                gone.push((e.id, e.path.clone(), e.content_hash));
            }
            keep
        });
        self.matrix.truncate(kept * dim);
        for (id, path, hash) in &gone {
            self.id_by_path.remove(path);
            self.forget_hash(hash, *id);
        }
        gone.len()
    }

    /// Removes the entries indexed under `paths` (unknown paths are ignored), in one pass.
    /// Returns how many entries were removed.
    pub fn remove_paths(&mut self, paths: &[String]) -> usize {
        let ids: Vec<u64> = paths
            .iter()
            .filter_map(|p| self.id_by_path.get(p).copied())
            .collect();
        self.remove_many(&ids)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{hash_of, meta, XorShift};
    use super::super::{EmbeddingIndex, EntryMeta, IndexError};

    fn filled(n: usize, dim: usize, seed: u64) -> Result<EmbeddingIndex, IndexError> {
        let mut rng = XorShift::new(seed);
        let mut index = EmbeddingIndex::new("m", dim);
        for i in 0..n {
            index.upsert(meta(&format!("DCIM/{i:06}.jpg")), &rng.vector(dim))?;
        }
        Ok(index)
    }

    /// The same removal done one entry at a time, the slow reference.
    fn one_by_one(index: &EmbeddingIndex, ids: &[u64]) -> EmbeddingIndex {
        let mut slow = index.clone();
        for &id in ids {
            slow.remove(id);
        }
        slow
    }

    #[test]
    fn removing_many_equals_removing_one_by_one() -> Result<(), IndexError> {
        let index = filled(300, 8, 7)?;
        let mut rng = XorShift::new(11);
        let ids: Vec<u64> = (0..120).map(|_| rng.below(300) as u64).collect();
        let mut fast = index.clone();
        let removed = fast.remove_many(&ids);
        let slow = one_by_one(&index, &ids);
        assert_eq!(fast, slow);
        assert_eq!(removed, index.len() - slow.len());
        assert!(removed > 0 && removed <= 120);
        Ok(())
    }

    #[test]
    fn unknown_ids_and_an_empty_list_change_nothing() -> Result<(), IndexError> {
        let index = filled(10, 4, 3)?;
        let mut same = index.clone();
        assert_eq!(same.remove_many(&[]), 0);
        assert_eq!(same.remove_many(&[10, 99, u64::MAX]), 0);
        assert_eq!(same, index);
        Ok(())
    }

    #[test]
    fn removed_paths_and_hashes_are_forgotten_and_ids_not_reused() -> Result<(), IndexError> {
        let mut index = filled(6, 4, 5)?;
        // A second copy of photo 1's content under another path shares its hash.
        let copy = EntryMeta {
            content_hash: hash_of("DCIM/000001.jpg"),
            ..meta("Backup/one.jpg")
        };
        let copy_id = index.upsert(copy, &[0.0, 1.0, 0.0, 0.0])?;
        let gone = vec!["DCIM/000001.jpg".to_owned(), "DCIM/000004.jpg".to_owned()];
        assert_eq!(index.remove_paths(&gone), 2);
        assert!(index.entry_by_path("DCIM/000001.jpg").is_none());
        assert!(index.entry_by_path("DCIM/000004.jpg").is_none());
        // The hash now finds the copy, not the removed original.
        assert_eq!(
            index
                .find_by_hash(&hash_of("DCIM/000001.jpg"))
                .map(|e| e.id),
            Some(copy_id)
        );
        assert!(index.find_by_hash(&hash_of("DCIM/000004.jpg")).is_none());
        let next = index.upsert(meta("DCIM/new.jpg"), &[1.0, 0.0, 0.0, 0.0])?;
        assert_eq!(next, 7);
        assert_eq!(index.len(), 6);
        assert_eq!(index.matrix().len(), 6 * 4);
        Ok(())
    }

    /// Issue 8: forgetting 20,000 of 50,000 photos at 512 values is one pass. The kept
    /// rows are checked bit for bit against the rows they were before the removal.
    #[test]
    fn forgetting_20000_of_50000_keeps_every_other_row_exactly() -> Result<(), IndexError> {
        let (n, dim) = (50_000usize, 512usize);
        let index = filled(n, dim, 42)?;
        // Two of every five photos, scattered over the whole index.
        let doomed: Vec<u64> = (0..n as u64).filter(|i| i % 5 == 1 || i % 5 == 3).collect();
        assert_eq!(doomed.len(), 20_000);
        let mut fast = index.clone();
        let started = std::time::Instant::now();
        let removed = fast.remove_many(&doomed);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("remove_many: 20000 of 50000 x 512 in {elapsed_ms:.1} ms");
        assert_eq!(removed, 20_000);
        assert_eq!(fast.len(), 30_000);
        assert_eq!(fast.matrix().len(), 30_000 * dim);
        for (entry, row) in fast.entries().iter().zip(fast.matrix().chunks_exact(dim)) {
            assert!(entry.id % 5 != 1 && entry.id % 5 != 3);
            assert_eq!(Some(row), index.embedding(entry.id));
            assert_eq!(
                fast.entry_by_path(&entry.path).map(|e| e.id),
                Some(entry.id)
            );
        }
        for id in [1u64, 3, 49_998] {
            assert!(fast.entry(id).is_none());
            assert!(fast.entry_by_path(&format!("DCIM/{id:06}.jpg")).is_none());
        }
        Ok(())
    }
}
