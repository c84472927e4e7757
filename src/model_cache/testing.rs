//! Test support for the engine's native tests: a scripted hub serving the tiny CLIP
//! fixture (Range, ETags, `X-Linked-Etag`, faults), a host with a virtual clock, and
//! [`block_on`] for futures that never truly wait (every fake here answers at once).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::{Answer, Env, Hub};
use crate::hub::{to_hex, ModelSource, WEIGHTS_FILE};

pub use crate::page::testing::block_on;

pub(super) const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/tiny-clip/config.json");
pub(super) const PREPROCESSOR: &[u8] =
    include_bytes!("../../tests/fixtures/tiny-clip/preprocessor_config.json");
pub(super) const TOKENIZER: &[u8] = include_bytes!("../../tests/fixtures/tiny-clip/tokenizer.json");
pub(super) const WEIGHTS: &[u8] =
    include_bytes!("../../tests/fixtures/tiny-clip/model.safetensors");
pub(super) const PIECE: usize = 64 << 10;

/// What the next GET of a file suffers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fault {
    /// The request fails before any answer.
    Network,
    /// The hub answers this status with an empty body.
    Status(u16),
    /// The hub answers this status with an empty body and this `Retry-After` header.
    Busy(u16, &'static str),
    /// The body breaks after this many bytes of the answer.
    Cut(usize),
    /// Byte `at` of the file arrives flipped.
    Corrupt(usize),
    /// The body stops after this many bytes of the answer, the connection left open.
    Stall(usize),
    /// The request is never answered (no status, no headers).
    Hang,
    /// The answer claims the file has this many bytes (Content-Range total and
    /// Content-Length), whatever it holds.
    Claim(u64),
}

/// Something done while the hub is answering: once `after` bytes of `url`'s bodies were
/// handed out, before the piece that reached it is (a person pressing a button while a
/// request is in flight, the hub replacing a file).
pub(super) struct Hook {
    pub(super) url: String,
    pub(super) after: usize,
    pub(super) run: Box<dyn FnOnce()>,
}

#[derive(Debug, Clone)]
pub(super) struct Served {
    pub(super) bytes: Vec<u8>,
    pub(super) etag: Option<String>,
    /// Sent as `X-Linked-Etag` (the file's SHA-256) when set.
    pub(super) linked_sha: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Request {
    pub(super) file: String,
    /// `HEAD` requests are logged with `head` set (and no range).
    pub(super) head: bool,
    pub(super) range: Option<String>,
    pub(super) status: u16,
}

#[derive(Default)]
pub(super) struct HubState {
    pub(super) files: BTreeMap<String, Served>,
    pub(super) faults: BTreeMap<String, VecDeque<Fault>>,
    pub(super) log: Vec<Request>,
    /// Bytes of the answers' bodies handed out, per file.
    pub(super) sent: BTreeMap<String, usize>,
    pub(super) ignore_range: bool,
    pub(super) aborted: u32,
    pub(super) hook: Option<Hook>,
}

#[derive(Clone, Default)]
pub(super) struct FakeHub(pub(super) Rc<RefCell<HubState>>);

pub(super) fn source() -> ModelSource {
    ModelSource::from_params(
        Some("http://127.0.0.1:9"),
        Some("test/tiny-clip"),
        Some("main"),
        Some("256"),
    )
    .unwrap_or_default()
}

impl FakeHub {
    /// The tiny model; the weights' SHA-256 in `X-Linked-Etag` when `linked_sha`.
    pub(super) fn tiny(linked_sha: bool) -> Self {
        let hub = Self::default();
        for (file, bytes) in [
            ("config.json", CONFIG),
            ("preprocessor_config.json", PREPROCESSOR),
            ("tokenizer.json", TOKENIZER),
        ] {
            hub.serve(file, bytes.to_vec(), Some("\"json\"".into()), false);
        }
        hub.serve(
            WEIGHTS_FILE,
            WEIGHTS.to_vec(),
            Some("\"w1\"".into()),
            linked_sha,
        );
        hub
    }

