//! The download engine end to end, natively: the tiny CLIP fixture served by a scripted
//! hub (Range, ETags, faults) into a [`MemoryChunkStore`], with a virtual clock. Each test
//! asserts what the hub was asked for and what the store holds afterwards.

use std::cell::RefCell;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::testing::*;
use super::*;
use crate::hub::{format_bytes, to_hex, JSON_FILES, PYTORCH_FILE, WEIGHTS_FILE};

struct Run {
    result: Result<(), DownloadError>,
    progress: Vec<Progress>,
}

fn download(hub: &FakeHub, env: &FakeEnv, store: &MemoryChunkStore) -> Result<Run, String> {
    let seen: Rc<RefCell<Vec<Progress>>> = Rc::default();
    let sink = seen.clone();
    let d = Download::with_parts(
        source(),
        store.clone(),
        hub.clone(),
        env.clone(),
        Box::new(move |p: &Progress| sink.borrow_mut().push(p.clone())),
    );
    let result = block_on(d.run())?;
    let progress = seen.borrow().clone();
    Ok(Run { result, progress })
}

fn store() -> MemoryChunkStore {
    MemoryChunkStore::new(&source().key())
}

/// The store holds the verified tiny model, byte for byte.
fn assert_verified(store: &MemoryChunkStore) -> Result<(), String> {
    let model = block_on(open_verified(store))?.map_err(|e| e.to_string())?;
    assert_eq!(model.config_json, CONFIG);
    assert_eq!(model.preprocessor_json, PREPROCESSOR);
    assert_eq!(
        block_on(model.tokenizer_json())?.map_err(|e| e.to_string())?,
        TOKENIZER
    );
    let weights =
        block_on(model.weights.read(0..WEIGHTS.len() as u64))?.map_err(|e| e.to_string())?;
    assert!(
        weights == WEIGHTS,
        "the stored weights differ from the hub's"
    );
    assert!(block_on(model.weights.header())?.is_ok());
    assert!(
        matches!(block_on(cache_state(store))?, Ok(CacheState::Verified { total_bytes }) if total_bytes == WEIGHTS.len() as u64)
    );
    Ok(())
}

fn starts(requests: &[Request]) -> Vec<usize> {
    requests
        .iter()
        .filter_map(|r| {
            r.range
                .as_deref()
                .and_then(|r| parse_range(r, WEIGHTS.len()))
                .map(|(s, _)| s)
        })
        .collect()
}

#[test]
fn a_first_download_fetches_each_file_once_and_verifies_it() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    for file in JSON_FILES {
        assert_eq!(hub.requests(file).len(), 1, "{file}");
    }
    let gets = hub.requests(WEIGHTS_FILE);
    assert_eq!(
        gets,
        vec![Request {
            file: WEIGHTS_FILE.into(),
            head: false,
            range: Some("bytes=0-".into()),
            status: 206
        }]
    );
    assert_eq!(hub.sent(WEIGHTS_FILE), WEIGHTS.len());
    // The hash came with the answer: the API was not asked.
    assert!(hub.0.borrow().log.iter().all(|r| !r.file.contains("blobs")));
    let first = run.progress.first().map(|p| p.phase.clone());
    assert_eq!(first, Some(Phase::Starting));
    let last = run.progress.last().ok_or("no progress")?;
    assert_eq!(
        (last.phase.clone(), last.done_bytes, last.verify_failures),
        (Phase::Verifying, WEIGHTS.len() as u64, 0)
    );
    let fetching: Vec<u64> = run
        .progress
        .iter()
        .filter(|p| p.phase == Phase::Fetching)
        .map(|p| p.done_bytes)
        .collect();
    assert!(
        fetching.len() > 3 && fetching.windows(2).all(|w| w[0] <= w[1]),
        "progress must rise: {fetching:?}"
    );
    // 256 KiB chunks as chunk_kb asked.
    let chunks = block_on(store.chunks(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(chunks.len(), WEIGHTS.len().div_ceil(256 << 10));
    Ok(())
}

#[test]
fn a_verified_model_is_not_fetched_again() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    download(&hub, &env, &store)?
        .result
        .map_err(|e| e.to_string())?;
    let before = hub.0.borrow().log.len();
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_eq!(
        hub.0.borrow().log.len(),
        before,
        "a second run asked the hub again"
    );
    Ok(())
}

