//! Tests of the folder-identity rules (`page::library`).

use super::*;

fn f(rel: &str, size: u64, date: i64) -> FileFacts {
    FileFacts::new(rel, size, date)
}

/// Phone A's DCIM, stored.
fn phone_a() -> Known {
    Known::new([
        ("DCIM/IMG_1.jpg", 100, 1),
        ("DCIM/IMG_2.jpg", 200, 2),
        ("DCIM/IMG_3.jpg", 300, 3),
    ])
}

/// Phone B's DCIM: the same names, other photos.
fn phone_b() -> Vec<FileFacts> {
    vec![
        f("IMG_1.jpg", 111, 10),
        f("IMG_2.jpg", 222, 20),
        f("IMG_3.jpg", 333, 30),
    ]
}

#[test]
fn a_first_folder_keeps_its_name() {
    let mut known = Known::default();
    let place = known.place_folder("DCIM", &phone_b());
    assert_eq!(place.root, "DCIM");
    assert!(!place.same);
    assert_eq!(known.len(), 3);
}

#[test]
fn another_folder_with_the_same_name_and_file_names_is_a_second_folder() {
    let mut known = phone_a();
    let place = known.place_folder("DCIM", &phone_b());
    assert_eq!(place.root, "DCIM (2)");
    assert!(!place.same);
    assert_eq!((place.matched, place.changed), (0, 0));
}

#[test]
fn the_second_folder_never_overwrites_the_first() {
    let mut known = phone_a();
    let place = known.place_folder("DCIM", &phone_b());
    assert_eq!(known.len(), 6);
    assert!(known.holds("DCIM/IMG_1.jpg", 100, 1));
    assert!(known.holds(&format!("{}/IMG_1.jpg", place.root), 111, 10));
}

#[test]
fn a_third_folder_gets_the_next_alias() {
    let mut known = phone_a();
    known.place_folder("DCIM", &phone_b());
    let third = vec![f("IMG_1.jpg", 999, 99)];
    assert_eq!(known.place_folder("DCIM", &third).root, "DCIM (3)");
}

#[test]
fn a_redrop_of_the_same_folder_is_the_same_folder() {
    let mut known = phone_a();
    let again = vec![
        f("IMG_1.jpg", 100, 1),
        f("IMG_2.jpg", 200, 2),
        f("IMG_3.jpg", 300, 3),
    ];
    let place = known.place_folder("DCIM", &again);
    assert_eq!(place.root, "DCIM");
    assert!(place.same);
    assert_eq!((place.matched, place.changed), (3, 0));
}

#[test]
fn a_redrop_of_the_second_folder_finds_the_alias() {
    let mut known = phone_a();
    known.place_folder("DCIM", &phone_b());
    let place = known.place_folder("DCIM", &phone_b());
    assert_eq!(place.root, "DCIM (2)");
    assert!(place.same);
    assert_eq!(place.matched, 3);
}

#[test]
fn a_redrop_with_a_few_edited_photos_is_still_the_same_folder() {
    let mut known = phone_a();
    let edited = vec![
        f("IMG_1.jpg", 100, 1),
        f("IMG_2.jpg", 200, 2),
        f("IMG_3.jpg", 301, 4),
    ];
    let place = known.place_folder("DCIM", &edited);
    assert!(place.same);
    assert_eq!((place.matched, place.changed), (2, 1));
}

#[test]
fn more_changed_than_matched_is_another_folder() {
    let mut known = phone_a();
    let mostly_other = vec![
        f("IMG_1.jpg", 100, 1),
        f("IMG_2.jpg", 201, 9),
        f("IMG_3.jpg", 301, 9),
    ];
    assert!(!known.place_folder("DCIM", &mostly_other).same);
}

#[test]
fn a_tie_between_matched_and_changed_is_another_folder() {
    let mut known = Known::new([("DCIM/a.jpg", 1, 1), ("DCIM/b.jpg", 2, 2)]);
    let tie = vec![f("a.jpg", 1, 1), f("b.jpg", 3, 3)];
    assert_eq!(known.place_folder("DCIM", &tie).root, "DCIM (2)");
}

