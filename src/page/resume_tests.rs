//! Crash safety of indexing (issue 10, item 2): the page core (`page::run`) driven as the
//! shell drives it, its saves written into a [`MemoryPhotoStore`], and the tab closed at
//! each point of a save — before its transaction, after the transaction committed but
//! before the page heard of it, and in the middle of one (the store gives up part-way,
//! then the tab goes). The next start, read back from the store, must hold every photo
//! whose save committed and nothing of the others, each record whole with its thumbnail;
//! the same folder dropped again must encode exactly the photos that were not stored.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::library::{DropFile, FolderPlace};
use super::photo_store::{MemoryPhotoStore, PhotoStore, Thumb};
use super::pool::WorkerId;
use super::protocol::{Hash, Photo, ToWorker};
use super::run::{
    Answer, BatchId, Config, Effect, Indexer, Input, SaveError, ThumbOf, ToSave, BATCH,
};
use super::tabs::{TabId, Tabs};
use super::testing::block_on;
use crate::encode::{Backend, EngineKind, PrecisionChoice};

type Eff = Effect<String, u8>;
type In = Input<String, u8>;

const MODEL: &str = "model";
const DIM: usize = 4;

/// Where the tab is closed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    /// When the page asks for save number `n` (from 0): its transaction never runs.
    BeforeSave(usize),
    /// After save `n` committed, before the page is told.
    AfterCommit(usize),
    /// During save `n`: the store fails after `written` of its records, then the tab goes.
    MidSave { n: usize, written: u64 },
    /// Never: the run goes to its end.
    Never,
}

/// A tab: the core, the store it saves into, and what it sent to the encoders.
struct Tab {
    ix: Indexer<String, u8>,
    store: MemoryPhotoStore,
    now: f64,
    sent: Vec<String>,
    /// The number of photos of each save the page asked for, in order.
    saves: Vec<usize>,
    /// This tab's generation and claims (`page::tabs`).
    tabs: Tabs,
}

fn hash(path: &str) -> Hash {
    let mut h = [0u8; 32];
    for (i, b) in path.bytes().enumerate() {
        if let Some(slot) = h.get_mut(i % 32) {
            *slot ^= b.wrapping_add(i as u8);
        }
    }
    h
}

fn folder(root: &str, n: usize) -> In {
    let files = (0..n)
        .map(|i| {
            let path = format!("{root}/p{i:02}.jpg");
            DropFile {
                handle: path.clone(),
                path,
                folder: Some(0),
                size_bytes: 100 + i as u64,
                modified_ms: 7,
            }
        })
        .collect();
    Input::Dropped {
        files,
        roots: vec![root.to_owned()],
    }
}

impl Tab {
    /// A tab opened on `store` as the shell opens one: everything stored read back.
    fn open(store: &MemoryPhotoStore) -> Result<(Self, Vec<Eff>), String> {
        let loaded = block_on(store.load_all())?.map_err(|e| e.to_string())?;
        let mut tab = Self {
            ix: Indexer::new(),
            store: store.clone(),
            now: 1000.0,
            sent: Vec::new(),
            saves: Vec::new(),
            tabs: Tabs::new(TabId(1), loaded.generation),
        };
        let config = Config {
            model_key: "key".into(),
            model_id: MODEL.into(),
            dim: DIM,
            backend: Backend::Cpu,
            precision: PrecisionChoice::Auto,
            pool_size: 1,
            idle_release_s: 60,
        };
        let stored = loaded.records;
        let unreadable = loaded.unreadable.len();
        let effects = tab.go(Input::Opened {
            config,
            stored,
            unreadable,
        });
        Ok((tab, effects))
    }

    fn go(&mut self, input: In) -> Vec<Eff> {
        self.now += 1.0;
        self.ix.update(self.now, input)
    }

    /// Claims a drop's new folders as the shell does (`web::sync::claim`).
    fn claim(&mut self, round: u32, folders: &[FolderPlace]) -> Result<In, String> {
        let mut answers = Vec::new();
        for claim in self.tabs.claims_for(folders) {
            let won = block_on(self.store.claim(&claim))?.map_err(|e| e.to_string())?;
            answers.push((claim, Some(won)));
        }
        Ok(Input::Claimed { round, answers })
    }

    /// Writes one save as the shell does (records and thumbnails in one store call, guarded
    /// by the generation and the claims covering its photos).
    fn write(&self, photos: &[ToSave<u8>]) -> Result<(), String> {
        let mut out = Vec::with_capacity(photos.len());
        for p in photos {
            let thumb = match &p.thumb {
                ThumbOf::New(byte) => Thumb::Jpeg(Rc::from([*byte].as_slice())),
                ThumbOf::CopyOf(path) => Thumb::CopyOf(path.clone()),
                ThumbOf::None => Thumb::None,
            };
            out.push((p.record.clone(), thumb));
        }
        let paths: Vec<String> = photos.iter().map(|p| p.record.path.clone()).collect();
        let guard = self.tabs.guard(self.ix.claims_covering(&paths));
        block_on(self.store.save(&out, &guard))?.map_err(|e| e.to_string())
    }

