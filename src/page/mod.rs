//! The page's rules without the browser: the URL parameters (`params`), what a drop's
//! files become in the index (`library`), indexing runs (`run`, over the encoder `pool`
//! and the per-photo `crash` budget), the search box (`search`), asking before a linked
//! model is downloaded (`offer`), the worker protocol (`protocol`) and the sentences
//! (`status`, `errors`). Everything here is plain Rust tested natively; `web` drives it
//! (DOM events in, effects out, view drawn).
//!
//! It must not name `web_sys`, `js_sys` or `JsValue`, read files or talk to workers.
//! Reference: issue 8 ("The page core out of the browser"), DESIGN.md "Contract: the page".

pub mod crash;
pub mod errors;
pub mod library;
pub mod offer;
pub mod params;
pub mod photo_contract;
pub mod photo_store;
pub mod pool;
pub mod protocol;
pub mod refused;
#[cfg(test)]
mod resume_tests;
pub mod run;
pub mod search;
pub mod skipped;
pub mod status;
pub mod tabs;
#[cfg(test)]
mod testing;
