//! The contract every [`PhotoStore`] keeps, as one suite of checks that run against any
//! implementation: natively against [`super::photo_store::MemoryPhotoStore`] (`cargo
//! test`) and in Chromium against the IndexedDB store (`tests/idb_contract.rs`,
//! wasm-bindgen-test).
//!
//! Each case starts from a cleared store (so the cases do not depend on their order) and
//! returns the first broken promise as a sentence. It is part of the library (not
//! `#[cfg(test)]`) only so that the browser test can call it. Reference:
//! `model_cache::contract`, the same suite for the model's chunks.

use std::future::Future;
use std::pin::Pin;

use super::photo_store::{
    Claim, PhotoRecord, PhotoStore, PhotoStoreError, PlantUnreadable, SaveGuard, Thumb,
};
use super::refused::{RefusedFile, RefusedKey};

type CaseResult = Result<(), String>;
type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

/// The names of the cases, in the order [`run_all`] runs them.
pub const CASES: [&str; 13] = [
    "a cleared store holds nothing and moves its generation on",
    "records round-trip with every field, in insertion order",
    "a record saved again replaces the old one",
    "thumbnails: a new JPEG, a copy of another's, none removes the old",
    "a batch is all or nothing: a refused claim midway stores none of it",
    "a save made before a clear stores nothing",
    "removing many photos removes exactly them and their thumbnails",
    "folders that share names or prefixes never clash",
    "a name is claimed by one owner; stored photos hold their name",
    "a save under another owner's claim is refused, under one's own it goes",
    "an unreadable record is an error when read and listed when loading",
    "refused files are remembered by folder, path, size and date",
    "clear forgets photos, thumbnails, claims and refused files",
];

/// Runs every case against `store`; each case's name with its outcome.
pub async fn run_all<S: PhotoStore + PlantUnreadable>(
    store: &S,
) -> Vec<(&'static str, CaseResult)> {
    let mut out = Vec::with_capacity(CASES.len());
    for (i, name) in CASES.iter().enumerate() {
        let result = case(i, store).await;
        out.push((*name, result));
    }
    out
}

fn case<'a, S: PhotoStore + PlantUnreadable + 'a>(i: usize, s: &'a S) -> CaseFuture<'a> {
    match i {
        0 => Box::pin(cleared(s)),
        1 => Box::pin(round_trip(s)),
        2 => Box::pin(replaced(s)),
        3 => Box::pin(thumbnails(s)),
        4 => Box::pin(atomic(s)),
        5 => Box::pin(stale(s)),
        6 => Box::pin(remove_many(s)),
        7 => Box::pin(no_clash(s)),
        8 => Box::pin(claims(s)),
        9 => Box::pin(claimed_save(s)),
        10 => Box::pin(unreadable(s)),
        11 => Box::pin(refused(s)),
        12 => Box::pin(clear_all(s)),
        _ => Box::pin(async { Err("no such case".to_owned()) }),
    }
}

fn e(what: &str) -> impl Fn(PhotoStoreError) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn check(ok: bool, what: impl Into<String>) -> CaseResult {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A cleared store and its generation.
async fn fresh<S: PhotoStore>(s: &S) -> Result<u64, String> {
    s.clear().await.map_err(e("clear"))
}

/// A record whose every field depends on `n`, with a `dim`-value embedding.
fn record(path: &str, n: u32, seq: f64) -> PhotoRecord {
    let dim = 16;
    PhotoRecord {
        path: path.to_owned(),
        size_bytes: 1_000_000_007 + u64::from(n),
        modified_ms: 1_700_000_000_123 - i64::from(n),
        content_hash: std::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(n as u8)),
        // Half with an EXIF date taken (one before 1970), half without.
        taken_ms: n
            .is_multiple_of(2)
            .then(|| 1_690_000_000_000 - i64::from(n) * 86_400_000_000),
        model_id: format!("clip|fingerprint-{n}"),
        seq,
        embedding: (0..dim)
            .map(|i| ((i as f32) * 0.37 + n as f32 * 1.3).sin() / 3.0)
            .collect(),
        browser_decoded: n % 2 == 1,
    }
}

fn jpeg(n: u8) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..200u32).map(|i| (i as u8).wrapping_mul(13).wrapping_add(n)));
    bytes
}

