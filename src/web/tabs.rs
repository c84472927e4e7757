//! The driver of `page::tabs` in the browser: one `BroadcastChannel` named
//! [`page::tabs::CHANNEL`](crate::page::tabs::CHANNEL) per tab, on which this tab posts
//! its [`TabMessage`]s as text and from which it reads the other tabs' messages, turned
//! into [`TabInput`]s by the tab's [`Tabs`] rules.
//!
//! It holds no rule (which message means what is `page::tabs`) and never panics on
//! re-entry: the one borrow of the shared `Tabs` is a `try_borrow_mut`, and messages that
//! arrive while it is taken wait and are read from a fresh task. A channel the browser
//! does not offer is an error the shell shows once; the page then works alone, as before.
//! Reference: the HTML Standard's BroadcastChannel (delivered to every other context of the
//! origin with the same name, never to the sender).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

use super::describe_js;
use crate::page::tabs::{TabError, TabId, TabInput, TabMessage, Tabs, CHANNEL};

/// What the shell hears from the channel.
pub type OnInput = Rc<dyn Fn(Result<TabInput, TabError>)>;

/// This tab's open channel. Dropping it closes the channel.
pub struct TabChannel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl Drop for TabChannel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}

/// A random identity for this tab (53 random bits twice, from `Math.random`: no two tabs
/// of one browser share one in practice, and nothing secret depends on it).
pub fn new_tab_id() -> TabId {
    let high = (js_sys::Math::random() * 2f64.powi(32)) as u64;
    let low = (js_sys::Math::random() * 2f64.powi(32)) as u64;
    TabId((high << 32) | low)
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TabSendError {
    #[error("the other clipseek tabs could not be told: {0}")]
    Encode(#[from] TabError),
    #[error("the other clipseek tabs could not be told: {message}")]
    Post { message: String },
}

impl TabChannel {
    /// Posts `message` to every other tab.
    pub fn send(&self, message: &TabMessage) -> Result<(), TabSendError> {
        let text = message.encode()?;
        self.channel
            .post_message(&JsValue::from_str(&text))
            .map_err(|e| TabSendError::Post {
                message: describe_js(&e),
            })
    }
}

/// Messages read from the channel and not yet given to the rules.
type Waiting = Rc<RefCell<VecDeque<String>>>;

/// Gives the waiting messages to the rules and their inputs to the shell; when the shell
/// holds the rules right now, tries again from a fresh task.
fn drain(tabs: Rc<RefCell<Tabs>>, waiting: Waiting, on_input: OnInput) {
    let borrowed = tabs.try_borrow_mut().ok().map(|mut rules| {
        let texts: Vec<String> = waiting.borrow_mut().drain(..).collect();
        texts
            .iter()
            .filter_map(|t| rules.receive(t).transpose())
            .collect::<Vec<Result<TabInput, TabError>>>()
    });
    let Some(inputs) = borrowed else {
        wasm_bindgen_futures::spawn_local(async move {
            super::sleep_ms(0.0).await;
            drain(tabs, waiting, on_input);
        });
        return;
    };
    for input in inputs {
        on_input(input);
    }
}

/// Opens this tab's channel (call once at start-up, after the store's generation is known
/// and `tabs` made with it). Each message of another tab that asks for something reaches
/// `on_input` as a [`TabInput`]; an unreadable one as its [`TabError`].
pub fn start(tabs: Rc<RefCell<Tabs>>, on_input: OnInput) -> Result<TabChannel, JsValue> {
    let channel = BroadcastChannel::new(CHANNEL)?;
    let waiting: Waiting = Rc::default();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            on_input(Err(TabError::Unreadable {
                detail: "the message was not text".into(),
            }));
            return;
        };
        waiting.borrow_mut().push_back(text);
        drain(tabs.clone(), waiting.clone(), on_input.clone());
    });
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    Ok(TabChannel {
        channel,
        _on_message: on_message,
    })
}
