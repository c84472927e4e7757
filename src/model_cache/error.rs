//! Why a model could not be downloaded or read, as one plain sentence per case; the page
//! shows it as it is. It must not carry browser types: storage failures arrive as
//! [`StoreError`].

use super::store::StoreError;

/// Why the model could not be downloaded or read. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DownloadError {
    #[error("You are offline and the model has not been downloaded yet. Connect to the internet once to download it; after that clipseek works offline.")]
    Offline,
    #[error("The connection to the model hub at {hub} failed several times ({detail}). {saved} of the model are saved and will not be fetched again; press Retry to continue.")]
    Unreachable {
        hub: String,
        detail: String,
        saved: String,
    },
    #[error("The model hub at {hub} kept answering with an error (HTTP {status}: it is busy or down). {saved} of the model are saved and will not be fetched again; press Retry later.")]
    HubFailing {
        hub: String,
        status: u16,
        saved: String,
    },
    #[error("The hub says {file} is {size}, more than any CLIP model's file can be ({limit} at most), so it was not downloaded; the hub or the model link is wrong.")]
    TooLarge {
        file: String,
        size: String,
        limit: String,
    },
    #[error("This page's security policy does not allow connecting to {hub}. A mirror must be on this page's own site or listed under connect-src in index.html.")]
    Blocked { hub: String },
    #[error("The hub has no {file} for {model} at revision {revision}.")]
    NotFound {
        file: String,
        model: String,
        revision: String,
    },
    #[error("{model} at revision {revision} publishes only pytorch_model.bin; clipseek needs model.safetensors, so choose a revision that has it.")]
    OnlyPytorch { model: String, revision: String },
    #[error("The hub refused to send {file} (HTTP {status}); the model may be private or gated.")]
    Refused { file: String, status: u16 },
    #[error("The hub answered HTTP {status} for {file}.")]
    Http { file: String, status: u16 },
    #[error("The browser has no room left to store the model (it needs about {needed} in all). Free some disk space or allow this site more storage, then press Retry.")]
    Quota { needed: String },
    #[error("The model could not be saved in the browser's storage. {0}")]
    Storage(StoreError),
    #[error("The downloaded {file} does not match the SHA-256 checksum the hub published, even after downloading it again.")]
    Checksum { file: String },
    #[error("The downloaded {file} is not usable: {message}")]
    BadFile { file: String, message: String },
    #[error("The hub changed {file} while it was downloading, twice; try again later.")]
    Unstable { file: String },
    #[error("The model is not completely downloaded and checked yet.")]
    NotVerified,
    #[error("The download was stopped.")]
    Cancelled,
}

impl From<StoreError> for DownloadError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full => Self::Quota {
                needed: "the model's size".into(),
            },
            other => Self::Storage(other),
        }
    }
}