    /// The answer of a worker to one encode job: every photo embedded, a thumbnail each.
    fn answer(worker: WorkerId, message: &ToWorker, files: &[String]) -> Option<In> {
        let ToWorker::Encode { job, keys, .. } = message else {
            return None;
        };
        let answers = keys
            .iter()
            .zip(files)
            .map(|(&key, file)| Answer {
                key,
                result: Ok(Photo::Embedded {
                    hash: hash(file),
                    embedding: vec![1.0, key as f32, 0.5, 0.25],
                    thumb: true,
                    browser: false,
                    taken_ms: None,
                }),
                thumb: Some(key as u8),
            })
            .collect();
        Some(Input::Encoded {
            worker,
            job: *job,
            answers,
        })
    }

    /// Carries out `effects` and what they lead to, until the run is done or the tab is
    /// cut. Returns whether the tab was cut.
    fn run(&mut self, effects: Vec<Eff>, cut: Cut) -> Result<bool, String> {
        let mut todo: Vec<In> = Vec::new();
        let mut pending = effects;
        for _ in 0..10_000 {
            for effect in std::mem::take(&mut pending) {
                if let Some(cut_now) = self.carry_out(effect, cut, &mut todo)? {
                    return Ok(cut_now);
                }
            }
            if todo.is_empty() {
                return Ok(false);
            }
            for input in std::mem::take(&mut todo) {
                pending.extend(self.go(input));
            }
        }
        Err("the run never ended".into())
    }

    /// One effect; `Some(true)` when the tab is closed here.
    fn carry_out(
        &mut self,
        effect: Eff,
        cut: Cut,
        todo: &mut Vec<In>,
    ) -> Result<Option<bool>, String> {
        match effect {
            Effect::Spawn(w) => todo.push(Input::Started(w)),
            Effect::Send {
                worker,
                message: ToWorker::Load { .. },
            } => todo.push(Input::Loaded {
                worker,
                model_id: MODEL.into(),
                engine: EngineKind::Cpu,
                detail: "the CPU".into(),
                fallback: None,
            }),
            Effect::Encode {
                worker,
                message,
                files,
            } => {
                self.sent.extend(files.iter().cloned());
                todo.extend(Self::answer(worker, &message, &files));
            }
            Effect::Claim { round, folders } => todo.push(self.claim(round, &folders)?),
            Effect::Save { batch, photos } => return self.save(batch, &photos, cut, todo),
            Effect::Fail { message, .. } => return Err(format!("the run failed: {message}")),
            _ => {}
        }
        Ok(None)
    }

    fn save(
        &mut self,
        batch: BatchId,
        photos: &[ToSave<u8>],
        cut: Cut,
        todo: &mut Vec<In>,
    ) -> Result<Option<bool>, String> {
        let n = self.saves.len();
        self.saves.push(photos.len());
        match cut {
            Cut::BeforeSave(at) if at == n => return Ok(Some(true)),
            Cut::MidSave { n: at, written } if at == n => {
                let before = block_on(self.store.load_all())?.map_err(|e| e.to_string())?;
                self.store
                    .limit_writes(Some(written.min((photos.len() as u64).saturating_sub(1))));
                let refused = self.write(photos).is_err();
                self.store.limit_writes(None);
                if !refused {
                    return Err("the store took a save it was told to give up part-way".into());
                }
                let after = block_on(self.store.load_all())?.map_err(|e| e.to_string())?;
                if after != before {
                    return Err("a save given up part-way left records behind".into());
                }
                return Ok(Some(true));
            }
            _ => {}
        }
        match self.write(photos) {
            Ok(()) if cut == Cut::AfterCommit(n) => Ok(Some(true)),
            Ok(()) => {
                todo.push(Input::SaveDone(batch));
                Ok(None)
            }
            Err(e) => {
                todo.push(Input::SaveFailed {
                    batch,
                    error: SaveError::Other(e),
                });
                Ok(None)
            }
        }
    }
}

/// The stored paths, and whether each has its thumbnail and an embedding of the model's width.
fn stored_paths(store: &MemoryPhotoStore) -> Result<Vec<String>, String> {
    let loaded = block_on(store.load_all())?.map_err(|e| e.to_string())?;
    assert!(loaded.unreadable.is_empty(), "{:?}", loaded.unreadable);
    let paths: Vec<String> = loaded.records.iter().map(|r| r.path.clone()).collect();
    let thumbs = block_on(store.thumbs(&paths))?.map_err(|e| e.to_string())?;
    for (r, t) in loaded.records.iter().zip(&thumbs) {
        assert_eq!(r.embedding.len(), DIM, "{} has a cut embedding", r.path);
        assert!(t.is_some(), "{} has no thumbnail", r.path);
        assert_eq!(r.model_id, MODEL);
    }
    Ok(paths)
}

