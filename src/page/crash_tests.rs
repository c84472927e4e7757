//! Tests of the per-photo crash budget (`page::crash`).

use super::*;

fn lost(jobs: &[&[Key]]) -> Lost {
    Lost {
        jobs: jobs.iter().map(|j| j.to_vec()).collect(),
    }
}

#[test]
fn a_first_crash_retries_the_running_photos_alone() {
    let mut budget = CrashBudget::new();
    let v = budget.crashed(lost(&[&[0, 1, 2, 3]]));
    assert_eq!(v.retry_alone, [0, 1, 2, 3]);
    assert!(v.skipped.is_empty());
    assert!(!v.give_up);
}

#[test]
fn a_photo_that_crashes_twice_is_skipped() {
    let mut budget = CrashBudget::new();
    budget.crashed(lost(&[&[0, 1, 2, 3]]));
    let v = budget.crashed(lost(&[&[2]]));
    assert_eq!(v.skipped, [2]);
    assert!(v.retry_alone.is_empty());
    assert!(!v.give_up);
}

#[test]
fn one_bad_photo_costs_two_crashes_and_only_itself() {
    let mut budget = CrashBudget::new();
    budget.crashed(lost(&[&[4, 5, 6, 7]]));
    // 4, 5 and 7 encode fine alone; 6 crashes again.
    let v = budget.crashed(lost(&[&[6]]));
    assert_eq!(v.skipped, [6]);
    for good in [4, 5, 7] {
        assert_eq!(budget.charged(good), 1);
    }
}

#[test]
fn waiting_jobs_are_requeued_uncharged() {
    let mut budget = CrashBudget::new();
    let v = budget.crashed(lost(&[&[0, 1], &[2, 3], &[4]]));
    assert_eq!(v.retry_alone, [0, 1]);
    assert_eq!(v.requeue, [2, 3, 4]);
    assert_eq!(budget.charged(2), 0);
    assert_eq!(budget.charged(4), 0);
}

#[test]
fn a_good_photo_waiting_behind_a_bad_one_is_never_skipped() {
    let mut budget = CrashBudget::new();
    // Two alone-retries in flight on one worker: the bad one runs first, twice.
    budget.crashed(lost(&[&[1, 2]]));
    let v = budget.crashed(lost(&[&[1], &[2]]));
    assert_eq!(v.skipped, [1]);
    assert_eq!(v.requeue, [2]);
    assert_eq!(budget.charged(2), 1);
}

#[test]
fn many_bad_photos_never_end_the_run() {
    let mut budget = CrashBudget::new();
    for key in 0..50 {
        assert!(!budget.crashed(lost(&[&[key]])).give_up);
        let v = budget.crashed(lost(&[&[key]]));
        assert_eq!(v.skipped, [key]);
        assert!(!v.give_up);
    }
}

#[test]
fn crashes_with_nothing_running_give_up_after_three_in_a_row() {
    let mut budget = CrashBudget::new();
    assert!(!budget.crashed(Lost::default()).give_up);
    assert!(!budget.crashed(Lost::default()).give_up);
    assert!(budget.crashed(Lost::default()).give_up);
}

#[test]
fn progress_resets_blameless_crashes() {
    let mut budget = CrashBudget::new();
    budget.crashed(Lost::default());
    budget.crashed(Lost::default());
    budget.progress();
    assert!(!budget.crashed(Lost::default()).give_up);
    assert!(!budget.crashed(Lost::default()).give_up);
    assert!(budget.crashed(Lost::default()).give_up);
}

#[test]
fn a_photo_crash_does_not_count_as_blameless() {
    let mut budget = CrashBudget::new();
    budget.crashed(Lost::default());
    budget.crashed(Lost::default());
    budget.crashed(lost(&[&[0]]));
    // Two blameless crashes so far; the third gives up.
    assert!(budget.crashed(Lost::default()).give_up);
}

#[test]
fn empty_jobs_are_ignored() {
    let mut budget = CrashBudget::new();
    let v = budget.crashed(lost(&[&[], &[3]]));
    assert_eq!(v.retry_alone, [3]);
    assert!(v.requeue.is_empty());
}

#[test]
fn a_fresh_budget_charges_nothing() {
    let budget = CrashBudget::new();
    assert_eq!(budget.charged(0), 0);
}

#[test]
fn the_reason_is_a_plain_sentence() {
    assert!(CRASH_REASON.ends_with('.'));
    assert!(CRASH_REASON.contains("twice"));
    assert_eq!(CRASHES_PER_PHOTO, 2);
}
