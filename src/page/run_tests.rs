//! Tests of indexing runs (`page::run`): scheduling, pause / cancel / resume, crashes,
//! engine fallbacks, stale replies, saves that fail and are retried, restore at start-up,
//! the idle release and the search by photo. Files are their names, thumbnails a byte.

use super::*;

type Ix = Indexer<String, u8>;
type Eff = Effect<String, u8>;
type In = Input<String, u8>;

const DIM: usize = 4;

fn config(pool_size: usize, backend: Backend) -> Config {
    Config {
        model_key: "key".into(),
        model_id: "model".into(),
        dim: DIM,
        backend,
        precision: PrecisionChoice::Auto,
        pool_size,
        idle_release_s: 60,
    }
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

fn embedding(n: usize) -> Vec<f32> {
    vec![1.0, n as f32, 0.5, 0.25]
}

/// The EXIF date taken [`Sim::answer`] reports for key n: even keys have one.
fn taken(n: usize) -> Option<i64> {
    n.is_multiple_of(2)
        .then(|| 1_600_000_000_000 - n as i64 * 86_400_000)
}

/// A page driven by hand: each input is one millisecond after the last.
struct Sim {
    ix: Ix,
    now: f64,
}

impl Sim {
    fn new() -> Self {
        Self {
            ix: Ix::new(),
            now: 1000.0,
        }
    }

    fn open(pool: usize) -> (Self, Vec<Eff>) {
        Self::open_with(config(pool, Backend::Auto), Vec::new(), 0)
    }

    fn open_with(config: Config, stored: Vec<Stored>, unreadable: usize) -> (Self, Vec<Eff>) {
        let mut s = Self::new();
        let e = s.go(Input::Opened {
            config,
            stored,
            unreadable,
        });
        (s, e)
    }

    /// One input; the folder claims it asks for are all won at once (two tabs racing for
    /// one name are `run_claims_tests`).
    fn go(&mut self, input: In) -> Vec<Eff> {
        self.now += 1.0;
        let mut out = self.ix.update(self.now, input);
        while let Some(at) = out.iter().position(|e| matches!(e, Effect::Claim { .. })) {
            let Effect::Claim { round, folders } = out.remove(at) else {
                break;
            };
            let answers = folders
                .into_iter()
                .map(|f| {
                    let owner = format!("this tab/{}", f.root);
                    (
                        Claim {
                            name: f.root,
                            owner,
                        },
                        Some(true),
                    )
                })
                .collect();
            out.extend(self.ix.update(self.now, Input::Claimed { round, answers }));
        }
        out
    }

    fn later(&mut self, ms: f64, input: In) -> Vec<Eff> {
        self.now += ms;
        self.go(input)
    }

    /// Drops a folder `root` of `n` photos `p00.jpg …` (size 100 + i, date 1).
    fn drop_folder(&mut self, root: &str, n: usize) -> Vec<Eff> {
        self.go(folder(root, n, 1))
    }

    /// Starts and loads worker `id`: the effects of its `loaded`.
    fn boot(&mut self, id: WorkerId) -> Vec<Eff> {
        self.go(Input::Started(id));
        self.go(loaded(id, None))
    }

    /// Answers a job with every photo embedded (key n → embedding(n)), a thumbnail each.
    fn answer(&mut self, job: &Sent) -> Vec<Eff> {
        let answers = job
            .keys
            .iter()
            .zip(&job.files)
            .map(|(&key, file)| Answer {
                key,
                result: Ok(Photo::Embedded {
                    hash: hash(file),
                    embedding: embedding(key as usize),
                    thumb: true,
                    browser: false,
                    taken_ms: taken(key as usize),
                }),
                thumb: Some(key as u8),
            })
            .collect();
        self.go(Input::Encoded {
            worker: job.worker,
            job: job.job,
            answers,
        })
    }

    /// Answers every save in `effects` as done, and those the answers lead to.
    fn save_all(&mut self, effects: Vec<Eff>) -> Vec<Eff> {
        let mut all = Vec::new();
        let mut todo = effects;
        while let Some(batch) = saves(&todo).first().map(|(b, _)| *b) {
            all.extend(todo);
            todo = self.go(Input::SaveDone(batch));
        }
        all.extend(todo);
        all
    }

    /// Runs everything to the end: every job answered, every save done.
    fn settle(&mut self, effects: Vec<Eff>) -> Vec<Eff> {
        let mut all = Vec::new();
        let mut todo = effects;
        for _ in 0..1000 {
            let jobs = encodes(&todo);
            let batches = saves(&todo);
            all.extend(todo);
            todo = Vec::new();
            if jobs.is_empty() && batches.is_empty() {
                break;
            }
            for (b, _) in batches {
                todo.extend(self.go(Input::SaveDone(b)));
            }
            for j in jobs {
                todo.extend(self.answer(&j));
            }
        }
        all
    }

    fn line(&self) -> String {
        self.ix.view().line
    }

    fn paths(&self) -> Vec<String> {
        self.ix
            .index()
            .map(|i| i.entries().iter().map(|e| e.path.clone()).collect())
            .unwrap_or_default()
    }
}

fn folder(root: &str, n: usize, date: i64) -> In {
    let files = (0..n)
        .map(|i| {
            let path = format!("{root}/p{i:02}.jpg");
            DropFile {
                handle: path.clone(),
                path,
                folder: Some(0),
                size_bytes: 100 + i as u64,
                modified_ms: date,
            }
        })
        .collect();
    Input::Dropped {
        files,
        roots: vec![root.to_owned()],
    }
}

fn loaded(worker: WorkerId, fallback: Option<&str>) -> In {
    Input::Loaded {
        worker,
        model_id: "model".into(),
        engine: if fallback.is_some() {
            EngineKind::Cpu
        } else {
            EngineKind::WebGpu
        },
        detail: "WebGPU on Test (f32)".into(),
        fallback: fallback.map(str::to_owned),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    worker: WorkerId,
    job: JobId,
    keys: Vec<u32>,
    dedupe: bool,
    thumbnails: bool,
    files: Vec<String>,
}

fn encodes(effects: &[Eff]) -> Vec<Sent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Encode {
                worker,
                message:
                    ToWorker::Encode {
                        job,
                        keys,
                        thumbnails,
                        dedupe,
                    },
                files,
            } => Some(Sent {
                worker: *worker,
                job: *job,
                keys: keys.clone(),
                dedupe: *dedupe,
                thumbnails: *thumbnails,
                files: files.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// `pick!(name -> T, pattern => value)`: a function listing the value of every effect that
/// matches the pattern, in order.
macro_rules! pick {
    ($name:ident -> $t:ty, $pat:pat => $out:expr) => {
        fn $name(effects: &[Eff]) -> Vec<$t> {
            effects
                .iter()
                .filter_map(|e| match e {
                    $pat => Some($out),
                    _ => None,
                })
                .collect()
        }
    };
}

pick!(saves -> (BatchId, Vec<ToSave<u8>>), Effect::Save { batch, photos } => (*batch, photos.clone()));
pick!(spawned -> WorkerId, Effect::Spawn(w) => *w);
pick!(terminated -> WorkerId, Effect::Terminate(w) => *w);
pick!(loads -> WorkerId, Effect::Send { worker, message: ToWorker::Load { .. } } => *worker);
pick!(fails -> (String, bool), Effect::Fail { message, retry } => (message.clone(), *retry));
pick!(said -> String, Effect::SaySearch(s) => s.clone());

fn first_worker(effects: &[Eff]) -> WorkerId {
    spawned(effects)
        .first()
        .copied()
        .unwrap_or(WorkerId(u32::MAX))
}

/// An open page with one loaded worker and a folder of `n` photos dropped: the worker and
/// the effects of its `loaded` (the first batches).
fn running(n: usize) -> (Sim, WorkerId, Vec<Eff>) {
    let (mut s, _) = Sim::open(1);
    let e = s.drop_folder("DCIM", n);
    let w = first_worker(&e);
    let e = s.boot(w);
    (s, w, e)
}

// ---------------------------------------------------------------------------------------
// Scheduling

#[test]
fn a_drop_before_the_model_is_open_waits() {
    let mut s = Sim::new();
    let e = s.drop_folder("DCIM", 3);
    assert!(e.is_empty());
    assert!(s.ix.has_waiting());
    assert!(!s.ix.is_running());
}

#[test]
fn opening_the_model_starts_the_waiting_drop_with_a_full_pool() {
    let mut s = Sim::new();
    s.drop_folder("DCIM", 3);
    let e = s.go(Input::Opened {
        config: config(3, Backend::Auto),
        stored: Vec::new(),
        unreadable: 0,
    });
    assert_eq!(spawned(&e).len(), 3);
    assert!(s.ix.is_running());
    assert!(!s.ix.has_waiting());
}

#[test]
fn a_started_worker_is_asked_to_load_the_vision_tower_as_configured() {
    let (mut s, _) = Sim::open_with(config(1, Backend::Cpu), Vec::new(), 0);
    let w = first_worker(&s.drop_folder("DCIM", 2));
    let e = s.go(Input::Started(w));
    assert!(e.iter().any(|e| matches!(e,
        Effect::Send { worker, message: ToWorker::Load { tower: Tower::Vision, backend: Backend::Cpu, model_key, .. } }
            if *worker == w && model_key == "key")));
}

#[test]
fn workers_load_one_at_a_time() {
    let (mut s, _) = Sim::open(2);
    let ws = spawned(&s.drop_folder("DCIM", 20));
    let (a, b) = (ws[0], ws[1]);
    assert_eq!(loads(&s.go(Input::Started(a))), vec![a]);
    assert!(loads(&s.go(Input::Started(b))).is_empty(), "b waits for a");
    assert_eq!(loads(&s.go(loaded(a, None))), vec![b]);
}

#[test]
fn a_loaded_worker_gets_the_known_hashes_and_two_batches_in_order() {
    let (_, w, e) = running(20);
    assert!(e.iter().any(|e| matches!(e,
        Effect::Send { worker, message: ToWorker::KnownHashes { .. } } if *worker == w)));
    let jobs = encodes(&e);
    assert_eq!(jobs.len(), 2, "one running, one waiting");
    assert_eq!(jobs[0].keys, vec![0, 1, 2, 3]);
    assert_eq!(jobs[1].keys, vec![4, 5, 6, 7]);
    assert!(jobs
        .iter()
        .all(|j| j.dedupe && j.thumbnails && j.worker == w));
    assert_eq!(jobs[0].files[0], "DCIM/p00.jpg");
}

#[test]
fn photos_are_queued_in_path_order_whatever_order_they_were_dropped_in() {
    let (mut s, _) = Sim::open(1);
    let In::Dropped { mut files, roots } = folder("DCIM", 6, 1) else {
        return;
    };
    files.reverse();
    let w = first_worker(&s.go(Input::Dropped { files, roots }));
    let jobs = encodes(&s.boot(w));
    assert_eq!(
        jobs[0].files,
        vec![
            "DCIM/p00.jpg",
            "DCIM/p01.jpg",
            "DCIM/p02.jpg",
            "DCIM/p03.jpg"
        ]
    );
}

#[test]
fn each_answer_hands_the_worker_another_batch() {
    let (mut s, _, e) = running(20);
    let jobs = encodes(&e);
    let next = encodes(&s.answer(&jobs[0]));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].keys, vec![8, 9, 10, 11]);
}

#[test]
fn results_are_applied_in_indexing_order() {
    let (mut s, _, e) = running(8);
    let jobs = encodes(&e);
    let later = s.answer(&jobs[1]);
    assert!(
        saves(&later).is_empty(),
        "the second batch waits for the first"
    );
    let first = s.answer(&jobs[0]);
    let batch = saves(&first);
    assert_eq!(batch.len(), 1);
    let paths: Vec<&str> = batch[0].1.iter().map(|p| p.record.path.as_str()).collect();
    assert_eq!(paths.len(), 8);
    assert_eq!(paths[0], "DCIM/p00.jpg");
    assert_eq!(paths[7], "DCIM/p07.jpg");
}

#[test]
fn the_index_holds_photos_only_once_they_are_saved() {
    let (mut s, _, e) = running(4);
    let jobs = encodes(&e);
    let after = s.answer(&jobs[0]);
    assert_eq!(s.ix.indexed(), 0, "not saved yet");
    let (batch, _) = saves(&after)[0].clone();
    let done = s.go(Input::SaveDone(batch));
    assert_eq!(s.ix.indexed(), 4);
    assert!(done
        .iter()
        .any(|e| matches!(e, Effect::Indexed { paths } if paths.len() == 4)));
}

#[test]
fn a_saved_photo_carries_its_thumbnail_and_the_model() {
    let (mut s, _, e) = running(1);
    let after = s.answer(&encodes(&e)[0]);
    let photos = &saves(&after)[0].1;
    assert_eq!(photos[0].thumb, ThumbOf::New(0));
    assert_eq!(photos[0].record.model_id, "model");
    assert_eq!(photos[0].record.content_hash, hash("DCIM/p00.jpg"));
    assert_eq!(photos[0].record.seq, 0.0);
}

#[test]
fn a_finished_run_says_how_many_new_photos_and_offers_the_idle_release() {
    let (mut s, _, e) = running(10);
    let all = s.settle(e);
    assert!(!s.ix.is_running());
    assert_eq!(s.ix.indexed(), 10);
    assert!(
        s.line().starts_with("Indexed 10 new photos in "),
        "{}",
        s.line()
    );
    assert!(all.contains(&Effect::RunEnded));
    assert!(all
        .iter()
        .any(|e| matches!(e, Effect::StartIdleTimer { ms: 60_000, .. })));
    assert_eq!(s.ix.view().progress, (10.0, Some(10.0)));
}

#[test]
fn a_second_drop_of_the_same_folder_encodes_nothing() {
    let (mut s, _, e) = running(5);
    s.settle(e);
    let again = s.drop_folder("DCIM", 5);
    assert!(encodes(&again).is_empty());
    assert!(!s.ix.is_running());
    assert!(
        s.line()
            .starts_with("Indexed 0 new photos, 5 unchanged in "),
        "{}",
        s.line()
    );
}

#[test]
fn a_drop_during_a_run_waits_for_it_and_then_starts() {
    let (mut s, w, e) = running(4);
    let during = s.drop_folder("Other", 3);
    assert!(encodes(&during).is_empty());
    assert!(s.ix.has_waiting());
    let all = s.settle(e);
    assert!(!s.ix.has_waiting());
    assert!(encodes(&all)
        .iter()
        .any(|j| j.worker == w && j.files[0] == "Other/p00.jpg"));
    s.settle(Vec::new());
    assert_eq!(s.ix.indexed(), 7);
}

#[test]
fn two_folders_of_the_same_name_are_both_kept() {
    let (mut s, _, e) = running(3);
    s.settle(e);
    let second = s.go(folder("DCIM", 3, 99));
    s.settle(second);
    assert_eq!(s.ix.indexed(), 6);
    assert!(s.paths().iter().any(|p| p == "DCIM (2)/p00.jpg"));
}

#[test]
fn a_photo_that_cannot_be_read_is_listed_and_counted() {
    let (mut s, _, e) = running(2);
    let job = encodes(&e)[0].clone();
    let answers = vec![
        Answer {
            key: 0,
            result: Err("not a JPEG".to_owned()),
            thumb: None,
        },
        Answer {
            key: 1,
            result: Ok(Photo::Embedded {
                hash: hash("b"),
                embedding: embedding(1),
                thumb: false,
                browser: false,
                taken_ms: None,
            }),
            thumb: None,
        },
    ];
    let after = s.go(Input::Encoded {
        worker: job.worker,
        job: job.job,
        answers,
    });
    s.save_all(after);
    let skipped = s.ix.skipped();
    assert_eq!(skipped.reason("DCIM/p00.jpg"), Some("not a JPEG"));
    assert_eq!(s.ix.view().skipped, 1);
    assert!(
        s.line().contains("1 new photo, 1 could not be read"),
        "{}",
        s.line()
    );
}

#[test]
fn a_photo_the_browser_decoded_is_marked_in_its_record_its_copies_and_after_a_restart() {
    let (mut s, _, e) = running(1);
    let job = encodes(&e).remove(0);
    let answer = |job: &Sent, result: Photo| Input::Encoded {
        worker: job.worker,
        job: job.job,
        answers: vec![Answer {
            key: job.keys[0],
            result: Ok(result),
            thumb: None,
        }],
    };
    let avif = hash("photo.avif");
    let marked = |effects: &[Eff]| -> Vec<(String, bool)> {
        saves(effects)
            .into_iter()
            .flat_map(|(_, photos)| photos)
            .map(|p| (p.record.path, p.record.browser_decoded))
            .collect()
    };
    let after = s.go(answer(
        &job,
        Photo::Embedded {
            hash: avif,
            embedding: embedding(0),
            thumb: false,
            browser: true,
            taken_ms: None,
        },
    ));
    assert_eq!(marked(&after), vec![("DCIM/p00.jpg".to_owned(), true)]);
    s.save_all(after);
    assert!(s.ix.decoded_by_browser(&avif));
    assert!(!s.ix.decoded_by_browser(&hash("DCIM/p00.jpg")));
    // The same bytes under another name: the page reuses the entry, and its mark.
    let e = s.drop_folder("Other", 1);
    let job = encodes(&e).remove(0);
    let after = s.go(answer(&job, Photo::Duplicate { hash: avif }));
    assert_eq!(marked(&after), vec![("Other/p00.jpg".to_owned(), true)]);
    // Restored from storage, the mark comes back; a clear forgets it.
    let mut record = stored("DCIM/p00.jpg", "model", 0.0);
    record.content_hash = avif;
    record.browser_decoded = true;
    let (mut t, _) = Sim::open_with(config(1, Backend::Auto), vec![record], 0);
    assert!(t.ix.decoded_by_browser(&avif));
    t.ix.clear();
    assert!(!t.ix.decoded_by_browser(&avif));
}

#[test]
fn an_embedding_the_index_would_refuse_is_skipped_before_it_is_saved() {
    let (mut s, _, e) = running(1);
    let job = encodes(&e)[0].clone();
    let after = s.go(Input::Encoded {
        worker: job.worker,
        job: job.job,
        answers: vec![Answer {
            key: 0,
            result: Ok(Photo::Embedded {
                hash: hash("x"),
                embedding: vec![1.0; DIM + 1],
                thumb: false,
                browser: false,
                taken_ms: None,
            }),
            thumb: None,
        }],
    });
    assert!(saves(&after).is_empty());
    assert!(s.ix.skipped().reason("DCIM/p00.jpg").is_some());
    assert!(!s.ix.is_running());
}

#[test]
fn a_copy_of_an_indexed_photo_reuses_its_embedding_and_thumbnail() {
    let (mut s, _, e) = running(1);
    s.settle(e);
    let copy = s.drop_folder("Copy", 1);
    let w = s.ix.vision_engines().0.len();
    assert_eq!(w, 1, "the worker is still loaded");
    let job = encodes(&copy)[0].clone();
    let after = s.go(Input::Encoded {
        worker: job.worker,
        job: job.job,
        answers: vec![Answer {
            key: 0,
            result: Ok(Photo::Duplicate {
                hash: hash("DCIM/p00.jpg"),
            }),
            thumb: None,
        }],
    });
    let photos = &saves(&after)[0].1;
    assert_eq!(photos[0].thumb, ThumbOf::CopyOf("DCIM/p00.jpg".into()));
    let twin = s.ix.index().and_then(|i| {
        let e = i.entry_by_path("DCIM/p00.jpg")?;
        i.embedding(e.id).map(<[f32]>::to_vec)
    });
    assert_eq!(Some(photos[0].record.embedding.clone()), twin);
    // Same bytes, same EXIF: the twin's date taken comes along.
    assert_eq!(photos[0].record.taken_ms, taken(0));
    s.save_all(after);
    assert!(s.line().contains("0 new photos, 1 reused"), "{}", s.line());
    let copied = s.ix.index().and_then(|i| i.entry_by_path("Copy/p00.jpg"));
    assert_eq!(copied.and_then(|e| e.taken_ms), taken(0));
}

#[test]
fn the_workers_date_taken_is_saved_and_indexed() {
    let (mut s, _, e) = running(3);
    let saved = s.settle(e);
    let records: Vec<Stored> = saves(&saved)
        .into_iter()
        .flat_map(|(_, photos)| photos.into_iter().map(|p| p.record))
        .collect();
    assert_eq!(records.len(), 3);
    for (key, r) in records.iter().enumerate() {
        assert_eq!(r.path, format!("DCIM/p{key:02}.jpg"));
        assert_eq!(r.taken_ms, taken(key), "{}", r.path);
        let entry = s.ix.index().and_then(|i| i.entry_by_path(&r.path));
        assert_eq!(entry.map(|e| e.taken_ms), Some(taken(key)), "{}", r.path);
    }
}

#[test]
fn a_duplicate_whose_twin_went_away_is_encoded_alone_for_real() {
    let (mut s, _, e) = running(1);
    s.settle(e);
    let copy = s.drop_folder("Copy", 1);
    let job = encodes(&copy)[0].clone();
    if let Some(id) = s.ix.index().and_then(|i| i.entries().first()).map(|e| e.id) {
        s.ix.remove(id);
    }
    let after = s.go(Input::Encoded {
        worker: job.worker,
        job: job.job,
        answers: vec![Answer {
            key: 0,
            result: Ok(Photo::Duplicate {
                hash: hash("DCIM/p00.jpg"),
            }),
            thumb: None,
        }],
    });
    let again = encodes(&after);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].keys, vec![0]);
    assert!(!again[0].dedupe);
    assert!(saves(&after).is_empty());
}

