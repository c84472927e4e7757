//! The contract every [`ChunkStore`] keeps, as one suite of checks that run against any
//! implementation: natively against [`super::MemoryChunkStore`] (`cargo test`) and in
//! Chromium against the IndexedDB store (`tests/idb_contract.rs`, wasm-bindgen-test).
//!
//! Each case gets stores from `make(model_key)`, all on the same backing (one database),
//! starts by removing what its keys may hold from an earlier run, and returns the first
//! broken promise as a sentence. It must not depend on the order of the cases. It is part
//! of the library (not `#[cfg(test)]`) only so that the browser test can call it.

use std::future::Future;
use std::pin::Pin;

use sha2::{Digest, Sha256};

use super::store::{cache_state, CacheState, ChunkStore, FileManifest, FileState, StoredChunk};
use crate::hub::{to_hex, JSON_FILES, WEIGHTS_FILE};

type CaseResult = Result<(), String>;
type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

/// The names of the cases, in the order [`run_all`] runs them.
pub const CASES: [&str; 13] = [
    "a new model holds nothing",
    "manifests round-trip and are replaced",
    "chunks come back by index with their bytes, hash and length",
    "a chunk put again replaces the old one",
    "byte ranges of a chunk read back exactly",
    "files do not see each other's chunks, even with prefix names",
    "models do not see each other's files, even with prefix keys",
    "delete_chunk removes one chunk and tolerates a missing one",
    "reset_file forgets one file only",
    "put_whole replaces every earlier chunk and writes the manifest",
    "remove_model forgets one model only, and a new store sees what was written",
    "cache_state says empty, partial and verified",
    "put_derived writes only while its source is verified; blob_of_parts joins the parts",
];

/// Runs every case against stores made by `make`; each case's name with its outcome.
pub async fn run_all<S, F>(make: F) -> Vec<(&'static str, CaseResult)>
where
    S: ChunkStore,
    F: Fn(&str) -> S,
{
    let mut out = Vec::with_capacity(CASES.len());
    for (i, name) in CASES.iter().enumerate() {
        let result = case(i, &make).await;
        out.push((*name, result));
    }
    out
}

fn case<'a, S: ChunkStore + 'a, F: Fn(&str) -> S>(i: usize, make: &'a F) -> CaseFuture<'a> {
    match i {
        0 => Box::pin(empty(make)),
        1 => Box::pin(manifests(make)),
        2 => Box::pin(chunks_in_order(make)),
        3 => Box::pin(chunk_replaced(make)),
        4 => Box::pin(ranges(make)),
        5 => Box::pin(files_isolated(make)),
        6 => Box::pin(models_isolated(make)),
        7 => Box::pin(delete_chunk(make)),
        8 => Box::pin(reset_file(make)),
        9 => Box::pin(put_whole(make)),
        10 => Box::pin(remove_model(make)),
        11 => Box::pin(states(make)),
        12 => Box::pin(put_derived(make)),
        _ => Box::pin(async { Err("no such case".to_owned()) }),
    }
}

fn e(what: &str) -> impl Fn(super::StoreError) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn check(ok: bool, what: impl Into<String>) -> CaseResult {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A fresh store for `name` (anything an earlier run left is removed).
async fn fresh<S: ChunkStore>(make: &impl Fn(&str) -> S, name: &str) -> Result<S, String> {
    let store = make(&format!("contract|{name}"));
    store.remove_model().await.map_err(e("remove_model"))?;
    Ok(store)
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn chunk<S: ChunkStore>(s: &S, index: u64, data: &[u8]) -> Result<StoredChunk<S::Blob>, String> {
    Ok(StoredChunk {
        index,
        blob: s.blob(data).map_err(e("blob"))?,
        sha256: to_hex(&Sha256::digest(data)),
        len: data.len() as u64,
    })
}

fn manifest(size_bytes: u64, state: FileState) -> FileManifest {
    FileManifest {
        url: "http://127.0.0.1:1/m/resolve/main/model.safetensors".into(),
        size_bytes,
        etag: Some("\"abc\"".into()),
        sha256: Some("a".repeat(64)),
        chunk_bytes: 4,
        state,
        refetched: false,
    }
}

/// The indices and bytes of every chunk of `file`.
async fn contents<S: ChunkStore>(s: &S, file: &str) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for c in s.chunks(file).await.map_err(e("chunks"))? {
        let data = s.read(&c.blob, 0..c.len).await.map_err(e("read"))?;
        out.push((c.index, data));
    }
    Ok(out)
}

async fn empty<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "empty").await?;
    check(
        s.manifest("config.json")
            .await
            .map_err(e("manifest"))?
            .is_none(),
        "a manifest was there",
    )?;
    check(
        s.chunks(WEIGHTS_FILE)
            .await
            .map_err(e("chunks"))?
            .is_empty(),
        "chunks were there",
    )?;
    // Removing what is not there is no error.
    s.reset_file(WEIGHTS_FILE).await.map_err(e("reset_file"))?;
    s.delete_chunk(WEIGHTS_FILE, 3)
        .await
        .map_err(e("delete_chunk"))
}

async fn manifests<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "manifests").await?;
    let m = manifest(10, FileState::Downloading);
    s.put_manifest(WEIGHTS_FILE, &m)
        .await
        .map_err(e("put_manifest"))?;
    let got = s.manifest(WEIGHTS_FILE).await.map_err(e("manifest"))?;
    check(
        got.as_ref() == Some(&m),
        format!("read back {got:?}, wrote {m:?}"),
    )?;
    let bare = FileManifest {
        etag: None,
        sha256: None,
        refetched: true,
        ..manifest(u64::from(u32::MAX) + 7, FileState::Verified)
    };
    s.put_manifest(WEIGHTS_FILE, &bare)
        .await
        .map_err(e("put_manifest"))?;
    let got = s.manifest(WEIGHTS_FILE).await.map_err(e("manifest"))?;
    check(
        got.as_ref() == Some(&bare),
        format!("replaced by {got:?}, wrote {bare:?}"),
    )
}