#[test]
fn no_shared_file_names_means_another_folder() {
    let mut known = phone_a();
    let other = vec![f("DSC_1.jpg", 5, 5)];
    let place = known.place_folder("DCIM", &other);
    assert!(!place.same);
    assert_eq!(place.root, "DCIM (2)");
}

#[test]
fn a_redrop_lacking_files_is_the_same_folder() {
    let mut known = phone_a();
    let fewer = vec![f("IMG_1.jpg", 100, 1)];
    let place = known.place_folder("DCIM", &fewer);
    assert!(place.same);
    assert_eq!(place.root, "DCIM");
}

#[test]
fn a_redrop_with_new_files_is_the_same_folder() {
    let mut known = phone_a();
    let more = vec![
        f("IMG_1.jpg", 100, 1),
        f("IMG_4.jpg", 400, 4),
        f("IMG_5.jpg", 500, 5),
    ];
    assert!(known.place_folder("DCIM", &more).same);
}

#[test]
fn the_folder_with_the_biggest_lead_wins() {
    let mut known = Known::new([
        ("DCIM/a.jpg", 1, 1),
        ("DCIM (2)/a.jpg", 1, 1),
        ("DCIM (2)/b.jpg", 2, 2),
    ]);
    let drop = vec![f("a.jpg", 1, 1), f("b.jpg", 2, 2)];
    assert_eq!(known.place_folder("DCIM", &drop).root, "DCIM (2)");
}

#[test]
fn equal_leads_go_to_the_first_alias() {
    let mut known = Known::new([("DCIM/a.jpg", 1, 1), ("DCIM (2)/a.jpg", 1, 1)]);
    let drop = vec![f("a.jpg", 1, 1)];
    assert_eq!(known.place_folder("DCIM", &drop).root, "DCIM");
}

#[test]
fn folders_of_other_names_are_not_compared() {
    let mut known = Known::new([("Camera/IMG_1.jpg", 100, 1)]);
    let place = known.place_folder("DCIM", &[f("IMG_1.jpg", 100, 1)]);
    assert_eq!(place.root, "DCIM");
    assert!(!place.same);
}

#[test]
fn a_folder_really_called_like_an_alias_is_its_own_family() {
    let known = Known::new([("DCIM (2)/a.jpg", 1, 1), ("DCIM/a.jpg", 1, 1)]);
    assert_eq!(known.family("DCIM (2)"), ["DCIM (2)"]);
    assert_eq!(known.family("DCIM"), ["DCIM", "DCIM (2)"]);
}

#[test]
fn family_ignores_lookalike_names() {
    let known = Known::new([
        ("DCIM (0)/a.jpg", 1, 1),
        ("DCIM (1)/a.jpg", 1, 1),
        ("DCIM (02)/a.jpg", 1, 1),
        ("DCIM (x)/a.jpg", 1, 1),
        ("DCIM2/a.jpg", 1, 1),
        ("DCIM (10)/a.jpg", 1, 1),
    ]);
    assert_eq!(known.family("DCIM"), ["DCIM (10)"]);
}

#[test]
fn family_is_in_alias_order() {
    let known = Known::new([
        ("D (10)/a", 1, 1),
        ("D (2)/a", 1, 1),
        ("D/a", 1, 1),
        ("D (3)/a", 1, 1),
    ]);
    assert_eq!(known.family("D"), ["D", "D (2)", "D (3)", "D (10)"]);
}

#[test]
fn a_free_alias_number_is_reused() {
    let mut known = Known::new([("D/a", 1, 1), ("D (3)/a", 1, 1)]);
    assert_eq!(known.place_folder("D", &[f("a", 9, 9)]).root, "D (2)");
}

#[test]
fn aliases_do_not_take_the_extension_apart() {
    let mut known = Known::new([("photos.2024/a.jpg", 1, 1)]);
    assert_eq!(
        known.place_folder("photos.2024", &[f("a.jpg", 2, 2)]).root,
        "photos.2024 (2)"
    );
}

#[test]
fn two_folders_of_one_drop_are_compared_with_each_other() {
    let mut known = Known::default();
    let first = known.place_folder("DCIM", &phone_b());
    let second = known.place_folder("DCIM", &[f("IMG_1.jpg", 7, 7)]);
    assert_eq!(first.root, "DCIM");
    assert_eq!(second.root, "DCIM (2)");
}

