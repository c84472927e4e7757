//! Tests of what a drop sets apart before anything is read (`page::run`): files refused by
//! their first bytes and remembered (`page::refused`), entries of a dropped tree the
//! browser could not open, and the claims that keep two tabs' new folders apart
//! (`page::tabs`), the claims run against a shared `MemoryPhotoStore`.

use super::*;
use crate::page::errors::unreadable_entry;
use crate::page::photo_store::{MemoryPhotoStore, PhotoStore, Thumb};
use crate::page::tabs::{TabId, Tabs};
use crate::page::testing::block_on;

const TIFF: &str = "clipseek cannot read TIFF images.";

fn refusal(path: &str, size: u64, date: i64) -> RefusedFile {
    RefusedFile {
        key: RefusedKey::new(path, size, date),
        reason: TIFF.into(),
    }
}

/// `folder(root, n, date)` with `extra` (of `size` bytes, its handle its path) among its
/// files.
fn folder_with(root: &str, n: usize, date: i64, extra: &str, size: u64) -> In {
    let mut input = folder(root, n, date);
    if let Input::Dropped { files, .. } = &mut input {
        let path = format!("{root}/{extra}");
        files.push(DropFile {
            handle: path.clone(),
            path,
            folder: Some(0),
            size_bytes: size,
            modified_ms: date,
        });
    }
    input
}

fn remembered(effects: &[Eff]) -> Vec<RefusedFile> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Remember(files) => files.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn sent_files(effects: &[Eff]) -> Vec<String> {
    encodes(effects).into_iter().flat_map(|j| j.files).collect()
}

/// Drops `input` on an open page and runs it to the end (booting the worker it starts, if
/// any): every effect.
fn run_drop(s: &mut Sim, input: In) -> Vec<Eff> {
    let e = s.go(input);
    match spawned(&e).last().copied() {
        Some(w) => {
            let booted = s.boot(w);
            let mut all = e;
            all.extend(s.settle(booted));
            all
        }
        None => s.settle(e),
    }
}

#[test]
fn a_file_refused_by_its_head_is_remembered_listed_and_never_sent() {
    let (mut s, _) = Sim::open(1);
    let r = s.go(Input::Refused(vec![refusal("DCIM/raw.tif", 500, 1)]));
    assert_eq!(remembered(&r), vec![refusal("DCIM/raw.tif", 500, 1)]);
    let all = run_drop(&mut s, folder_with("DCIM", 2, 1, "raw.tif", 500));
    assert!(!sent_files(&all).contains(&"DCIM/raw.tif".to_owned()));
    assert_eq!(s.ix.indexed(), 2);
    assert_eq!(s.ix.skipped().reason("DCIM/raw.tif"), Some(TIFF));
    assert_eq!(s.ix.view().skipped, 1);
    assert!(s.line().contains("1 could not be read"), "{}", s.line());
}

#[test]
fn a_refused_file_dropped_again_is_listed_without_being_read() {
    let (mut s, _) = Sim::open(1);
    s.go(Input::Refused(vec![refusal("DCIM/raw.tif", 500, 1)]));
    run_drop(&mut s, folder_with("DCIM", 2, 1, "raw.tif", 500));
    assert_eq!(
        s.ix.refusal(&RefusedKey::new("DCIM/raw.tif", 500, 1)),
        Some(TIFF),
        "the shell asks before reading its head"
    );
    let again = run_drop(&mut s, folder_with("DCIM", 2, 1, "raw.tif", 500));
    assert!(sent_files(&again).is_empty(), "nothing is read: {again:?}");
    assert!(remembered(&again).is_empty(), "stored once");
    assert_eq!(s.ix.skipped().reason("DCIM/raw.tif"), Some(TIFF));
    assert!(
        s.line().contains("2 unchanged, 1 could not be read"),
        "{}",
        s.line()
    );
}

#[test]
fn refusals_the_store_remembers_apply_to_the_first_drop() {
    let (mut s, _) = Sim::open(1);
    let r = s.go(Input::Remembered(vec![refusal("DCIM/raw.tif", 500, 1)]));
    assert!(remembered(&r).is_empty(), "already stored");
    let all = run_drop(&mut s, folder_with("DCIM", 1, 1, "raw.tif", 500));
    assert_eq!(sent_files(&all), vec!["DCIM/p00.jpg".to_owned()]);
    assert_eq!(s.ix.skipped().reason("DCIM/raw.tif"), Some(TIFF));
}