#[test]
fn without_a_hash_in_the_answer_the_api_gives_it_and_without_both_a_warning_says_so(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(false), FakeEnv::default(), store());
    // No API document on this hub: the file is checked by size and header only.
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    let warned = env
        .0
        .warnings
        .borrow()
        .iter()
        .any(|w| w.contains("size and header only"));
    assert!(warned, "warnings: {:?}", env.0.warnings.borrow());
    let manifest = block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(manifest.and_then(|m| m.sha256), None);

    // With the API's document, its SHA-256 is the one checked.
    let (hub, env, store) = (FakeHub::tiny(false), FakeEnv::default(), self::store());
    let sha = to_hex(&Sha256::digest(WEIGHTS));
    let info = format!(
        r#"{{"siblings":[{{"rfilename":"model.safetensors","lfs":{{"sha256":"{sha}"}}}}]}}"#
    );
    hub.0.borrow_mut().files.insert(
        source().info_url(),
        Served {
            bytes: info.into_bytes(),
            etag: None,
            linked_sha: false,
        },
    );
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    let manifest = block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(manifest.and_then(|m| m.sha256), Some(sha));
    Ok(())
}

#[test]
fn a_cut_connection_resumes_with_a_range_request_without_fetching_saved_chunks(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let cut_at = WEIGHTS.len() * 4 / 10;
    hub.fault(WEIGHTS_FILE, Fault::Cut(cut_at));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    let resumed = starts(&hub.requests(WEIGHTS_FILE));
    let chunk = 256 << 10;
    assert_eq!(
        resumed,
        vec![0, cut_at / chunk * chunk],
        "the second request starts at the first missing chunk"
    );
    assert!(
        hub.sent(WEIGHTS_FILE) < WEIGHTS.len() + chunk,
        "sent {} of {}",
        hub.sent(WEIGHTS_FILE),
        WEIGHTS.len()
    );
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0]);
    assert!(run.progress.iter().any(|p| p.phase
        == Phase::Retrying {
            attempt: 2,
            in_ms: 1000.0
        }));
    Ok(())
}

#[test]
fn a_new_session_resumes_what_an_unreachable_hub_left() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() / 2));
    for _ in 0..4 {
        hub.fault(WEIGHTS_FILE, Fault::Network);
    }
    let run = download(&hub, &env, &store)?;
    let saved = match run.result {
        Err(DownloadError::Unreachable { saved, .. }) => saved,
        other => return Err(format!("expected Unreachable, got {other:?}")),
    };
    let stored: u64 = block_on(store.chunks(WEIGHTS_FILE))?
        .map_err(|e| e.to_string())?
        .iter()
        .map(|c| c.len)
        .sum();
    assert_eq!(saved, format_bytes(stored as f64));
    assert!(stored > 0 && stored <= WEIGHTS.len() as u64 / 2);
    // Five failures in a row (the cut, then four refused connections): four waits.
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0, 2000.0, 4000.0, 8000.0]);
    assert!(matches!(
        block_on(cache_state(&store))?,
        Ok(CacheState::Partial { .. })
    ));
    assert!(matches!(
        block_on(open_verified(&store))?,
        Err(DownloadError::NotVerified)
    ));
    // A reload: the stored chunks are hashed in place and only the rest is fetched.
    let sent_before = hub.sent(WEIGHTS_FILE);
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(
        hub.sent(WEIGHTS_FILE) - sent_before,
        WEIGHTS.len() - stored as usize
    );
    assert_eq!(
        starts(&hub.requests(WEIGHTS_FILE)).last().copied(),
        Some(stored as usize)
    );
    assert!(run.progress.iter().any(|p| p.phase == Phase::Checking));
    Ok(())
}

#[test]
fn corrupt_bytes_are_caught_by_the_hash_and_the_file_is_fetched_once_more() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Corrupt(WEIGHTS.len() - 100));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(
        starts(&hub.requests(WEIGHTS_FILE)),
        vec![0, 0],
        "the whole file once more"
    );
    assert!(run
        .progress
        .iter()
        .any(|p| matches!(p.phase, Phase::Refetching { .. })));
    assert_eq!(run.progress.last().map(|p| p.verify_failures), Some(1));
    Ok(())
}

