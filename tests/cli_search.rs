//! The `clipseek` subcommands of the search issue, on the tiny fixture model: compound
//! queries in `search` (ranked as `index::query`'s maths says, recomputed here from the
//! index file and the texts' embeddings), `duplicates` (the same groups as a brute-force
//! pass over the index), `export` / `import` and `search` on an archive (same rankings both
//! ways; another model's archive refused with a sentence).

mod common;

use std::path::Path;

use clipseek::index::EmbeddingIndex;
use common::*;
use serde_json::Value;

fn tiny_model() -> Result<String, Box<dyn std::error::Error>> {
    Ok(fixtures()
        .join("tiny-clip")
        .to_str()
        .ok_or("path")?
        .to_string())
}

/// Indexes the fixture images into `dir/photos.idx` and returns its path.
fn make_index(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let model = tiny_model()?;
    let images = fixtures().join("images");
    let index = dir.join("photos.idx");
    let index = index.to_str().ok_or("path")?.to_string();
    let (code, v, err) = clipseek(&[
        "index",
        "--model",
        &model,
        "--json",
        "--out",
        &index,
        images.to_str().ok_or("path")?,
    ])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["indexed"], 28);
    Ok(index)
}

fn read_index(path: &str) -> Result<EmbeddingIndex, Box<dyn std::error::Error>> {
    Ok(EmbeddingIndex::from_bytes(&std::fs::read(path)?, None)?)
}

/// `(path, score)` of each match of query `i` of a `search --json` answer.
fn matches(v: &Value, i: usize) -> Result<Vec<(String, f64)>, Box<dyn std::error::Error>> {
    Ok(v["queries"][i]["matches"]
        .as_array()
        .ok_or("matches")?
        .iter()
        .filter_map(|m| Some((m["path"].as_str()?.to_string(), m["score"].as_f64()?)))
        .collect())
}

fn text_embeddings(texts: &[&str]) -> Result<Vec<Vec<f64>>, Box<dyn std::error::Error>> {
    let model = tiny_model()?;
    let mut args = vec!["embed", "--model", &model, "--json", "--text"];
    args.extend_from_slice(texts);
    let (code, v, err) = clipseek(&args)?;
    assert_eq!(code, 0, "{err}");
    let mut out = Vec::new();
    for i in 0..texts.len() {
        let e: Vec<f64> = serde_json::from_value(v["texts"][i]["embedding"].clone())?;
        out.push(e);
    }
    Ok(out)
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Every photo's score against `q` (unit length), in index order.
fn scores(index: &EmbeddingIndex, q: &[f64]) -> Vec<(String, f64)> {
    index
        .entries()
        .iter()
        .zip(index.matrix().chunks_exact(index.dim()))
        .map(|(e, row)| {
            let s: f64 = row.iter().zip(q).map(|(&x, y)| f64::from(x) * y).sum();
            (e.path.clone(), s)
        })
        .collect()
}

/// The CLI's ranking is the maths': descending, every score within 1e-5 of the one
/// recomputed here, every photo present.
fn assert_ranked_as(got: &[(String, f64)], want: &[(String, f64)]) {
    assert_eq!(got.len(), want.len());
    assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "descending");
    for (path, score) in got {
        let expected = want.iter().find(|(p, _)| p == path).map(|(_, s)| *s);
        assert!(
            expected.is_some_and(|e| (e - score).abs() < 1e-5),
            "{path}: {score} vs {expected:?}"
        );
    }
}

