//! The query encoder's life (the text tower in its own worker), as the photo encoders' is
//! in `page::run`: its messages are [`Input`]s, what the page must do about them are
//! [`Effect`]s. It loads when the worker has started; a worker that loaded another model
//! than the page is refused; a failure while loading offers Retry except under
//! `backend=webgpu` (no other engine to try), a failure after loading does not; a crash
//! starts a fresh worker, up to [`MAX_RESPAWNS`] crashes in a row with no query answered
//! between them, then the page says to reload.
//!
//! It must not know the browser or post anything (`web::workers::text` does), nor decide
//! what the search box shows (`page::search` does, told [`Effect::Ready`] and
//! [`Effect::Loading`]). Reference: issue 8, item 1 ("worker replies as inputs").

use crate::encode::{Backend, EngineKind};

/// Query-worker crashes in a row (no query answered between them) before giving up.
pub const MAX_RESPAWNS: u32 = 3;

/// What the query worker said, or what became of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The model `model_id` is open and a query worker was started for it.
    Opened {
        model_id: String,
    },
    /// The worker's wasm runs.
    Started,
    Loaded {
        model_id: String,
        engine: EngineKind,
        detail: String,
        fallback: Option<String>,
    },
    /// WebGPU failed under `backend=auto`; it runs on the CPU now.
    Switched {
        engine: EngineKind,
        detail: String,
        reason: String,
    },
    Failed(String),
    /// It answered a query (it works: the crash count starts again).
    Answered,
    Crashed(String),
    /// The model was removed: the worker is gone.
    Closed,
}

/// What the page must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the worker to load the text tower.
    Load,
    /// The search box may send texts.
    Ready,
    /// The search box waits (a fresh worker is loading).
    Loading,
    /// Stop the dead worker and start a fresh one.
    Respawn,
    /// Show this error (with the page's Retry when `retry`).
    Fail { message: String, retry: bool },
    /// Why WebGPU is not used.
    Fallback(String),
}

/// The query encoder as the page knows it.
#[derive(Debug, Clone)]
pub struct QueryEncoder {
    backend: Backend,
    model_id: Option<String>,
    ready: bool,
    engine: Option<EngineKind>,
    detail: Option<String>,
    respawns: u32,
}