// ---------------------------------------------------------------------------------------
// Status and progress

#[test]
fn the_status_says_the_encoder_is_loading_until_one_is_ready() {
    let (mut s, _) = Sim::open(1);
    let w = first_worker(&s.drop_folder("DCIM", 4));
    s.go(Input::Started(w));
    s.go(Input::Loading(w, 0.42));
    assert_eq!(
        s.ix.view().status,
        Some((Busy::Loading, "Loading the photo encoder (42%)…".into()))
    );
    s.go(loaded(w, None));
    assert_eq!(
        s.ix.view().status,
        Some((Busy::Indexing, "Indexing: 0 of 4 photos.".into()))
    );
}

#[test]
fn the_progress_line_counts_photos_and_workers() {
    let (mut s, _, e) = running(8);
    let jobs = encodes(&e);
    s.later(200.0, Input::TogglePause);
    s.later(200.0, Input::TogglePause);
    let after = s.answer(&jobs[0]);
    s.save_all(after);
    let v = s.ix.view();
    assert!(v.line.starts_with("4 of 8 photos"), "{}", v.line);
    assert!(v.line.ends_with(" · 1 encoder worker"), "{}", v.line);
    assert_eq!(v.progress, (4.0, Some(8.0)));
    assert!(v.running);
}

#[test]
fn the_progress_line_is_not_rewritten_more_often_than_every_150_ms() {
    let (mut s, _, e) = running(12);
    let jobs = encodes(&e);
    let before = s.line();
    // The first answer comes less than 150 ms after the forced report of `loaded`.
    s.answer(&jobs[0]);
    assert_eq!(s.line(), before);
    s.now += PROGRESS_EVERY_MS;
    s.answer(&jobs[1]);
    assert_ne!(s.line(), before);
}