#[test]
fn corrupt_twice_is_a_checksum_error_and_nothing_is_verified() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Corrupt(5000));
    hub.fault(WEIGHTS_FILE, Fault::Corrupt(5000));
    let run = download(&hub, &env, &store)?;
    assert_eq!(
        run.result,
        Err(DownloadError::Checksum {
            file: WEIGHTS_FILE.into()
        })
    );
    assert!(matches!(
        block_on(open_verified(&store))?,
        Err(DownloadError::NotVerified)
    ));
    // The corrupt bytes are not kept: once the hub serves the file right, Retry works
    // (it used to fail on the stored bytes forever).
    assert!(block_on(store.chunks(WEIGHTS_FILE))?
        .map_err(|e| e.to_string())?
        .is_empty());
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    Ok(())
}

#[test]
fn a_corrupt_header_without_any_hash_is_fetched_again() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(false), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Corrupt(3));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    assert!(env
        .0
        .warnings
        .borrow()
        .iter()
        .any(|w| w.contains("unreadable header")));
    Ok(())
}

#[test]
fn a_json_file_that_fails_its_hash_is_fetched_again_then_refused() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.serve("config.json", CONFIG.to_vec(), None, true);
    hub.fault("config.json", Fault::Corrupt(2));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_eq!(hub.requests("config.json").len(), 2);
    assert_eq!(run.progress.last().map(|p| p.verify_failures), Some(1));

    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.serve("config.json", CONFIG.to_vec(), None, true);
    hub.fault("config.json", Fault::Corrupt(2));
    hub.fault("config.json", Fault::Corrupt(2));
    let run = download(&hub, &env, &store)?;
    assert_eq!(
        run.result,
        Err(DownloadError::Checksum {
            file: "config.json".into()
        })
    );
    Ok(())
}

#[test]
fn a_file_changed_on_the_hub_starts_over_and_twice_is_unstable() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() / 3));
    // Between the cut and the resume, the hub publishes another version (new ETag).
    let d = Download::with_parts(
        source(),
        store.clone(),
        hub.clone(),
        env.clone(),
        Box::new(|_: &Progress| {}),
    );
    let first = block_on(async {
        hub.fault(WEIGHTS_FILE, Fault::Network);
        hub.fault(WEIGHTS_FILE, Fault::Network);
        hub.fault(WEIGHTS_FILE, Fault::Network);
        hub.fault(WEIGHTS_FILE, Fault::Network);
        d.run().await
    })?;
    assert!(matches!(first, Err(DownloadError::Unreachable { .. })));
    hub.serve(WEIGHTS_FILE, WEIGHTS.to_vec(), Some("\"w2\"".into()), true);
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    let manifest = block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(manifest.and_then(|m| m.etag), Some("\"w2\"".into()));
    assert_eq!(
        starts(&hub.requests(WEIGHTS_FILE)).last().copied(),
        Some(0),
        "started over"
    );

    // A hub whose answers keep changing size: 416 twice.
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.fault(WEIGHTS_FILE, Fault::Status(416));
    hub.fault(WEIGHTS_FILE, Fault::Status(416));
    let run = download(&hub, &env, &store)?;
    assert_eq!(
        run.result,
        Err(DownloadError::Unstable {
            file: WEIGHTS_FILE.into()
        })
    );
    Ok(())
}

#[test]
fn a_hub_that_ignores_range_is_read_from_the_start_and_the_saved_part_skipped() -> Result<(), String>
{
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() / 2));
    hub.0.borrow_mut().ignore_range = true;
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    let statuses: Vec<u16> = hub
        .requests(WEIGHTS_FILE)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200]);
    Ok(())
}

#[test]
fn a_chunk_changed_in_storage_is_fetched_again_alone() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() / 2));
    for _ in 0..4 {
        hub.fault(WEIGHTS_FILE, Fault::Network);
    }
    assert!(download(&hub, &env, &store)?.result.is_err());
    let chunk = 256usize << 10;
    assert!(store.corrupt_chunk(WEIGHTS_FILE, 2, &vec![7u8; chunk]));
    let sent_before = hub.sent(WEIGHTS_FILE);
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    let last_two: Vec<usize> = starts(&hub.requests(WEIGHTS_FILE))
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert_eq!(
        last_two.last().copied(),
        Some(2 * chunk),
        "chunk 2 alone first"
    );
    let stored_before = (WEIGHTS.len() / 2) / chunk * chunk;
    assert_eq!(
        hub.sent(WEIGHTS_FILE) - sent_before,
        WEIGHTS.len() - stored_before + chunk
    );
    assert!(env
        .0
        .warnings
        .borrow()
        .iter()
        .any(|w| w.contains("chunk 2")));
    Ok(())
}