#[test]
fn the_same_folder_twice_in_one_drop_is_one_folder() {
    let mut known = Known::default();
    known.place_folder("DCIM", &phone_b());
    let again = known.place_folder("DCIM", &phone_b());
    assert!(again.same);
    assert_eq!(again.root, "DCIM");
    assert_eq!(known.len(), 3);
}

#[test]
fn nested_paths_are_compared_whole() {
    let mut known = Known::new([("DCIM/100APPLE/IMG_1.jpg", 1, 1)]);
    let flat = known.place_folder("DCIM", &[f("IMG_1.jpg", 1, 1)]);
    assert!(
        !flat.same,
        "a file in another subfolder is not the same file"
    );
    let mut known = Known::new([("DCIM/100APPLE/IMG_1.jpg", 1, 1)]);
    assert!(
        known
            .place_folder("DCIM", &[f("100APPLE/IMG_1.jpg", 1, 1)])
            .same
    );
}

#[test]
fn compare_counts_matched_and_changed() {
    let known = phone_a();
    let files = vec![
        f("IMG_1.jpg", 100, 1),
        f("IMG_2.jpg", 200, 9),
        f("IMG_9.jpg", 1, 1),
    ];
    assert_eq!(known.compare("DCIM", &files), (1, 1));
    assert_eq!(known.compare("Other", &files), (0, 0));
}

#[test]
fn a_date_change_alone_counts_as_changed() {
    let known = phone_a();
    assert_eq!(known.compare("DCIM", &[f("IMG_1.jpg", 100, 2)]), (0, 1));
}

#[test]
fn a_size_change_alone_counts_as_changed() {
    let known = phone_a();
    assert_eq!(known.compare("DCIM", &[f("IMG_1.jpg", 101, 1)]), (0, 1));
}

#[test]
fn a_new_loose_file_keeps_its_name() {
    let mut known = phone_a();
    assert_eq!(known.place_loose(&f("beach.jpg", 5, 5)), "beach.jpg");
}

#[test]
fn the_same_loose_file_again_keeps_its_name() {
    let mut known = Known::new([("beach.jpg", 5, 5)]);
    assert_eq!(known.place_loose(&f("beach.jpg", 5, 5)), "beach.jpg");
    assert_eq!(known.len(), 1);
}

#[test]
fn another_loose_file_of_the_same_name_is_numbered() {
    let mut known = Known::new([("beach.jpg", 5, 5)]);
    assert_eq!(known.place_loose(&f("beach.jpg", 6, 6)), "beach (2).jpg");
    assert!(known.holds("beach.jpg", 5, 5));
}

#[test]
fn a_numbered_loose_file_is_found_again() {
    let mut known = Known::new([("beach.jpg", 5, 5), ("beach (2).jpg", 6, 6)]);
    assert_eq!(known.place_loose(&f("beach.jpg", 6, 6)), "beach (2).jpg");
    assert_eq!(known.place_loose(&f("beach.jpg", 7, 7)), "beach (3).jpg");
}

#[test]
fn a_loose_file_without_extension_is_numbered_at_the_end() {
    let mut known = Known::new([("README", 1, 1)]);
    assert_eq!(known.place_loose(&f("README", 2, 2)), "README (2)");
    let mut known = Known::new([(".hidden", 1, 1)]);
    assert_eq!(known.place_loose(&f(".hidden", 2, 2)), ".hidden (2)");
}

#[test]
fn two_loose_files_of_one_drop_with_one_name_are_both_kept() {
    let mut known = Known::default();
    let a = known.place_loose(&f("x.png", 1, 1));
    let b = known.place_loose(&f("x.png", 2, 2));
    assert_ne!(a, b);
    assert_eq!(known.len(), 2);
}

#[test]
fn root_of_takes_the_first_component() {
    assert_eq!(root_of("DCIM/a/b.jpg"), Some("DCIM"));
    assert_eq!(root_of("b.jpg"), None);
}

#[test]
fn holds_needs_size_and_date() {
    let known = phone_a();
    assert!(known.holds("DCIM/IMG_1.jpg", 100, 1));
    assert!(!known.holds("DCIM/IMG_1.jpg", 100, 2));
    assert!(!known.holds("DCIM/IMG_9.jpg", 100, 1));
    assert!(!known.is_empty());
    assert!(Known::default().is_empty());
}