#[test]
fn nothing_running_shows_no_pause_and_lets_the_index_be_cleared() {
    let (mut s, _, e) = running(2);
    assert!(!s.ix.view().can_clear);
    s.settle(e);
    let v = s.ix.view();
    assert!(!v.running);
    assert!(v.can_clear);
    assert_eq!(v.status, None);
}

// ---------------------------------------------------------------------------------------
// Pause, resume, cancel

#[test]
fn a_paused_run_hands_out_nothing_and_says_so() {
    let (mut s, _, e) = running(20);
    let jobs = encodes(&e);
    s.go(Input::TogglePause);
    let after = s.answer(&jobs[0]);
    assert!(encodes(&after).is_empty());
    let v = s.ix.view();
    assert!(v.paused);
    assert!(v.line.contains("paused"), "{}", v.line);
    assert_eq!(
        v.status,
        Some((Busy::Indexing, "Paused: 4 of 20 photos.".into()))
    );
}

#[test]
fn resuming_hands_out_batches_again() {
    let (mut s, _, e) = running(20);
    let jobs = encodes(&e);
    s.go(Input::TogglePause);
    s.answer(&jobs[0]);
    let resumed = s.go(Input::TogglePause);
    assert_eq!(encodes(&resumed).len(), 1);
    assert!(!s.ix.view().paused);
}