async fn chunks_in_order<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "order").await?;
    let data: Vec<Vec<u8>> = (0..12).map(|i| bytes(100 + i, i as u8)).collect();
    // Written out of order, indices past 9 included (they must sort as numbers).
    for i in [11usize, 2, 10, 0, 5, 1] {
        s.put_chunk(WEIGHTS_FILE, &chunk(&s, i as u64, &data[i])?)
            .await
            .map_err(e("put_chunk"))?;
    }
    let stored = s.chunks(WEIGHTS_FILE).await.map_err(e("chunks"))?;
    let order: Vec<u64> = stored.iter().map(|c| c.index).collect();
    check(
        order == [0, 1, 2, 5, 10, 11],
        format!("indices in the order {order:?}"),
    )?;
    for c in &stored {
        let want = &data[c.index as usize];
        let sha_ok = c.sha256 == to_hex(&Sha256::digest(want));
        check(
            sha_ok && c.len == want.len() as u64,
            format!("chunk {} lost its hash or length", c.index),
        )?;
        let got = s.read(&c.blob, 0..c.len).await.map_err(e("read"))?;
        check(
            got == *want,
            format!("chunk {} read back other bytes", c.index),
        )?;
    }
    // A chunk of 1 MiB round-trips too.
    let big = bytes(1 << 20, 9);
    s.put_chunk("big", &chunk(&s, 0, &big)?)
        .await
        .map_err(e("put_chunk"))?;
    let got = contents(&s, "big").await?;
    check(got == vec![(0, big)], "a 1 MiB chunk read back other bytes")
}

async fn chunk_replaced<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "replace").await?;
    s.put_chunk(WEIGHTS_FILE, &chunk(&s, 3, b"old bytes")?)
        .await
        .map_err(e("put_chunk"))?;
    s.put_chunk(WEIGHTS_FILE, &chunk(&s, 3, b"new")?)
        .await
        .map_err(e("put_chunk"))?;
    let stored = s.chunks(WEIGHTS_FILE).await.map_err(e("chunks"))?;
    check(
        stored.len() == 1,
        format!("{} chunks after replacing one", stored.len()),
    )?;
    let got = contents(&s, WEIGHTS_FILE).await?;
    check(
        got == vec![(3, b"new".to_vec())],
        format!("read back {got:?}"),
    )?;
    check(
        stored.first().map(|c| c.len) == Some(3),
        "the length was not replaced",
    )
}

async fn ranges<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "ranges").await?;
    let data = bytes(1000, 3);
    let blob = s.blob(&data).map_err(e("blob"))?;
    s.put_chunk(
        WEIGHTS_FILE,
        &StoredChunk {
            index: 0,
            blob,
            sha256: String::new(),
            len: 1000,
        },
    )
    .await
    .map_err(e("put_chunk"))?;
    let stored = s.chunks(WEIGHTS_FILE).await.map_err(e("chunks"))?;
    let c = stored.first().ok_or("the chunk is gone")?;
    for r in [0..1000u64, 0..1, 999..1000, 10..500, 500..500] {
        let got = s.read(&c.blob, r.clone()).await.map_err(e("read"))?;
        let want = &data[r.start as usize..r.end as usize];
        check(
            got == want,
            format!("bytes {r:?} read back {} other bytes", got.len()),
        )?;
    }
    // Past the end, a read is cut short (as Blob.slice is), not an error.
    let tail = s
        .read(&c.blob, 990..2000)
        .await
        .map_err(e("read past the end"))?;
    check(
        tail == data[990..],
        format!("bytes 990..2000 of 1000 read back {} bytes", tail.len()),
    )
}