#[test]
fn no_offer_without_photos() {
    assert_eq!(ForgetOffer::new(Vec::new()), None);
}

#[test]
fn offer_names_one_photo_and_its_folder() {
    let offer = ForgetOffer::new(vec!["DCIM/IMG_3.jpg".into()]);
    assert_eq!(
        offer.map(|o| o.label()).as_deref(),
        Some("Forget 1 photo no longer in DCIM")
    );
}

#[test]
fn offer_counts_photos_and_names_every_folder() {
    let offer = ForgetOffer::new(vec![
        "DCIM (2)/a.jpg".into(),
        "DCIM/b.jpg".into(),
        "DCIM/c.jpg".into(),
        "Camera/d.jpg".into(),
    ]);
    assert_eq!(
        offer.map(|o| o.label()).as_deref(),
        Some("Forget 4 photos no longer in Camera, DCIM and DCIM (2)")
    );
}

fn dropped(path: &str, folder: Option<usize>, size: u64, date: i64) -> DropFile<u32> {
    DropFile {
        path: path.into(),
        folder,
        size_bytes: size,
        modified_ms: date,
        handle: 0,
    }
}

fn paths<T>(placed: &PlacedDrop<T>) -> Vec<&str> {
    placed.files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn place_drop_puts_a_second_dcim_beside_the_first() {
    let mut known = phone_a();
    let files = vec![
        dropped("DCIM/IMG_1.jpg", Some(0), 111, 10),
        dropped("DCIM/IMG_2.jpg", Some(0), 222, 20),
    ];
    let placed = place_drop(&mut known, &["DCIM".to_owned()], files, Origin::Dropped);
    assert_eq!(paths(&placed), ["DCIM (2)/IMG_1.jpg", "DCIM (2)/IMG_2.jpg"]);
    assert_eq!(placed.folders.len(), 1);
    assert!(!placed.folders.iter().any(|f| f.same));
}

#[test]
fn place_drop_keeps_paths_of_a_redrop() {
    let mut known = phone_a();
    let files = vec![dropped("DCIM/IMG_1.jpg", Some(0), 100, 1)];
    let placed = place_drop(&mut known, &["DCIM".to_owned()], files, Origin::Dropped);
    assert_eq!(paths(&placed), ["DCIM/IMG_1.jpg"]);
    assert!(placed.folders.iter().all(|f| f.same));
}

#[test]
fn place_drop_separates_two_same_named_folders_of_one_drop() {
    let mut known = Known::default();
    let roots = vec!["DCIM".to_owned(), "DCIM".to_owned()];
    let files = vec![
        dropped("DCIM/IMG_1.jpg", Some(0), 1, 1),
        dropped("DCIM/IMG_1.jpg", Some(1), 2, 2),
    ];
    let placed = place_drop(&mut known, &roots, files, Origin::Dropped);
    assert_eq!(paths(&placed), ["DCIM/IMG_1.jpg", "DCIM (2)/IMG_1.jpg"]);
}

#[test]
fn place_drop_numbers_a_loose_file_that_would_replace_another() {
    let mut known = Known::new([("beach.jpg", 5, 5)]);
    let files = vec![
        dropped("beach.jpg", None, 6, 6),
        dropped("sea.jpg", None, 1, 1),
    ];
    let placed = place_drop(&mut known, &[], files, Origin::Dropped);
    assert_eq!(paths(&placed), ["beach (2).jpg", "sea.jpg"]);
}

#[test]
fn place_drop_keeps_the_order_and_handles() {
    let mut known = Known::default();
    let mut a = dropped("F/b.jpg", Some(0), 1, 1);
    a.handle = 7;
    let mut b = dropped("F/a.jpg", Some(0), 1, 1);
    b.handle = 8;
    let placed = place_drop(&mut known, &["F".to_owned()], vec![a, b], Origin::Dropped);
    let handles: Vec<u32> = placed.files.iter().map(|f| f.handle).collect();
    assert_eq!(handles, [7, 8]);
    assert_eq!(paths(&placed), ["F/b.jpg", "F/a.jpg"]);
}

#[test]
fn place_drop_keeps_subfolders() {
    let mut known = Known::new([("F/x/a.jpg", 1, 1)]);
    let placed = place_drop(
        &mut known,
        &["F".to_owned()],
        vec![dropped("F/x/a.jpg", Some(0), 2, 2)],
        Origin::Dropped,
    );
    assert_eq!(paths(&placed), ["F (2)/x/a.jpg"]);
}

#[test]
fn a_placed_file_keeps_the_path_it_was_dropped_under() {
    let mut known = phone_a();
    let placed = place_drop(
        &mut known,
        &["DCIM".to_owned()],
        vec![dropped("DCIM/IMG_1.jpg", Some(0), 111, 10)],
        Origin::Dropped,
    );
    let pairs: Vec<(&str, &str)> = placed
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.dropped.as_str()))
        .collect();
    assert_eq!(pairs, [("DCIM (2)/IMG_1.jpg", "DCIM/IMG_1.jpg")]);
}