#[test]
fn pause_without_a_run_does_nothing() {
    let (mut s, _) = Sim::open(1);
    assert!(s.go(Input::TogglePause).is_empty());
    assert!(s.go(Input::Cancel).is_empty());
}

#[test]
fn a_cancelled_run_finishes_what_it_handed_out_and_says_how_far_it_got() {
    let (mut s, _, e) = running(20);
    let jobs = encodes(&e);
    let cancelled = s.go(Input::Cancel);
    assert!(encodes(&cancelled).is_empty());
    let mut all = s.answer(&jobs[0]);
    all.extend(s.answer(&jobs[1]));
    let all = s.settle(all);
    assert!(encodes(&all).is_empty(), "nothing new is handed out");
    assert!(!s.ix.is_running());
    assert_eq!(s.ix.indexed(), 8);
    assert!(
        s.line().starts_with("Cancelled after 8 of 20 photos"),
        "{}",
        s.line()
    );
}

#[test]
fn a_cancelled_redrop_offers_nothing_to_forget() {
    let (mut s, _, e) = running(3);
    s.settle(e);
    let mut again = s.go(folder_without("DCIM", 3, 2));
    again.extend(s.go(Input::Cancel));
    s.settle(again);
    assert_eq!(s.ix.view().forget, None);
}

/// Folder `root` of `n` photos as `folder` makes them, without photo `missing`, plus one
/// new photo so there is something to encode.
fn folder_without(root: &str, n: usize, missing: usize) -> In {
    let In::Dropped { mut files, roots } = folder(root, n, 1) else {
        return Input::Cancel;
    };
    files.remove(missing);
    files.push(DropFile {
        path: format!("{root}/zz.jpg"),
        handle: format!("{root}/zz.jpg"),
        folder: Some(0),
        size_bytes: 7,
        modified_ms: 1,
    });
    Input::Dropped { files, roots }
}

