//! The `clipseek` binary keeps the DESIGN.md contract: `index`, `search` and `embed` with
//! `--json`, bad files under `skipped`, exit status 1 only when nothing could be done.

mod common;

use std::process::Command;

use common::*;

#[test]
fn index_search_embed_follow_the_contract() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = fixtures().join("tiny-clip");
    let model = model.to_str().ok_or("path")?;
    let images = fixtures().join("images");
    let images = images.to_str().ok_or("path")?;
    let index = dir.path().join("photos.idx");
    let index = index.to_str().ok_or("path")?;

    let (code, v, _) = clipseek(&[
        "index", "--model", model, "--json", "--batch", "5", "--out", index, images,
    ])?;
    assert_eq!(code, 0);
    assert_eq!(v["indexed"], 28);
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .ok_or("skipped")?
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(skipped.iter().all(|p| p.contains("/bad/")));
    assert!(v["seconds"].as_f64().is_some());

    let (code, v, _) = clipseek(&[
        "search",
        "--model",
        model,
        "--index",
        index,
        "--json",
        "--top-k",
        "28",
        "kids on their bikes",
        " ",
    ])?;
    assert_eq!(code, 0);
    let queries = v["queries"].as_array().ok_or("queries")?;
    assert_eq!(queries.len(), 2);
    assert!(
        queries[1]["error"].is_string(),
        "a blank query is an error line"
    );
    let matches = queries[0]["matches"].as_array().ok_or("matches")?;
    assert_eq!(matches.len(), 28);
    let scores: Vec<f64> = matches.iter().filter_map(|m| m["score"].as_f64()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "descending");
    // Same order as the reference up to JPEG-decoding near-ties.
    let r = reference("reference/tiny.json")?;
    let rk = r
        .rankings
        .iter()
        .find(|k| k.text == "kids on their bikes")
        .ok_or("ranking")?;
    let ours: Vec<String> = matches
        .iter()
        .filter_map(|m| m["path"].as_str())
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
        .collect();
    assert!(same_ranking(&ours, &rk.files, &rk.scores, 5e-3), "{ours:?}");

    // Indexing again reuses unchanged files.
    let (code, v, _) = clipseek(&["index", "--model", model, "--json", "--out", index, images])?;
    assert_eq!((code, v["indexed"].as_u64()), (0, Some(28)));

    let img = fixtures().join("images/landscape.jpg");
    let (code, v, _) = clipseek(&[
        "embed",
        "--model",
        model,
        "--json",
        "--image",
        img.to_str().ok_or("path")?,
        "/nonexistent.jpg",
    ])?;
    assert_eq!(code, 0);
    assert_eq!(
        v["images"][0]["embedding"].as_array().map(Vec::len),
        Some(24)
    );
    assert_eq!(v["skipped"].as_array().map(Vec::len), Some(1));
    let (code, v, _) = clipseek(&[
        "embed",
        "--model",
        model,
        "--json",
        "--text",
        "a photo of a cat",
    ])?;
    assert_eq!(code, 0);
    let e: Vec<f32> = serde_json::from_value(v["texts"][0]["embedding"].clone())?;
    let want = &r
        .texts
        .iter()
        .find(|t| t.text == "a photo of a cat")
        .ok_or("text")?
        .embedding;
    assert!(cosine(&e, want) >= 0.9999);
    Ok(())
}

#[test]
fn nothing_possible_exits_1_with_one_line() -> TestResult {
    let (code, _, err) = clipseek(&[
        "search",
        "--model",
        "/nonexistent",
        "--index",
        "/nonexistent",
        "x",
    ])?;
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let model = fixtures().join("tiny-clip");
    let bad = fixtures().join("images/bad/text.jpg");
    let (code, _, err) = clipseek(&[
        "search",
        "--model",
        model.to_str().ok_or("path")?,
        "--index",
        bad.to_str().ok_or("path")?,
        "x",
    ])?;
    assert_eq!(code, 1);
    assert!(err.contains("not a clipseek index"), "{err}");
    Ok(())
}

/// `--precision int8` on `embed`, `index` and `search`: the 8-bit engine's numbers (close to
/// the reference, not bit-identical to f32's), the same ranking up to near-ties, and an
/// unknown precision refused by the argument parser.
#[test]
fn precision_int8_embeds_indexes_and_searches() -> TestResult {
    let model = fixtures().join("tiny-clip");
    let model = model.to_str().ok_or("path")?;
    let img = fixtures().join("images/landscape.jpg");
    let img = img.to_str().ok_or("path")?;
    let r = reference("reference/tiny.json")?;
    let text = "a photo of a cat";
    let want = &r
        .texts
        .iter()
        .find(|t| t.text == text)
        .ok_or("text")?
        .embedding;
    let mut by_precision = Vec::new();
    for precision in ["f32", "int8"] {
        let mut got = Vec::new();
        for (flag, value, key) in [("--image", img, "images"), ("--text", text, "texts")] {
            let (code, v, err) = clipseek(&[
                "embed",
                "--model",
                model,
                "--precision",
                precision,
                "--json",
                flag,
                value,
            ])?;
            assert_eq!(code, 0, "{err}");
            let e: Vec<f32> = serde_json::from_value(v[key][0]["embedding"].clone())?;
            got.push(e);
        }
        assert!(cosine(&got[1], want) >= 0.999, "{precision}: text cos");
        by_precision.push((got[0].clone(), got[1].clone()));
    }
    let (f32s, int8) = (&by_precision[0], &by_precision[1]);
    assert!(cosine(&f32s.0, &int8.0) >= 0.999);
    assert!(
        f32s.0 != int8.0 && f32s.1 != int8.1,
        "int8 gave f32's numbers"
    );

    let dir = tempfile::tempdir()?;
    let index = dir.path().join("int8.idx");
    let index = index.to_str().ok_or("path")?;
    let images = fixtures().join("images");
    let images = images.to_str().ok_or("path")?;
    let (code, v, _) = clipseek(&[
        "index",
        "--model",
        model,
        "--precision",
        "int8",
        "--json",
        "--out",
        index,
        images,
    ])?;
    assert_eq!((code, v["indexed"].as_u64()), (0, Some(28)));
    let query = "kids on their bikes";
    let (code, v, _) = clipseek(&[
        "search",
        "--model",
        model,
        "--precision",
        "int8",
        "--index",
        index,
        "--json",
        "--top-k",
        "28",
        query,
    ])?;
    assert_eq!(code, 0);
    let ours: Vec<String> = v["queries"][0]["matches"]
        .as_array()
        .ok_or("matches")?
        .iter()
        .filter_map(|m| m["path"].as_str())
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
        .collect();
    let rk = r
        .rankings
        .iter()
        .find(|k| k.text == query)
        .ok_or("ranking")?;
    assert!(same_ranking(&ours, &rk.files, &rk.scores, 1e-2), "{ours:?}");

    let (code, _, err) = clipseek(&[
        "embed",
        "--model",
        model,
        "--precision",
        "f16",
        "--text",
        "x",
    ])?;
    assert_eq!(code, 2, "clap refuses an unknown value");
    assert!(err.contains("f32") && err.contains("int8"), "{err}");
    Ok(())
}