#[test]
fn hub_statuses_become_their_own_errors() -> Result<(), String> {
    let cases: Vec<(&str, u16, bool, DownloadError)> = vec![
        (
            WEIGHTS_FILE,
            404,
            true,
            DownloadError::OnlyPytorch {
                model: "test/tiny-clip".into(),
                revision: "main".into(),
            },
        ),
        (
            WEIGHTS_FILE,
            404,
            false,
            DownloadError::NotFound {
                file: WEIGHTS_FILE.into(),
                model: "test/tiny-clip".into(),
                revision: "main".into(),
            },
        ),
        (
            "config.json",
            410,
            false,
            DownloadError::NotFound {
                file: "config.json".into(),
                model: "test/tiny-clip".into(),
                revision: "main".into(),
            },
        ),
        (
            "tokenizer.json",
            403,
            false,
            DownloadError::Refused {
                file: "tokenizer.json".into(),
                status: 403,
            },
        ),
        (
            WEIGHTS_FILE,
            400,
            false,
            DownloadError::Http {
                file: WEIGHTS_FILE.into(),
                status: 400,
            },
        ),
    ];
    for (file, status, pytorch, want) in cases {
        let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
        hub.fault(file, Fault::Status(status));
        if pytorch {
            hub.serve(PYTORCH_FILE, vec![1, 2, 3], None, false);
        }
        assert_eq!(
            download(&hub, &env, &store)?.result,
            Err(want),
            "{file} {status}"
        );
    }
    Ok(())
}

#[test]
fn a_busy_hub_is_waited_for_as_its_retry_after_asks_within_a_bound() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    // Seconds; an HTTP date 10 s after the virtual clock's start; an hour (bounded); "soon"
    // (not a Retry-After: the plain backoff).
    hub.fault(WEIGHTS_FILE, Fault::Busy(503, "3"));
    hub.fault(
        WEIGHTS_FILE,
        Fault::Busy(429, "Thu, 01 Jan 1970 00:00:10 GMT"),
    );
    hub.fault(WEIGHTS_FILE, Fault::Busy(503, "3600"));
    hub.fault(WEIGHTS_FILE, Fault::Busy(503, "soon"));
    let run = download(&hub, &env, &store)?;
    run.result.clone().map_err(|e| e.to_string())?;
    let sleeps = env.0.sleeps.borrow().clone();
    assert_eq!(sleeps.len(), 4, "{sleeps:?}");
    assert_eq!(sleeps[0], 3000.0, "{sleeps:?}");
    // The date is reached, no later: 10 s less what the clock had run (3 s slept and a
    // few looks at it), more than the 2 s backoff of a second try.
    assert!(sleeps[1] > 2000.0 && sleeps[1] <= 7000.0, "{sleeps:?}");
    assert_eq!(sleeps[2], rules::MAX_RETRY_AFTER_MS, "{sleeps:?}");
    assert_eq!(sleeps[3], 8000.0, "{sleeps:?}");
    assert!(run.progress.iter().any(|p| p.phase
        == Phase::Retrying {
            attempt: 2,
            in_ms: 3000.0
        }));
    Ok(())
}

#[test]
fn server_errors_back_off_then_give_up_offline_and_blocked_stop_at_once() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    for _ in 0..5 {
        hub.fault("config.json", Fault::Status(503));
    }
    let run = download(&hub, &env, &store)?;
    assert!(
        matches!(
            &run.result,
            Err(DownloadError::HubFailing { status: 503, .. })
        ),
        "{:?}",
        run.result
    );
    let said = run.result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        said.contains("kept answering with an error (HTTP 503"),
        "{said}"
    );
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0, 2000.0, 4000.0, 8000.0]);

    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.fault("config.json", Fault::Network);
    env.0.offline.set(true);
    assert_eq!(
        download(&hub, &env, &store)?.result,
        Err(DownloadError::Offline)
    );

    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.fault("config.json", Fault::Network);
    env.0.blocked.set(true);
    let blocked = DownloadError::Blocked {
        hub: "http://127.0.0.1:9".into(),
    };
    assert_eq!(download(&hub, &env, &store)?.result, Err(blocked));
    assert!(env.0.sleeps.borrow().is_empty());
    Ok(())
}

