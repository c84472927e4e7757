//! Whether the page may start the model download by itself. A link that names a model
//! (`hub`, `model` or `revision` in the URL) was made by someone else: before it makes the
//! browser fetch hundreds of megabytes, the page learns the weights' size (one ranged
//! request for their first byte, `model_cache::weights_size`), shows it, and waits for the
//! person to press "Download". A model below [`ASK_ABOVE_BYTES`] (test models, a few MB)
//! starts at once, as does a download the person began earlier (a partial one resumes:
//! the driver never asks then). Without a link nothing starts until the person presses
//! the button or drops photos, as before.
//!
//! `update` takes one [`Input`] and returns the [`Effect`]s (look the size up, start the
//! download); [`ModelOffer::view`] is the button's label and the sentence `#status` says
//! while the page waits. It must not fetch or touch the DOM (`web::model` drives it).
//! Reference: issue 10, item 7 ("a `model=` link shows the download size and asks").

use crate::hub::{format_bytes, ModelSource};

/// Weights at least this large are asked for (32 MiB: every real CLIP checkpoint is
/// 150 MB or more, test models are under 10 MB).
pub const ASK_ABOVE_BYTES: u64 = 32 << 20;
/// The size lookup is given up after this long: the question is asked without a size.
pub const SIZE_TIMEOUT_MS: u32 = 10_000;
/// The button's label while nothing is known of the size.
pub const PLAIN_BUTTON: &str = "Download the model";

/// Where the question stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// No link named the model: the person's own press or drop starts the download.
    Quiet,
    /// A link named the model; its size is being looked up.
    Sizing,
    /// The person is asked, with the size when the hub told it (else why not).
    Asking { size: Result<u64, String> },
    /// The download was chosen, or needed no question.
    Chosen,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Nothing of this model is stored. `linked`: the URL names the model;
    /// `drops_waiting`: photos were dropped before the page had looked.
    Empty { linked: bool, drops_waiting: bool },
    /// The size lookup answered.
    Sized(Result<u64, String>),
    /// The size lookup took longer than [`SIZE_TIMEOUT_MS`].
    SizeTimedOut,
    /// "Download the model" was pressed.
    Pressed,
    /// Photos were dropped or picked while no model is stored.
    Dropped,
    /// The model was removed: the next drop or press starts a download again.
    Removed,
}

/// What the browser must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Look up the weights' size; answer with [`Input::Sized`], or [`Input::SizeTimedOut`]
    /// after `timeout_ms`.
    LookUpSize { timeout_ms: u32 },
    /// Start (or resume) the download.
    Download,
}

/// What the page shows while no model is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `#download-model`'s label.
    pub button: String,
    /// `#status`'s sentence; `None`: the page's usual one.
    pub status: Option<String>,
}

/// The question and what it knows.
#[derive(Debug, Clone)]
pub struct ModelOffer {
    stage: Stage,
    /// "MODEL (revision REV) from HUB".
    what: String,
    drops_waiting: bool,
}