/// `clipseek index` killed in the middle of a run keeps what it finished (the journal
/// beside the index file), and the next run finishes without encoding those again: the
/// finished photos are overwritten with garbage of the same size and date before the
/// re-run, so any photo it read again would be skipped as undecodable.
#[test]
fn an_index_run_killed_midway_is_finished_by_the_next_without_redoing_anything() -> TestResult {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir()?;
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("nested"))?;
    let n = 1200usize;
    for i in 0..n {
        let sub = if i % 3 == 0 { "nested/" } else { "" };
        let jpeg = clipseek::model::synthetic::varied_photo_jpeg(48, 40, i as u64)?;
        std::fs::write(photos.join(format!("{sub}p{i:04}.jpg")), jpeg)?;
    }
    let model = fixtures().join("tiny-clip");
    let index = dir.path().join("photos.idx");
    let journal = dir.path().join("photos.idx.journal");
    let args = [
        "index",
        "--model",
        model.to_str().ok_or("path")?,
        "--json",
        "--batch",
        "4",
        "--out",
        index.to_str().ok_or("path")?,
        photos.to_str().ok_or("path")?,
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_clipseek"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let model_id = clipseek::files::load_model_dir(&model)?.model_id;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut finished = Vec::new();
    while Instant::now() < deadline {
        if let Ok(bytes) = std::fs::read(&journal) {
            if let Ok(replay) = clipseek::index::journal::read_journal(&bytes, &model_id) {
                if replay.records.len() >= 40 {
                    child.kill()?;
                    break;
                }
            }
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = child.wait()?;
    assert!(
        !status.success(),
        "the run ended by itself before it could be killed (make the test photos more)"
    );
    assert!(!index.exists(), "a killed first run has no index file yet");
    let replay = clipseek::index::journal::read_journal(&std::fs::read(&journal)?, &model_id)?;
    let kept = replay.records.len();
    assert!(kept >= 40 && kept < n, "{kept} of {n} kept");
    for (meta, _) in &replay.records {
        // Same size and date, other bytes: undecodable if it is read again.
        let file = std::fs::OpenOptions::new().write(true).open(&meta.path)?;
        let modified = file.metadata()?.modified()?;
        std::io::Write::write_all(&mut &file, &vec![0x55u8; meta.size_bytes as usize])?;
        file.set_modified(modified)?;
        finished.push(meta.path.clone());
    }

    let (code, v, err) = clipseek(&args)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["indexed"], n, "{v}");
    assert_eq!(
        v["skipped"].as_array().map(Vec::len),
        Some(0),
        "photos finished before the kill were read again: {v}"
    );
    assert!(err.contains(&format!("{kept} images")), "{err}");
    assert!(
        !journal.exists(),
        "the journal is removed once the index holds it"
    );
    let idx = clipseek::index::EmbeddingIndex::from_bytes(&std::fs::read(&index)?, None)?;
    assert_eq!(idx.len(), n);
    assert!(finished.iter().all(|p| idx.entry_by_path(p).is_some()));
    Ok(())
}

/// An index file that cannot be read, or was made with another model, is refused with a
/// sentence saying how to go on, and left byte for byte as it was.
#[test]
fn an_unreadable_index_file_is_refused_never_replaced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = fixtures().join("tiny-clip");
    let image = fixtures().join("images/square.jpg");
    let index = dir.path().join("photos.idx");
    let args = [
        "index",
        "--model",
        model.to_str().ok_or("path")?,
        "--out",
        index.to_str().ok_or("path")?,
        image.to_str().ok_or("path")?,
    ];
    let mut damaged = clipseek::index::EmbeddingIndex::new("someone-else", 4).to_bytes();
    for (name, bytes) in [
        ("not an index", b"my notes, not an index".to_vec()),
        ("another model", damaged.clone()),
        ("damaged", {
            let last = damaged.len() - 1;
            damaged[last] ^= 1;
            damaged.clone()
        }),
    ] {
        std::fs::write(&index, &bytes)?;
        let (code, _, err) = clipseek(&args)?;
        assert_eq!(code, 1, "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains("is left as it is"), "{name}: {err}");
        assert!(err.contains("--out"), "{name}: {err}");
        assert!(
            std::fs::read(&index)? == bytes,
            "{name}: the file was changed"
        );
    }
    Ok(())
}