#[test]
fn a_reserved_name_is_never_given_to_a_new_folder() {
    let mut known = phone_a();
    known.reserve_root("DCIM (2)");
    assert_eq!(known.family("DCIM"), ["DCIM", "DCIM (2)"]);
    let place = known.place_folder("DCIM", &phone_b());
    assert_eq!(place.root, "DCIM (3)");
    assert!(!place.same);
}

#[test]
fn a_reconnected_folder_stays_itself_when_most_of_its_photos_were_edited() {
    // Two of three photos edited since: as a drop, changes outvote matches (a new folder);
    // walked again through its handle, it is the same folder.
    let edited = vec![
        f("IMG_1.jpg", 101, 5),
        f("IMG_2.jpg", 201, 6),
        f("IMG_3.jpg", 300, 3),
        f("IMG_4.jpg", 400, 4),
    ];
    assert_eq!(phone_a().place_folder("DCIM", &edited).root, "DCIM (2)");
    let place = phone_a().place_reconnected("DCIM", &edited);
    assert_eq!(
        place,
        FolderPlace {
            root: "DCIM".into(),
            same: true,
            matched: 1,
            changed: 2,
        }
    );
}

#[test]
fn a_reconnected_folder_goes_to_the_alias_holding_most_of_its_paths() {
    let mut known = Known::new([
        ("DCIM/IMG_1.jpg", 100, 1),
        ("DCIM (2)/IMG_1.jpg", 111, 10),
        ("DCIM (2)/IMG_2.jpg", 222, 20),
    ]);
    // Every photo edited: no match anywhere, but the paths say which folder it is.
    let walked = [f("IMG_1.jpg", 1, 1), f("IMG_2.jpg", 2, 2)];
    let place = known.place_reconnected("DCIM", &walked);
    assert_eq!((place.root.as_str(), place.same), ("DCIM (2)", true));
    assert!(known.holds("DCIM (2)/IMG_2.jpg", 2, 2));
}

#[test]
fn a_reconnected_folder_sharing_no_path_is_placed_as_a_drop() {
    let walked = [f("other.jpg", 1, 1)];
    let place = phone_a().place_reconnected("DCIM", &walked);
    assert_eq!(place, phone_a().place_folder("DCIM", &walked));
    assert_eq!((place.root.as_str(), place.same), ("DCIM (2)", false));
    let place = Known::default().place_reconnected("Photos", &walked);
    assert_eq!((place.root.as_str(), place.same), ("Photos", false));
}

#[test]
fn place_drop_places_a_reconnected_folder_by_its_paths() {
    let files = vec![
        dropped("DCIM/IMG_1.jpg", Some(0), 101, 5),
        dropped("DCIM/IMG_2.jpg", Some(0), 201, 6),
        dropped("DCIM/IMG_3.jpg", Some(0), 300, 3),
    ];
    let roots = ["DCIM".to_owned()];
    let placed = place_drop(&mut phone_a(), &roots, files.clone(), Origin::Dropped);
    assert_eq!(placed.folders[0].root, "DCIM (2)");
    let placed = place_drop(&mut phone_a(), &roots, files, Origin::Reconnected);
    assert_eq!(placed.folders[0].root, "DCIM");
    assert_eq!(
        paths(&placed),
        ["DCIM/IMG_1.jpg", "DCIM/IMG_2.jpg", "DCIM/IMG_3.jpg"]
    );
}
