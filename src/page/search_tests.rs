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

fn texts_of(s: &Search) -> Vec<(String, Vec<f32>)> {
    match s.query() {
        Query::Terms { texts, .. } => texts.clone(),
        Query::None => Vec::new(),
    }
}

/// Answers every text sent in `effects` with `embed(text)`; returns the effects of the last.
fn answer(s: &mut Search, effects: &[Effect], embed: impl Fn(&str) -> Vec<f32>) -> Vec<Effect> {
    let mut last = Vec::new();
    for (job, text) in sent(effects) {
        last = s.update(Input::Texted {
            job,
            result: Ok(embed(&text)),
        });
    }
    last
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
    assert_eq!(texts_of(&s), vec![("dog".to_owned(), vec![0.5, 0.5])]);
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
    s.update(Input::Similar {
        id: 3,
        path: "a.jpg".into(),
    });
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
    assert_eq!(s.label().as_deref(), Some("@a.jpg"));
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
    s.update(Input::Dropped {
        name: "x.jpg".into(),
        embedding: vec![1.0],
    });
    assert_eq!(s.k(), RESULTS_PAGE);
}

#[test]
fn labels_name_the_kind_of_search() {
    let mut s = ready();
    assert_eq!(s.label(), None);
    s.update(Input::Similar {
        id: 1,
        path: "a/b.jpg".into(),
    });
    assert_eq!(s.label().as_deref(), Some("@a/b.jpg"));
    s.update(Input::Dropped {
        name: "c d.jpg".into(),
        embedding: vec![],
    });
    assert_eq!(s.label().as_deref(), Some("@\"c d.jpg\""));
}

#[test]
fn a_photo_search_drops_a_text_in_flight() {
    let mut s = ready();
    let job = sent(&s.update(Input::Enter("dog".into())));
    s.update(Input::Similar {
        id: 1,
        path: "a.jpg".into(),
    });
    let job = job.first().map(|(j, _)| *j).unwrap_or(JobId(0));
    assert!(s
        .update(Input::Texted {
            job,
            result: Ok(vec![1.0])
        })
        .is_empty());
    assert_eq!(s.label().as_deref(), Some("@a.jpg"));
}

#[test]
fn removing_the_photo_searched_by_ends_that_search() {
    let mut s = ready();
    s.update(Input::Similar {
        id: 7,
        path: "a.jpg".into(),
    });
    assert!(!s.forget(8, "b.jpg"));
    assert!(s.forget(7, "a.jpg"));
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
fn a_compound_query_sends_each_distinct_text_once_and_shows_when_all_came() {
    let mut s = ready();
    let e = s.update(Input::Enter("2:dog -leash + dog".into()));
    let texts: Vec<String> = sent(&e).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["dog", "leash"]);
    let jobs = sent(&e);
    let first = s.update(Input::Texted {
        job: jobs[0].0,
        result: Ok(vec![1.0, 0.0]),
    });
    assert!(first.is_empty(), "shown before every text came: {first:?}");
    assert_eq!(s.query(), &Query::None);
    let last = s.update(Input::Texted {
        job: jobs[1].0,
        result: Ok(vec![0.0, 1.0]),
    });
    assert_eq!(last, vec![Effect::Render]);
    assert_eq!(
        texts_of(&s),
        vec![
            ("dog".to_owned(), vec![1.0, 0.0]),
            ("leash".to_owned(), vec![0.0, 1.0])
        ]
    );
    match s.query() {
        Query::Terms { query, .. } => assert_eq!(query.terms.len(), 3),
        Query::None => panic!("no query"),
    }
}

#[test]
fn texts_already_encoded_are_not_sent_again() {
    let mut s = ready();
    let e = s.update(Input::Enter("dog".into()));
    answer(&mut s, &e, |_| vec![1.0, 0.0]);
    let e = s.update(Input::Enter("dog -leash".into()));
    let texts: Vec<String> = sent(&e).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["leash"]);
    answer(&mut s, &e, |_| vec![0.0, 1.0]);
    // Back to "dog": nothing to encode, shown at once.
    assert_eq!(s.update(Input::Enter("dog".into())), vec![Effect::Render]);
    assert_eq!(texts_of(&s), vec![("dog".to_owned(), vec![1.0, 0.0])]);
}

#[test]
fn a_photo_only_query_needs_no_encoder() {
    let mut s = Search::new();
    let e = s.update(Input::Enter("@a.jpg -@b.jpg".into()));
    assert_eq!(e, vec![Effect::Render]);
    assert_eq!(s.label().as_deref(), Some("@a.jpg -@b.jpg"));
}