#[test]
fn a_redrop_that_lacks_photos_offers_to_forget_them_and_keeps_them_until_asked() {
    let (mut s, _, e) = running(3);
    s.settle(e);
    let again = s.go(folder_without("DCIM", 3, 2));
    s.settle(again);
    assert_eq!(s.ix.indexed(), 4, "the missing photo is kept");
    assert_eq!(
        s.ix.view().forget.as_deref(),
        Some("Forget 1 photo no longer in DCIM")
    );
    assert!(
        s.line().contains("1 no longer in the folder (kept)"),
        "{}",
        s.line()
    );
    assert_eq!(s.ix.forget_offered(), vec!["DCIM/p02.jpg".to_owned()]);
    assert_eq!(s.ix.indexed(), 3);
    assert_eq!(s.line(), "Forgot 1 photo.");
    assert_eq!(s.ix.view().forget, None);
}

/// Folder `root` as `folder(root, n, 1)` makes it, walked again after photos `edited` were
/// edited (another size) and photo `n - 1` deleted: as a drop (`reconnect` false) or
/// through the handle it was indexed from.
fn walked_again(root: &str, n: usize, edited: usize, reconnect: bool) -> In {
    let In::Dropped { mut files, roots } = folder(root, n, 1) else {
        return Input::Cancel;
    };
    files.pop();
    for f in files.iter_mut().take(edited) {
        f.size_bytes += 1000;
    }
    match reconnect {
        true => Input::Reconnected { files, roots },
        false => Input::Dropped { files, roots },
    }
}

#[test]
fn a_reconnect_after_edits_reindexes_them_in_place_and_offers_the_deleted_one() {
    // Dropped, the two edited photos outvote the unchanged one: a second folder.
    let (mut s, _, e) = running(4);
    s.settle(e);
    let again = s.go(walked_again("DCIM", 4, 2, false));
    s.settle(again);
    assert!(
        s.paths().iter().any(|p| p.starts_with("DCIM (2)/")),
        "{:?}",
        s.paths()
    );
    // Reconnected, it is the same folder: the edits replace their photos, nothing else.
    let (mut s, _, e) = running(4);
    s.settle(e);
    let again = s.go(walked_again("DCIM", 4, 2, true));
    let all = s.settle(again);
    let read: usize = encodes(&all).iter().map(|j| j.files.len()).sum();
    assert_eq!(read, 2, "only the edited photos are read");
    let mut paths = s.paths();
    paths.sort();
    assert_eq!(
        paths,
        [
            "DCIM/p00.jpg",
            "DCIM/p01.jpg",
            "DCIM/p02.jpg",
            "DCIM/p03.jpg"
        ]
    );
    let sizes: Vec<u64> = (0..2)
        .filter_map(|i| {
            let ix = s.ix.index()?;
            let e = ix
                .entries()
                .iter()
                .find(|e| e.path == format!("DCIM/p{i:02}.jpg"))?;
            Some(e.size_bytes)
        })
        .collect();
    assert_eq!(sizes, [1100, 1101]);
    assert_eq!(
        s.ix.view().forget.as_deref(),
        Some("Forget 1 photo no longer in DCIM")
    );
}

// ---------------------------------------------------------------------------------------
// Crashes

#[test]
fn a_crash_refills_the_slot_and_retries_the_running_photos_alone() {
    let (mut s, w, e) = running(20);
    let jobs = encodes(&e);
    let crash = s.go(Input::Crashed {
        worker: w,
        message: "out of memory".into(),
    });
    assert_eq!(terminated(&crash), vec![w]);
    let fresh = spawned(&crash);
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0], w, "a new worker, never the old id");
    let retried = encodes(&s.boot(fresh[0]));
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[0].keys, vec![0], "one suspect at a time");
    assert_eq!(retried[1].keys, vec![1]);
    assert!(retried.iter().all(|j| !j.dedupe));
    assert!(!jobs.is_empty());
}

#[test]
fn the_jobs_waiting_behind_a_crash_are_not_charged() {
    let (mut s, w, _) = running(8);
    s.go(Input::Crashed {
        worker: w,
        message: "x".into(),
    });
    // Running: 0..4 charged once; waiting: 4..8 requeued uncharged.
    assert_eq!(s.ix.crashes.charged(0), 1);
    assert_eq!(s.ix.crashes.charged(4), 0);
}

#[test]
fn a_photo_that_crashes_twice_is_skipped_and_the_run_goes_on() {
    let (mut s, w, e) = running(1);
    assert_eq!(encodes(&e)[0].keys, vec![0]);
    let c1 = s.go(Input::Crashed {
        worker: w,
        message: "x".into(),
    });
    let w2 = spawned(&c1)[0];
    s.boot(w2);
    let c2 = s.go(Input::Crashed {
        worker: w2,
        message: "x".into(),
    });
    assert!(fails(&c2).is_empty(), "the run goes on");
    assert!(
        !s.ix.is_running(),
        "the only photo was skipped: the run ended"
    );
    let skipped = s.ix.skipped();
    assert_eq!(skipped.reason("DCIM/p00.jpg"), Some(CRASH_REASON));
    assert!(s.line().contains("1 could not be read"), "{}", s.line());
}

#[test]
fn a_reply_from_a_crashed_worker_is_dropped() {
    let (mut s, w, e) = running(8);
    let jobs = encodes(&e);
    let c = s.go(Input::Crashed {
        worker: w,
        message: "x".into(),
    });
    let stale = s.answer(&jobs[0]);
    assert!(saves(&stale).is_empty());
    assert!(encodes(&stale).is_empty());
    let fresh = spawned(&c)[0];
    let booted = s.boot(fresh);
    let all = s.settle(booted);
    assert_eq!(s.ix.indexed(), 8, "each photo once");
    assert!(!encodes(&all).is_empty());
}

#[test]
fn a_crash_of_a_worker_the_page_no_longer_holds_changes_nothing() {
    let (mut s, _, _) = running(4);
    let e = s.go(Input::Crashed {
        worker: WorkerId(999),
        message: "x".into(),
    });
    assert!(e.is_empty());
}

#[test]
fn crashes_while_loading_give_up_after_three_in_a_row() {
    let (mut s, _) = Sim::open(1);
    let mut w = first_worker(&s.drop_folder("DCIM", 4));
    let mut last = Vec::new();
    for _ in 0..3 {
        s.go(Input::Started(w));
        last = s.go(Input::Crashed {
            worker: w,
            message: "wasm trap".into(),
        });
        if let Some(&fresh) = spawned(&last).first() {
            w = fresh;
        }
    }
    let f = fails(&last);
    assert_eq!(f.len(), 1);
    assert!(f[0]
        .0
        .starts_with("The photo encoder stopped several times"));
    assert!(spawned(&last).is_empty(), "no fourth worker");
}