#[test]
fn a_negative_term_reranks_as_the_maths_says() -> TestResult {
    let dir = tempfile::tempdir()?;
    let index_path = make_index(dir.path())?;
    let index = read_index(&index_path)?;
    let model = tiny_model()?;
    let (pos, neg) = ("kids on their bikes", "a photo of a cat");
    let (code, v, err) = clipseek(&[
        "search",
        "--model",
        &model,
        "--index",
        &index_path,
        "--json",
        "--top-k",
        "28",
        pos,
        &format!("{pos} -{neg}"),
        &format!("2:{pos} + {neg}"),
    ])?;
    assert_eq!(code, 0, "{err}");
    let e = text_embeddings(&[pos, neg])?;
    let (a, b) = (unit(&e[0]), unit(&e[1]));
    let combined = |wa: f64, wb: f64| -> Vec<f64> {
        unit(
            &a.iter()
                .zip(&b)
                .map(|(x, y)| wa * x + wb * y)
                .collect::<Vec<_>>(),
        )
    };
    let plain = matches(&v, 0)?;
    let minus = matches(&v, 1)?;
    let weighted = matches(&v, 2)?;
    assert_ranked_as(&plain, &scores(&index, &a));
    // q = normalise(a - 0.5 b)
    assert_ranked_as(&minus, &scores(&index, &combined(1.0, -0.5)));
    // q = normalise(2 a + b)
    assert_ranked_as(&weighted, &scores(&index, &combined(2.0, 1.0)));

    let order = |m: &[(String, f64)]| m.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_ne!(
        order(&plain),
        order(&minus),
        "the negative term changed nothing"
    );
    // The photo most like the negative text can only lose places.
    let catlike = scores(&index, &b)
        .into_iter()
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(p, _)| p)
        .ok_or("no photos")?;
    let rank = |m: &[(String, f64)]| m.iter().position(|(p, _)| *p == catlike);
    assert!(rank(&minus) >= rank(&plain), "{catlike}");
    Ok(())
}

#[test]
fn photo_terms_and_bad_queries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let index_path = make_index(dir.path())?;
    let index = read_index(&index_path)?;
    let model = tiny_model()?;
    let photo = index
        .entries()
        .iter()
        .find(|e| e.path.ends_with("landscape.jpg"))
        .ok_or("landscape")?;
    let (code, v, err) = clipseek(&[
        "search",
        "--model",
        &model,
        "--index",
        &index_path,
        "--json",
        "--top-k",
        "5",
        // A query that starts with `-` would read as an option: queries after `--`.
        "--",
        &format!("@{}", photo.path),
        "-cat",
        " ",
        "dog -",
        "@nowhere.jpg",
    ])?;
    assert_eq!(code, 0, "{err}");
    // Like Similar: the photo itself is left out, the rest ranked by cosine with it.
    let similar: Vec<String> = index
        .similar(photo.id, 5)?
        .iter()
        .filter_map(|m| index.entry(m.id).map(|e| e.path.clone()))
        .collect();
    let got: Vec<String> = matches(&v, 0)?.into_iter().map(|(p, _)| p).collect();
    assert_eq!(got, similar);
    let error = |i: usize| v["queries"][i]["error"].as_str().unwrap_or("").to_string();
    assert!(error(1).contains("leave out"), "{}", error(1));
    assert!(error(2).contains("empty"), "{}", error(2));
    assert!(error(3).contains("not followed"), "{}", error(3));
    assert!(error(4).contains("no indexed photo"), "{}", error(4));
    for i in 1..5 {
        assert_eq!(matches(&v, i)?.len(), 0);
    }
    Ok(())
}