async fn save<S: PhotoStore>(
    s: &S,
    photos: &[(PhotoRecord, Thumb<S::Blob>)],
    generation: u64,
) -> CaseResult {
    let guard = SaveGuard {
        generation,
        claims: Vec::new(),
    };
    s.save(photos, &guard).await.map_err(e("save"))
}

async fn paths<S: PhotoStore>(s: &S) -> Result<Vec<String>, String> {
    let loaded = s.load_all().await.map_err(e("load_all"))?;
    Ok(loaded.records.into_iter().map(|r| r.path).collect())
}

/// The bytes of the thumbnail of each of `paths` (`None` where there is none).
async fn thumb_bytes<S: PhotoStore>(s: &S, paths: &[&str]) -> Result<Vec<Option<Vec<u8>>>, String> {
    let owned: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    let blobs = s.thumbs(&owned).await.map_err(e("thumbs"))?;
    check(blobs.len() == paths.len(), "thumbs returned another count")?;
    let mut out = Vec::with_capacity(blobs.len());
    for b in blobs {
        out.push(match b {
            Some(b) => Some(s.blob_bytes(&b).await.map_err(e("blob_bytes"))?),
            None => None,
        });
    }
    Ok(out)
}

async fn cleared<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let loaded = s.load_all().await.map_err(e("load_all"))?;
    check(loaded.records.is_empty(), "records survived a clear")?;
    check(
        loaded.unreadable.is_empty(),
        "unreadable keys survived a clear",
    )?;
    check(
        loaded.generation == g,
        "load_all reports another generation",
    )?;
    check(
        s.generation().await.map_err(e("generation"))? == g,
        "generation() disagrees with clear()",
    )?;
    let g2 = s.clear().await.map_err(e("clear"))?;
    check(
        g2 == g + 1,
        format!("a clear moved the generation from {g} to {g2}"),
    )
}

async fn round_trip<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let a = record("DCIM/a.jpg", 1, 2.0);
    let b = record("DCIM/sub/b.jpg", 2, 0.0);
    let c = record("c.jpg", 3, 1.0);
    save(
        s,
        &[
            (a.clone(), Thumb::None),
            (b.clone(), Thumb::None),
            (c.clone(), Thumb::None),
        ],
        g,
    )
    .await?;
    let loaded = s.load_all().await.map_err(e("load_all"))?;
    check(
        loaded.records == vec![b.clone(), c, a.clone()],
        format!(
            "records came back changed or out of seq order: {:?}",
            loaded.records.iter().map(|r| &r.path).collect::<Vec<_>>()
        ),
    )?;
    check(
        s.get("DCIM/a.jpg").await.map_err(e("get"))? == Some(a),
        "get returned another record",
    )?;
    check(
        s.get("DCIM/none.jpg").await.map_err(e("get"))?.is_none(),
        "get found a record never saved",
    )
}

async fn replaced<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    save(s, &[(record("DCIM/a.jpg", 1, 5.0), Thumb::None)], g).await?;
    let edited = record("DCIM/a.jpg", 9, 5.0);
    save(s, &[(edited.clone(), Thumb::None)], g).await?;
    let loaded = s.load_all().await.map_err(e("load_all"))?;
    check(
        loaded.records == vec![edited],
        "the second save did not replace the first",
    )
}