#[test]
fn a_full_store_is_a_quota_error_naming_the_model_size() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    // Three JSON files and the weights' manifest fit, then two chunks.
    store.limit_writes(Some(6));
    let run = download(&hub, &env, &store)?;
    assert_eq!(
        run.result,
        Err(DownloadError::Quota {
            needed: format_bytes(WEIGHTS.len() as f64)
        })
    );
    // Nothing half-stored is taken for a model: two chunks are kept, nothing is verified.
    assert!(matches!(
        block_on(open_verified(&store))?,
        Err(DownloadError::NotVerified)
    ));
    assert!(matches!(
        block_on(cache_state(&store))?,
        Ok(CacheState::Partial { stored_bytes, .. }) if stored_bytes == 2 * (256 << 10)
    ));
    // Room again: Retry goes on from the two saved chunks.
    store.limit_writes(None);
    let sent_before = hub.sent(WEIGHTS_FILE);
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(
        hub.sent(WEIGHTS_FILE) - sent_before,
        WEIGHTS.len() - 2 * (256 << 10)
    );
    Ok(())
}

#[test]
fn a_cancelled_download_stops_and_aborts_the_request() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let d = Download::with_parts(
        source(),
        store.clone(),
        hub.clone(),
        env.clone(),
        Box::new(|_: &Progress| {}),
    );
    d.cancel();
    assert_eq!(block_on(d.run())?, Err(DownloadError::Cancelled));
    assert_eq!(hub.0.borrow().aborted, 1);
    assert!(hub.0.borrow().log.is_empty());
    Ok(())
}

#[test]
fn a_checkpoint_that_lacks_tensors_the_config_needs_is_refused() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let front = crate::model::weights::f32_safetensors_front(&[("text_model.x", &[2])]);
    let mut file = front;
    file.extend_from_slice(&[0u8; 8]);
    hub.serve(WEIGHTS_FILE, file, Some("\"w\"".into()), true);
    let run = download(&hub, &env, &store)?;
    assert!(
        matches!(run.result, Err(DownloadError::BadFile { ref file, .. }) if file == WEIGHTS_FILE),
        "{:?}",
        run.result
    );
    Ok(())
}

#[test]
fn each_cut_that_saved_chunks_starts_the_backoff_again() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    for _ in 0..6 {
        hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() / 7));
    }
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0; 6]);
    Ok(())
}

/// Tests of issue 10's download faults: silent connections, failing servers, files
/// replaced on the hub, lying sizes, and a model removed while a request is in flight.
type TestDownload = Download<MemoryChunkStore, FakeHub, FakeEnv>;

fn shared_download(hub: &FakeHub, env: &FakeEnv, store: &MemoryChunkStore) -> Rc<TestDownload> {
    Rc::new(Download::with_parts(
        source(),
        store.clone(),
        hub.clone(),
        env.clone(),
        Box::new(|_: &Progress| {}),
    ))
}

const CHUNK: usize = 256 << 10;

#[test]
fn a_connection_that_goes_silent_is_given_up_after_the_stall_time_and_resumed() -> Result<(), String>
{
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let stall_at = WEIGHTS.len() * 4 / 10;
    hub.fault(WEIGHTS_FILE, Fault::Stall(stall_at));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(
        starts(&hub.requests(WEIGHTS_FILE)),
        vec![0, stall_at / CHUNK * CHUNK],
        "resumed at the first chunk not stored"
    );
    // The stall time, then the first backoff; the silent request was aborted.
    assert_eq!(
        *env.0.sleeps.borrow(),
        vec![crate::model_cache::rules::STALL_MS, 1000.0]
    );
    assert_eq!(hub.0.borrow().aborted, 1);
    assert!(hub.sent(WEIGHTS_FILE) < WEIGHTS.len() + CHUNK);
    assert!(run
        .progress
        .iter()
        .any(|p| matches!(p.phase, Phase::Retrying { .. })));
    Ok(())
}

#[test]
fn a_request_never_answered_is_given_up_too_and_five_in_a_row_say_so() -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault("config.json", Fault::Hang);
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    assert_eq!(hub.requests("config.json").len(), 2);

    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    for _ in 0..5 {
        hub.fault(WEIGHTS_FILE, Fault::Hang);
    }
    let run = download(&hub, &env, &store)?;
    let said = match &run.result {
        Err(e @ DownloadError::Unreachable { detail, .. }) if detail.contains("no answer") => {
            e.to_string()
        }
        other => return Err(format!("expected Unreachable (no answer), got {other:?}")),
    };
    assert!(said.contains("press Retry"), "{said}");
    assert_eq!(hub.0.borrow().aborted, 5);
    Ok(())
}

