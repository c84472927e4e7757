//! The page's rules without the browser: the URL parameters (`params`), what a drop's
//! files become in the index (`library`), indexing runs (`run`, over the encoder `pool`
//! and the per-photo `crash` budget), the search box (`search`), what its results show
//! (`results`), the selection (`selection`) and the near-duplicates view (`duplicates`),
//! asking before a linked model is downloaded (`offer`), the query encoder (`text`), the
//! worker protocol (`protocol`) and the sentences
//! (`status`, `errors`). Everything here is plain Rust tested natively; `web` drives it
//! (DOM events in, effects out, view drawn).
//!
//! It must not name `web_sys`, `js_sys` or `JsValue`, read files or talk to workers.
//! Reference: issue 8 ("The page core out of the browser"), DESIGN.md "Contract: the page".

pub mod archive;
pub mod browser_decode;
pub mod connected;
pub mod crash;
pub mod duplicates;
pub mod errors;
pub mod library;
pub mod offer;
pub mod params;
pub mod photo_contract;
pub mod photo_store;
pub mod pool;
pub mod protocol;
pub mod refused;
pub mod results;
#[cfg(test)]
mod resume_tests;
pub mod run;
pub mod search;
pub mod selection;
pub mod skipped;
pub mod status;
pub mod tabs;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;
