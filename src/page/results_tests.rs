//! Tests of what the grid shows (`page::results`): compound ranking with dropped photos,
//! the minimum score, folder, dates, order, the page of `k`, and the lines.

use super::*;
use crate::index::filters::DateRange;
use crate::index::{EntryMeta, IndexError};
use crate::page::search::{Effect, Encoder, Input, RESULTS_PAGE};

fn meta(path: &str, modified_ms: i64) -> EntryMeta {
    EntryMeta {
        path: path.to_owned(),
        size_bytes: 1,
        modified_ms,
        content_hash: [path.len() as u8; 32],
        taken_ms: None,
    }
}

/// Four photos on the unit circle's first quadrant (dim 2), dated 1..4.
fn photos() -> Result<EmbeddingIndex, IndexError> {
    let mut index = EmbeddingIndex::new("m", 2);
    index.upsert(meta("trip/beach/dog.jpg", 3), &[1.0, 0.0])?;
    index.upsert(meta("trip/park/dog_leash.jpg", 1), &[0.8, 0.6])?;
    index.upsert(meta("home/cat.jpg", 4), &[0.0, 1.0])?;
    index.upsert(meta("trip/beach/sand.jpg", 2), &[0.6, 0.8])?;
    Ok(index)
}

/// A search for `text` whose texts embed as `embed` says.
fn searched(text: &str, embed: impl Fn(&str) -> Vec<f32>) -> Search {
    let mut s = Search::new();
    s.update(Input::Encoder(Encoder::Ready));
    let effects = s.update(Input::Enter(text.into()));
    for e in effects {
        if let Effect::SendText { job, text } = e {
            s.update(Input::Texted {
                job,
                result: Ok(embed(&text)),
            });
        }
    }
    s
}

fn dog_leash(t: &str) -> Vec<f32> {
    match t {
        "dog" => vec![1.0, 0.0],
        _ => vec![0.0, 1.0],
    }
}

fn paths(index: &EmbeddingIndex, shown: &Shown) -> Vec<String> {
    shown
        .matches
        .iter()
        .filter_map(|m| index.entry(m.id).map(|e| e.path.clone()))
        .collect()
}

#[test]
fn a_compound_query_ranks_by_the_combined_vector() -> Result<(), IndexError> {
    let index = photos()?;
    let plain = shown(&searched("dog", dog_leash), &index);
    assert_eq!(
        paths(&index, &plain),
        [
            "trip/beach/dog.jpg",
            "trip/park/dog_leash.jpg",
            "trip/beach/sand.jpg",
            "home/cat.jpg"
        ]
    );
    // q = normalise((1, 0) - ½(0, 1)) = (2, -1)/√5: dog_leash (0.8, 0.6) scores 1/√5.
    let minus = shown(&searched("dog -leash", dog_leash), &index);
    let want = 1.0 / 5f32.sqrt();
    let leash = minus.matches.iter().find(|m| m.index == 1).map(|m| m.score);
    assert!(leash.is_some_and(|s| (s - want).abs() < 1e-6), "{leash:?}");
    assert_eq!(minus.matches.first().map(|m| m.index), Some(0));
    assert_eq!(minus.matches.last().map(|m| m.index), Some(2));
    Ok(())
}

#[test]
fn a_dropped_photo_is_a_term() -> Result<(), IndexError> {
    let index = photos()?;
    let mut s = Search::new();
    s.update(Input::Dropped {
        name: "new.png".into(),
        embedding: vec![0.0, 3.0],
    });
    let got = shown(&s, &index);
    assert_eq!(
        paths(&index, &got).first().map(String::as_str),
        Some("home/cat.jpg")
    );
    assert_eq!(got.matches.len(), 4, "a dropped photo leaves nothing out");
    // Similar leaves the photo itself out.
    s.update(Input::Similar {
        id: 2,
        path: "home/cat.jpg".into(),
    });
    let like = shown(&s, &index);
    assert_eq!(like.matches.len(), 3);
    assert_eq!(
        like.line,
        "All 3 photos, best first, for \u{201c}@home/cat.jpg\u{201d}."
    );
    Ok(())
}

#[test]
fn an_unknown_photo_term_says_so() -> Result<(), IndexError> {
    let index = photos()?;
    let mut s = Search::new();
    s.update(Input::Enter("@gone.jpg".into()));
    let got = shown(&s, &index);
    assert!(got.matches.is_empty());
    assert!(
        got.line
            .starts_with("The search failed: no indexed photo is `gone.jpg`"),
        "{}",
        got.line
    );
    Ok(())
}

#[test]
fn the_minimum_score_keeps_good_matches_or_says_no_good_match() -> Result<(), IndexError> {
    let index = photos()?;
    let mut s = searched("dog", dog_leash);
    s.update(Input::MinScore(0.7));
    let got = shown(&s, &index);
    assert_eq!(
        paths(&index, &got),
        ["trip/beach/dog.jpg", "trip/park/dog_leash.jpg"]
    );
    assert!(!got.no_good_match);
    let mut s = searched("cat", |_| vec![-1.0, -1.0]);
    s.update(Input::MinScore(0.3));
    let none = shown(&s, &index);
    assert!(none.no_good_match && none.matches.is_empty());
    assert_eq!(
        none.line,
        "No good match for \u{201c}cat\u{201d}: the best score was -0.7071, below the minimum \
         of 0.30. Lower the minimum score to see it."
    );
    Ok(())
}

