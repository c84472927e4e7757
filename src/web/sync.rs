//! The page's driver of `page::tabs`: this tab's [`Tabs`] made when the stored index is
//! read, its channel opened (`web::tabs`), the other tabs told of every save, removal and
//! clear, and what they tell this tab carried out: photos read from the store into the
//! index, photos dropped from it, or the whole index read again after a clear elsewhere.
//!
//! It holds no rule (which message means what, and which generation a save names, is
//! `page::tabs`; what a reload does to a run is `page::run`) and never holds the page's
//! state across an `await`. Reference: DESIGN.md "The page: storage, cost and two tabs".

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use super::driver::{with, App, AppRef};
use super::library::IdbPhotoStore;
use super::search::{render_results, search_input};
use super::tabs::{self as channel, OnInput};
use super::workers::run_input;
use crate::page::library::FolderPlace;
use crate::page::photo_store::{Claim, PhotoStore, PhotoStoreError, SaveGuard};
use crate::page::refused::RefusedFile;
use crate::page::run::Input as RunInput;
use crate::page::search::Input as SearchInput;
use crate::page::tabs::{TabError, TabInput, TabMessage, Tabs};

fn warn(line: &str) {
    web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {line}")));
}

/// This tab's rules at `generation` (the store as just read), and its channel, opened
/// once per page; a model opened again starts the rules afresh under a new identity.
pub fn open(app: &AppRef, generation: u64) {
    let fresh = Tabs::new(channel::new_tab_id(), generation);
    let existing = with(app, |a| a.tabs.clone()).flatten();
    if let Some(tabs) = existing {
        match tabs.try_borrow_mut() {
            Ok(mut t) => *t = fresh,
            Err(_) => warn("the tab rules were busy when the index was read again"),
        }
        return;
    }
    let tabs = Rc::new(RefCell::new(fresh));
    let weak = Rc::downgrade(app);
    let on_input: OnInput = Rc::new(move |input| {
        if let Some(app) = weak.upgrade() {
            heard(&app, input);
        }
    });
    let opened = channel::start(tabs.clone(), on_input);
    with(app, |a| {
        a.tabs = Some(tabs);
        match opened {
            Ok(c) => a.channel = Some(c),
            Err(e) => warn(&format!(
                "no channel to other tabs ({}); this tab works alone",
                super::describe_js(&e)
            )),
        }
    });
}

/// The store's side of the page.
pub fn store_of(a: &App) -> Option<IdbPhotoStore> {
    a.library.as_ref().map(|l| l.store().clone())
}

/// What a save of `paths` by this tab must find in the store: its generation and the
/// claims of this tab's new folders among them (none before the index is read).
pub fn guard(a: &App, paths: &[String]) -> Option<SaveGuard> {
    let tabs = a.tabs.as_ref()?.try_borrow().ok()?;
    Some(tabs.guard(a.core.claims_covering(paths)))
}

/// Claims the names of a drop's new folders for this tab (`page::tabs`) and tells the
/// core which it won; a claim the store could not answer is logged and left unguarded.
pub fn claim(app: &AppRef, round: u32, folders: Vec<FolderPlace>) {
    let asked = with(app, |a| {
        let claims = a.tabs.as_ref()?.try_borrow_mut().ok()?.claims_for(&folders);
        Some((store_of(a)?, claims))
    })
    .flatten();
    let app = app.clone();
    spawn_local(async move {
        let mut answers = Vec::new();
        match asked {
            Some((store, claims)) => {
                for claim in claims {
                    let won = match store.claim(&claim).await {
                        Ok(won) => Some(won),
                        Err(e) => {
                            warn(&format!(
                                "the folder name {} was not claimed: {e}",
                                claim.name
                            ));
                            None
                        }
                    };
                    answers.push((claim, won));
                }
            }
            None => {
                warn("no store or tab rules to claim folder names with");
                answers = folders
                    .into_iter()
                    .map(|f| {
                        (
                            Claim {
                                name: f.root,
                                owner: String::new(),
                            },
                            None,
                        )
                    })
                    .collect();
            }
        }
        run_input(&app, RunInput::Claimed { round, answers });
    });
}

