//! The response body, timed to its end.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::record::{Failure, RequestRecord};

pin_project! {
    /// A response body that records its request when it ends (last frame
    /// polled, or the body reports its end), fails (counted as
    /// `body_error`) or is dropped before its end (`cancelled`: the client
    /// went away mid-stream). Frames pass through unchanged.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        record: Option<RequestRecord>,
    }
}

impl<B> TimedBody<B> {
    pub(crate) fn new(inner: B, record: Option<RequestRecord>) -> Self {
        TimedBody { inner, record }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for TimedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedBody")
            .field("inner", &self.inner)
            .field("recorded", &self.record.is_none())
            .finish()
    }
}

impl<B: Body> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        let failure = match &polled {
            None => Some(None),
            Some(Err(_)) => Some(Some(Failure::BodyError)),
            // A server may stop polling once the body says it has ended.
            Some(Ok(_)) if this.inner.is_end_stream() => Some(None),
            Some(Ok(_)) => None,
        };
        if let Some(failure) = failure {
            if let Some(mut record) = this.record.take() {
                record.finish(failure);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