#[test]
fn a_worker_that_could_not_be_spawned_leaves_its_slot_empty() {
    let (mut s, _) = Sim::open(2);
    let ws = spawned(&s.drop_folder("DCIM", 4));
    s.go(Input::SpawnFailed(ws[1]));
    let e = s.go(Input::Started(ws[0]));
    assert_eq!(loads(&e), vec![ws[0]]);
    s.go(loaded(ws[0], None));
    assert!(s.line().ends_with(" · 1 encoder worker"), "{}", s.line());
}

#[test]
fn a_batch_that_could_not_be_sent_is_listed_as_skipped() {
    let (mut s, w, e) = running(4);
    let job = encodes(&e)[0].clone();
    s.go(Input::SendFailed {
        worker: w,
        job: job.job,
    });
    assert!(!s.ix.is_running());
    assert_eq!(s.ix.skipped().len(), 4);
}

// ---------------------------------------------------------------------------------------
// Engines and their failures

#[test]
fn a_worker_that_fell_back_to_the_cpu_says_why() {
    let (mut s, _) = Sim::open(1);
    let w = first_worker(&s.drop_folder("DCIM", 1));
    s.go(Input::Started(w));
    let e = s.go(loaded(w, Some("no WebGPU adapter")));
    assert!(e.contains(&Effect::Fallback("no WebGPU adapter".into())));
    assert_eq!(s.ix.vision_engines().0, vec![EngineKind::Cpu]);
}

#[test]
fn a_switch_to_the_cpu_engine_is_noted_and_the_run_goes_on() {
    let (mut s, w, e) = running(8);
    let jobs = encodes(&e);
    let sw = s.go(Input::Switched {
        worker: w,
        engine: EngineKind::Cpu,
        detail: "the CPU (f32)".into(),
        reason: "the WebGPU device was lost".into(),
    });
    assert!(sw.contains(&Effect::Fallback("the WebGPU device was lost".into())));
    assert_eq!(
        s.ix.vision_engines(),
        (vec![EngineKind::Cpu], vec!["the CPU (f32)".to_owned()])
    );
    let mut all = s.answer(&jobs[0]);
    all.extend(s.answer(&jobs[1]));
    s.settle(all);
    assert_eq!(s.ix.indexed(), 8);
}

#[test]
fn a_load_failure_under_auto_offers_retry_and_under_webgpu_does_not() {
    for (backend, retry) in [(Backend::Auto, true), (Backend::WebGpu, false)] {
        let (mut s, _) = Sim::open_with(config(1, backend), Vec::new(), 0);
        let w = first_worker(&s.drop_folder("DCIM", 1));
        s.go(Input::Started(w));
        let e = s.go(Input::Failed {
            worker: w,
            error: "no adapter".into(),
        });
        assert_eq!(
            fails(&e),
            vec![(
                "The photo encoder could not load the model: no adapter".to_owned(),
                retry
            )]
        );
    }
}

#[test]
fn a_failure_after_loading_stops_new_runs_until_the_model_is_opened_again() {
    let (mut s, w, _) = running(4);
    let e = s.go(Input::Failed {
        worker: w,
        error: "device lost.".into(),
    });
    let f = fails(&e);
    assert!(f[0]
        .0
        .starts_with("The photo encoder stopped: device lost."));
    assert!(!f[0].1);
    s.go(Input::Closed);
    s.drop_folder("Other", 2);
    assert!(!s.ix.is_running());
    let reopened = s.go(Input::Opened {
        config: config(1, Backend::Auto),
        stored: Vec::new(),
        unreadable: 0,
    });
    assert!(s.ix.is_running());
    assert_eq!(spawned(&reopened).len(), 1);
}

#[test]
fn a_worker_with_another_model_is_refused() {
    let (mut s, _) = Sim::open(1);
    let w = first_worker(&s.drop_folder("DCIM", 1));
    s.go(Input::Started(w));
    let e = s.go(Input::Loaded {
        worker: w,
        model_id: "other".into(),
        engine: EngineKind::Cpu,
        detail: String::new(),
        fallback: None,
    });
    assert_eq!(fails(&e).len(), 1);
    assert!(encodes(&e).is_empty());
}

#[test]
fn an_unreadable_message_is_shown() {
    let (mut s, _) = Sim::open(1);
    let e = s.go(Input::Unreadable("reload the page.".into()));
    assert_eq!(fails(&e), vec![("reload the page.".to_owned(), false)]);
}

#[test]
fn removing_the_model_stops_the_workers_and_the_run_but_keeps_the_index() {
    let (mut s, w, e) = running(4);
    s.settle(e);
    let more = s.drop_folder("Other", 4);
    assert!(s.ix.is_running());
    let e = s.go(Input::Closed);
    assert_eq!(terminated(&e), vec![w]);
    assert!(!s.ix.is_running());
    assert_eq!(s.ix.indexed(), 4);
    assert!(!more.is_empty());
}

// ---------------------------------------------------------------------------------------
// Saves

fn failed_save(error: SaveError) -> (Sim, BatchId, Vec<Sent>) {
    let (mut s, _, e) = running(12);
    let mut jobs = encodes(&e);
    let after = s.answer(&jobs[0]);
    let (batch, _) = saves(&after)[0].clone();
    s.go(Input::SaveFailed { batch, error });
    // jobs[1] is in flight, and jobs[2], handed out when jobs[0] came back.
    jobs.extend(encodes(&after));
    (s, batch, jobs)
}

#[test]
fn a_full_storage_is_shown_with_retry_and_claims_no_photo() {
    let (s, _, _) = failed_save(SaveError::Quota);
    let v = s.ix.view();
    let error = v.save_error.unwrap_or_default();
    assert!(error.starts_with("The browser's storage is full, so 4 photos could not be saved."));
    assert!(error.contains("press Retry"));
    assert_eq!(v.status.map(|(b, _)| b), Some(Busy::Error));
    assert_eq!(s.ix.indexed(), 0);
}

#[test]
fn another_save_failure_says_why() {
    let (s, _, _) = failed_save(SaveError::Other("the transaction was aborted".into()));
    let error = s.ix.view().save_error.unwrap_or_default();
    assert!(error.contains("(the transaction was aborted)"), "{error}");
}

#[test]
fn a_failed_save_holds_the_run() {
    let (mut s, _, jobs) = failed_save(SaveError::Quota);
    let mut after = s.answer(&jobs[1]);
    after.extend(s.answer(&jobs[2]));
    assert!(encodes(&after).is_empty(), "nothing new is handed out");
    assert!(
        saves(&after).is_empty(),
        "nothing is saved past the failed batch"
    );
}

#[test]
fn retry_sends_the_same_batch_again() {
    let (mut s, batch, _) = failed_save(SaveError::Quota);
    let e = s.go(Input::RetrySave);
    let again = saves(&e);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0, batch);
    assert_eq!(again[0].1.len(), 4);
    assert_eq!(s.ix.view().save_error, None, "retrying: the error is gone");
}

