//! CLIP itself, without I/O: configuration, weights, tokenizer and image preprocessing.
//! Callers hand in bytes; nothing here touches files, the network or the browser.

pub mod config;
pub mod preprocess;
pub mod sentence;
pub mod sentence_load;
pub mod synthetic;
pub mod thumbnail;
pub mod tokenizer;
pub mod torch_bin;
pub mod weights;

pub use config::{Activation, ClipConfig, ConfigError, PreprocessConfig, TextConfig, VisionConfig};
