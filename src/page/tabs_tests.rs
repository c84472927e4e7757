use super::*;
use crate::page::library::{FileFacts, Known};
use crate::page::photo_store::{MemoryPhotoStore, PhotoRecord, PhotoStore, Thumb};
use crate::page::testing::block_on;

const A: TabId = TabId(0xA);
const B: TabId = TabId(0xB);

fn text(m: &TabMessage) -> Result<String, TabError> {
    m.encode()
}

#[test]
fn messages_round_trip_through_their_text() -> Result<(), TabError> {
    let all = [
        TabMessage::PhotosAdded {
            from: A,
            generation: 3,
            paths: vec!["DCIM/a.jpg".into(), "b.jpg".into()],
        },
        TabMessage::PhotosRemoved {
            from: B,
            generation: 0,
            paths: vec!["DCIM (2)/x.jpg".into()],
        },
        TabMessage::IndexCleared {
            from: A,
            generation: u64::from(u32::MAX) + 5,
        },
    ];
    for m in all {
        assert_eq!(TabMessage::decode(&m.encode()?)?, m);
    }
    Ok(())
}

#[test]
fn a_message_of_another_version_or_garbage_is_an_error() {
    assert!(matches!(
        TabMessage::decode(r#"{"v":2,"msg":{"kind":"index_cleared","from":1,"generation":1}}"#),
        Err(TabError::OtherVersion {
            found: 2,
            expected: 1
        })
    ));
    assert!(matches!(
        TabMessage::decode("not json"),
        Err(TabError::Unreadable { .. })
    ));
    assert!(matches!(
        TabMessage::decode(r#"{"v":1,"msg":{"kind":"photos_renamed","from":1}}"#),
        Err(TabError::Unreadable { .. })
    ));
}

#[test]
fn another_tabs_saved_photos_are_loaded_and_removed_ones_forgotten() -> Result<(), TabError> {
    let a = Tabs::new(A, 4);
    let mut b = Tabs::new(B, 4);
    let added = a.added(vec!["DCIM/1.jpg".into()]);
    assert_eq!(
        b.receive(&text(&added)?)?,
        Some(TabInput::Load {
            paths: vec!["DCIM/1.jpg".into()]
        })
    );
    let removed = a.removed(vec!["DCIM/1.jpg".into()]);
    assert_eq!(
        b.receive(&text(&removed)?)?,
        Some(TabInput::Forget {
            paths: vec!["DCIM/1.jpg".into()]
        })
    );
    assert_eq!(b.receive(&text(&a.added(Vec::new()))?)?, None);
    Ok(())
}

#[test]
fn a_tab_ignores_its_own_messages() -> Result<(), TabError> {
    let mut a = Tabs::new(A, 0);
    let own = a.added(vec!["x.jpg".into()]);
    assert_eq!(a.receive(&text(&own)?)?, None);
    Ok(())
}

#[test]
fn a_clear_elsewhere_reloads_once_and_older_news_is_dropped() -> Result<(), TabError> {
    let mut a = Tabs::new(A, 1);
    let mut b = Tabs::new(B, 1);
    let late_add = b.added(vec!["DCIM/old.jpg".into()]);
    let cleared = a.cleared(2);
    assert_eq!(a.generation(), 2);
    assert_eq!(
        b.receive(&text(&cleared)?)?,
        Some(TabInput::Reload { generation: 2 })
    );
    assert_eq!(b.generation(), 2);
    // The same clear heard again changes nothing.
    assert_eq!(b.receive(&text(&cleared)?)?, None);
    // A save announced before the clear arrives after it: its photos are gone.
    assert_eq!(a.receive(&text(&late_add)?)?, None);
    Ok(())
}

#[test]
fn news_from_a_newer_generation_means_a_clear_was_missed() -> Result<(), TabError> {
    let a = Tabs::new(A, 7);
    let mut b = Tabs::new(B, 5);
    assert_eq!(
        b.receive(&text(&a.added(vec!["x.jpg".into()]))?)?,
        Some(TabInput::Reload { generation: 7 })
    );
    Ok(())
}

#[test]
fn claims_are_made_for_new_folders_only_with_distinct_owners() {
    let mut a = Tabs::new(A, 0);
    let mut known = Known::default();
    let first = known.place_folder("DCIM", &[FileFacts::new("1.jpg", 1, 1)]);
    let again = known.place_folder("DCIM", &[FileFacts::new("1.jpg", 1, 1)]);
    let other = known.place_folder("DCIM", &[FileFacts::new("1.jpg", 2, 2)]);
    let claims = a.claims_for(&[first, again, other]);
    let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["DCIM", "DCIM (2)"]);
    assert!(claims
        .iter()
        .all(|c| c.owner.starts_with("000000000000000a/")));
    assert_ne!(
        claims.first().map(|c| &c.owner),
        claims.get(1).map(|c| &c.owner)
    );
    let more = a.claims_for(&[known.place_folder("Camera", &[])]);
    assert!(more
        .iter()
        .all(|c| !claims.iter().any(|d| d.owner == c.owner)));
}

fn record(path: &str) -> PhotoRecord {
    PhotoRecord {
        path: path.to_owned(),
        size_bytes: 1,
        modified_ms: 1,
        content_hash: [0; 32],
        taken_ms: None,
        model_id: "m".into(),
        seq: 0.0,
        embedding: vec![1.0],
        browser_decoded: false,
    }
}

/// Two tabs pick `DCIM (2)` for two different phones at once: one claim wins, the loser
/// places again with the name taken and stores its photos as `DCIM (3)`; nothing of either
/// phone is overwritten.
#[test]
fn two_tabs_aliasing_one_new_name_at_once_never_clash() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let mut a = Tabs::new(A, 0);
    let mut b = Tabs::new(B, 0);
    // Both tabs know the first phone's DCIM.
    let stored = [("DCIM/1.jpg", 1u64, 1i64)];
    let mut known_a = Known::new(stored);
    let mut known_b = Known::new(stored);
    let place_a = known_a.place_folder("DCIM", &[FileFacts::new("1.jpg", 2, 2)]);
    let place_b = known_b.place_folder("DCIM", &[FileFacts::new("1.jpg", 3, 3)]);
    assert_eq!(
        (place_a.root.as_str(), place_b.root.as_str()),
        ("DCIM (2)", "DCIM (2)")
    );
    let claims_a = a.claims_for(std::slice::from_ref(&place_a));
    let claims_b = b.claims_for(std::slice::from_ref(&place_b));
    let mut won_a = true;
    for c in &claims_a {
        won_a &= block_on(store.claim(c))?.map_err(|e| e.to_string())?;
    }
    let mut won_b = true;
    for c in &claims_b {
        won_b &= block_on(store.claim(c))?.map_err(|e| e.to_string())?;
    }
    assert!(won_a && !won_b);
    // Even a save that skipped the claim step cannot land in A's folder under B's claim.
    let refused = block_on(store.save(
        &[(record("DCIM (2)/1.jpg"), Thumb::None)],
        &b.guard(claims_b.clone()),
    ))?;
    assert!(
        matches!(refused, Err(PhotoStoreError::FolderTaken { ref name }) if name == "DCIM (2)")
    );
    block_on(store.save(
        &[(record("DCIM (2)/1.jpg"), Thumb::None)],
        &a.guard(claims_a),
    ))?
    .map_err(|e| e.to_string())?;
    // B places again with the lost name taken.
    let mut known_b = Known::new(stored);
    known_b.reserve_root(&place_b.root);
    let again = known_b.place_folder("DCIM", &[FileFacts::new("1.jpg", 3, 3)]);
    assert_eq!(again.root, "DCIM (3)");
    let claims = b.claims_for(std::slice::from_ref(&again));
    for c in &claims {
        assert!(block_on(store.claim(c))?.map_err(|e| e.to_string())?);
    }
    block_on(store.save(&[(record("DCIM (3)/1.jpg"), Thumb::None)], &b.guard(claims)))?
        .map_err(|e| e.to_string())?;
    let paths: Vec<String> = block_on(store.load_all())?
        .map_err(|e| e.to_string())?
        .records
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, ["DCIM (2)/1.jpg", "DCIM (3)/1.jpg"]);
    Ok(())
}