#[test]
fn a_changed_refused_file_is_tried_again() {
    let (mut s, _) = Sim::open(1);
    s.go(Input::Remembered(vec![refusal("DCIM/raw.tif", 500, 1)]));
    let all = run_drop(&mut s, folder_with("DCIM", 1, 1, "raw.tif", 501));
    assert!(sent_files(&all).contains(&"DCIM/raw.tif".to_owned()));
    assert_eq!(s.ix.indexed(), 2, "edited into something readable");
}

#[test]
fn a_refusal_is_keyed_by_the_dropped_path_and_listed_under_the_stored_one() {
    let (mut s, _) = Sim::open(1);
    run_drop(&mut s, folder("DCIM", 2, 1));
    // Another phone's DCIM (other dates): stored as DCIM (2), its TIFF refused by its head.
    s.go(Input::Refused(vec![refusal("DCIM/raw.tif", 500, 7)]));
    let all = run_drop(&mut s, folder_with("DCIM", 2, 7, "raw.tif", 500));
    assert!(!sent_files(&all).contains(&"DCIM/raw.tif".to_owned()));
    assert_eq!(s.ix.skipped().reason("DCIM (2)/raw.tif"), Some(TIFF));
    assert_eq!(s.ix.indexed(), 4);
}

#[test]
fn the_same_refusal_twice_is_stored_once() {
    let (mut s, _) = Sim::open(1);
    s.go(Input::Refused(vec![refusal("x.tif", 5, 1)]));
    let again = s.go(Input::Refused(vec![refusal("x.tif", 5, 1)]));
    assert!(remembered(&again).is_empty());
}

#[test]
fn a_drop_of_refused_files_only_ends_at_once() {
    let (mut s, _) = Sim::open(1);
    s.go(Input::Refused(vec![refusal("raw.tif", 5, 1)]));
    let e = s.go(Input::Dropped {
        files: vec![DropFile {
            handle: "raw.tif".into(),
            path: "raw.tif".into(),
            folder: None,
            size_bytes: 5,
            modified_ms: 1,
        }],
        roots: Vec::new(),
    });
    assert!(spawned(&e).is_empty(), "no encoder for nothing to read");
    assert!(e.contains(&Effect::RunEnded));
    assert!(!s.ix.is_running());
    assert_eq!(s.ix.skipped().reason("raw.tif"), Some(TIFF));
    assert!(s
        .line()
        .starts_with("Indexed 0 new photos, 1 could not be read"));
}

#[test]
fn clearing_the_index_or_a_clear_elsewhere_forgets_the_refusals() {
    let key = RefusedKey::new("DCIM/raw.tif", 500, 1);
    let (mut s, _) = Sim::open(1);
    s.go(Input::Remembered(vec![refusal("DCIM/raw.tif", 500, 1)]));
    s.ix.clear();
    assert_eq!(s.ix.refusal(&key), None);
    s.go(Input::Remembered(vec![refusal("DCIM/raw.tif", 500, 1)]));
    s.go(Input::Reloaded {
        stored: Vec::new(),
        unreadable: 0,
    });
    assert_eq!(s.ix.refusal(&key), None);
}

#[test]
fn entries_the_browser_could_not_open_are_listed_and_the_rest_indexed() {
    let (mut s, _) = Sim::open(1);
    let gone = unreadable_entry("NotFoundError", false);
    let locked = unreadable_entry("NotReadableError", true);
    s.go(Input::NotOpened(vec![
        ("DCIM/gone.jpg".into(), gone.clone()),
        ("DCIM/private".into(), locked.clone()),
    ]));
    run_drop(&mut s, folder("DCIM", 3, 1));
    assert_eq!(s.ix.indexed(), 3);
    assert_eq!(s.ix.skipped().reason("DCIM/gone.jpg"), Some(gone.as_str()));
    assert_eq!(s.ix.skipped().reason("DCIM/private"), Some(locked.as_str()));
    assert_eq!(s.ix.view().skipped, 2);
}

#[test]
fn an_unopened_entry_is_listed_before_the_model_is_open() {
    let mut s = Sim::new();
    s.go(Input::NotOpened(vec![(
        "DCIM/gone.jpg".into(),
        unreadable_entry("NotFoundError", false),
    )]));
    assert_eq!(s.ix.view().skipped, 1);
}

// ---------------------------------------------------------------------------------------
// Folder claims

/// One tab: its core, its tab rules, the shared store.
struct Tab {
    ix: Ix,
    tabs: Tabs,
    store: MemoryPhotoStore,
    now: f64,
    /// Claim requests not yet carried out.
    claims: Vec<(u32, Vec<FolderPlace>)>,
}