    pub(super) fn serve(&self, file: &str, bytes: Vec<u8>, etag: Option<String>, linked_sha: bool) {
        let url = source().url(file);
        self.0.borrow_mut().files.insert(
            url,
            Served {
                bytes,
                etag,
                linked_sha,
            },
        );
    }

    pub(super) fn fault(&self, file: &str, fault: Fault) {
        let url = source().url(file);
        self.0
            .borrow_mut()
            .faults
            .entry(url)
            .or_default()
            .push_back(fault);
    }

    /// Runs `run` once `after` bytes of `file` were handed out (see [`Hook`]).
    pub(super) fn when_sent(&self, file: &str, after: usize, run: impl FnOnce() + 'static) {
        self.0.borrow_mut().hook = Some(Hook {
            url: source().url(file),
            after,
            run: Box::new(run),
        });
    }

    pub(super) fn requests(&self, file: &str) -> Vec<Request> {
        self.0
            .borrow()
            .log
            .iter()
            .filter(|r| r.file == file)
            .cloned()
            .collect()
    }

    pub(super) fn sent(&self, file: &str) -> usize {
        self.0
            .borrow()
            .sent
            .get(&source().url(file))
            .copied()
            .unwrap_or(0)
    }
}

pub(super) fn parse_range(range: &str, size: usize) -> Option<(usize, usize)> {
    let (a, b) = range.strip_prefix("bytes=")?.split_once('-')?;
    let start: usize = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        b.parse::<usize>().ok()? + 1
    };
    (start < size && start < end).then_some((start, end.min(size)))
}

pub(super) struct FakeAnswer {
    hub: FakeHub,
    url: String,
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    pos: usize,
    cut: Option<usize>,
    stall: Option<usize>,
}

/// Fills `answer` as the hub serves `served` for `range` (none: the whole file).
fn serve_into(
    answer: &mut FakeAnswer,
    served: &Served,
    range: Option<&str>,
    fault: Option<&Fault>,
) {
    let size = served.bytes.len();
    let mut body = served.bytes.clone();
    if let Some(Fault::Corrupt(at)) = fault {
        let at = *at;
        if let Some(b) = body.get_mut(at) {
            *b ^= 0xff;
        }
    }
    let ranged = range.map(|r| parse_range(r, size));
    match ranged {
        Some(None) => answer.status = 416,
        Some(Some((start, end))) => {
            answer.status = 206;
            answer
                .headers
                .push(("content-range", format!("bytes {start}-{}/{size}", end - 1)));
            answer.body = body.get(start..end).unwrap_or_default().to_vec();
        }
        None => {
            answer.status = 200;
            answer.body = body;
        }
    }
    answer
        .headers
        .push(("content-length", answer.body.len().to_string()));
    if let Some(etag) = served.etag.clone() {
        answer.headers.push(("etag", etag));
    }
    if served.linked_sha {
        answer.headers.push((
            "x-linked-etag",
            format!("\"{}\"", to_hex(&Sha256::digest(&served.bytes))),
        ));
    }
}

impl Hub for FakeHub {
    type Answer = FakeAnswer;