async fn files_isolated<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "files").await?;
    for (file, seed) in [("a", 1u8), ("ab", 2), ("a.b", 3), ("b", 4)] {
        s.put_chunk(file, &chunk(&s, 0, &bytes(8, seed))?)
            .await
            .map_err(e("put_chunk"))?;
        s.put_chunk(file, &chunk(&s, 1, &bytes(8, seed + 10))?)
            .await
            .map_err(e("put_chunk"))?;
    }
    let got = contents(&s, "a").await?;
    check(
        got == vec![(0, bytes(8, 1)), (1, bytes(8, 11))],
        format!("file a holds {got:?}"),
    )?;
    s.reset_file("a").await.map_err(e("reset_file"))?;
    for file in ["ab", "a.b", "b"] {
        let n = s.chunks(file).await.map_err(e("chunks"))?.len();
        check(n == 2, format!("resetting a left {n} chunks of {file}"))?;
    }
    Ok(())
}

async fn models_isolated<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let a = fresh(make, "model").await?;
    let b = fresh(make, "model|x").await?;
    check(a.model_key() != b.model_key(), "two keys gave one store")?;
    a.put_chunk(WEIGHTS_FILE, &chunk(&a, 0, b"from a")?)
        .await
        .map_err(e("put_chunk"))?;
    a.put_manifest(WEIGHTS_FILE, &manifest(6, FileState::Verified))
        .await
        .map_err(e("put_manifest"))?;
    check(
        b.manifest(WEIGHTS_FILE)
            .await
            .map_err(e("manifest"))?
            .is_none(),
        "b sees a's manifest",
    )?;
    check(
        b.chunks(WEIGHTS_FILE)
            .await
            .map_err(e("chunks"))?
            .is_empty(),
        "b sees a's chunks",
    )?;
    b.put_chunk(WEIGHTS_FILE, &chunk(&b, 0, b"from b")?)
        .await
        .map_err(e("put_chunk"))?;
    b.remove_model().await.map_err(e("remove_model"))?;
    let got = contents(&a, WEIGHTS_FILE).await?;
    check(
        got == vec![(0, b"from a".to_vec())],
        format!("removing b left a with {got:?}"),
    )?;
    check(
        a.manifest(WEIGHTS_FILE)
            .await
            .map_err(e("manifest"))?
            .is_some(),
        "removing b took a's manifest",
    )
}

async fn delete_chunk<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "delete").await?;
    for i in 0..3 {
        s.put_chunk(WEIGHTS_FILE, &chunk(&s, i, &bytes(5, i as u8))?)
            .await
            .map_err(e("put_chunk"))?;
    }
    s.delete_chunk(WEIGHTS_FILE, 1)
        .await
        .map_err(e("delete_chunk"))?;
    s.delete_chunk(WEIGHTS_FILE, 1)
        .await
        .map_err(e("delete_chunk twice"))?;
    s.delete_chunk(WEIGHTS_FILE, 7)
        .await
        .map_err(e("delete_chunk of a missing one"))?;
    let order: Vec<u64> = s
        .chunks(WEIGHTS_FILE)
        .await
        .map_err(e("chunks"))?
        .iter()
        .map(|c| c.index)
        .collect();
    check(order == [0, 2], format!("left {order:?}"))
}

async fn reset_file<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "reset").await?;
    for file in [WEIGHTS_FILE, "config.json"] {
        s.put_manifest(file, &manifest(8, FileState::Downloading))
            .await
            .map_err(e("put_manifest"))?;
        s.put_chunk(file, &chunk(&s, 0, b"12345678")?)
            .await
            .map_err(e("put_chunk"))?;
    }
    s.reset_file(WEIGHTS_FILE).await.map_err(e("reset_file"))?;
    check(
        s.manifest(WEIGHTS_FILE)
            .await
            .map_err(e("manifest"))?
            .is_none(),
        "the manifest survived",
    )?;
    check(
        s.chunks(WEIGHTS_FILE)
            .await
            .map_err(e("chunks"))?
            .is_empty(),
        "chunks survived",
    )?;
    check(
        s.manifest("config.json")
            .await
            .map_err(e("manifest"))?
            .is_some(),
        "the other file's manifest went",
    )?;
    check(
        s.chunks("config.json").await.map_err(e("chunks"))?.len() == 1,
        "the other file's chunk went",
    )
}

async fn put_whole<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "whole").await?;
    for i in 0..3 {
        s.put_chunk("config.json", &chunk(&s, i, b"stale")?)
            .await
            .map_err(e("put_chunk"))?;
    }
    let m = FileManifest {
        chunk_bytes: 5,
        ..manifest(5, FileState::Verified)
    };
    s.put_whole("config.json", &chunk(&s, 0, b"{\"a\"}")?, &m)
        .await
        .map_err(e("put_whole"))?;
    let got = contents(&s, "config.json").await?;
    check(
        got == vec![(0, b"{\"a\"}".to_vec())],
        format!("holds {got:?}"),
    )?;
    let back = s.manifest("config.json").await.map_err(e("manifest"))?;
    check(back.as_ref() == Some(&m), format!("manifest {back:?}"))
}

