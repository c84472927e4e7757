//! Round trips of the worker protocol (`page::protocol`) through serde_json.

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn round_trip_to(m: &ToWorker) -> Result<ToWorker, serde_json::Error> {
    serde_json::from_str(&serde_json::to_string(m)?)
}

fn round_trip_from(m: &FromWorker) -> Result<FromWorker, serde_json::Error> {
    serde_json::from_str(&serde_json::to_string(m)?)
}

#[test]
fn load_round_trips() -> TestResult {
    let m = ToWorker::Load {
        model_key: "hub|m|main".into(),
        tower: Tower::Vision,
        backend: Backend::default(),
        precision: PrecisionChoice::default(),
    };
    assert_eq!(round_trip_to(&m)?, m);
    Ok(())
}

#[test]
fn known_hashes_round_trip_as_32_bytes() -> TestResult {
    let m = ToWorker::KnownHashes {
        hashes: vec![[7; 32], [255; 32]],
    };
    assert_eq!(round_trip_to(&m)?, m);
    Ok(())
}

#[test]
fn a_short_hash_is_refused() {
    let text = r#"{"kind":"known_hashes","hashes":[[1,2,3]]}"#;
    assert!(serde_json::from_str::<ToWorker>(text).is_err());
}

#[test]
fn encode_and_text_round_trip() -> TestResult {
    let m = ToWorker::Encode {
        job: JobId(9),
        keys: vec![0, 1, 5],
        thumbnails: true,
        dedupe: false,
    };
    assert_eq!(round_trip_to(&m)?, m);
    let t = ToWorker::Text {
        job: JobId(u32::MAX),
        text: "a dog on a beach".into(),
    };
    assert_eq!(round_trip_to(&t)?, t);
    Ok(())
}

