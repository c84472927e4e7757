//! The result grid: `#results` children in rank order, each an `<li>` with `data-path`
//! (relative path), `data-score` (cosine, 4 decimals) and `data-id`, holding a thumbnail
//! button (Enter or a click opens the preview), a selection check (`button.pick`,
//! `aria-pressed`; the item's `data-selected`), a `.fold-count` badge on a tile standing
//! for folded near-duplicates, and "Similar" / "Remove" buttons. Arrow keys
//! move the focus across the grid, row by row as it is laid out.
//!
//! It draws what it is given and reports nothing itself; `web::events` listens on `#results`
//! (event delegation) and decides. Reference: the WAI-ARIA Authoring Practices' grid
//! keyboard conventions (arrows move focus; Enter activates).

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement, KeyboardEvent};

use super::{append, attr, Dom};

/// One result to draw.
pub struct ResultView {
    pub id: u64,
    pub path: String,
    pub score: f32,
    /// A `blob:` URL of the thumbnail, if it is known yet.
    pub thumb_url: Option<String>,
    /// The photos the tile stands for (near-duplicates folded into it), 1 normally.
    pub count: usize,
    pub selected: bool,
    /// Decoded by the browser, not PIL-exact (`page::browser_decode`): a quiet mark.
    pub browser_decoded: bool,
}

/// `0.1234`: the score as `data-score` and the label show it.
pub fn format_score(score: f32) -> String {
    format!("{score:.4}")
}

/// Replaces the grid's children with `items`, in order.
pub fn render(dom: &Dom, items: &[ResultView]) {
    render_into(&dom.document, &dom.results, items);
}

/// Replaces `list`'s children with `items`, in order.
pub fn render_into(doc: &Document, list: &Element, items: &[ResultView]) {
    list.set_inner_html("");
    for item in items {
        if let Some(li) = result_item(doc, item) {
            append(list, &li);
        }
    }
}

/// Marks each `li[data-id]` under `root` selected or not, as `selected` says (no redraw, so
/// the focus stays).
pub fn set_marks(root: &Element, selected: impl Fn(u64) -> bool) {
    let Ok(items) = root.query_selector_all("li[data-id]") else {
        return;
    };
    for i in 0..items.length() {
        let Some(li) = items.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        let Some(id) = li.get_attribute("data-id").and_then(|v| v.parse().ok()) else {
            continue;
        };
        mark(&li, selected(id));
    }
}

fn mark(li: &Element, on: bool) {
    let value = if on { "true" } else { "false" };
    attr(li, "data-selected", value);
    attr(li, "aria-selected", value);
    if let Ok(Some(pick)) = li.query_selector("button.pick") {
        attr(&pick, "aria-pressed", value);
        pick.set_text_content(Some(if on { "\u{2713}" } else { "" }));
    }
}

/// A `<button>` of class `class` saying `text`, labelled `label`.
fn button(doc: &Document, class: &str, text: &str, label: &str) -> Option<Element> {
    let b = doc.create_element("button").ok()?;
    b.set_class_name(class);
    attr(&b, "type", "button");
    b.set_text_content(Some(text));
    attr(&b, "aria-label", label);
    Some(b)
}

/// The thumbnail button that opens the preview.
fn thumb_button(doc: &Document, item: &ResultView, score_text: &str) -> Option<Element> {
    let label = format!("Open {} (score {score_text})", item.path);
    let open = button(doc, "thumb", "", &label)?;
    let img = doc.create_element("img").ok()?;
    img.set_class_name("thumb-image");
    attr(&img, "alt", "");
    attr(&img, "decoding", "async");
    if let Some(url) = &item.thumb_url {
        attr(&img, "src", url);
    }
    append(&open, &img);
    Some(open)
}