async fn put_derived<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "derived").await?;
    let parts = [b"ab".to_vec(), Vec::new(), b"cde".to_vec()];
    let blob = s
        .blob_of_parts(&mut parts.into_iter())
        .map_err(e("blob_of_parts"))?;
    let c = StoredChunk {
        index: 0,
        blob,
        sha256: String::new(),
        len: 5,
    };
    let m = FileManifest {
        chunk_bytes: 5,
        ..manifest(5, FileState::Verified)
    };
    // No source, a source still downloading: nothing written. A verified one: written.
    for source in [
        None,
        Some(FileState::Downloading),
        Some(FileState::Verified),
    ] {
        if let Some(state) = source {
            s.put_manifest(WEIGHTS_FILE, &manifest(4, state))
                .await
                .map_err(e("put_manifest"))?;
        }
        let wrote = s
            .put_derived("derived.bin", &c, &m, WEIGHTS_FILE)
            .await
            .map_err(e("put_derived"))?;
        let held = s.manifest("derived.bin").await.map_err(e("manifest"))?;
        let chunks = contents(&s, "derived.bin").await?;
        let should = source == Some(FileState::Verified);
        check(
            wrote == should && held.is_some() == should && chunks.is_empty() != should,
            format!("beside a source that is {source:?}: written {wrote}, held {held:?}"),
        )?;
    }
    let got = contents(&s, "derived.bin").await?;
    check(
        got == vec![(0, b"abcde".to_vec())],
        format!("holds {got:?}"),
    )?;
    let back = s.manifest("derived.bin").await.map_err(e("manifest"))?;
    check(back.as_ref() == Some(&m), format!("manifest {back:?}"))?;
    s.remove_model().await.map_err(e("remove_model"))?;
    let left = s.manifest("derived.bin").await.map_err(e("manifest"))?;
    check(
        left.is_none() && contents(&s, "derived.bin").await?.is_empty(),
        "remove_model left the derived file",
    )
}

async fn remove_model<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let a = fresh(make, "remove").await?;
    let other = fresh(make, "remove-other").await?;
    for s in [&a, &other] {
        s.put_manifest(WEIGHTS_FILE, &manifest(4, FileState::Downloading))
            .await
            .map_err(e("put_manifest"))?;
        s.put_chunk(WEIGHTS_FILE, &chunk(s, 0, b"abcd")?)
            .await
            .map_err(e("put_chunk"))?;
    }
    // A second store of the same model sees the first one's writes.
    let again = make(a.model_key());
    check(
        contents(&again, WEIGHTS_FILE).await? == vec![(0, b"abcd".to_vec())],
        "a new store saw other chunks",
    )?;
    again.remove_model().await.map_err(e("remove_model"))?;
    check(
        a.manifest(WEIGHTS_FILE)
            .await
            .map_err(e("manifest"))?
            .is_none(),
        "the manifest survived",
    )?;
    check(
        a.chunks(WEIGHTS_FILE)
            .await
            .map_err(e("chunks"))?
            .is_empty(),
        "chunks survived",
    )?;
    check(
        other.chunks(WEIGHTS_FILE).await.map_err(e("chunks"))?.len() == 1,
        "the other model lost its chunk",
    )
}

async fn states<S: ChunkStore>(make: &impl Fn(&str) -> S) -> CaseResult {
    let s = fresh(make, "states").await?;
    let state = || async { cache_state(&s).await.map_err(e("cache_state")) };
    check(state().await? == CacheState::Empty, "not empty at first")?;
    s.put_chunk(WEIGHTS_FILE, &chunk(&s, 0, b"1234")?)
        .await
        .map_err(e("put_chunk"))?;
    let got = state().await?;
    let want = CacheState::Partial {
        stored_bytes: 4,
        total_bytes: None,
    };
    check(got == want, format!("{got:?} with one chunk"))?;
    s.put_manifest(WEIGHTS_FILE, &manifest(8, FileState::Verified))
        .await
        .map_err(e("put_manifest"))?;
    let want = CacheState::Partial {
        stored_bytes: 4,
        total_bytes: Some(8),
    };
    check(
        state().await? == want,
        "not partial while the JSON files are missing",
    )?;
    for file in JSON_FILES {
        s.put_manifest(file, &manifest(3, FileState::Verified))
            .await
            .map_err(e("put_manifest"))?;
    }
    let got = state().await?;
    check(
        got == CacheState::Verified { total_bytes: 8 },
        format!("{got:?} once all are verified"),
    )
}
