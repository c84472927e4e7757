//! Test support for the native tests of the page and the model cache: [`block_on`] for
//! futures that never truly wait (the in-memory stores and fakes answer at once). Tests
//! only.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` to completion; an error if it ever waits for something (nothing in these
/// tests can wake it).
pub fn block_on<T>(future: impl Future<Output = T>) -> Result<T, String> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Ok(v);
        }
    }
    Err("the future waited for something that never comes".into())
}
