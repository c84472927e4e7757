//! Tests of the search box's state machine (`page::search`).

use super::*;

fn ready() -> Search {
    let mut s = Search::new();
    s.update(Input::Encoder(Encoder::Ready));
    s
}

fn sent(effects: &[Effect]) -> Vec<(JobId, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SendText { job, text } => Some((*job, text.clone())),
            _ => None,
        })
        .collect()
}

fn timer(effects: &[Effect]) -> Option<u32> {
    effects.iter().find_map(|e| match e {
        Effect::StartTimer { generation, .. } => Some(*generation),
        _ => None,
    })
}

fn paused(generation: u32, text: &str) -> Input {
    Input::Paused {
        generation,
        text: text.into(),
    }
}

#[test]
fn typing_starts_a_debounce_timer_and_sends_nothing() {
    let mut s = ready();
    let e = s.update(Input::Typed("dog".into()));
    assert!(sent(&e).is_empty());
    assert!(matches!(
        e.as_slice(),
        [Effect::StartTimer {
            ms: DEBOUNCE_MS,
            ..
        }]
    ));
}

#[test]
fn the_pause_after_the_last_key_sends_the_text() {
    let mut s = ready();
    let g = timer(&s.update(Input::Typed("dog".into())));
    let e = s.update(paused(g.unwrap_or(0), "dog"));
    assert_eq!(sent(&e).len(), 1);
    assert_eq!(sent(&e).first().map(|(_, t)| t.as_str()), Some("dog"));
}

#[test]
fn an_older_timer_does_nothing() {
    let mut s = ready();
    let first = timer(&s.update(Input::Typed("d".into()))).unwrap_or(0);
    let second = timer(&s.update(Input::Typed("do".into()))).unwrap_or(0);
    assert_ne!(first, second);
    assert!(s.update(paused(first, "do")).is_empty());
    assert_eq!(sent(&s.update(paused(second, "do"))).len(), 1);
}

#[test]
fn enter_sends_at_once_and_cancels_the_timer() {
    let mut s = ready();
    let g = timer(&s.update(Input::Typed("cat".into()))).unwrap_or(0);
    let e = s.update(Input::Enter("cat".into()));
    assert_eq!(sent(&e).len(), 1);
    assert!(s.update(paused(g, "cat")).is_empty());
}

#[test]
fn a_blank_query_clears_the_results() {
    let mut s = ready();
    let job = sent(&s.update(Input::Enter("dog".into())));
    let (job, _) = job.first().cloned().unwrap_or((JobId(0), String::new()));
    s.update(Input::Texted {
        job,
        result: Ok(vec![1.0]),
    });
    let e = s.update(Input::Enter("   ".into()));
    assert_eq!(e, vec![Effect::Render]);
    assert_eq!(s.query(), &Query::None);
}

#[test]
fn the_answer_to_the_newest_query_is_shown() {
    let mut s = ready();
    let jobs = sent(&s.update(Input::Enter("dog".into())));
    let job = jobs.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    let e = s.update(Input::Texted {
        job,
        result: Ok(vec![0.5, 0.5]),
    });
    assert_eq!(e, vec![Effect::Render]);
    assert_eq!(
        s.query(),
        &Query::Text {
            text: "dog".into(),
            embedding: vec![0.5, 0.5]
        }
    );
    assert_eq!(s.label().as_deref(), Some("dog"));
}

#[test]
fn an_overtaken_answer_is_dropped() {
    let mut s = ready();
    let old = sent(&s.update(Input::Enter("do".into())));
    let new = sent(&s.update(Input::Enter("dog".into())));
    let old = old.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    let new = new.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    assert_ne!(old, new);
    assert!(s
        .update(Input::Texted {
            job: old,
            result: Ok(vec![1.0])
        })
        .is_empty());
    assert_eq!(s.query(), &Query::None);
    s.update(Input::Texted {
        job: new,
        result: Ok(vec![2.0]),
    });
    assert_eq!(s.label().as_deref(), Some("dog"));
}