async fn thumbnails<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let one = s.blob(&jpeg(1)).map_err(e("blob"))?;
    save(s, &[(record("A/a.jpg", 1, 0.0), Thumb::Jpeg(one))], g).await?;
    save(
        s,
        &[(record("B/a.jpg", 1, 1.0), Thumb::CopyOf("A/a.jpg".into()))],
        g,
    )
    .await?;
    check(
        thumb_bytes(s, &["A/a.jpg", "B/a.jpg", "C/none.jpg"]).await?
            == vec![Some(jpeg(1)), Some(jpeg(1)), None],
        "a thumbnail or its copy did not come back",
    )?;
    save(s, &[(record("A/a.jpg", 2, 0.0), Thumb::None)], g).await?;
    check(
        thumb_bytes(s, &["A/a.jpg", "B/a.jpg"]).await? == vec![None, Some(jpeg(1))],
        "Thumb::None kept the old thumbnail, or removed the copy",
    )?;
    let two = s.blob(&jpeg(2)).map_err(e("blob"))?;
    save(s, &[(record("B/a.jpg", 1, 1.0), Thumb::Jpeg(two))], g).await?;
    check(
        thumb_bytes(s, &["B/a.jpg"]).await? == vec![Some(jpeg(2))],
        "a new JPEG did not replace the old thumbnail",
    )
}

async fn atomic<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let theirs = Claim {
        name: "X".into(),
        owner: "tab-b/1".into(),
    };
    check(
        s.claim(&theirs).await.map_err(e("claim"))?,
        "a free name was refused",
    )?;
    let thumb = s.blob(&jpeg(3)).map_err(e("blob"))?;
    let batch = vec![
        (record("A/1.jpg", 1, 0.0), Thumb::Jpeg(thumb.clone())),
        (record("A/2.jpg", 2, 1.0), Thumb::Jpeg(thumb)),
        (record("X/3.jpg", 3, 2.0), Thumb::None),
    ];
    let guard = SaveGuard {
        generation: g,
        claims: vec![Claim {
            name: "X".into(),
            owner: "tab-a/1".into(),
        }],
    };
    let result = s.save(&batch, &guard).await;
    check(
        result == Err(PhotoStoreError::FolderTaken { name: "X".into() }),
        format!("a batch into another tab's folder gave {result:?}"),
    )?;
    check(
        paths(s).await?.is_empty(),
        "part of a refused batch was stored",
    )?;
    check(
        thumb_bytes(s, &["A/1.jpg", "A/2.jpg"]).await? == vec![None, None],
        "a thumbnail of a refused batch was stored",
    )
}

async fn stale<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    save(s, &[(record("A/1.jpg", 1, 0.0), Thumb::None)], g).await?;
    let g2 = s.clear().await.map_err(e("clear"))?;
    let late = SaveGuard {
        generation: g,
        claims: Vec::new(),
    };
    let result = s
        .save(&[(record("A/2.jpg", 2, 1.0), Thumb::None)], &late)
        .await;
    check(
        result
            == Err(PhotoStoreError::Cleared {
                expected: g,
                stored: g2,
            }),
        format!("a save from before the clear gave {result:?}"),
    )?;
    check(
        paths(s).await?.is_empty(),
        "a save from before the clear undid it",
    )?;
    save(s, &[(record("A/3.jpg", 3, 2.0), Thumb::None)], g2).await?;
    check(
        paths(s).await? == vec!["A/3.jpg".to_owned()],
        "a save at the new generation was lost",
    )
}

async fn remove_many<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let thumb = s.blob(&jpeg(4)).map_err(e("blob"))?;
    let batch: Vec<(PhotoRecord, Thumb<S::Blob>)> = (0..50u32)
        .map(|i| {
            (
                record(&format!("DCIM/{i:03}.jpg"), i, f64::from(i)),
                Thumb::Jpeg(thumb.clone()),
            )
        })
        .collect();
    save(s, &batch, g).await?;
    let mut gone: Vec<String> = (0..50u32)
        .filter(|i| i % 5 == 1 || i % 5 == 3)
        .map(|i| format!("DCIM/{i:03}.jpg"))
        .collect();
    gone.push("DCIM/never-stored.jpg".into());
    s.remove(&gone).await.map_err(e("remove"))?;
    let kept: Vec<String> = (0..50u32)
        .filter(|i| i % 5 != 1 && i % 5 != 3)
        .map(|i| format!("DCIM/{i:03}.jpg"))
        .collect();
    check(
        paths(s).await? == kept,
        "remove took other photos, or left some",
    )?;
    let thumbs = thumb_bytes(s, &["DCIM/001.jpg", "DCIM/000.jpg"]).await?;
    check(
        thumbs == vec![None, Some(jpeg(4))],
        "remove left a thumbnail behind or took a kept one",
    )
}

