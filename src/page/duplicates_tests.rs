//! Tests of the duplicates view's state (`page::duplicates`).

use super::*;
use crate::index::{EntryMeta, IndexError};
use crate::page::results::shown_with;
use crate::page::search::{Encoder, Input, Search};

fn meta(path: &str, size_bytes: u64, modified_ms: i64) -> EntryMeta {
    EntryMeta {
        path: path.to_owned(),
        size_bytes,
        modified_ms,
        content_hash: [path.len() as u8; 32],
        taken_ms: None,
    }
}

/// Two groups (a1 a2 a3 nearly equal, b1 b2 nearly equal) and a loner, in 3-d.
fn index() -> Result<(EmbeddingIndex, [u64; 6]), IndexError> {
    let mut i = EmbeddingIndex::new("m", 3);
    let a1 = i.upsert(meta("a1.jpg", 100, 1), &[1.0, 0.0, 0.0])?;
    let a2 = i.upsert(meta("a2.jpg", 300, 1), &[0.999, 0.04, 0.0])?;
    let lone = i.upsert(meta("lone.jpg", 50, 1), &[0.0, 0.0, 1.0])?;
    let a3 = i.upsert(meta("a3.jpg", 300, 9), &[0.998, 0.0, 0.06])?;
    let b1 = i.upsert(meta("b1.jpg", 10, 1), &[0.0, 1.0, 0.0])?;
    let b2 = i.upsert(meta("b2.jpg", 10, 2), &[0.03, 0.999, 0.0])?;
    Ok((i, [a1, a2, lone, a3, b1, b2]))
}

fn run(d: &mut Duplicates, i: &EmbeddingIndex, work: u64) -> usize {
    let mut slices = 0;
    while let Step::Running(_) = d.step(i, work) {
        slices += 1;
        assert!(slices < 1_000_000, "never ends");
    }
    slices
}

#[test]
fn groups_keep_the_largest_then_newest_in_slices() -> Result<(), IndexError> {
    let (i, [a1, a2, _, a3, b1, b2]) = index()?;
    let mut d = Duplicates::new();
    assert_eq!(
        d.step(&i, SLICE_WORK),
        Step::Done,
        "nothing runs before start"
    );
    d.start(&i);
    assert!(d.is_running());
    assert!(d
        .line(&i)
        .starts_with("Looking for near-duplicates at cosine 0.95"));
    assert!(run(&mut d, &i, 5) > 3, "small slices take several steps");
    let groups = d.groups(&i).map(<[Group]>::to_vec).unwrap_or_default();
    // a3 and a2 are both 300 bytes; a3 is newer.
    assert_eq!(
        groups,
        [
            Group {
                keep: a3,
                others: vec![a1, a2]
            },
            Group {
                keep: b2,
                others: vec![b1]
            }
        ]
    );
    assert_eq!(d.all_but_best(&i), [a1, a2, b1]);
    assert!(d
        .line(&i)
        .starts_with("2 groups of near-duplicates (5 photos) at cosine 0.95"));
    Ok(())
}

#[test]
fn a_tighter_threshold_runs_again_and_a_changed_index_is_searched_again() -> Result<(), IndexError>
{
    let (mut i, [a1, ..]) = index()?;
    let mut d = Duplicates::new();
    assert!(
        !d.set_threshold(0.9),
        "nothing to run again before a search"
    );
    d.start(&i);
    run(&mut d, &i, SLICE_WORK);
    assert!(d.set_threshold(0.99999));
    d.start(&i);
    run(&mut d, &i, SLICE_WORK);
    assert_eq!(d.groups(&i).map(<[Group]>::len), Some(0));
    assert!(d.line(&i).starts_with("No near-duplicates at cosine 1.00"));
    assert!(!d.set_threshold(0.99999), "the same threshold");
    d.set_threshold(0.1);
    assert_eq!(d.threshold(), MIN_THRESHOLD);
    d.set_threshold(f32::NAN);
    assert_eq!(d.threshold(), DEFAULT_THRESHOLD);
    run(&mut d, &i, SLICE_WORK);
    // The index changes: the groups are not those of this index any more.
    i.remove(a1);
    assert_eq!(d.groups(&i), None);
    assert!(d.line(&i).starts_with("The index changed"));
    run(&mut d, &i, SLICE_WORK);
    let groups = d.groups(&i).map(<[Group]>::to_vec).unwrap_or_default();
    assert_eq!(groups.first().map(|g| g.others.len()), Some(1));
    Ok(())
}

#[test]
fn results_fold_a_group_into_its_best_ranked_member() -> Result<(), IndexError> {
    let (i, [_, _, lone, _, b1, b2]) = index()?;
    let mut s = Search::new();
    s.update(Input::Encoder(Encoder::Ready));
    // A photo query needs no encoder: like lone.jpg, then everything else.
    s.update(Input::Enter("@lone.jpg".into()));
    let mut d = Duplicates::new();
    s.update(Input::Fold(true));
    let unfolded = shown_with(&s, &i, Some(&d));
    assert_eq!(
        unfolded.matches.len(),
        5,
        "not folded before the groups are known"
    );
    assert!(unfolded.counts.iter().all(|&c| c == 1));
    d.start(&i);
    run(&mut d, &i, SLICE_WORK);
    let folded = shown_with(&s, &i, Some(&d));
    assert_eq!(folded.matches.len(), 2);
    let tiles: Vec<(u64, usize)> = folded
        .matches
        .iter()
        .zip(&folded.counts)
        .map(|(m, &c)| (m.id, c))
        .collect();
    let a_shown = tiles.iter().find(|(_, c)| *c == 3).map(|t| t.0);
    let b_shown = tiles.iter().find(|(_, c)| *c == 2).map(|t| t.0);
    assert!(a_shown.is_some() && b_shown.is_some(), "{tiles:?}");
    assert!(!tiles.iter().any(|t| t.0 == lone));
    assert!(b_shown == Some(b1) || b_shown == Some(b2));
    assert_ne!(a_shown, Some(b1));
    assert!(folded.line.starts_with("All 2 photos"), "{}", folded.line);
    s.update(Input::Fold(false));
    assert_eq!(shown_with(&s, &i, Some(&d)).matches.len(), 5);
    Ok(())
}
