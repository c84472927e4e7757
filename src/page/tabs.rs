//! Two tabs of the page on one store: the messages they send each other (typed here, sent
//! by `web::tabs` over a `BroadcastChannel`), the rule that turns a message into what this
//! tab must do ([`TabInput`]), and the two guards that keep tabs from undoing each other:
//!
//! - *Names that cannot clash.* Photos are keyed by their stored path (`DCIM (2)/x.jpg`).
//!   A new folder's name is claimed in the store ([`Tabs::claims_for`], then
//!   `PhotoStore::claim`, atomic across tabs) before its photos are saved, and every save
//!   into it names the claim ([`Tabs::guard`]): two tabs that both pick `DCIM (2)` at the
//!   same moment get one claim each try, and the loser places its drop again with that
//!   name taken (`Known::reserve_root`), so it becomes `DCIM (3)`.
//! - *A clear is not undone.* The store keeps a generation, moved on by every clear; each
//!   save names the generation its photos belong to and is refused by the store when the
//!   generation moved ([`super::photo_store::PhotoStoreError::Cleared`]). A tab that learns
//!   of a clear (a message, or a refused save) reloads from the store.
//!
//! It must not know the browser (no `BroadcastChannel` here) or touch the store: the shell
//! carries out the inputs. Messages are JSON text with a version, so a message of another
//! clipseek version is an error, not a misread. Reference: the HTML Standard's
//! BroadcastChannel (a message reaches every other context of the origin, not the sender);
//! issue 8, item 5, "Two tabs".

use serde::{Deserialize, Serialize};

use super::library::FolderPlace;
use super::photo_store::{Claim, PhotoStoreError, SaveGuard};

/// This version of the messages.
pub const WIRE_VERSION: u32 = 1;

/// The channel's name.
pub const CHANNEL: &str = "clipseek-index";

/// One tab's identity, random per page load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TabId(pub u64);

impl TabId {
    /// The owner string of this tab's claim number `n`.
    pub fn owner(self, n: u32) -> String {
        format!("{:016x}/{n}", self.0)
    }
}

/// Tab → every other tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TabMessage {
    /// These photos were saved (added or replaced) at this generation.
    PhotosAdded {
        from: TabId,
        generation: u64,
        paths: Vec<String>,
    },
    /// These photos were removed from the store.
    PhotosRemoved {
        from: TabId,
        generation: u64,
        paths: Vec<String>,
    },
    /// The index was cleared; the store is now at `generation`.
    IndexCleared { from: TabId, generation: u64 },
}

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    msg: serde_json::Value,
}

/// A message this tab cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TabError {
    #[error("a message from another clipseek tab could not be read: {detail}")]
    Unreadable { detail: String },
    #[error("another clipseek tab runs version {found} of the tab messages, this one {expected}; reload both tabs")]
    OtherVersion { found: u32, expected: u32 },
}

impl TabMessage {
    /// The text sent on the channel.
    pub fn encode(&self) -> Result<String, TabError> {
        let msg = serde_json::to_value(self).map_err(|e| TabError::Unreadable {
            detail: e.to_string(),
        })?;
        serde_json::to_string(&Wire {
            v: WIRE_VERSION,
            msg,
        })
        .map_err(|e| TabError::Unreadable {
            detail: e.to_string(),
        })
    }

    /// A message read back from its text.
    pub fn decode(text: &str) -> Result<Self, TabError> {
        let wire: Wire = serde_json::from_str(text).map_err(|e| TabError::Unreadable {
            detail: e.to_string(),
        })?;
        if wire.v != WIRE_VERSION {
            return Err(TabError::OtherVersion {
                found: wire.v,
                expected: WIRE_VERSION,
            });
        }
        serde_json::from_value(wire.msg).map_err(|e| TabError::Unreadable {
            detail: e.to_string(),
        })
    }

    pub fn from(&self) -> TabId {
        match self {
            TabMessage::PhotosAdded { from, .. }
            | TabMessage::PhotosRemoved { from, .. }
            | TabMessage::IndexCleared { from, .. } => *from,
        }
    }
}