/// Tab A clears; tab B's next save (its photos indexed before the clear) is refused by the
/// store, and B reloads rather than claiming photos that were not saved.
#[test]
fn a_clear_in_one_tab_is_not_undone_by_the_others_next_save() -> Result<(), String> {
    let store = MemoryPhotoStore::new();
    let g = block_on(store.generation())?.map_err(|e| e.to_string())?;
    let mut a = Tabs::new(A, g);
    let mut b = Tabs::new(B, g);
    block_on(store.save(&[(record("DCIM/1.jpg"), Thumb::None)], &b.guard(Vec::new())))?
        .map_err(|e| e.to_string())?;
    let g2 = block_on(store.clear())?.map_err(|e| e.to_string())?;
    let message = a.cleared(g2);
    // B saves before the message reaches it.
    let late = block_on(store.save(&[(record("DCIM/2.jpg"), Thumb::None)], &b.guard(Vec::new())))?;
    let err = match late {
        Err(e) => e,
        Ok(()) => return Err("a save from before the clear was stored".into()),
    };
    assert_eq!(
        b.save_refused(&err),
        Some(TabInput::Reload { generation: g2 })
    );
    assert!(block_on(store.load_all())?
        .map_err(|e| e.to_string())?
        .records
        .is_empty());
    // The message then arrives: nothing more to do.
    assert_eq!(
        b.receive(&message.encode().map_err(|e| e.to_string())?),
        Ok(None)
    );
    // Other refusals are not this module's.
    assert_eq!(b.save_refused(&PhotoStoreError::Full), None);
    Ok(())
}
