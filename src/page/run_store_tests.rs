//! Tests of the index changed from outside a run (`page::run`, `run_life`): another tab's
//! photos loaded, another tab's removals forgotten in one pass, a clear elsewhere that
//! gives the run up and rebuilds the index, and the skipped list handed out as changes.

use super::*;
use crate::page::skipped::SkippedChange;

fn stored(path: &str, model: &str, seq: f64) -> Stored {
    Stored {
        path: path.to_owned(),
        size_bytes: 10,
        modified_ms: 1,
        content_hash: hash(path),
        taken_ms: None,
        model_id: model.to_owned(),
        seq,
        embedding: embedding(3),
        browser_decoded: false,
    }
}

#[test]
fn photos_another_tab_saved_enter_the_index_when_the_model_matches() {
    let (mut s, _) = Sim::open(1);
    let loaded = s.ix.load_stored(vec![
        stored("Other/a.jpg", "model", 5.0),
        stored("Other/b.jpg", "another model", 6.0),
    ]);
    assert_eq!(loaded, vec!["Other/a.jpg".to_owned()]);
    assert_eq!(s.paths(), vec!["Other/a.jpg".to_owned()]);
    assert_eq!(s.ix.view().indexed, 1);
}

#[test]
fn photos_loaded_before_the_model_is_open_are_not_claimed() {
    let mut s = Sim::new();
    assert!(s
        .ix
        .load_stored(vec![stored("a.jpg", "model", 1.0)])
        .is_empty());
    assert_eq!(s.ix.indexed(), 0);
}

#[test]
fn a_new_save_after_loading_another_tabs_photos_keeps_their_order() {
    let (mut s, _) = Sim::open(1);
    s.ix.load_stored(vec![stored("Other/a.jpg", "model", 41.0)]);
    let e = s.drop_folder("DCIM", 1);
    let w = first_worker(&e);
    let e = s.boot(w);
    let all = s.settle(e);
    let seqs: Vec<f64> = saves(&all)
        .into_iter()
        .flat_map(|(_, p)| p.into_iter().map(|t| t.record.seq))
        .collect();
    assert_eq!(seqs, vec![42.0], "numbered after the loaded photo");
}

#[test]
fn removals_in_another_tab_are_forgotten_and_unknown_paths_ignored() {
    let (mut s, _, e) = running(3);
    s.settle(e);
    let gone = s.ix.forget_paths(vec![
        "DCIM/p00.jpg".into(),
        "nowhere.jpg".into(),
        "DCIM/p02.jpg".into(),
    ]);
    assert_eq!(gone, vec!["DCIM/p00.jpg".to_owned(), "DCIM/p02.jpg".into()]);
    assert_eq!(s.paths(), vec!["DCIM/p01.jpg".to_owned()]);
    assert_eq!(s.ix.original("DCIM/p00.jpg"), None);
}

#[test]
fn forgetting_what_the_offer_holds_shrinks_the_offer() {
    let (mut s, _, e) = running(3);
    s.settle(e);
    let again = s.go(folder_without("DCIM", 3, 2));
    s.settle(again);
    assert!(s.ix.view().forget.is_some());
    s.ix.forget_paths(vec!["DCIM/p02.jpg".into()]);
    assert_eq!(s.ix.view().forget, None, "nothing left to offer");
    assert!(s.ix.forget_offered().is_empty());
}

#[test]
fn forgetting_many_photos_removes_them_all_at_once() {
    let (mut s, _, e) = running(12);
    s.settle(e);
    let paths: Vec<String> = (0..12)
        .step_by(2)
        .map(|i| format!("DCIM/p{i:02}.jpg"))
        .collect();
    assert_eq!(s.ix.forget_paths(paths).len(), 6);
    let left: Vec<String> = (1..12)
        .step_by(2)
        .map(|i| format!("DCIM/p{i:02}.jpg"))
        .collect();
    assert_eq!(s.paths(), left);
}

#[test]
fn a_clear_elsewhere_gives_the_run_up_and_rebuilds_the_index() {
    let (mut s, w, e) = running(8);
    // The first batch is saved; the rest are in hand or queued.
    let jobs = encodes(&e);
    let first = jobs.first().map(|j| s.answer(j)).unwrap_or_default();
    s.save_all(first);
    assert!(s.ix.is_running());
    let r = s.go(Input::Reloaded {
        stored: vec![stored("Fresh/x.jpg", "model", 0.0)],
        unreadable: 0,
    });
    assert!(!s.ix.is_running(), "the run is given up");
    assert!(
        terminated(&r).contains(&w),
        "its workers stop: no late save"
    );
    assert!(r.contains(&Effect::RunEnded));
    assert_eq!(s.paths(), vec!["Fresh/x.jpg".to_owned()]);
    assert!(s
        .ix
        .note()
        .is_some_and(|n| n.contains("cleared in another tab")));
    let v = s.ix.view();
    assert_eq!((v.indexed, v.skipped, v.forget), (1, 0, None));
    assert_eq!(v.save_error, None);
}

#[test]
fn a_late_answer_after_a_reload_saves_nothing() {
    let (mut s, _, e) = running(4);
    let jobs = encodes(&e);
    s.go(Input::Reloaded {
        stored: Vec::new(),
        unreadable: 0,
    });
    let late = jobs.first().map(|j| s.answer(j)).unwrap_or_default();
    assert!(saves(&late).is_empty());
    assert_eq!(s.ix.indexed(), 0);
    assert!(s
        .ix
        .index()
        .is_some_and(|i| i.entry_by_path("DCIM/p00.jpg").is_none()));
}

#[test]
fn a_drop_after_a_reload_indexes_again() {
    let (mut s, _, e) = running(2);
    s.settle(e);
    let r = s.go(Input::Reloaded {
        stored: Vec::new(),
        unreadable: 0,
    });
    assert_eq!(s.ix.indexed(), 0);
    let d = s.drop_folder("DCIM", 2);
    let mut all = r;
    all.extend(d);
    let w = *spawned(&all).last().unwrap_or(&WorkerId(0));
    let e = s.boot(w);
    s.settle(e);
    assert_eq!(s.ix.indexed(), 2, "the cleared photos are indexed again");
}

#[test]
fn a_reload_before_the_model_is_open_changes_nothing() {
    let mut s = Sim::new();
    let r = s.go(Input::Reloaded {
        stored: vec![stored("a.jpg", "model", 0.0)],
        unreadable: 0,
    });
    assert!(r.is_empty());
    assert_eq!(s.ix.indexed(), 0);
}

#[test]
fn skipped_files_are_handed_out_as_changes_once() -> Result<(), String> {
    let (mut s, w, e) = running(2);
    let jobs = encodes(&e);
    let job = jobs.first().ok_or("no job")?;
    let answers = job
        .keys
        .iter()
        .map(|&key| Answer {
            key,
            result: Err("not a JPEG".into()),
            thumb: None,
        })
        .collect();
    let after = s.go(Input::Encoded {
        worker: w,
        job: job.job,
        answers,
    });
    s.settle(after);
    let changes = s.ix.take_skipped_changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(matches!(
        changes.first(),
        Some(SkippedChange::Insert { path, .. }) if path == "DCIM/p00.jpg"
    ));
    assert!(s.ix.take_skipped_changes().is_empty(), "handed out once");
    s.ix.clear();
    assert_eq!(s.ix.take_skipped_changes(), vec![SkippedChange::Clear]);
    Ok(())
}