impl Tab {
    fn open(id: u64, store: &MemoryPhotoStore) -> Result<Self, String> {
        let generation = block_on(store.generation())?.map_err(|e| e.to_string())?;
        let mut tab = Self {
            ix: Ix::new(),
            tabs: Tabs::new(TabId(id), generation),
            store: store.clone(),
            now: 0.0,
            claims: Vec::new(),
        };
        let stored = block_on(store.load_all())?
            .map_err(|e| e.to_string())?
            .records;
        tab.go(Input::Opened {
            config: config(1, Backend::Auto),
            stored,
            unreadable: 0,
        })?;
        Ok(tab)
    }

    /// Applies `input` and carries out its effects (claims are kept for
    /// [`Tab::answer_claims`]; workers answer at once, saves go to the store).
    fn go(&mut self, input: In) -> Result<(), String> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            self.now += 1.0;
            for effect in self.ix.update(self.now, input) {
                if let Some(next) = self.carry_out(effect)? {
                    queue.push_back(next);
                }
            }
        }
        Ok(())
    }

    fn carry_out(&mut self, effect: Eff) -> Result<Option<In>, String> {
        Ok(match effect {
            Effect::Spawn(w) => Some(Input::Started(w)),
            Effect::Send {
                worker,
                message: ToWorker::Load { .. },
            } => Some(loaded(worker, None)),
            Effect::Encode {
                worker,
                message: ToWorker::Encode { job, keys, .. },
                files,
            } => {
                let answers = keys
                    .iter()
                    .zip(&files)
                    .map(|(&key, file)| Answer {
                        key,
                        result: Ok(Photo::Embedded {
                            hash: hash(file),
                            embedding: embedding(key as usize),
                            thumb: false,
                            browser: false,
                            taken_ms: None,
                        }),
                        thumb: None,
                    })
                    .collect();
                Some(Input::Encoded {
                    worker,
                    job,
                    answers,
                })
            }
            Effect::Claim { round, folders } => {
                self.claims.push((round, folders));
                None
            }
            Effect::Save { batch, photos } => {
                let records: Vec<_> = photos
                    .into_iter()
                    .map(|p| (p.record, Thumb::None))
                    .collect();
                let paths: Vec<String> = records.iter().map(|(r, _)| r.path.clone()).collect();
                let guard = self.tabs.guard(self.ix.claims_covering(&paths));
                Some(match block_on(self.store.save(&records, &guard))? {
                    Ok(()) => Input::SaveDone(batch),
                    Err(e) => Input::SaveFailed {
                        batch,
                        error: SaveError::Other(e.to_string()),
                    },
                })
            }
            _ => None,
        })
    }

    /// Asks the store for the claims requested so far, and tells the core.
    fn answer_claims(&mut self) -> Result<(), String> {
        for (round, folders) in std::mem::take(&mut self.claims) {
            let mut answers = Vec::new();
            for claim in self.tabs.claims_for(&folders) {
                let won = block_on(self.store.claim(&claim))?.map_err(|e| e.to_string())?;
                answers.push((claim, Some(won)));
            }
            self.go(Input::Claimed { round, answers })?;
        }
        Ok(())
    }

    fn roots(&self) -> BTreeSet<String> {
        self.ix
            .index()
            .map(|i| {
                i.entries()
                    .iter()
                    .filter_map(|e| crate::page::library::root_of(&e.path).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The stored photos: (path, size) each.
fn stored_files(store: &MemoryPhotoStore) -> Result<Vec<(String, u64)>, String> {
    let loaded = block_on(store.load_all())?.map_err(|e| e.to_string())?;
    let mut out: Vec<(String, u64)> = loaded
        .records
        .into_iter()
        .map(|r| (r.path, r.size_bytes))
        .collect();
    out.sort();
    Ok(out)
}

/// A folder `DCIM` of `n` photos `p00.jpg …` sized `base + i`.
fn phone(n: usize, base: u64) -> In {
    let files = (0..n)
        .map(|i| {
            let path = format!("DCIM/p{i:02}.jpg");
            DropFile {
                handle: format!("{base}/{path}"),
                path,
                folder: Some(0),
                size_bytes: base + i as u64,
                modified_ms: 1,
            }
        })
        .collect();
    Input::Dropped {
        files,
        roots: vec!["DCIM".into()],
    }
}

#[test]
fn a_new_folder_is_claimed_before_anything_is_read() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let mut a = Tab::open(0xA, &store)?;
    a.go(phone(2, 100))?;
    assert!(!a.ix.is_running(), "the run waits for the claim");
    assert_eq!(a.claims.len(), 1);
    a.answer_claims()?;
    assert_eq!(a.ix.indexed(), 2);
    // A save names its claim: the store would refuse another owner's.
    let paths = vec!["DCIM/p00.jpg".to_owned()];
    let claims = a.ix.claims_covering(&paths);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims.first().map(|c| c.name.as_str()), Some("DCIM"));
    Ok(())
}

#[test]
fn two_tabs_dropping_two_folders_of_one_name_at_once_keep_both() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let mut a = Tab::open(0xA, &store)?;
    let mut b = Tab::open(0xB, &store)?;
    // Both tabs place their phone's DCIM as the new folder "DCIM" before either saves.
    a.go(phone(3, 100))?;
    b.go(phone(3, 200))?;
    a.answer_claims()?;
    b.answer_claims()?;
    // B lost "DCIM" to A and placed its drop again: one more claim, for "DCIM (2)".
    assert_eq!(b.claims.len(), 1, "b asks again under the next alias");
    b.answer_claims()?;
    assert_eq!(
        a.roots(),
        BTreeSet::from(["DCIM".to_owned()]),
        "a keeps its name"
    );
    assert_eq!(b.roots(), BTreeSet::from(["DCIM (2)".to_owned()]));
    let stored = stored_files(&store)?;
    let mut expected: Vec<(String, u64)> = (0..3)
        .map(|i| (format!("DCIM/p{i:02}.jpg"), 100 + i))
        .chain((0..3).map(|i| (format!("DCIM (2)/p{i:02}.jpg"), 200 + i)))
        .collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "no photo of one phone replaced the other's"
    );
    Ok(())
}

