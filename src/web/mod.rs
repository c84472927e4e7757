//! The browser shell (wasm32 only): the one place that names `web_sys`, `js_sys` and
//! `JsValue`. Until the web-app issue lands it shows a plain page.

use wasm_bindgen::prelude::*;

/// Starts the page.
pub fn start() {
    console_error_panic_hook::set_once();
    if let Err(e) = show_plain_page() {
        web_sys::console::error_1(&e);
    }
}

fn show_plain_page() -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    if let Some(status) = document.get_element_by_id("status") {
        status.set_attribute("data-state", "idle")?;
        status.set_text_content(Some("clipseek engine loaded; the web app is coming."));
    }
    Ok(())
}