/// Remembers refused files in the store; a failure only costs reading them again.
pub fn remember(app: &AppRef, files: Vec<RefusedFile>) {
    let Some(Some(store)) = with(app, |a| store_of(a)) else {
        return;
    };
    spawn_local(async move {
        if let Err(e) = store.put_refused(&files).await {
            warn(&format!("the refused files were not remembered: {e}"));
        }
    });
}

/// The refused files the store remembers, handed to the core (`Input::Remembered`).
pub async fn remembered(app: &AppRef, store: &IdbPhotoStore) {
    match store.refused().await {
        Ok(files) => run_input(app, RunInput::Remembered(files)),
        Err(e) => warn(&format!("the refused files could not be read: {e}")),
    }
}

/// Makes a message with this tab's rules and posts it to the other tabs.
pub fn tell(app: &AppRef, message: impl FnOnce(&mut Tabs) -> TabMessage) {
    with(app, |a| {
        let Some(tabs) = a.tabs.as_ref() else { return };
        let Ok(mut rules) = tabs.try_borrow_mut() else {
            warn("the tab rules were busy; the other tabs were not told");
            return;
        };
        let message = message(&mut rules);
        if let Some(Err(e)) = a.channel.as_ref().map(|c| c.send(&message)) {
            warn(&e.to_string());
        }
    });
}

/// A save the store refused: true when it was for a clear elsewhere, and the index is
/// being read again (the run given up), so the save is not shown as failed.
pub fn save_refused(app: &AppRef, error: &PhotoStoreError) -> bool {
    let input = with(app, |a| {
        let tabs = a.tabs.as_ref()?;
        tabs.try_borrow_mut().ok()?.save_refused(error)
    })
    .flatten();
    match input {
        Some(input) => {
            heard(app, Ok(input));
            true
        }
        None => false,
    }
}

/// Carries out what another tab's message asks.
fn heard(app: &AppRef, input: Result<TabInput, TabError>) {
    let app = app.clone();
    match input {
        Err(e) => warn(&e.to_string()),
        Ok(TabInput::Load { paths }) => spawn_local(async move { load(&app, paths).await }),
        Ok(TabInput::Forget { paths }) => {
            with(&app, |a| {
                let gone = a.core.forget_paths(paths);
                a.revoke_thumbs(&gone);
                a.update_status();
            });
            render_results(&app);
        }
        Ok(TabInput::Reload { .. }) => spawn_local(async move { reload(&app).await }),
    }
}

/// Reads the photos another tab saved into the index.
async fn load(app: &AppRef, paths: Vec<String>) {
    let Some(Some(store)) = with(app, |a| store_of(a)) else {
        return;
    };
    let mut stored = Vec::with_capacity(paths.len());
    for path in &paths {
        match store.get(path).await {
            Ok(Some(record)) => stored.push(record),
            Ok(None) => {}
            Err(e) => warn(&e.to_string()),
        }
    }
    with(app, |a| {
        let loaded = a.core.load_stored(stored);
        a.revoke_thumbs(&loaded);
        a.update_status();
    });
    render_results(app);
}

/// Reads the whole index again (the store was cleared since this tab read it).
async fn reload(app: &AppRef) {
    let Some(Some(store)) = with(app, |a| store_of(a)) else {
        return;
    };
    match store.load_all().await {
        Ok(loaded) => {
            with(app, |a| {
                let urls: Vec<String> = a.thumb_urls.keys().cloned().collect();
                a.revoke_thumbs(&urls);
            });
            search_input(app, SearchInput::Cleared);
            let stored = loaded.records;
            let unreadable = loaded.unreadable.len();
            run_input(app, RunInput::Reloaded { stored, unreadable });
            remembered(app, &store).await;
            render_results(app);
        }
        Err(e) => {
            let line = format!("The index changed in another tab and could not be read: {e}");
            with(app, |a| a.fail(line, true));
        }
    }
}