#[test]
fn a_second_tab_that_saw_the_first_folder_claims_the_next_alias() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let mut a = Tab::open(0xA, &store)?;
    a.go(phone(2, 100))?;
    a.answer_claims()?;
    // B opened before A's photos were stored: its index is empty, so it places its DCIM
    // as "DCIM" too, and the store, holding A's photos there, refuses the claim.
    let mut b = Tab::open(0xB, &MemoryPhotoStore::new())?;
    b.store = store.clone();
    b.go(phone(2, 200))?;
    b.answer_claims()?;
    b.answer_claims()?;
    assert_eq!(b.roots(), BTreeSet::from(["DCIM (2)".to_owned()]));
    assert_eq!(stored_files(&store)?.len(), 4);
    Ok(())
}

#[test]
fn a_folder_found_again_needs_no_claim() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let mut a = Tab::open(0xA, &store)?;
    a.go(phone(2, 100))?;
    a.answer_claims()?;
    a.go(phone(3, 100))?;
    assert!(a.claims.is_empty(), "DCIM is a re-drop: {:?}", a.claims);
    assert_eq!(a.ix.indexed(), 3);
    Ok(())
}

#[test]
fn a_claim_the_store_could_not_answer_lets_the_drop_go_on_unguarded() -> Result<(), String> {
    let mut ix = Ix::new();
    ix.update(
        1.0,
        Input::Opened {
            config: config(1, Backend::Auto),
            stored: Vec::new(),
            unreadable: 0,
        },
    );
    let e = ix.update(2.0, phone(1, 100));
    let Some(Effect::Claim { round, folders }) = e.into_iter().next() else {
        return Err("no claim asked".into());
    };
    let answers = folders
        .into_iter()
        .map(|f| {
            let claim = Claim {
                name: f.root,
                owner: "a/1".into(),
            };
            (claim, None)
        })
        .collect();
    let e = ix.update(3.0, Input::Claimed { round, answers });
    assert!(!spawned(&e).is_empty(), "the run starts");
    assert!(ix.claims_covering(&["DCIM/p00.jpg".to_owned()]).is_empty());
    Ok(())
}

#[test]
fn a_claim_answered_after_a_clear_elsewhere_is_ignored() -> Result<(), String> {
    let (mut s, _) = Sim::open(1);
    let mut ix = std::mem::take(&mut s.ix);
    let e = ix.update(2.0, phone(1, 100));
    let Some(Effect::Claim { round, folders }) = e.into_iter().next() else {
        return Err("no claim asked".into());
    };
    // The store is cleared in another tab: its claims are gone.
    let r = ix.update(
        3.0,
        Input::Reloaded {
            stored: Vec::new(),
            unreadable: 0,
        },
    );
    let again = r
        .iter()
        .any(|e| matches!(e, Effect::Claim { round: r2, .. } if *r2 != round));
    assert!(again, "the waiting drop asks afresh: {r:?}");
    let answers = folders
        .into_iter()
        .map(|f| {
            let claim = Claim {
                name: f.root,
                owner: "a/1".into(),
            };
            (claim, Some(true))
        })
        .collect();
    let late = ix.update(4.0, Input::Claimed { round, answers });
    assert!(late.is_empty(), "the old answer changes nothing: {late:?}");
    assert!(!ix.is_running());
    Ok(())
}