/// Connected components of "cosine >= t" over every pair: the reference for `duplicates`.
fn brute_force_groups(index: &EmbeddingIndex, t: f32) -> Vec<Vec<String>> {
    let rows: Vec<&[f32]> = index.matrix().chunks_exact(index.dim()).collect();
    let n = rows.len();
    let mut group: Vec<usize> = (0..n).collect();
    for a in 0..n {
        for b in a + 1..n {
            let s: f32 = rows[a].iter().zip(rows[b]).map(|(x, y)| x * y).sum();
            if s >= t - 1e-6 && group[a] != group[b] {
                let (from, to) = (group[b], group[a]);
                for g in &mut group {
                    if *g == from {
                        *g = to;
                    }
                }
            }
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for g in 0..n {
        let mut members: Vec<String> = (0..n)
            .filter(|&i| group[i] == g)
            .map(|i| index.entries()[i].path.clone())
            .collect();
        if members.len() > 1 {
            members.sort();
            out.push(members);
        }
    }
    out.sort();
    out
}

#[test]
fn duplicates_prints_the_brute_force_groups() -> TestResult {
    let dir = tempfile::tempdir()?;
    let index_path = make_index(dir.path())?;
    let index = read_index(&index_path)?;
    let threshold = 0.98f32;
    let t = threshold.to_string();
    let (code, v, err) = clipseek(&[
        "duplicates",
        "--index",
        &index_path,
        "--threshold",
        &t,
        "--json",
    ])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["threshold"].as_f64().map(|x| x as f32), Some(threshold));
    let groups = v["groups"].as_array().ok_or("groups")?;
    let mut got: Vec<Vec<String>> = Vec::new();
    for g in groups {
        let keep = g["keep"].as_str().ok_or("keep")?.to_string();
        let others: Vec<String> = g["others"]
            .as_array()
            .ok_or("others")?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        // The kept photo is the largest file of its group, then the newest.
        let entry = |p: &str| {
            index
                .entry_by_path(p)
                .map(|e| (e.size_bytes, e.modified_ms))
        };
        for o in &others {
            assert!(entry(&keep) >= entry(o), "keep {keep} over {o}");
        }
        let mut members = others;
        members.push(keep);
        members.sort();
        got.push(members);
    }
    // Ordered by size.
    assert!(groups.windows(2).all(
        |w| w[0]["others"].as_array().map(Vec::len) >= w[1]["others"].as_array().map(Vec::len)
    ));
    got.sort();
    let want = brute_force_groups(&index, threshold);
    assert!(!want.is_empty(), "the fixtures hold near-identical photos");
    assert_eq!(got, want);

    let (code, _, err) = clipseek(&["duplicates", "--index", &index_path, "--threshold", "0.2"])?;
    assert_eq!(code, 1);
    assert!(err.contains("threshold"), "{err}");
    Ok(())
}

#[test]
fn export_import_and_search_keep_the_rankings() -> TestResult {
    let dir = tempfile::tempdir()?;
    let index_path = make_index(dir.path())?;
    let model = tiny_model()?;
    let archive = dir.path().join("photos.zip");
    let archive = archive.to_str().ok_or("path")?;
    let (code, v, err) = clipseek(&["export", "--index", &index_path, "--out", archive, "--json"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["exported"], 28);

    let back = dir.path().join("back.idx");
    let back = back.to_str().ok_or("path")?;
    let (code, v, err) = clipseek(&[
        "import",
        "--archive",
        archive,
        "--out",
        back,
        "--model",
        &model,
        "--json",
    ])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (v["imported"].as_u64(), v["total"].as_u64()),
        (Some(28), Some(28))
    );
    let original = read_index(&index_path)?;
    let imported = read_index(back)?;
    assert_eq!(imported.matrix(), original.matrix());

    let queries = [
        "kids on their bikes",
        "beach + sunset -people",
        "2:a red car",
    ];
    let mut answers = Vec::new();
    for index in [index_path.as_str(), archive, back] {
        let mut args = vec![
            "search", "--model", &model, "--index", index, "--json", "--top-k", "28",
        ];
        args.extend_from_slice(&queries);
        let (code, v, err) = clipseek(&args)?;
        assert_eq!(code, 0, "{err}");
        let mut per_query = Vec::new();
        for i in 0..queries.len() {
            per_query.push(matches(&v, i)?);
        }
        answers.push(per_query);
    }
    assert_eq!(answers[0].len(), queries.len());
    assert!(answers[0].iter().all(|m| m.len() == 28));
    assert_eq!(answers[0], answers[1], "search on the archive");
    assert_eq!(answers[0], answers[2], "search on the imported index");

    // Importing again into the same index replaces the same paths: still 28.
    let (code, v, _) = clipseek(&["import", "--archive", archive, "--out", back, "--json"])?;
    assert_eq!((code, v["total"].as_u64()), (0, Some(28)));

    // Another model's archive is refused with a sentence, by import and by search.
    let other = fixtures().join("tiny-clip-f16");
    let other = other.to_str().ok_or("path")?;
    let elsewhere = dir.path().join("other.idx");
    let (code, _, err) = clipseek(&[
        "import",
        "--archive",
        archive,
        "--out",
        elsewhere.to_str().ok_or("path")?,
        "--model",
        other,
    ])?;
    assert_eq!(code, 1);
    assert!(err.contains("another model"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!elsewhere.exists());
    let (code, _, err) = clipseek(&["search", "--model", other, "--index", archive, "x"])?;
    assert_eq!(code, 1);
    assert!(err.contains("another model"), "{err}");

    // A damaged archive is refused with a sentence.
    let mut bytes = std::fs::read(archive)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = dir.path().join("damaged.zip");
    std::fs::write(&damaged, &bytes)?;
    let (code, _, err) = clipseek(&[
        "import",
        "--archive",
        damaged.to_str().ok_or("path")?,
        "--out",
        elsewhere.to_str().ok_or("path")?,
    ])?;
    assert_eq!(code, 1);
    assert!(err.contains("damaged"), "{err}");
    Ok(())
}

/// `search --query-model`: the multilingual query encoder ranks an index made with the
/// CLIP model (same embedding size), its scores the dot products of its own query
/// embeddings with the index rows; with `--model` too the index is still checked; an
/// index of another size is refused with a sentence.
#[test]
fn search_with_a_query_model_ranks_the_clip_index() -> TestResult {
    let dir = tempfile::tempdir()?;
    let index_path = make_index(dir.path())?;
    let index = read_index(&index_path)?;
    let qdir = fixtures().join("multilingual-tiny");
    let qmodel = clipseek::files::load_query_model_dir(&qdir)?;
    let queries = ["Кошка на диване", "東京の夜景", "a photo of a cat"];
    let q = qdir.to_str().ok_or("path")?;
    let mut args = vec![
        "search",
        "--query-model",
        q,
        "--index",
        index_path.as_str(),
        "--json",
        "--top-k",
        "5",
    ];
    args.extend_from_slice(&queries);
    let (code, v, err) = clipseek(&args)?;
    assert_eq!(code, 0, "{err}");
    let model = tiny_model()?;
    let mut with_model = args.clone();
    with_model.extend_from_slice(&["--model", model.as_str()]);
    let (code, v2, err) = clipseek(&with_model)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v, v2);
    for (i, text) in queries.iter().enumerate() {
        let e = qmodel.embed_texts(&[text])?;
        let mut want: Vec<(String, f64)> = index
            .entries()
            .iter()
            .filter_map(|entry| {
                let row = index.embedding(entry.id)?;
                let dot: f32 = row.iter().zip(e.row(0)).map(|(a, b)| a * b).sum();
                Some((entry.path.clone(), f64::from(dot)))
            })
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        want.truncate(5);
        let got = matches(&v, i)?;
        assert_eq!(got.len(), 5, "{text}");
        for ((gp, gs), (wp, ws)) in got.iter().zip(&want) {
            assert!((gs - ws).abs() < 1e-5, "{text}: {gp} {gs} vs {wp} {ws}");
        }
    }
    // An index of another embedding size.
    let mut other = EmbeddingIndex::new("clip-other#00", 7);
    other.upsert(
        clipseek::index::EntryMeta {
            path: "a.jpg".into(),
            size_bytes: 1,
            modified_ms: 0,
            content_hash: [0; 32],
            taken_ms: None,
        },
        &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    )?;
    let other_path = dir.path().join("other.idx");
    std::fs::write(&other_path, other.to_bytes())?;
    let (code, _, err) = clipseek(&[
        "search",
        "--query-model",
        q,
        "--index",
        other_path.to_str().ok_or("path")?,
        "cat",
    ])?;
    assert_eq!(code, 1);
    assert!(
        err.contains("24-dimensional") && err.contains("7-dimensional"),
        "{err}"
    );
    let (code, _, err) = clipseek(&["search", "--index", &index_path, "cat"])?;
    assert_ne!(code, 0, "{err}");
    Ok(())
}
