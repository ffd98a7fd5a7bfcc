//! The service the layer wraps around yours, and its response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::TimedBody;
use crate::endpoint::method_label;
use crate::record::{Failure, RequestRecord, Shared};

/// The service [`MetricsLayer`](crate::MetricsLayer) produces: `S`, with
/// every request recorded.
#[derive(Clone)]
pub struct MetricsService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<TimedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = method_label(request.method());
        let head = request.method() == Method::HEAD;
        let (request, endpoint) = self.shared.source.endpoint(request);
        let record = RequestRecord::start(self.shared.clone(), method, endpoint);
        ResponseFuture {
            inner: self.inner.call(request),
            record: Some(record),
            head,
        }
    }
}

pin_project! {
    /// The response future of [`MetricsService`]. Dropped before it
    /// completes, it records the request as cancelled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<RequestRecord>,
        head: bool,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("head", &self.head)
            .finish()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<Response<TimedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut record = this.record.take();
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if let Some(record) = &mut record {
                    record.responded(parts.status);
                    // No body will be polled: a HEAD response, or one that
                    // is already complete.
                    if *this.head || body.is_end_stream() {
                        record.finish(None);
                    }
                }
                let record = record.filter(|_| !*this.head && !body.is_end_stream());
                Ok(Response::from_parts(parts, TimedBody::new(body, record)))
            }
            Err(error) => {
                if let Some(record) = &mut record {
                    record.finish(Some(Failure::ServiceError));
                }
                Err(error)
            }
        })
    }
}
