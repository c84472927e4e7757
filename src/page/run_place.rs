//! A run's start: the waiting drops placed in the index (`page::library`, with the names
//! other tabs hold reserved), the files refused before set apart and listed (`page::refused`),
//! the new folders' names claimed for this tab first (`page::tabs`: [`Effect::Claim`], then
//! [`Input::Claimed`]; a name lost is reserved and the drops placed again), then the
//! unchanged files skipped (`ingest::plan`) and the rest queued in indexing order.
//!
//! It must not hand out work (that is `run_workers`) or read anything. Reference: DESIGN.md
//! "The page: folder identity", "storage, cost and two tabs".

use super::*;

impl<F: Clone, T: Clone> Indexer<F, T> {
    /// Starts indexing what is waiting, once the model is open, no run is going and every
    /// new folder's name is claimed (a name another tab holds is reserved and the drops
    /// placed again, so they go under the next free alias).
    pub(super) fn maybe_start(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        if self.run.is_some() || self.waiting.is_empty() || self.stopped {
            return;
        }
        if self.config.is_none() || !self.saves.is_idle() || self.claiming.is_some() {
            return;
        }
        let Some(index) = self.index.as_ref() else {
            return;
        };
        let placed = place_sets(index, self.waiting.clone(), &self.reserved, &self.refused);
        let unclaimed: Vec<FolderPlace> = placed
            .new_folders
            .iter()
            .filter(|f| !self.claims.contains_key(&f.root))
            .cloned()
            .collect();
        if !unclaimed.is_empty() {
            self.claim_rounds = self.claim_rounds.wrapping_add(1);
            self.claiming = Some(self.claim_rounds);
            out.push(Effect::Claim {
                round: self.claim_rounds,
                folders: unclaimed,
            });
            return;
        }
        self.waiting.clear();
        self.start_run(now, placed, out);
    }

    fn start_run(&mut self, now: f64, placed: Placement<F>, out: &mut Vec<Effect<F, T>>) {
        let Some(index) = self.index.as_ref() else {
            return;
        };
        let Placement {
            mut candidates,
            files,
            roots,
            refused,
            ..
        } = placed;
        let plan = ingest::plan(index, &mut candidates, &roots);
        for c in &candidates {
            if let Some(f) = files.get(&c.path) {
                self.originals.insert(c.path.clone(), f.clone());
            }
        }
        let items: Vec<Item<F>> = plan
            .encode
            .iter()
            .filter_map(|&i| {
                let c = candidates.get(i)?;
                Some(Item {
                    path: c.path.clone(),
                    size_bytes: c.size_bytes,
                    modified_ms: c.modified_ms,
                    file: files.get(&c.path)?.clone(),
                })
            })
            .collect();
        let limit = items.len();
        let failed = refused.len();
        for (path, reason) in refused {
            self.skipped.insert(path, reason);
        }
        self.note = None;
        self.forget = None;
        self.crashes = CrashBudget::new();
        self.run = Some(Run {
            items,
            next_dispatch: 0,
            solo: VecDeque::new(),
            finished: BTreeMap::new(),
            next_apply: 0,
            limit,
            added: 0,
            reused: 0,
            failed,
            unchanged: plan.unchanged,
            discarded: 0,
            vanished: plan.vanished,
            paused: false,
            cancelled: false,
            rate: Rate::new(10_000.0),
            started_ms: now,
        });
        if limit == 0 {
            self.finish(now, out);
            return;
        }
        self.ensure_pool(out);
        self.known_hashes(None, out);
        self.dispatch(out);
        self.report(now, true);
    }

    /// The store answered a claim: names won are this tab's, names lost are reserved, and
    /// the waiting drops are placed again.
    pub(super) fn claimed(
        &mut self,
        now: f64,
        round: u32,
        answers: Vec<(Claim, Option<bool>)>,
        out: &mut Vec<Effect<F, T>>,
    ) {
        if self.claiming != Some(round) {
            // An answer from before a reload: the store it answered for was cleared.
            return;
        }
        self.claiming = None;
        for (claim, won) in answers {
            match won {
                Some(true) => {
                    self.claims.insert(claim.name.clone(), Some(claim));
                }
                Some(false) => {
                    self.reserved.insert(claim.name);
                }
                None => {
                    self.claims.insert(claim.name, None);
                }
            }
        }
        self.maybe_start(now, out);
    }
}

/// Where the waiting drops' files go.
struct Placement<F> {
    /// The files to index, under their stored paths.
    candidates: Vec<Candidate>,
    /// Their files by those paths.
    files: HashMap<String, F>,
    /// The stored folders dropped again.
    roots: Vec<String>,
    /// The folders placed as new (each needs this tab's claim).
    new_folders: Vec<FolderPlace>,
    /// Files refused before (stored path, reason): listed, not read.
    refused: Vec<(String, String)>,
}

/// Places the waiting drops' files in the index (`page::library`), with `reserved` names
/// held elsewhere and the `refused` files set apart.
fn place_sets<F>(
    index: &EmbeddingIndex,
    sets: Vec<(Vec<DropFile<F>>, Vec<String>, Origin)>,
    reserved: &BTreeSet<String>,
    refused: &Refused,
) -> Placement<F> {
    let mut known = Known::new(
        index
            .entries()
            .iter()
            .map(|e| (e.path.as_str(), e.size_bytes, e.modified_ms)),
    );
    for name in reserved {
        known.reserve_root(name);
    }
    let mut out = Placement {
        candidates: Vec::new(),
        files: HashMap::new(),
        roots: Vec::new(),
        new_folders: Vec::new(),
        refused: Vec::new(),
    };
    for (dropped, set_roots, origin) in sets {
        let placed = place_drop(&mut known, &set_roots, dropped, origin);
        for f in placed.folders {
            if f.same {
                out.roots.push(f.root);
            } else {
                out.new_folders.push(f);
            }
        }
        for p in placed.files {
            let key = RefusedKey::new(&p.dropped, p.size_bytes, p.modified_ms);
            if let Some(reason) = refused.reason(&key) {
                out.refused.push((p.path, reason.to_owned()));
                continue;
            }
            out.candidates.push(Candidate {
                path: p.path.clone(),
                size_bytes: p.size_bytes,
                modified_ms: p.modified_ms,
            });
            out.files.entry(p.path).or_insert(p.handle);
        }
    }
    out
}