#[test]
fn server_errors_in_the_middle_of_the_weights_back_off_and_resume_or_say_the_hub_fails(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    let cut_at = WEIGHTS.len() / 2;
    hub.fault(WEIGHTS_FILE, Fault::Cut(cut_at));
    hub.fault(WEIGHTS_FILE, Fault::Status(503));
    hub.fault(WEIGHTS_FILE, Fault::Status(500));
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    let resume = cut_at / CHUNK * CHUNK;
    assert_eq!(
        starts(&hub.requests(WEIGHTS_FILE)),
        vec![0, resume, resume, resume]
    );
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0, 2000.0, 4000.0]);

    // Bounded: after the cut, four 503s in a row end it, keeping what was saved.
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.fault(WEIGHTS_FILE, Fault::Cut(cut_at));
    for _ in 0..4 {
        hub.fault(WEIGHTS_FILE, Fault::Status(503));
    }
    let run = download(&hub, &env, &store)?;
    assert_eq!(
        run.result,
        Err(DownloadError::HubFailing {
            hub: "http://127.0.0.1:9".into(),
            status: 503,
            saved: format_bytes(resume as f64),
        })
    );
    assert_eq!(*env.0.sleeps.borrow(), vec![1000.0, 2000.0, 4000.0, 8000.0]);
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    Ok(())
}

/// The tiny weights with one byte of tensor data changed: the same size, another file.
fn weights_v2() -> Vec<u8> {
    let mut v2 = WEIGHTS.to_vec();
    let at = v2.len() - 1000;
    if let Some(b) = v2.get_mut(at) {
        *b ^= 0x5a;
    }
    v2
}

/// The store holds exactly `bytes` as the verified weights.
fn assert_stored_weights(store: &MemoryChunkStore, bytes: &[u8]) -> Result<(), String> {
    let model = block_on(open_verified(store))?.map_err(|e| e.to_string())?;
    let got = block_on(model.weights.read(0..bytes.len() as u64))?.map_err(|e| e.to_string())?;
    assert!(
        got == bytes,
        "the stored weights are not the expected version"
    );
    Ok(())
}

#[test]
fn a_file_replaced_on_the_hub_with_the_same_size_and_no_etag_is_noticed_by_its_published_hash(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    // No ETag at all: only X-Linked-Etag (the SHA-256) tells the versions apart.
    hub.serve(WEIGHTS_FILE, WEIGHTS.to_vec(), None, true);
    let v2 = weights_v2();
    let replaced = v2.clone();
    let hub2 = hub.clone();
    hub.when_sent(WEIGHTS_FILE, WEIGHTS.len() * 3 / 10, move || {
        hub2.serve(WEIGHTS_FILE, replaced, None, true);
    });
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() * 4 / 10));
    let run = download(&hub, &env, &store)?;
    assert_eq!(run.result, Ok(()));
    assert_stored_weights(&store, &v2)?;
    let manifest = block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(
        manifest.and_then(|m| m.sha256),
        Some(to_hex(&Sha256::digest(&v2)))
    );
    // The resume saw the new hash and started over: no new byte was checked against the
    // old hash (no failed verification).
    let s = starts(&hub.requests(WEIGHTS_FILE));
    assert_eq!(s.first(), Some(&0));
    assert_eq!(s.last(), Some(&0), "{s:?}");
    assert_eq!(run.progress.last().map(|p| p.verify_failures), Some(0));
    Ok(())
}