#[test]
fn an_unreadable_query_says_why_and_keeps_the_results() {
    let mut s = ready();
    let e = s.update(Input::Enter("dog".into()));
    answer(&mut s, &e, |_| vec![1.0]);
    let e = s.update(Input::Enter("dog -".into()));
    assert!(
        matches!(e.as_slice(), [Effect::Say(t)] if t.starts_with("The query could not be read: `-`")),
        "{e:?}"
    );
    assert_eq!(s.label().as_deref(), Some("dog"));
    let e = s.update(Input::Enter("-leash".into()));
    assert!(matches!(e.as_slice(), [Effect::Say(t)] if t.contains("add something to look for")));
}

#[test]
fn one_failed_text_says_so_and_drops_the_query() {
    let mut s = ready();
    let e = s.update(Input::Enter("dog + cat".into()));
    let jobs = sent(&e);
    let said = s.update(Input::Texted {
        job: jobs[0].0,
        result: Err("too long".into()),
    });
    assert_eq!(
        said,
        vec![Effect::Say(
            "The query could not be encoded: too long".into()
        )]
    );
    assert!(s
        .update(Input::Texted {
            job: jobs[1].0,
            result: Ok(vec![1.0])
        })
        .is_empty());
    assert_eq!(s.query(), &Query::None);
}

#[test]
fn similar_puts_the_photo_in_the_box_and_runs_it() {
    let mut s = ready();
    let e = s.update(Input::Similar {
        id: 4,
        path: "trip/a b.jpg".into(),
    });
    assert_eq!(
        e,
        vec![Effect::SetBox("@\"trip/a b.jpg\"".into()), Effect::Render]
    );
    // Words added to it make a compound query: only the words go to the encoder.
    let e = s.update(Input::Enter("@\"trip/a b.jpg\" -people".into()));
    let texts: Vec<String> = sent(&e).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["people"]);
}

#[test]
fn photo_terms_quote_what_needs_it() {
    assert_eq!(photo_term("a/b.jpg", Some(1)), "@a/b.jpg");
    assert_eq!(photo_term("a b.jpg", Some(1)), "@\"a b.jpg\"");
    assert_eq!(photo_term("say \"hi\" now.jpg", Some(9)), "@#9");
    assert_eq!(photo_term("x\".jpg", None), "@\"x'.jpg\"");
    for (path, id) in [("a/b.jpg", 1), ("a b.jpg", 2), ("q\"s t.jpg", 3)] {
        let parsed = crate::index::query::parse(&photo_term(path, Some(id)));
        let source = parsed.map(|q| q.terms[0].source.clone());
        let want = if path.contains('"') {
            format!("#{id}")
        } else {
            path.to_owned()
        };
        assert_eq!(source, Ok(TermSource::Photo(want)));
    }
}

#[test]
fn dropped_photos_are_kept_by_their_terms_name() {
    let mut s = ready();
    let e = s.update(Input::Dropped {
        name: "new pic.png".into(),
        embedding: vec![0.0, 1.0],
    });
    assert_eq!(
        e,
        vec![Effect::SetBox("@\"new pic.png\"".into()), Effect::Render]
    );
    assert_eq!(s.dropped("new pic.png"), Some(&[0.0, 1.0][..]));
    s.update(Input::Dropped {
        name: "new pic.png".into(),
        embedding: vec![1.0, 0.0],
    });
    assert_eq!(s.dropped("new pic.png"), Some(&[1.0, 0.0][..]));
    for i in 0..DROPPED_KEPT {
        s.update(Input::Dropped {
            name: format!("{i}.png"),
            embedding: vec![1.0],
        });
    }
    assert_eq!(s.dropped("new pic.png"), None, "the oldest goes");
    assert!(s.dropped("0.png").is_some());
}

#[test]
fn the_minimum_score_is_clamped_remembered_and_drawn() {
    let mut s = ready();
    assert_eq!(s.filters().min_score, 0.0);
    assert_eq!(
        s.update(Input::MinScore(0.25)),
        vec![Effect::RememberMinScore(0.25), Effect::Render]
    );
    assert_eq!(s.filters().min_score, 0.25);
    s.update(Input::MinScore(7.0));
    assert_eq!(s.filters().min_score, 1.0);
    s.update(Input::MinScore(f32::NAN));
    assert_eq!(s.filters().min_score, 0.0);
}

#[test]
fn filters_redraw_from_the_first_page() {
    let mut s = ready();
    s.update(Input::ShowMore);
    assert_eq!(s.update(Input::Folder("a/b".into())), vec![Effect::Render]);
    assert_eq!(s.k(), RESULTS_PAGE);
    assert_eq!(s.filters().folder, "a/b");
    s.update(Input::Sort(SortBy::DateNewest));
    s.update(Input::Dates(DateRange {
        from_ms: Some(5),
        to_ms: None,
    }));
    assert_eq!(s.filters().sort, SortBy::DateNewest);
    assert_eq!(s.filters().range.from_ms, Some(5));
}

#[test]
fn removing_a_photo_named_by_id_ends_the_search() {
    let mut s = ready();
    s.update(Input::Enter("@#7".into()));
    assert!(s.forget(7, "a.jpg"));
}