#[test]
fn an_answer_after_clear_is_dropped() {
    let mut s = ready();
    let job = sent(&s.update(Input::Enter("dog".into())));
    s.update(Input::Cleared);
    let job = job.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    assert!(s
        .update(Input::Texted {
            job,
            result: Ok(vec![1.0])
        })
        .is_empty());
    assert_eq!(s.query(), &Query::None);
}

#[test]
fn an_answer_is_taken_once() {
    let mut s = ready();
    let job = sent(&s.update(Input::Enter("dog".into())));
    let job = job.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    s.update(Input::Texted {
        job,
        result: Ok(vec![1.0]),
    });
    assert!(s
        .update(Input::Texted {
            job,
            result: Ok(vec![9.0])
        })
        .is_empty());
}

#[test]
fn an_encoder_error_is_said_and_keeps_the_results() {
    let mut s = ready();
    s.update(Input::Show(Query::Similar {
        id: 3,
        path: "a.jpg".into(),
    }));
    let job = sent(&s.update(Input::Enter("dog".into())));
    let job = job.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    let e = s.update(Input::Texted {
        job,
        result: Err("too long".into()),
    });
    assert_eq!(
        e,
        vec![Effect::Say(
            "The query could not be encoded: too long".into()
        )]
    );
    assert!(matches!(s.query(), Query::Similar { id: 3, .. }));
}

#[test]
fn a_query_before_the_encoder_is_ready_waits_and_says_so() {
    let mut s = Search::new();
    s.update(Input::Encoder(Encoder::Loading));
    let e = s.update(Input::Enter("dog".into()));
    assert!(sent(&e).is_empty());
    assert!(matches!(e.as_slice(), [Effect::Say(t)] if t.contains("loading")));
    assert_eq!(s.pending(), Some("dog"));
    let e = s.update(Input::Encoder(Encoder::Ready));
    assert_eq!(sent(&e).first().map(|(_, t)| t.as_str()), Some("dog"));
    assert_eq!(s.pending(), None);
}

#[test]
fn without_a_model_search_asks_for_it() {
    let mut s = Search::new();
    let e = s.update(Input::Enter("dog".into()));
    assert!(matches!(e.as_slice(), [Effect::Say(t)] if t.contains("download")));
}

#[test]
fn only_the_latest_waiting_text_runs() {
    let mut s = Search::new();
    s.update(Input::Enter("do".into()));
    s.update(Input::Enter("dog".into()));
    let e = s.update(Input::Encoder(Encoder::Ready));
    let texts: Vec<String> = sent(&e).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["dog"]);
}

#[test]
fn a_query_lost_with_its_worker_runs_on_the_next() {
    let mut s = ready();
    s.update(Input::Enter("dog".into()));
    s.update(Input::Encoder(Encoder::Loading));
    assert_eq!(s.pending(), Some("dog"));
    let e = s.update(Input::Encoder(Encoder::Ready));
    assert_eq!(sent(&e).first().map(|(_, t)| t.as_str()), Some("dog"));
}

#[test]
fn the_answer_of_a_dead_worker_is_dropped() {
    let mut s = ready();
    let old = sent(&s.update(Input::Enter("dog".into())));
    s.update(Input::Encoder(Encoder::Loading));
    let again = sent(&s.update(Input::Encoder(Encoder::Ready)));
    let old = old.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    let again = again.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    assert_ne!(old, again);
    assert!(s
        .update(Input::Texted {
            job: old,
            result: Ok(vec![1.0])
        })
        .is_empty());
}

#[test]
fn a_blank_box_drops_a_waiting_text() {
    let mut s = Search::new();
    s.update(Input::Encoder(Encoder::Loading));
    s.update(Input::Enter("dog".into()));
    s.update(Input::Enter("".into()));
    assert_eq!(s.pending(), None);
    assert!(sent(&s.update(Input::Encoder(Encoder::Ready))).is_empty());
}