#[test]
fn a_retried_save_that_works_fills_the_index_and_the_run_goes_on() {
    let (mut s, batch, jobs) = failed_save(SaveError::Quota);
    let mut e = s.answer(&jobs[1]);
    e.extend(s.answer(&jobs[2]));
    e.extend(s.go(Input::RetrySave));
    let done = s.go(Input::SaveDone(batch));
    assert_eq!(s.ix.indexed(), 4);
    assert!(!encodes(&done).is_empty() || !saves(&done).is_empty());
    e.extend(done);
    s.settle(e);
    assert_eq!(s.ix.indexed(), 12);
    assert!(
        s.line().starts_with("Indexed 12 new photos"),
        "{}",
        s.line()
    );
}

#[test]
fn retry_without_a_failed_save_does_nothing() {
    let (mut s, _, e) = running(4);
    let after = s.answer(&encodes(&e)[0]);
    assert_eq!(saves(&after).len(), 1);
    assert!(
        s.go(Input::RetrySave).is_empty(),
        "the save is still in flight"
    );
}

#[test]
fn a_drop_during_a_failed_save_runs_once_the_error_is_gone() {
    let (mut s, batch, jobs) = failed_save(SaveError::Quota);
    let during = s.drop_folder("Other", 2);
    assert!(encodes(&during).is_empty());
    let mut e = s.answer(&jobs[1]);
    e.extend(s.answer(&jobs[2]));
    e.extend(s.go(Input::RetrySave));
    e.extend(s.go(Input::SaveDone(batch)));
    s.settle(e);
    assert_eq!(s.ix.indexed(), 14);
    assert!(s.paths().iter().any(|p| p == "Other/p01.jpg"));
}

#[test]
fn cancelling_a_failed_save_gives_up_its_photos_and_frees_the_page() {
    let (mut s, batch, _) = failed_save(SaveError::Quota);
    s.go(Input::Cancel);
    assert_eq!(s.ix.view().save_error, None);
    assert_eq!(s.ix.indexed(), 0, "the unsaved photos are not claimed");
    // The in-flight job's answer still comes; it is saved, the run ends.
    let e = s.settle(Vec::new());
    assert!(e.is_empty());
    let stale = s.go(Input::SaveDone(batch));
    assert!(stale.is_empty() || saves(&stale).is_empty());
    let again = s.drop_folder("Other", 2);
    assert!(s.ix.is_running() || !encodes(&again).is_empty() || s.ix.indexed() > 0);
}

#[test]
fn a_stale_save_answer_changes_nothing() {
    let (mut s, batch, _) = failed_save(SaveError::Quota);
    let e = s.go(Input::SaveDone(BatchId(batch.0 + 7)));
    assert!(e.is_empty());
    assert_eq!(s.ix.indexed(), 0);
    assert!(s.ix.view().save_error.is_some());
}

#[test]
fn saves_go_one_at_a_time_in_order() {
    let (mut s, _, e) = running(12);
    let jobs = encodes(&e);
    let first = saves(&s.answer(&jobs[0]));
    assert_eq!(first.len(), 1);
    let second = s.answer(&jobs[1]);
    assert!(saves(&second).is_empty(), "waits for the first save");
    let done = s.go(Input::SaveDone(first[0].0));
    let next = saves(&done);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1[0].record.path, "DCIM/p04.jpg");
}

// ---------------------------------------------------------------------------------------
// Restore at start-up

fn stored(path: &str, model: &str, seq: f64) -> Stored {
    Stored {
        path: path.into(),
        size_bytes: 100,
        modified_ms: 1,
        content_hash: hash(path),
        taken_ms: None,
        model_id: model.into(),
        seq,
        embedding: embedding(seq as usize),
        browser_decoded: false,
    }
}

#[test]
fn the_stored_index_is_restored_at_start_up() {
    let records = vec![
        stored("A/a.jpg", "model", 0.0),
        stored("A/b.jpg", "model", 5.0),
    ];
    let (s, _) = Sim::open_with(config(1, Backend::Auto), records, 0);
    assert_eq!(s.ix.indexed(), 2);
    assert_eq!(s.line(), "2 photos in the index.");
    assert_eq!(s.ix.note(), None);
    assert!(s.ix.view().can_clear);
}

#[test]
fn one_stored_photo_is_said_in_the_singular_and_none_plainly() {
    let (s, _) = Sim::open_with(
        config(1, Backend::Auto),
        vec![stored("a.jpg", "model", 0.0)],
        0,
    );
    assert_eq!(s.line(), "1 photo in the index.");
    let (s, _) = Sim::open(1);
    assert_eq!(s.line(), "No photos indexed yet.");
}

#[test]
fn photos_of_another_model_are_not_restored_and_are_mentioned() {
    let records = vec![stored("a.jpg", "model", 0.0), stored("b.jpg", "old", 1.0)];
    let (s, _) = Sim::open_with(config(1, Backend::Auto), records, 0);
    assert_eq!(s.ix.indexed(), 1);
    assert!(s
        .ix
        .note()
        .is_some_and(|n| n.starts_with("Ready. 1 saved photos were indexed with another model")));
}

#[test]
fn unreadable_records_are_mentioned() {
    let mut bad = stored("b.jpg", "model", 1.0);
    bad.embedding = vec![0.0; DIM];
    let (s, _) = Sim::open_with(config(1, Backend::Auto), vec![bad], 2);
    assert_eq!(s.ix.indexed(), 0);
    assert!(s
        .ix
        .note()
        .is_some_and(|n| n.starts_with("Ready. 3 saved index records were unreadable")));
}

#[test]
fn a_new_photo_is_numbered_after_the_stored_ones_and_a_replaced_one_keeps_its_number() {
    // p00 was edited since; p01 and p02 are as stored, so the drop is the same folder.
    let mut edited = stored("DCIM/p00.jpg", "model", 7.0);
    edited.size_bytes = 1;
    let mut same1 = stored("DCIM/p01.jpg", "model", 3.0);
    same1.size_bytes = 101;
    let mut same2 = stored("DCIM/p02.jpg", "model", 9.0);
    same2.size_bytes = 102;
    let records = vec![edited, same1, same2];
    let (mut s, _) = Sim::open_with(config(1, Backend::Auto), records, 0);
    let w = first_worker(&s.drop_folder("DCIM", 4));
    let e = s.boot(w);
    let after = s.answer(&encodes(&e)[0]);
    let photos = &saves(&after)[0].1;
    assert_eq!(photos.len(), 2, "p01 and p02 are unchanged");
    assert_eq!(photos[0].record.path, "DCIM/p00.jpg");
    assert_eq!(photos[0].record.seq, 7.0, "replaced: keeps its number");
    assert_eq!(photos[1].record.path, "DCIM/p03.jpg");
    assert_eq!(photos[1].record.seq, 10.0, "new: after the stored ones");
}