/// One result: thumbnail, path and score, "Similar" and "Remove".
fn result_item(doc: &Document, item: &ResultView) -> Option<Element> {
    let score_text = format_score(item.score);
    let li = doc.create_element("li").ok()?;
    li.set_class_name("result");
    attr(&li, "data-path", &item.path);
    attr(&li, "data-score", &score_text);
    attr(&li, "data-id", &item.id.to_string());
    let open = thumb_button(doc, item, &score_text)?;
    let pick = button(doc, "pick", "", &format!("Select {}", item.path))?;
    let meta = doc.create_element("div").ok()?;
    let name = doc.create_element("span").ok()?;
    let score = doc.create_element("span").ok()?;
    meta.set_class_name("meta");
    name.set_class_name("path");
    // The file's name (a folder's photos all share its start); the whole path on hover.
    name.set_text_content(Some(crate::page::results::file_name(&item.path)));
    attr(&name, "title", &item.path);
    score.set_class_name("score");
    score.set_text_content(Some(&score_text));
    append(&meta, &name);
    append(&meta, &score);
    if item.browser_decoded {
        attr(&li, "data-decoder", "browser");
        let mark = doc.create_element("span").ok()?;
        mark.set_class_name("decoder-mark");
        mark.set_text_content(Some(crate::page::browser_decode::MARK));
        attr(&mark, "title", crate::page::browser_decode::MARK_TITLE);
        append(&meta, &mark);
    }
    let actions = doc.create_element("div").ok()?;
    actions.set_class_name("item-actions");
    let similar_label = format!("Photos similar to {}", item.path);
    let remove_label = format!("Remove {} from the index", item.path);
    append(
        &actions,
        &button(doc, "similar link-button", "Similar", &similar_label)?,
    );
    append(
        &actions,
        &button(doc, "remove link-button", "Remove", &remove_label)?,
    );
    append(&li, &open);
    append(&li, &pick);
    if item.count > 1 {
        let badge = doc.create_element("span").ok()?;
        badge.set_class_name("fold-count");
        attr(&badge, "data-count", &item.count.to_string());
        badge.set_text_content(Some(&format!("\u{d7}{}", item.count)));
        attr(
            &badge,
            "title",
            &format!("{} near-duplicates shown as one", item.count),
        );
        append(&li, &badge);
    }
    append(&li, &meta);
    append(&li, &actions);
    mark(&li, item.selected);
    Some(li)
}

/// Shows a thumbnail that arrived after the grid (or a list under `root`) was drawn.
pub fn set_thumb(root: &Element, path: &str, url: &str) {
    let Ok(items) = root.query_selector_all("li[data-path]") else {
        return;
    };
    for i in 0..items.length() {
        let Some(li) = items.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        if li.get_attribute("data-path").as_deref() == Some(path) {
            if let Ok(Some(img)) = li.query_selector("img") {
                attr(&img, "src", url);
            }
        }
    }
}

/// Moves the focus among the thumbnail buttons for arrow keys (and Home/End). Returns
/// whether the key was used.
pub fn move_focus(dom: &Dom, event: &KeyboardEvent) -> bool {
    let Some(current) = event
        .target()
        .and_then(|t| t.dyn_into::<Element>().ok())
        .filter(|e| e.class_list().contains("thumb"))
    else {
        return false;
    };
    let Ok(list) = dom.results.query_selector_all("button.thumb") else {
        return false;
    };
    let buttons: Vec<HtmlElement> = (0..list.length())
        .filter_map(|i| list.item(i).and_then(|n| n.dyn_into::<HtmlElement>().ok()))
        .collect();
    let Some(at) = buttons
        .iter()
        .position(|b| b.unchecked_ref::<Element>() == &current)
    else {
        return false;
    };
    // Columns: how many buttons share the first row's top edge.
    let top = buttons.first().map(|b| b.offset_top()).unwrap_or(0);
    let columns = buttons
        .iter()
        .take_while(|b| b.offset_top() == top)
        .count()
        .max(1);
    let last = buttons.len() - 1;
    let to = match event.key().as_str() {
        "ArrowRight" => (at + 1).min(last),
        "ArrowLeft" => at.saturating_sub(1),
        "ArrowDown" if at + columns <= last => at + columns,
        "ArrowUp" if at >= columns => at - columns,
        "ArrowDown" | "ArrowUp" => at,
        "Home" => 0,
        "End" => last,
        _ => return false,
    };
    if let Some(b) = buttons.get(to) {
        if b.focus().is_err() {
            return false;
        }
    }
    true
}