/// How many photos a tab cut at `cut` has stored: the saves before the cut, and the one it
/// cuts when that one committed.
fn stored_by(saves: &[usize], cut: Cut) -> usize {
    let committed = match cut {
        Cut::BeforeSave(n) | Cut::MidSave { n, .. } => n,
        Cut::AfterCommit(n) => n + 1,
        Cut::Never => saves.len(),
    };
    saves.iter().take(committed).sum()
}

/// Indexes `n` photos in a tab cut at `cut`, opens a new tab on the same store, checks what
/// it holds (the photos of the saves that committed, the first ones in order), drops the
/// folder again and checks that only the rest is encoded and everything ends stored once.
/// Returns how many the cut tab had stored.
fn cut_and_resume(n: usize, cut: Cut) -> Result<usize, String> {
    let store = MemoryPhotoStore::new();
    let (mut first, e) = Tab::open(&store)?;
    let mut e = e;
    e.extend(first.go(folder("DCIM", n)));
    assert!(first.run(e, cut)?, "the tab was not cut at {cut:?}");
    let reported = first.ix.view().indexed;
    let expect_stored = stored_by(&first.saves, cut);

    let kept = stored_paths(&store)?;
    let want: Vec<String> = (0..expect_stored)
        .map(|i| format!("DCIM/p{i:02}.jpg"))
        .collect();
    assert_eq!(
        kept, want,
        "after the cut at {cut:?} (saves {:?})",
        first.saves
    );
    assert!(
        reported <= kept.len(),
        "the page reported {reported} saved, only {} are",
        kept.len()
    );

    let (mut second, e) = Tab::open(&store)?;
    assert_eq!(
        second.ix.view().indexed,
        expect_stored,
        "the next start holds every stored photo"
    );
    let mut e = e;
    e.extend(second.go(folder("DCIM", n)));
    assert!(!second.run(e, Cut::Never)?);
    let sent: BTreeSet<String> = second.sent.iter().cloned().collect();
    let rest: BTreeSet<String> = (expect_stored..n)
        .map(|i| format!("DCIM/p{i:02}.jpg"))
        .collect();
    assert_eq!(
        sent, rest,
        "the re-drop encodes exactly the photos not stored"
    );
    assert_eq!(second.sent.len(), rest.len(), "none twice");
    let all = stored_paths(&store)?;
    assert_eq!(all.len(), n, "{all:?}");
    let seqs: BTreeSet<u64> = block_on(store.load_all())?
        .map_err(|e| e.to_string())?
        .records
        .iter()
        .map(|r| r.seq as u64)
        .collect();
    assert_eq!(
        seqs.len(),
        n,
        "every stored photo keeps its own place in the order"
    );
    assert_eq!(second.ix.view().indexed, n);
    let line = second.ix.view().line;
    let new = n - expect_stored;
    let mut said = format!("Indexed {new} new photo{}", if new == 1 { "" } else { "s" });
    if expect_stored > 0 {
        said.push_str(&format!(", {expect_stored} unchanged"));
    }
    assert!(line.starts_with(&format!("{said} in ")), "{line}");
    Ok(expect_stored)
}

/// The saves an uncut run of `n` photos asks for.
fn saves_of_a_whole_run(n: usize) -> Result<Vec<usize>, String> {
    let store = MemoryPhotoStore::new();
    let (mut tab, mut e) = Tab::open(&store)?;
    e.extend(tab.go(folder("DCIM", n)));
    assert!(!tab.run(e, Cut::Never)?);
    assert_eq!(tab.saves.iter().sum::<usize>(), n);
    Ok(tab.saves)
}

#[test]
fn a_tab_closed_before_a_save_keeps_the_saves_before_it() -> Result<(), String> {
    let kept = cut_and_resume(22, Cut::BeforeSave(2))?;
    assert!((2 * BATCH..22).contains(&kept), "{kept}");
    Ok(())
}

#[test]
fn a_tab_closed_after_a_save_committed_keeps_that_save_too() -> Result<(), String> {
    let before = cut_and_resume(22, Cut::BeforeSave(2))?;
    let after = cut_and_resume(22, Cut::AfterCommit(2))?;
    assert!(after > before, "{before} then {after}");
    Ok(())
}

#[test]
fn a_save_cut_part_way_leaves_nothing_of_its_batch() -> Result<(), String> {
    for written in 0..BATCH as u64 {
        let kept = cut_and_resume(22, Cut::MidSave { n: 1, written })?;
        assert!(kept >= BATCH, "{kept}");
    }
    Ok(())
}

#[test]
fn a_tab_closed_before_its_first_save_leaves_nothing_and_starts_over() -> Result<(), String> {
    assert_eq!(cut_and_resume(9, Cut::BeforeSave(0))?, 0);
    Ok(())
}

#[test]
fn a_tab_closed_at_its_last_save_needs_only_that_save_again() -> Result<(), String> {
    let saves = saves_of_a_whole_run(22)?;
    assert!(saves.len() >= 3, "{saves:?}");
    let last = saves.len() - 1;
    let kept = cut_and_resume(22, Cut::BeforeSave(last))?;
    assert_eq!(kept, 22 - saves[last]);
    Ok(())
}