    async fn get(&self, url: &str, range: Option<&str>) -> Result<FakeAnswer, String> {
        let fault = self
            .0
            .borrow_mut()
            .faults
            .get_mut(url)
            .and_then(VecDeque::pop_front);
        let file = url.rsplit('/').next().unwrap_or_default().to_owned();
        if fault == Some(Fault::Hang) {
            self.0.borrow_mut().log.push(Request {
                file,
                head: false,
                range: range.map(str::to_owned),
                status: 0,
            });
            return std::future::pending().await;
        }
        let mut s = self.0.borrow_mut();
        let mut answer = FakeAnswer {
            hub: self.clone(),
            url: url.to_owned(),
            status: 404,
            headers: vec![],
            body: vec![],
            pos: 0,
            cut: None,
            stall: None,
        };
        if fault == Some(Fault::Network) {
            s.log.push(Request {
                file,
                head: false,
                range: range.map(str::to_owned),
                status: 0,
            });
            return Err("Failed to fetch".into());
        }
        if let Some(served) = s.files.get(url) {
            let range = range.filter(|_| !s.ignore_range);
            serve_into(&mut answer, served, range, fault.as_ref());
        }
        match fault {
            Some(Fault::Status(code)) => {
                answer.status = code;
                answer.body.clear();
            }
            Some(Fault::Busy(code, after)) => {
                answer.status = code;
                answer.body.clear();
                answer.headers.push(("retry-after", after.to_string()));
            }
            Some(Fault::Cut(n)) => answer.cut = Some(n),
            Some(Fault::Stall(n)) => answer.stall = Some(n),
            Some(Fault::Claim(n)) => {
                answer
                    .headers
                    .retain(|(k, _)| *k != "content-range" && *k != "content-length");
                answer.headers.push((
                    "content-range",
                    format!("bytes 0-{}/{n}", n.saturating_sub(1)),
                ));
                answer.headers.push(("content-length", n.to_string()));
            }
            _ => {}
        }
        s.log.push(Request {
            file,
            head: false,
            range: range.map(str::to_owned),
            status: answer.status,
        });
        Ok(answer)
    }

    /// The GET's answer (faults included) without its body.
    async fn head(&self, url: &str) -> Result<FakeAnswer, String> {
        let answer = self.get(url, None).await;
        if let Some(last) = self.0.borrow_mut().log.last_mut() {
            last.head = true;
        }
        let mut answer = answer?;
        answer.body.clear();
        Ok(answer)
    }

    fn abort(&self) {
        self.0.borrow_mut().aborted += 1;
    }
}

impl Answer for FakeAnswer {
    fn status(&self) -> u16 {
        self.status
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.cut.is_some_and(|c| self.pos >= c) {
            return Err("network error".into());
        }
        if self.stall.is_some_and(|c| self.pos >= c) {
            return std::future::pending().await;
        }
        let limit = self
            .cut
            .or(self.stall)
            .unwrap_or(usize::MAX)
            .min(self.body.len());
        if self.pos >= self.body.len() {
            return Ok(None);
        }
        let end = (self.pos + PIECE)
            .min(limit.max(self.pos + 1))
            .min(self.body.len());
        let piece = self.body.get(self.pos..end).unwrap_or_default().to_vec();
        self.pos = end;
        let hook = {
            let mut s = self.hub.0.borrow_mut();
            let sent = s.sent.entry(self.url.clone()).or_default();
            *sent += piece.len();
            let sent = *sent;
            let due = s
                .hook
                .as_ref()
                .is_some_and(|h| h.url == self.url && sent >= h.after);
            if due {
                s.hook.take()
            } else {
                None
            }
        };
        if let Some(hook) = hook {
            (hook.run)();
        }
        Ok(Some(piece))
    }

    async fn release(&mut self) {
        self.pos = self.body.len();
    }
}

#[derive(Default)]
pub(super) struct EnvState {
    pub(super) now_ms: Cell<f64>,
    pub(super) sleeps: RefCell<Vec<f64>>,
    pub(super) offline: Cell<bool>,
    pub(super) blocked: Cell<bool>,
    pub(super) warnings: RefCell<Vec<String>>,
}

#[derive(Clone, Default)]
pub(super) struct FakeEnv(pub(super) Rc<EnvState>);

impl Env for FakeEnv {
    fn now_ms(&self) -> f64 {
        // Each look at the clock moves it on, so throttled reports still come.
        let t = self.0.now_ms.get() + 50.0;
        self.0.now_ms.set(t);
        t
    }

    async fn sleep_ms(&self, ms: f64) {
        self.0.sleeps.borrow_mut().push(ms);
        self.0.now_ms.set(self.0.now_ms.get() + ms);
    }

    fn online(&self) -> bool {
        !self.0.offline.get()
    }

    fn blocked(&self, _hub: &str) -> bool {
        self.0.blocked.get()
    }

    fn warn(&self, message: &str) {
        self.0.warnings.borrow_mut().push(message.to_owned());
    }
}