async fn no_clash<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let names = [
        "DCIM/IMG_1.jpg",
        "DCIM (2)/IMG_1.jpg",
        "DCIM2/IMG_1.jpg",
        "IMG_1.jpg",
    ];
    let mut batch = Vec::new();
    for (n, path) in names.iter().enumerate() {
        let blob = s.blob(&jpeg(n as u8)).map_err(e("blob"))?;
        batch.push((record(path, n as u32, n as f64), Thumb::Jpeg(blob)));
    }
    save(s, &batch, g).await?;
    for (n, path) in names.iter().enumerate() {
        let got = s.get(path).await.map_err(e("get"))?;
        check(
            got == Some(record(path, n as u32, n as f64)),
            format!("{path} came back as another folder's photo"),
        )?;
    }
    check(
        thumb_bytes(s, &names).await? == (0..4u8).map(|n| Some(jpeg(n))).collect::<Vec<_>>(),
        "thumbnails of same-named files got mixed up",
    )?;
    s.remove(&["DCIM/IMG_1.jpg".to_owned()])
        .await
        .map_err(e("remove"))?;
    check(
        paths(s).await? == names.get(1..).unwrap_or_default().to_vec(),
        "removing one folder's file took a same-named file of another",
    )
}

async fn claims<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let claim = |name: &str, owner: &str| Claim {
        name: name.into(),
        owner: owner.into(),
    };
    check(
        s.claim(&claim("DCIM (2)", "a/1"))
            .await
            .map_err(e("claim"))?,
        "a free name was refused",
    )?;
    check(
        s.claim(&claim("DCIM (2)", "a/1"))
            .await
            .map_err(e("claim"))?,
        "the owner's second claim was refused",
    )?;
    check(
        !s.claim(&claim("DCIM (2)", "b/1"))
            .await
            .map_err(e("claim"))?,
        "a second tab got a claimed name",
    )?;
    save(s, &[(record("DCIM/x.jpg", 1, 0.0), Thumb::None)], g).await?;
    save(s, &[(record("x.jpg", 2, 1.0), Thumb::None)], g).await?;
    check(
        !s.claim(&claim("DCIM", "b/2")).await.map_err(e("claim"))?,
        "a name holding stored photos was claimed",
    )?;
    check(
        !s.claim(&claim("x.jpg", "b/3")).await.map_err(e("claim"))?,
        "a stored loose file's name was claimed",
    )?;
    check(
        s.claim(&claim("DCIM (3)", "b/4"))
            .await
            .map_err(e("claim"))?,
        "a free alias was refused",
    )?;
    check(
        s.claim(&claim("DCI", "b/5")).await.map_err(e("claim"))?,
        "a prefix of a stored folder's name counted as that folder",
    )
}

async fn claimed_save<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let mine = Claim {
        name: "DCIM (2)".into(),
        owner: "a/1".into(),
    };
    check(
        s.claim(&mine).await.map_err(e("claim"))?,
        "a free name was refused",
    )?;
    let photo = record("DCIM (2)/IMG_1.jpg", 1, 0.0);
    let theirs = SaveGuard {
        generation: g,
        claims: vec![Claim {
            name: "DCIM (2)".into(),
            owner: "b/1".into(),
        }],
    };
    let result = s.save(&[(photo.clone(), Thumb::None)], &theirs).await;
    check(
        result
            == Err(PhotoStoreError::FolderTaken {
                name: "DCIM (2)".into(),
            }),
        format!("a save under another tab's claim gave {result:?}"),
    )?;
    let guard = SaveGuard {
        generation: g,
        claims: vec![mine],
    };
    s.save(&[(photo.clone(), Thumb::None)], &guard)
        .await
        .map_err(e("save under its own claim"))?;
    check(
        s.get(&photo.path).await.map_err(e("get"))? == Some(photo),
        "the claimed save was not stored",
    )
}