#[test]
fn a_file_replaced_on_the_hub_whose_hash_only_the_api_gives_is_checked_against_its_new_hash(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(false), FakeEnv::default(), store());
    hub.serve(WEIGHTS_FILE, WEIGHTS.to_vec(), None, false);
    let api = |bytes: &[u8]| Served {
        bytes: format!(
            r#"{{"siblings":[{{"rfilename":"model.safetensors","lfs":{{"sha256":"{}"}}}}]}}"#,
            to_hex(&Sha256::digest(bytes))
        )
        .into_bytes(),
        etag: None,
        linked_sha: false,
    };
    hub.0
        .borrow_mut()
        .files
        .insert(source().info_url(), api(WEIGHTS));
    let v2 = weights_v2();
    let (hub2, replaced) = (hub.clone(), v2.clone());
    hub.when_sent(WEIGHTS_FILE, WEIGHTS.len() * 3 / 10, move || {
        hub2.0
            .borrow_mut()
            .files
            .insert(source().info_url(), api(&replaced));
        hub2.serve(WEIGHTS_FILE, replaced, None, false);
    });
    hub.fault(WEIGHTS_FILE, Fault::Cut(WEIGHTS.len() * 4 / 10));
    let run = download(&hub, &env, &store)?;
    // Old and new bytes mixed fail the old hash once; the hub is asked again what the file
    // is, and the new file is verified against the new hash (it used to end in a
    // checksum error that every Retry repeated).
    assert_eq!(run.result, Ok(()));
    assert_stored_weights(&store, &v2)?;
    assert_eq!(run.progress.last().map(|p| p.verify_failures), Some(1));
    assert!(env
        .0
        .warnings
        .borrow()
        .iter()
        .any(|w| w.contains("changed on the hub")));
    let manifest = block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?;
    assert_eq!(manifest.map(|m| m.refetched), Some(false));
    Ok(())
}

#[test]
fn an_absurd_size_is_refused_before_anything_is_stored_and_a_stored_one_is_started_over(
) -> Result<(), String> {
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
    hub.fault(WEIGHTS_FILE, Fault::Claim(1 << 50));
    let run = download(&hub, &env, &store)?;
    let said = match &run.result {
        Err(e @ DownloadError::TooLarge { file, .. }) if file == WEIGHTS_FILE => e.to_string(),
        other => return Err(format!("expected TooLarge, got {other:?}")),
    };
    assert!(
        said.contains("more than any CLIP model's file can be"),
        "{said}"
    );
    assert_eq!(
        block_on(store.manifest(WEIGHTS_FILE))?.map_err(|e| e.to_string())?,
        None
    );
    // The next visit is an ordinary download.
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;

    // A small file claiming a terabyte is not read at all.
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    hub.fault("tokenizer.json", Fault::Claim(1 << 40));
    let run = download(&hub, &env, &store)?;
    assert!(
        matches!(&run.result, Err(DownloadError::TooLarge { file, .. }) if file == "tokenizer.json"),
        "{:?}",
        run.result
    );
    assert!(hub.sent("tokenizer.json") == 0);

    // A manifest stored by a broken hub (or an older version) asking for 2^50 bytes in
    // 1-byte chunks: started over, nothing allocated for it (this used to abort the page
    // on every visit).
    let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), self::store());
    let absurd = FileManifest {
        url: source().url(WEIGHTS_FILE),
        size_bytes: 1 << 50,
        etag: None,
        sha256: None,
        chunk_bytes: 1,
        state: FileState::Downloading,
        refetched: false,
    };
    block_on(store.put_manifest(WEIGHTS_FILE, &absurd))?.map_err(|e| e.to_string())?;
    assert_eq!(download(&hub, &env, &store)?.result, Ok(()));
    assert_verified(&store)?;
    assert!(env
        .0
        .warnings
        .borrow()
        .iter()
        .any(|w| w.contains("cannot be resumed")));
    Ok(())
}

#[test]
fn stop_and_remove_is_not_undone_by_a_request_in_flight() -> Result<(), String> {
    for (file, after) in [(WEIGHTS_FILE, WEIGHTS.len() / 3), ("tokenizer.json", 1)] {
        let (hub, env, store) = (FakeHub::tiny(true), FakeEnv::default(), store());
        let d = shared_download(&hub, &env, &store);
        let (weak, removed) = (Rc::downgrade(&d), store.clone());
        let remove_worked = Rc::new(std::cell::Cell::new(false));
        let worked = remove_worked.clone();
        // "Stop and remove" while a piece is on its way: the page cancels the download,
        // then removes the model; the piece still arrives.
        hub.when_sent(file, after, move || {
            if let Some(d) = weak.upgrade() {
                d.cancel();
            }
            worked.set(matches!(block_on(removed.remove_model()), Ok(Ok(()))));
        });
        assert_eq!(block_on(d.run())?, Err(DownloadError::Cancelled), "{file}");
        assert!(remove_worked.get(), "{file}: the removal failed");
        assert_eq!(
            block_on(cache_state(&store))?,
            Ok(CacheState::Empty),
            "{file}: something was stored after the model was removed"
        );
        assert!(hub.0.borrow().hook.is_none(), "{file}: the hook never ran");
    }
    Ok(())
}