#[test]
fn folder_dates_and_order_narrow_and_sort() -> Result<(), IndexError> {
    let index = photos()?;
    let mut s = searched("dog", dog_leash);
    s.update(Input::Folder("trip/beach".into()));
    let beach = shown(&s, &index);
    assert_eq!(
        paths(&index, &beach),
        ["trip/beach/dog.jpg", "trip/beach/sand.jpg"]
    );
    assert_eq!(
        beach.line,
        "All 2 photos in trip/beach, best first, for \u{201c}dog\u{201d}."
    );
    s.update(Input::Folder("trip".into()));
    s.update(Input::Sort(SortBy::DateOldest));
    assert_eq!(
        paths(&index, &shown(&s, &index)),
        [
            "trip/park/dog_leash.jpg",
            "trip/beach/sand.jpg",
            "trip/beach/dog.jpg"
        ]
    );
    s.update(Input::Sort(SortBy::DateNewest));
    s.update(Input::Dates(DateRange {
        from_ms: Some(2),
        to_ms: Some(3),
    }));
    assert_eq!(
        paths(&index, &shown(&s, &index)),
        ["trip/beach/dog.jpg", "trip/beach/sand.jpg"]
    );
    s.update(Input::Folder("home".into()));
    let empty = shown(&s, &index);
    assert!(empty.matches.is_empty() && !empty.no_good_match);
    assert!(
        empty.line.contains("chosen folder and dates"),
        "{}",
        empty.line
    );
    Ok(())
}

/// The EXIF date taken orders and filters where there is one; the file's time where not.
#[test]
fn dates_taken_come_before_file_times() -> Result<(), IndexError> {
    let day = 86_400_000;
    let dated = |path: &str, modified_ms: i64, taken_ms: Option<i64>| EntryMeta {
        taken_ms,
        ..meta(path, modified_ms)
    };
    let mut index = EmbeddingIndex::new("m", 2);
    // File times say a, b, c, d (oldest first); the cameras say otherwise for b and c.
    index.upsert(dated("a.jpg", 10 * day, None), &[1.0, 0.0])?;
    index.upsert(dated("b.jpg", 20 * day, Some(2 * day)), &[0.8, 0.6])?;
    index.upsert(dated("c.jpg", 30 * day, Some(40 * day)), &[0.6, 0.8])?;
    index.upsert(dated("d.jpg", 35 * day, None), &[0.0, 1.0])?;
    let mut s = searched("dog", dog_leash);
    s.update(Input::Sort(SortBy::DateOldest));
    assert_eq!(
        paths(&index, &shown(&s, &index)),
        ["b.jpg", "a.jpg", "d.jpg", "c.jpg"]
    );
    s.update(Input::Sort(SortBy::DateNewest));
    assert_eq!(
        paths(&index, &shown(&s, &index)),
        ["c.jpg", "d.jpg", "a.jpg", "b.jpg"]
    );
    // Days 15..=35: c was taken on day 40 and b on day 2, whatever their files say.
    s.update(Input::Dates(DateRange {
        from_ms: Some(15 * day),
        to_ms: Some(35 * day),
    }));
    assert_eq!(paths(&index, &shown(&s, &index)), ["d.jpg"]);
    Ok(())
}

#[test]
fn the_page_of_k_and_more() -> Result<(), IndexError> {
    let mut index = EmbeddingIndex::new("m", 2);
    for i in 0..30 {
        index.upsert(meta(&format!("f/{i}.jpg"), i), &[1.0, i as f32 / 30.0])?;
    }
    let mut s = searched("dog", dog_leash);
    let first = shown(&s, &index);
    assert_eq!(first.matches.len(), RESULTS_PAGE);
    assert!(first.more);
    assert_eq!(
        first.line,
        "The 24 best of 30 photos for \u{201c}dog\u{201d}."
    );
    s.update(Input::ShowMore);
    let all = shown(&s, &index);
    assert_eq!(all.matches.len(), 30);
    assert!(!all.more);
    Ok(())
}

#[test]
fn lines_without_a_query() -> Result<(), IndexError> {
    let empty = EmbeddingIndex::new("m", 2);
    assert!(shown(&Search::new(), &empty)
        .line
        .starts_with("No photos are indexed yet"));
    assert!(idle_line(1).starts_with("Type to search 1 photo, or drop"));
    assert!(idle_line(5).starts_with("Type to search 5 photos,"));
    let index = photos()?;
    let got = shown(&Search::new(), &index);
    assert!(got.matches.is_empty() && got.line.starts_with("Type to search 4 photos"));
    Ok(())
}

#[test]
fn folders_lists_every_folder_once_sorted() -> Result<(), IndexError> {
    let index = photos()?;
    assert_eq!(folders(&index), ["home", "trip", "trip/beach", "trip/park"]);
    Ok(())
}

#[test]
fn date_inputs_become_whole_days() {
    assert_eq!(day_start_ms("1970-01-01"), Some(0));
    assert_eq!(day_start_ms("2000-03-01"), Some(951_868_800_000));
    assert_eq!(day_start_ms("2024-02-29"), Some(1_709_164_800_000));
    for bad in ["", "2024-13-01", "2024-00-10", "x-1-1", "2024-01"] {
        assert_eq!(day_start_ms(bad), None, "{bad}");
    }
    let r = day_range("1970-01-02", "1970-01-02");
    assert_eq!(r.from_ms, Some(86_400_000));
    assert_eq!(r.to_ms, Some(2 * 86_400_000 - 1));
    assert_eq!(day_range("", ""), DateRange::default());
}

#[test]
fn captions_name_the_file() {
    assert_eq!(file_name("holiday-photos/sea/IMG_1.jpg"), "IMG_1.jpg");
    assert_eq!(file_name("loose.png"), "loose.png");
    assert_eq!(file_name("a/"), "");
}