impl QueryEncoder {
    /// A query encoder for the page's `backend` (none started yet).
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            model_id: None,
            ready: false,
            engine: None,
            detail: None,
            respawns: 0,
        }
    }

    /// It can take texts.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Its engine once loaded.
    pub fn engine(&self) -> Option<EngineKind> {
        self.engine
    }

    /// Its engine in words once loaded.
    pub fn detail(&self) -> Option<&String> {
        self.detail.as_ref()
    }

    pub fn update(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Opened { model_id } => {
                self.model_id = Some(model_id);
                self.ready = false;
                Vec::new()
            }
            Input::Started => vec![Effect::Load],
            Input::Loaded {
                model_id,
                engine,
                detail,
                fallback,
            } => self.loaded(&model_id, engine, detail, fallback),
            Input::Switched {
                engine,
                detail,
                reason,
            } => {
                self.engine = Some(engine);
                self.detail = Some(detail);
                vec![Effect::Fallback(reason)]
            }
            Input::Failed(error) => vec![self.failed(&error)],
            Input::Answered => {
                self.respawns = 0;
                Vec::new()
            }
            Input::Crashed(message) => self.crashed(&message),
            Input::Closed => {
                self.ready = false;
                self.model_id = None;
                Vec::new()
            }
        }
    }

    fn loaded(
        &mut self,
        model_id: &str,
        engine: EngineKind,
        detail: String,
        fallback: Option<String>,
    ) -> Vec<Effect> {
        self.engine = Some(engine);
        if self.model_id.as_deref().is_some_and(|m| m != model_id) {
            let message = "The query encoder loaded a different model than the page; reload \
                           the page."
                .to_owned();
            return vec![Effect::Fail {
                message,
                retry: false,
            }];
        }
        self.ready = true;
        self.detail = Some(detail);
        let mut out: Vec<Effect> = fallback.into_iter().map(Effect::Fallback).collect();
        out.push(Effect::Ready);
        out
    }

    fn failed(&self, error: &str) -> Effect {
        if self.ready {
            Effect::Fail {
                message: format!("The query encoder stopped: {error}"),
                retry: false,
            }
        } else {
            Effect::Fail {
                message: format!("The query encoder could not load the model: {error}"),
                retry: self.backend != Backend::WebGpu,
            }
        }
    }

    fn crashed(&mut self, message: &str) -> Vec<Effect> {
        self.ready = false;
        self.respawns += 1;
        if self.respawns > MAX_RESPAWNS {
            let message = format!("The query encoder stopped ({message}); reload the page.");
            return vec![Effect::Fail {
                message,
                retry: false,
            }];
        }
        vec![Effect::Respawn, Effect::Loading]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(model_id: &str, fallback: Option<&str>) -> Input {
        Input::Loaded {
            model_id: model_id.into(),
            engine: EngineKind::Cpu,
            detail: "CPU (WASM SIMD)".into(),
            fallback: fallback.map(str::to_owned),
        }
    }

    fn opened(backend: Backend) -> QueryEncoder {
        let mut q = QueryEncoder::new(backend);
        q.update(Input::Opened {
            model_id: "m".into(),
        });
        q
    }

    fn fail(effects: &[Effect]) -> Option<(&str, bool)> {
        effects.iter().find_map(|e| match e {
            Effect::Fail { message, retry } => Some((message.as_str(), *retry)),
            _ => None,
        })
    }

    #[test]
    fn a_started_worker_is_asked_to_load() {
        let mut q = opened(Backend::Auto);
        assert_eq!(q.update(Input::Started), vec![Effect::Load]);
        assert!(!q.ready());
    }

    #[test]
    fn a_loaded_worker_makes_the_search_ready_and_says_its_fallback() {
        let mut q = opened(Backend::Auto);
        let e = q.update(loaded("m", Some("no WebGPU adapter")));
        assert_eq!(
            e,
            vec![Effect::Fallback("no WebGPU adapter".into()), Effect::Ready]
        );
        assert!(q.ready());
        assert_eq!(q.engine(), Some(EngineKind::Cpu));
        assert_eq!(q.detail().map(String::as_str), Some("CPU (WASM SIMD)"));
    }

    #[test]
    fn a_worker_with_another_model_is_refused() {
        let mut q = opened(Backend::Auto);
        let e = q.update(loaded("other", None));
        assert_eq!(
            fail(&e),
            Some((
                "The query encoder loaded a different model than the page; reload the page.",
                false
            ))
        );
        assert!(!q.ready());
    }

    #[test]
    fn a_load_failure_offers_retry_except_under_webgpu() {
        let mut auto = opened(Backend::Auto);
        let e = auto.update(Input::Failed("out of memory".into()));
        assert_eq!(
            fail(&e),
            Some((
                "The query encoder could not load the model: out of memory",
                true
            ))
        );
        let mut gpu = opened(Backend::WebGpu);
        let e = gpu.update(Input::Failed("no adapter".into()));
        assert_eq!(fail(&e).map(|(_, retry)| retry), Some(false));
    }

    #[test]
    fn a_failure_after_loading_offers_no_retry() {
        let mut q = opened(Backend::Auto);
        q.update(loaded("m", None));
        let e = q.update(Input::Failed("device lost".into()));
        assert_eq!(
            fail(&e),
            Some(("The query encoder stopped: device lost", false))
        );
    }

    #[test]
    fn a_switch_to_the_cpu_is_said_and_kept() {
        let mut q = opened(Backend::Auto);
        q.update(loaded("m", None));
        let e = q.update(Input::Switched {
            engine: EngineKind::Cpu,
            detail: "CPU".into(),
            reason: "the GPU was lost".into(),
        });
        assert_eq!(e, vec![Effect::Fallback("the GPU was lost".into())]);
        assert_eq!(q.detail().map(String::as_str), Some("CPU"));
        assert!(q.ready(), "the switched worker still answers");
    }

    #[test]
    fn a_crash_starts_a_fresh_worker_and_three_in_a_row_give_up() {
        let mut q = opened(Backend::Auto);
        q.update(loaded("m", None));
        for _ in 0..MAX_RESPAWNS {
            assert_eq!(
                q.update(Input::Crashed("oom".into())),
                vec![Effect::Respawn, Effect::Loading]
            );
            assert!(!q.ready());
        }
        let e = q.update(Input::Crashed("oom".into()));
        assert_eq!(
            fail(&e),
            Some(("The query encoder stopped (oom); reload the page.", false))
        );
    }

    #[test]
    fn an_answer_between_crashes_starts_the_count_again() {
        let mut q = opened(Backend::Auto);
        for _ in 0..10 {
            assert_eq!(
                q.update(Input::Crashed("oom".into())),
                vec![Effect::Respawn, Effect::Loading]
            );
            q.update(Input::Answered);
        }
    }

    #[test]
    fn removing_the_model_unreadies_the_encoder() {
        let mut q = opened(Backend::Auto);
        q.update(loaded("m", None));
        q.update(Input::Closed);
        assert!(!q.ready());
    }
}
