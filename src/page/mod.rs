//! The page's rules without the browser: what a drop's files become in the index
//! (`library`), and later the page's state machine and its worker protocol. Everything
//! here is plain Rust tested natively; `web::app` drives it (DOM events in, effects out).
//!
//! It must not name `web_sys`, `js_sys` or `JsValue`, read files or talk to workers.
//! Reference: issue 8 ("The page core out of the browser"), DESIGN.md "Contract: the page".

pub mod errors;
pub mod library;
pub mod photo_contract;
pub mod photo_store;
pub mod protocol;
pub mod refused;
pub mod run;
pub mod search;
pub mod skipped;
pub mod status;
pub mod tabs;
#[cfg(test)]
mod testing;
