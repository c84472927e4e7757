//! No error dropped: the page's failures it can live with (focus, a revoked object URL, an
//! attribute to remove) are logged once per kind, with what was being done, instead of
//! being swallowed by an empty `if x.is_err() {}`; the ones that matter are returned to be
//! shown. [`LogOnce`] is the "once" part, kept here so it is tested natively; the browser
//! side (`web::noted`) writes the console line.
//!
//! It must not know about the browser or decide what matters: callers do, by choosing
//! `noted` (it can wait) or returning the error (the person must see it). Reference:
//! issue 8, item 4.

use std::collections::HashSet;

/// Kinds of failure already logged.
#[derive(Debug, Default, Clone)]
pub struct LogOnce {
    seen: HashSet<&'static str>,
}

impl LogOnce {
    pub fn new() -> Self {
        Self::default()
    }

    /// True the first time `what` fails: log it then, not again.
    pub fn first(&mut self, what: &'static str) -> bool {
        self.seen.insert(what)
    }

    /// How many kinds were logged.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The console line for a failure: "clipseek: could not <what>: <why>".
pub fn line(what: &str, why: &str) -> String {
    if why.is_empty() {
        format!("clipseek: could not {what}")
    } else {
        format!("clipseek: could not {what}: {why}")
    }
}

/// The sentence listed beside an entry of a dropped tree the browser could not open,
/// from the name of the browser's error (`NotFoundError`, `NotReadableError`, …):
/// `folder` when the entry is a folder whose contents could not be listed.
pub fn unreadable_entry(error_name: &str, folder: bool) -> String {
    let what = if folder { "folder" } else { "file" };
    match error_name {
        "NotFoundError" => {
            format!("The {what} was moved or deleted before it could be read.")
        }
        "NotReadableError" | "SecurityError" | "NotAllowedError" => format!(
            "The browser was not allowed to read this {what}; check its permissions and drop \
             it again."
        ),
        "" => format!("The browser could not open this {what}."),
        other => format!("The browser could not open this {what} ({other})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_of_a_kind_is_logged() {
        let mut log = LogOnce::new();
        assert!(log.first("focus the search box"));
    }

    #[test]
    fn a_repeated_failure_is_not_logged_again() {
        let mut log = LogOnce::new();
        assert!(log.first("revoke a thumbnail URL"));
        assert!(!log.first("revoke a thumbnail URL"));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn kinds_are_counted_apart() {
        let mut log = LogOnce::new();
        assert!(log.is_empty());
        assert!(log.first("a"));
        assert!(log.first("b"));
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn the_line_names_what_and_why() {
        assert_eq!(
            line("focus the search box", "NotAllowed"),
            "clipseek: could not focus the search box: NotAllowed"
        );
        assert_eq!(
            line("open the preview", ""),
            "clipseek: could not open the preview"
        );
    }

    #[test]
    fn a_vanished_file_says_it_was_moved_or_deleted() {
        assert_eq!(
            unreadable_entry("NotFoundError", false),
            "The file was moved or deleted before it could be read."
        );
    }

    #[test]
    fn a_file_or_folder_without_permission_says_so() {
        for name in ["NotReadableError", "SecurityError", "NotAllowedError"] {
            assert!(unreadable_entry(name, false).contains("not allowed to read this file"));
            assert!(unreadable_entry(name, true).contains("not allowed to read this folder"));
        }
    }

    #[test]
    fn another_error_is_named() {
        assert_eq!(
            unreadable_entry("AbortError", true),
            "The browser could not open this folder (AbortError)."
        );
        assert_eq!(
            unreadable_entry("", false),
            "The browser could not open this file."
        );
    }
}