impl ModelOffer {
    pub fn new(source: &ModelSource) -> Self {
        Self {
            stage: Stage::Quiet,
            what: format!(
                "{} (revision {}) from {}",
                source.model, source.revision, source.hub
            ),
            drops_waiting: false,
        }
    }

    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    pub fn update(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Empty {
                linked,
                drops_waiting,
            } => {
                self.drops_waiting |= drops_waiting;
                if linked {
                    self.stage = Stage::Sizing;
                    return vec![Effect::LookUpSize {
                        timeout_ms: SIZE_TIMEOUT_MS,
                    }];
                }
                if self.drops_waiting {
                    return self.choose();
                }
                self.stage = Stage::Quiet;
                vec![]
            }
            Input::Sized(size) if self.stage == Stage::Sizing => match size {
                Ok(bytes) if bytes < ASK_ABOVE_BYTES => self.choose(),
                size => {
                    self.stage = Stage::Asking { size };
                    vec![]
                }
            },
            Input::SizeTimedOut if self.stage == Stage::Sizing => {
                let why = format!("the hub did not answer within {} s", SIZE_TIMEOUT_MS / 1000);
                self.stage = Stage::Asking { size: Err(why) };
                vec![]
            }
            // An answer after the person chose, or after the time ran out: nothing to do.
            Input::Sized(_) | Input::SizeTimedOut => vec![],
            Input::Pressed => self.choose(),
            Input::Dropped => {
                self.drops_waiting = true;
                match self.stage {
                    Stage::Quiet => self.choose(),
                    // A drop is no answer to the question: the photos wait for the press.
                    Stage::Sizing | Stage::Asking { .. } | Stage::Chosen => vec![],
                }
            }
            Input::Removed => {
                self.stage = Stage::Quiet;
                self.drops_waiting = false;
                vec![]
            }
        }
    }

    fn choose(&mut self) -> Vec<Effect> {
        if self.stage == Stage::Chosen {
            return vec![];
        }
        self.stage = Stage::Chosen;
        vec![Effect::Download]
    }

    pub fn view(&self) -> View {
        let waiting = if self.drops_waiting {
            " Your photos will be indexed once it is downloaded."
        } else {
            ""
        };
        match &self.stage {
            Stage::Quiet | Stage::Chosen => View {
                button: PLAIN_BUTTON.to_owned(),
                status: None,
            },
            Stage::Sizing => View {
                button: PLAIN_BUTTON.to_owned(),
                status: Some(format!(
                    "This link asks for the model {}. Looking up how large it is…{waiting}",
                    self.what
                )),
            },
            Stage::Asking { size: Ok(bytes) } => {
                let size = format_bytes(*bytes as f64);
                let button = format!("{PLAIN_BUTTON} ({size})");
                let status = format!(
                    "This link asks for the model {}: {size} to download once, then kept in \
                     this browser. Press \"{button}\" to fetch it.{waiting}",
                    self.what
                );
                View {
                    button,
                    status: Some(status),
                }
            }
            Stage::Asking { size: Err(why) } => View {
                button: PLAIN_BUTTON.to_owned(),
                status: Some(format!(
                    "This link asks for the model {}, but how large it is could not be learned \
                     ({why}); CLIP models are hundreds of megabytes. Press \"{PLAIN_BUTTON}\" \
                     to fetch it anyway.{waiting}",
                    self.what
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> ModelOffer {
        let source = ModelSource::from_params(
            Some("https://mirror.example"),
            Some("org/clip-big"),
            Some("main"),
            None,
        )
        .unwrap_or_default();
        ModelOffer::new(&source)
    }

    const LINKED: Input = Input::Empty {
        linked: true,
        drops_waiting: false,
    };
    const LOOK: Effect = Effect::LookUpSize {
        timeout_ms: SIZE_TIMEOUT_MS,
    };

    #[test]
    fn a_link_to_a_large_model_asks_with_its_size_and_waits_for_the_press() {
        let mut o = offer();
        assert_eq!(o.update(LINKED), vec![LOOK]);
        assert!(o.view().status.unwrap_or_default().contains("Looking up"));
        assert_eq!(o.update(Input::Sized(Ok(605_000_000))), vec![]);
        let view = o.view();
        assert_eq!(view.button, "Download the model (605.0 MB)");
        let status = view.status.unwrap_or_default();
        assert!(
            status.starts_with(
                "This link asks for the model org/clip-big (revision main) from \
                 https://mirror.example: 605.0 MB to download once"
            ),
            "{status}"
        );
        assert_eq!(o.update(Input::Pressed), vec![Effect::Download]);
        assert_eq!(o.stage(), &Stage::Chosen);
        assert_eq!(
            o.update(Input::Pressed),
            vec![],
            "a second press starts nothing"
        );
    }

    #[test]
    fn a_small_model_starts_without_a_question() {
        let mut o = offer();
        o.update(LINKED);
        let small = ASK_ABOVE_BYTES - 1;
        assert_eq!(o.update(Input::Sized(Ok(small))), vec![Effect::Download]);
        let mut o = offer();
        o.update(LINKED);
        assert_eq!(o.update(Input::Sized(Ok(ASK_ABOVE_BYTES))), vec![]);
        assert!(matches!(o.stage(), Stage::Asking { size: Ok(_) }));
    }

    #[test]
    fn an_unknown_size_still_asks_and_says_why() {
        let mut o = offer();
        o.update(LINKED);
        o.update(Input::Sized(Err("the hub answered HTTP 503".into())));
        let status = o.view().status.unwrap_or_default();
        assert!(status.contains("(the hub answered HTTP 503)"), "{status}");
        assert!(status.contains("hundreds of megabytes"), "{status}");
        assert_eq!(o.view().button, PLAIN_BUTTON);

        let mut o = offer();
        o.update(LINKED);
        assert_eq!(o.update(Input::SizeTimedOut), vec![]);
        let status = o.view().status.unwrap_or_default();
        assert!(status.contains("did not answer within 10 s"), "{status}");
        // The answer that comes after all changes nothing: the question stands.
        assert_eq!(o.update(Input::Sized(Ok(1))), vec![]);
        assert!(matches!(o.stage(), Stage::Asking { size: Err(_) }));
    }

    #[test]
    fn a_drop_is_no_answer_to_the_question() {
        let mut o = offer();
        o.update(LINKED);
        assert_eq!(o.update(Input::Dropped), vec![]);
        o.update(Input::Sized(Ok(605_000_000)));
        assert_eq!(o.update(Input::Dropped), vec![]);
        let status = o.view().status.unwrap_or_default();
        assert!(status.ends_with("Your photos will be indexed once it is downloaded."));
        assert_eq!(o.update(Input::Pressed), vec![Effect::Download]);
    }

    #[test]
    fn pressing_while_the_size_is_looked_up_downloads_and_the_late_answer_is_ignored() {
        let mut o = offer();
        o.update(LINKED);
        assert_eq!(o.update(Input::Pressed), vec![Effect::Download]);
        assert_eq!(o.update(Input::Sized(Ok(605_000_000))), vec![]);
        assert_eq!(o.stage(), &Stage::Chosen);
    }

    #[test]
    fn without_a_link_the_persons_press_or_drop_starts_it() {
        let mut o = offer();
        let quiet = Input::Empty {
            linked: false,
            drops_waiting: false,
        };
        assert_eq!(o.update(quiet.clone()), vec![]);
        assert_eq!(o.view().status, None);
        assert_eq!(o.update(Input::Dropped), vec![Effect::Download]);

        let mut o = offer();
        let dropped_early = Input::Empty {
            linked: false,
            drops_waiting: true,
        };
        assert_eq!(o.update(dropped_early), vec![Effect::Download]);

        // After "Remove model", a drop starts the download again even if a link named it.
        let mut o = offer();
        o.update(LINKED);
        o.update(Input::Pressed);
        o.update(Input::Removed);
        assert_eq!(o.update(Input::Dropped), vec![Effect::Download]);
    }
}