#[test]
fn job_ids_are_plain_numbers_on_the_wire() -> TestResult {
    let text = serde_json::to_string(&ToWorker::Text {
        job: JobId(3),
        text: "x".into(),
    })?;
    assert!(text.contains(r#""job":3"#), "{text}");
    Ok(())
}

#[test]
fn job_ids_wrap() {
    assert_eq!(JobId(u32::MAX).next(), JobId(0));
    assert_eq!(JobId(1).next(), JobId(2));
}

#[test]
fn every_reply_round_trips() -> TestResult {
    let replies = vec![
        FromWorker::Started,
        FromWorker::Loading { fraction: 0.5 },
        FromWorker::Loaded {
            model_id: "clip|abc".into(),
            engine: EngineKind::Cpu,
            detail: "the CPU".into(),
            fallback: Some("no adapter".into()),
        },
        FromWorker::Switched {
            engine: EngineKind::Cpu,
            detail: "the CPU".into(),
            reason: "device lost".into(),
        },
        FromWorker::Failed {
            error: "no model".into(),
        },
        FromWorker::Texted {
            job: JobId(2),
            result: Ok(vec![0.25, -1.0]),
        },
        FromWorker::Timings {
            report: LoadReport {
                weights: "packed".into(),
                marks: vec![("open".into(), 12.5)],
                work: vec![("decode".into(), 40.5)],
            },
        },
        FromWorker::Texted {
            job: JobId(3),
            result: Err("too long".into()),
        },
    ];
    for r in replies {
        assert_eq!(round_trip_from(&r)?, r);
    }
    Ok(())
}

#[test]
fn encoded_items_carry_a_result_each() -> TestResult {
    let m = FromWorker::Encoded {
        job: JobId(4),
        items: vec![
            ItemOut {
                key: 0,
                result: Ok(Photo::Embedded {
                    hash: [1; 32],
                    embedding: vec![0.5, 0.5],
                    thumb: true,
                    browser: false,
                    taken_ms: Some(1_709_214_307_000),
                }),
            },
            ItemOut {
                key: 3,
                result: Ok(Photo::Embedded {
                    hash: [1; 32],
                    embedding: vec![0.5, 0.5],
                    thumb: false,
                    browser: true,
                    taken_ms: None,
                }),
            },
            ItemOut {
                key: 1,
                result: Ok(Photo::Duplicate { hash: [2; 32] }),
            },
            ItemOut {
                key: 2,
                result: Err("The file could not be read.".into()),
            },
        ],
    };
    assert_eq!(round_trip_from(&m)?, m);
    Ok(())
}

/// A worker built before the date taken was sent answers without `taken_ms`: no date.
#[test]
fn an_embedded_photo_without_a_date_reads_as_none() -> TestResult {
    let hash = serde_json::to_string(&[7u8; 32])?;
    let before = format!(
        r#"{{"kind":"encoded","job":1,"items":[{{"key":0,"result":{{"Ok":{{"kind":"embedded","hash":{hash},"embedding":[1.0],"thumb":false}}}}}}]}}"#
    );
    let read: FromWorker = serde_json::from_str(&before)?;
    let FromWorker::Encoded { items, .. } = read else {
        return Err("not encoded".into());
    };
    match &items[0].result {
        Ok(Photo::Embedded { taken_ms, .. }) => assert_eq!(*taken_ms, None),
        other => return Err(format!("{other:?}").into()),
    }
    Ok(())
}

#[test]
fn photo_hash_is_the_same_for_both_kinds() {
    let e = Photo::Embedded {
        hash: [3; 32],
        embedding: Vec::new(),
        thumb: false,
        browser: false,
        taken_ms: None,
    };
    assert_eq!(e.hash(), &[3; 32]);
    assert_eq!(Photo::Duplicate { hash: [4; 32] }.hash(), &[4; 32]);
}

#[test]
fn an_old_workers_reply_does_not_parse() {
    // The reply of the previous protocol: embedding and error as an Option pair, hex hash.
    let old = r#"{"kind":"encoded","job":1,"items":[{"key":0,"hash":"00","embedding":null,"duplicate":false,"error":"x","thumb":false}]}"#;
    assert!(serde_json::from_str::<FromWorker>(old).is_err());
    let old_text = r#"{"kind":"texted","job":1,"embedding":[1.0],"error":null}"#;
    assert!(serde_json::from_str::<FromWorker>(old_text).is_err());
}

#[test]
fn an_unknown_kind_does_not_parse() {
    assert!(serde_json::from_str::<FromWorker>(r#"{"kind":"hello"}"#).is_err());
    assert!(serde_json::from_str::<ToWorker>(r#"{"kind":"hello"}"#).is_err());
}

#[test]
fn the_unreadable_sentence_says_reload() {
    let e = ProtocolError::Unreadable {
        from: "photo encoder",
        detail: "missing field `result`".into(),
    };
    let s = e.sentence();
    assert!(s.starts_with("The photo encoder sent"));
    assert!(s.ends_with("reload the page."));
    assert!(e.to_string().contains("missing field"));
}

#[test]
fn load_reports_merge_later_marks_and_restart_with_a_new_load() {
    let mut r = LoadReport::default();
    r.mark("open", 1.234);
    r.weights = "model".into();
    let mut first = LoadReport::default();
    first.mark("first_batch", 50.06);
    r.merge(first);
    assert_eq!(
        r.marks,
        vec![("open".to_owned(), 1.2), ("first_batch".to_owned(), 50.1)]
    );
    assert_eq!(r.weights, "model");
    let mut again = LoadReport {
        weights: "packed".into(),
        ..LoadReport::default()
    };
    again.mark("packed_read", 3.0);
    r.merge(again.clone());
    assert_eq!(r, again);
}

#[test]
fn work_totals_sum_per_step_and_a_later_report_replaces_them() {
    let mut totals = WorkTotals::default();
    totals.add("decode", 10.04);
    totals.add("model", 100.0);
    totals.add("decode", 5.0);
    let mut r = LoadReport::default();
    r.mark("open", 1.0);
    r.merge(totals.report());
    assert_eq!(
        r.work,
        vec![("decode".to_owned(), 15.0), ("model".to_owned(), 100.0)]
    );
    totals.add("model", 50.0);
    r.merge(totals.report());
    assert_eq!(r.work[1], ("model".to_owned(), 150.0));
    assert_eq!(r.marks, vec![("open".to_owned(), 1.0)]);
    let mut marks_only = LoadReport::default();
    marks_only.mark("first_batch", 2.0);
    r.merge(marks_only);
    assert_eq!(r.work.len(), 2, "a report without totals keeps them");
}
