//! How large a model is before it is downloaded: one HEAD of the weights, whose
//! `Content-Length` (else `X-Linked-Size`, which the hub's own answer carries before it
//! redirects to its CDN) is the file's size. The page shows it and asks before a link makes
//! it fetch hundreds of megabytes (`page::offer`). A HEAD, not a one-byte GET: it moves no
//! byte of the file, and the download's own GETs (and the test hub's faults, which apply
//! to GETs) are left as they were.
//!
//! It must not store or decide anything: a failure is returned as a sentence for the page
//! to show beside its question, never an error that stops the page. Reference: RFC 9110
//! §9.3.2 (HEAD); `huggingface_hub.get_hf_file_metadata` asks the same way.

use super::net::{Answer, Hub};
use super::rules;
use crate::hub::{ModelSource, WEIGHTS_FILE};

/// The size in bytes of `source`'s weights, or why it is not known.
pub async fn weights_size<H: Hub>(hub: &H, source: &ModelSource) -> Result<u64, String> {
    let url = source.url(WEIGHTS_FILE);
    let answer = hub
        .head(&url)
        .await
        .map_err(|e| format!("the hub could not be reached ({e})"))?;
    let status = answer.status();
    let size = rules::size_from_headers(&answer.headers());
    match (status, size) {
        (200, Some(size)) => Ok(size),
        (200, None) => Err("the hub did not say how large the model is".into()),
        (404, _) => Err(format!("the hub has no {WEIGHTS_FILE} for this model")),
        (status, _) => Err(format!("the hub answered HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{block_on, source, FakeHub, Fault, WEIGHTS};
    use super::*;

    #[test]
    fn the_size_comes_from_one_head_request() -> Result<(), String> {
        let hub = FakeHub::tiny(true);
        let size = block_on(weights_size(&hub, &source()))??;
        assert_eq!(size, WEIGHTS.len() as u64);
        let asked = hub.requests(WEIGHTS_FILE);
        assert_eq!(asked.len(), 1);
        assert!(asked[0].head, "{asked:?}");
        assert_eq!(hub.sent(WEIGHTS_FILE), 0, "no byte of the file moves");
        Ok(())
    }

    #[test]
    fn failures_are_sentences() -> Result<(), String> {
        let hub = FakeHub::tiny(true);
        hub.fault(WEIGHTS_FILE, Fault::Network);
        let e = block_on(weights_size(&hub, &source()))?
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("the hub could not be reached"), "{e}");
        hub.fault(WEIGHTS_FILE, Fault::Status(503));
        let e = block_on(weights_size(&hub, &source()))?
            .err()
            .unwrap_or_default();
        assert_eq!(e, "the hub answered HTTP 503");
        let empty = FakeHub::default();
        let e = block_on(weights_size(&empty, &source()))?
            .err()
            .unwrap_or_default();
        assert_eq!(e, "the hub has no model.safetensors for this model");
        Ok(())
    }

    #[test]
    fn a_claimed_size_is_reported_as_claimed() -> Result<(), String> {
        let hub = FakeHub::tiny(true);
        hub.fault(WEIGHTS_FILE, Fault::Claim(605 << 20));
        assert_eq!(block_on(weights_size(&hub, &source()))??, 605 << 20);
        Ok(())
    }
}