#[test]
fn a_run_starts_with_no_note() {
    let records = vec![stored("b.jpg", "old", 1.0)];
    let (mut s, _) = Sim::open_with(config(1, Backend::Auto), records, 0);
    assert!(s.ix.note().is_some());
    s.drop_folder("DCIM", 1);
    assert_eq!(s.ix.note(), None);
}

// ---------------------------------------------------------------------------------------
// The idle release

fn idle_generation(effects: &[Eff]) -> Option<u32> {
    effects.iter().rev().find_map(|e| match e {
        Effect::StartIdleTimer { generation, .. } => Some(*generation),
        _ => None,
    })
}

#[test]
fn idle_workers_are_stopped_when_the_latest_timer_runs_out() {
    let (mut s, w, e) = running(2);
    let all = s.settle(e);
    let g = idle_generation(&all).unwrap_or(u32::MAX);
    let e = s.go(Input::IdleTimer(g));
    assert_eq!(terminated(&e), vec![w]);
    assert!(s.ix.vision_engines().0.is_empty());
}

#[test]
fn an_older_idle_timer_does_nothing() {
    let (mut s, _, e) = running(2);
    let all = s.settle(e);
    let g = idle_generation(&all).unwrap_or(u32::MAX);
    let more = s.drop_folder("Other", 1);
    s.settle(more);
    assert!(s.go(Input::IdleTimer(g)).is_empty());
}

#[test]
fn the_idle_timer_does_not_stop_a_run() {
    let (mut s, _, e) = running(2);
    let all = s.settle(e);
    let g = idle_generation(&all).unwrap_or(u32::MAX);
    s.drop_folder("Other", 8);
    assert!(s.go(Input::IdleTimer(g)).is_empty());
}

#[test]
fn a_drop_after_the_release_starts_fresh_workers() {
    let (mut s, w, e) = running(2);
    let all = s.settle(e);
    let g = idle_generation(&all).unwrap_or(u32::MAX);
    s.go(Input::IdleTimer(g));
    let e = s.drop_folder("Other", 2);
    let fresh = spawned(&e);
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0], w);
}

// ---------------------------------------------------------------------------------------
// Search by photo

fn by_image(name: &str) -> In {
    Input::SearchByImage {
        name: name.into(),
        mime: String::new(),
        file: name.into(),
    }
}

#[test]
fn a_file_that_is_not_a_photo_cannot_be_searched_by() {
    let (mut s, _) = Sim::open(1);
    let e = s.go(by_image("notes.txt"));
    assert_eq!(
        said(&e),
        vec!["notes.txt is not a photo, so it cannot be searched by."]
    );
    assert!(spawned(&e).is_empty());
}

#[test]
fn a_photo_search_before_the_model_waits_for_it_and_a_worker() {
    let mut s = Sim::new();
    let e = s.go(by_image("cat.jpg"));
    assert_eq!(
        said(&e),
        vec!["Searching by a photo needs the model: download it first."]
    );
    let opened = s.go(Input::Opened {
        config: config(1, Backend::Auto),
        stored: Vec::new(),
        unreadable: 0,
    });
    let w = first_worker(&opened);
    assert_eq!(
        said(&opened),
        vec!["Loading the photo encoder to search by cat.jpg…"]
    );
    let e = s.boot(w);
    let jobs = encodes(&e);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].files, vec!["cat.jpg"]);
    assert!(!jobs[0].thumbnails && !jobs[0].dedupe);
    assert!(said(&e).contains(&"Reading cat.jpg…".to_owned()));
}

#[test]
fn the_photo_searched_by_becomes_the_query() {
    let (mut s, w, e) = running(1);
    s.settle(e);
    let e = s.go(by_image("cat.jpg"));
    let job = encodes(&e)[0].clone();
    assert_eq!(job.worker, w);
    let r = s.go(Input::Encoded {
        worker: w,
        job: job.job,
        answers: vec![Answer {
            key: 0,
            result: Ok(Photo::Embedded {
                hash: hash("cat"),
                embedding: embedding(3),
                thumb: false,
                browser: false,
                taken_ms: None,
            }),
            thumb: None,
        }],
    });
    assert!(r.contains(&Effect::SearchImage {
        name: "cat.jpg".into(),
        embedding: embedding(3)
    }));
    assert_eq!(s.ix.indexed(), 1, "a searched photo is not indexed");
}

#[test]
fn a_photo_that_cannot_be_read_cannot_be_searched_by() {
    let (mut s, w, e) = running(1);
    s.settle(e);
    let job = encodes(&s.go(by_image("bad.jpg")))[0].clone();
    let r = s.go(Input::Encoded {
        worker: w,
        job: job.job,
        answers: vec![Answer {
            key: 0,
            result: Err("truncated".into()),
            thumb: None,
        }],
    });
    assert_eq!(
        said(&r),
        vec!["bad.jpg could not be read as a photo, so it cannot be searched by."]
    );
}

#[test]
fn a_photo_search_lost_in_a_crash_is_said() {
    let (mut s, w, e) = running(1);
    s.settle(e);
    s.go(by_image("cat.jpg"));
    let c = s.go(Input::Crashed {
        worker: w,
        message: "x".into(),
    });
    assert!(said(&c).contains(&"The encoder stopped while reading cat.jpg.".to_owned()));
}

// ---------------------------------------------------------------------------------------
// The index outside runs

#[test]
fn clearing_empties_the_index_and_the_skipped_list() {
    let (mut s, _, e) = running(2);
    s.settle(e);
    s.ix.clear();
    let v = s.ix.view();
    assert_eq!(v.indexed, 0);
    assert_eq!(v.skipped, 0);
    assert_eq!(v.line, "The index was cleared.");
    assert!(!v.can_clear);
}

#[test]
fn removing_a_photo_returns_its_path() {
    let (mut s, _, e) = running(2);
    s.settle(e);
    let id =
        s.ix.index()
            .and_then(|i| i.entry_by_path("DCIM/p01.jpg"))
            .map(|e| e.id);
    assert_eq!(
        id.and_then(|id| s.ix.remove(id)),
        Some("DCIM/p01.jpg".into())
    );
    assert_eq!(s.ix.indexed(), 1);
    assert_eq!(s.ix.remove(12345), None);
}

#[test]
fn the_dropped_file_is_kept_for_the_preview() {
    let (mut s, _, e) = running(2);
    s.settle(e);
    assert_eq!(
        s.ix.original("DCIM/p01.jpg").map(String::as_str),
        Some("DCIM/p01.jpg")
    );
}

#[path = "run_store_tests.rs"]
mod store;

#[path = "run_refused_tests.rs"]
mod refused;