/// What this tab must do about another tab's message (or a refused save).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TabInput {
    /// Read these photos from the store (`PhotoStore::get`) into the in-memory index.
    Load { paths: Vec<String> },
    /// Drop these photos from the in-memory index (`EmbeddingIndex::remove_paths`); the
    /// store no longer holds them.
    Forget { paths: Vec<String> },
    /// The store was cleared since this tab read it: empty the in-memory index, the
    /// skipped list and the forget offer, then `load_all` again (photos another tab saved
    /// after the clear come back with it). The tab is now at `generation`.
    Reload { generation: u64 },
}

/// This tab's side of the rules.
#[derive(Debug, Clone)]
pub struct Tabs {
    id: TabId,
    generation: u64,
    claims_made: u32,
}

impl Tabs {
    /// A tab with identity `id` that loaded the store at `generation`.
    pub fn new(id: TabId, generation: u64) -> Self {
        Self {
            id,
            generation,
            claims_made: 0,
        }
    }

    pub fn id(&self) -> TabId {
        self.id
    }

    /// The generation this tab's in-memory index belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Claims for the new folders of a placed drop (`FolderPlace::same` false), each with
    /// an owner no other claim of any tab has.
    pub fn claims_for(&mut self, folders: &[FolderPlace]) -> Vec<Claim> {
        folders
            .iter()
            .filter(|f| !f.same)
            .map(|f| {
                self.claims_made = self.claims_made.wrapping_add(1);
                Claim {
                    name: f.root.clone(),
                    owner: self.id.owner(self.claims_made),
                }
            })
            .collect()
    }

    /// What a save of this tab must find in the store.
    pub fn guard(&self, claims: Vec<Claim>) -> SaveGuard {
        SaveGuard {
            generation: self.generation,
            claims,
        }
    }

    /// The message after this tab saved `paths`.
    pub fn added(&self, paths: Vec<String>) -> TabMessage {
        TabMessage::PhotosAdded {
            from: self.id,
            generation: self.generation,
            paths,
        }
    }

    /// The message after this tab removed `paths` from the store.
    pub fn removed(&self, paths: Vec<String>) -> TabMessage {
        TabMessage::PhotosRemoved {
            from: self.id,
            generation: self.generation,
            paths,
        }
    }

    /// This tab cleared the store, which is now at `generation`: adopt it and tell the
    /// others.
    pub fn cleared(&mut self, generation: u64) -> TabMessage {
        self.generation = generation;
        TabMessage::IndexCleared {
            from: self.id,
            generation,
        }
    }

    /// What to do about a message from the channel; `None` when there is nothing to do
    /// (this tab's own, or news from before a clear this tab already applied).
    pub fn receive(&mut self, text: &str) -> Result<Option<TabInput>, TabError> {
        let msg = TabMessage::decode(text)?;
        if msg.from() == self.id {
            return Ok(None);
        }
        Ok(match msg {
            TabMessage::IndexCleared { generation, .. }
            | TabMessage::PhotosAdded { generation, .. }
            | TabMessage::PhotosRemoved { generation, .. }
                if generation > self.generation =>
            {
                self.generation = generation;
                Some(TabInput::Reload { generation })
            }
            TabMessage::PhotosAdded {
                generation, paths, ..
            } if generation == self.generation && !paths.is_empty() => {
                Some(TabInput::Load { paths })
            }
            TabMessage::PhotosRemoved {
                generation, paths, ..
            } if generation == self.generation && !paths.is_empty() => {
                Some(TabInput::Forget { paths })
            }
            _ => None,
        })
    }

    /// What to do when the store refused a save: a clear elsewhere means reload at the
    /// store's generation (the photos were not saved; the in-memory index must not claim
    /// them). Other refusals are the shell's to show.
    pub fn save_refused(&mut self, error: &PhotoStoreError) -> Option<TabInput> {
        match error {
            PhotoStoreError::Cleared { stored, .. } if *stored > self.generation => {
                self.generation = *stored;
                Some(TabInput::Reload {
                    generation: *stored,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "tabs_tests.rs"]
mod tests;