#[test]
fn show_more_widens_and_a_new_query_resets() {
    let mut s = ready();
    assert_eq!(s.k(), RESULTS_PAGE);
    assert_eq!(s.update(Input::ShowMore), vec![Effect::Render]);
    assert_eq!(s.k(), 2 * RESULTS_PAGE);
    s.update(Input::Show(Query::Image {
        name: "x.jpg".into(),
        embedding: vec![1.0],
    }));
    assert_eq!(s.k(), RESULTS_PAGE);
}

#[test]
fn labels_name_the_kind_of_search() {
    let mut s = ready();
    assert_eq!(s.label(), None);
    s.update(Input::Show(Query::Similar {
        id: 1,
        path: "a/b.jpg".into(),
    }));
    assert_eq!(s.label().as_deref(), Some("similar:a/b.jpg"));
    s.update(Input::Show(Query::Image {
        name: "c.jpg".into(),
        embedding: vec![],
    }));
    assert_eq!(s.label().as_deref(), Some("image:c.jpg"));
}

#[test]
fn a_photo_search_drops_a_text_in_flight() {
    let mut s = ready();
    let job = sent(&s.update(Input::Enter("dog".into())));
    s.update(Input::Show(Query::Similar {
        id: 1,
        path: "a.jpg".into(),
    }));
    let job = job.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    assert!(s
        .update(Input::Texted {
            job,
            result: Ok(vec![1.0])
        })
        .is_empty());
    assert!(matches!(s.query(), Query::Similar { .. }));
}

#[test]
fn removing_the_photo_searched_by_ends_that_search() {
    let mut s = ready();
    s.update(Input::Show(Query::Similar {
        id: 7,
        path: "a.jpg".into(),
    }));
    assert!(!s.forget(8));
    assert!(s.forget(7));
    assert_eq!(s.query(), &Query::None);
}

#[test]
fn clear_resets_everything() {
    let mut s = ready();
    let g = timer(&s.update(Input::Typed("dog".into()))).unwrap_or(0);
    assert_eq!(s.update(Input::Cleared), vec![Effect::Render]);
    assert!(s.update(paused(g, "dog")).is_empty());
    assert_eq!(s.query(), &Query::None);
}

#[test]
fn job_ids_differ_for_each_text() {
    let mut s = ready();
    let a = sent(&s.update(Input::Enter("a".into())));
    let b = sent(&s.update(Input::Enter("b".into())));
    assert_ne!(a, b);
}

#[test]
fn the_line_for_an_empty_index_says_how_to_start() {
    let line = results_line(&Query::None, 0, 0);
    assert!(line.starts_with("No photos are indexed yet"));
    assert!(!line.contains("  "), "{line}");
}

#[test]
fn the_line_without_a_query_counts_the_photos() {
    assert_eq!(
        results_line(&Query::None, 0, 1),
        "Type to search 1 photo, or drop a photo on the search box to find similar ones."
    );
    assert!(results_line(&Query::None, 0, 5).starts_with("Type to search 5 photos,"));
}

#[test]
fn the_line_for_a_text_says_best_of_or_all() {
    let q = Query::Text {
        text: "dog".into(),
        embedding: vec![],
    };
    assert_eq!(
        results_line(&q, 24, 100),
        "The 24 best of 100 photos for \u{201c}dog\u{201d}."
    );
    assert_eq!(
        results_line(&q, 7, 7),
        "All 7 photos, best first, for \u{201c}dog\u{201d}."
    );
}

#[test]
fn the_line_for_a_photo_names_it() {
    let similar = Query::Similar {
        id: 1,
        path: "a/b.jpg".into(),
    };
    assert_eq!(results_line(&similar, 3, 9), "Photos most like a/b.jpg.");
    let image = Query::Image {
        name: "x.png".into(),
        embedding: vec![],
    };
    assert_eq!(results_line(&image, 3, 9), "Photos most like x.png.");
}