async fn unreadable<S: PhotoStore + PlantUnreadable>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    s.plant_unreadable("BAD/x.jpg")
        .await
        .map_err(e("plant_unreadable"))?;
    let good = record("GOOD/y.jpg", 1, 0.0);
    save(s, &[(good.clone(), Thumb::None)], g).await?;
    let got = s.get("BAD/x.jpg").await;
    check(
        matches!(&got, Err(PhotoStoreError::Unreadable { path, .. }) if path == "BAD/x.jpg"),
        format!("reading an unreadable record gave {got:?}"),
    )?;
    let loaded = s.load_all().await.map_err(e("load_all"))?;
    check(
        loaded.records == vec![good],
        "the readable record did not load",
    )?;
    check(
        loaded.unreadable == vec!["BAD/x.jpg".to_owned()],
        format!("unreadable keys listed as {:?}", loaded.unreadable),
    )
}

async fn refused<S: PhotoStore>(s: &S) -> CaseResult {
    fresh(s).await?;
    let a = RefusedKey::new("DCIM/a.tif", 10, 1);
    let a_elsewhere = RefusedKey::new("Camera/a.tif", 10, 1);
    let a_edited = RefusedKey::new("DCIM/a.tif", 11, 1);
    let files = vec![
        RefusedFile {
            key: a.clone(),
            reason: "TIFF".into(),
        },
        RefusedFile {
            key: a_elsewhere.clone(),
            reason: "also TIFF".into(),
        },
    ];
    s.put_refused(&files).await.map_err(e("put_refused"))?;
    s.put_refused(&[RefusedFile {
        key: a.clone(),
        reason: "damaged".into(),
    }])
    .await
    .map_err(e("put_refused again"))?;
    let mut got = s.refused().await.map_err(e("refused"))?;
    got.sort_by(|x, y| x.key.cmp(&y.key));
    check(
        got == vec![
            RefusedFile {
                key: a_elsewhere,
                reason: "also TIFF".into(),
            },
            RefusedFile {
                key: a,
                reason: "damaged".into(),
            },
        ],
        format!("refused files came back as {got:?}"),
    )?;
    check(
        !got.iter().any(|f| f.key == a_edited),
        "an edited file counted as refused",
    )
}

async fn clear_all<S: PhotoStore>(s: &S) -> CaseResult {
    let g = fresh(s).await?;
    let blob = s.blob(&jpeg(5)).map_err(e("blob"))?;
    save(s, &[(record("A/1.jpg", 1, 0.0), Thumb::Jpeg(blob))], g).await?;
    let claim = Claim {
        name: "B".into(),
        owner: "a/1".into(),
    };
    check(
        s.claim(&claim).await.map_err(e("claim"))?,
        "a free name was refused",
    )?;
    s.put_refused(&[RefusedFile {
        key: RefusedKey::new("A/x.tif", 1, 1),
        reason: "TIFF".into(),
    }])
    .await
    .map_err(e("put_refused"))?;
    s.clear().await.map_err(e("clear"))?;
    check(paths(s).await?.is_empty(), "a photo survived clear")?;
    check(
        thumb_bytes(s, &["A/1.jpg"]).await? == vec![None],
        "a thumbnail survived clear",
    )?;
    check(
        s.refused().await.map_err(e("refused"))?.is_empty(),
        "a refused file survived clear",
    )?;
    let other = Claim {
        name: "B".into(),
        owner: "b/1".into(),
    };
    check(
        s.claim(&other).await.map_err(e("claim"))?,
        "a claim survived clear",
    )
}
