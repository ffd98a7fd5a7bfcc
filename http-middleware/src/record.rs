//! One request's metrics, recorded exactly once: when its response body
//! ends, fails or is dropped, or when the service fails or the request is
//! cancelled.

use std::sync::Arc;
use std::time::Instant;

use beluga_metrics::{Family, Gauge};
use beluga_monitor::Monitor;
use http::StatusCode;

use crate::endpoint::{Endpoint, EndpointSource};

/// Status recorded for a request cancelled before its response (the client
/// went away, or a timeout layer dropped the future): 499, nginx's "client
/// closed request".
pub(crate) const CANCELLED_STATUS: u16 = 499;

/// What every request of one layer shares.
pub(crate) struct Shared {
    pub(crate) monitor: Monitor,
    pub(crate) in_flight: Family<Gauge>,
    pub(crate) component: String,
    pub(crate) source: EndpointSource,
    pub(crate) unmatched: String,
}

/// Why a request is counted in `monitoring_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The response status was 5xx.
    ServerError,
    /// The response body failed mid-stream.
    BodyError,
    /// The service returned an error (no response was sent).
    ServiceError,
    /// The request or its body was dropped before it ended.
    Cancelled,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::ServerError => "server_error",
            Failure::BodyError => "body_error",
            Failure::ServiceError => "service_error",
            Failure::Cancelled => "cancelled",
        }
    }
}

/// A request in flight. Dropping it unfinished records it as cancelled.
pub(crate) struct RequestRecord {
    shared: Arc<Shared>,
    method: &'static str,
    endpoint: Endpoint,
    started: Instant,
    status: Option<StatusCode>,
    finished: bool,
}

impl RequestRecord {
    pub(crate) fn start(shared: Arc<Shared>, method: &'static str, endpoint: Endpoint) -> Self {
        let started = Instant::now();
        // A label value over the engine's length limit is counted by the
        // engine (`beluga_invalid_values_total`); nothing else can fail.
        let _ = shared
            .in_flight
            .with(&[method, endpoint.as_str(&shared.unmatched)], Gauge::inc);
        RequestRecord {
            shared,
            method,
            endpoint,
            started,
            status: None,
            finished: false,
        }
    }

    /// The response head is ready with `status`.
    pub(crate) fn responded(&mut self, status: StatusCode) {
        self.status = Some(status);
    }

    /// Records the request: counted with its status (500 if the service
    /// failed, 499 if it was cancelled before a response), timed from the
    /// request to now, and counted as an error if it failed or was 5xx.
    pub(crate) fn finish(&mut self, failure: Option<Failure>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let shared = &*self.shared;
        let endpoint = self.endpoint.as_str(&shared.unmatched);
        let status = match (self.status, failure) {
            (Some(status), _) => status.as_u16(),
            (None, Some(Failure::ServiceError)) => 500,
            (None, _) => CANCELLED_STATUS,
        };
        let failure = failure.or((status >= 500).then_some(Failure::ServerError));
        let metrics = shared.monitor.metrics();
        let _ = shared.in_flight.with(&[self.method, endpoint], Gauge::dec);
        let _ = metrics.record_api_request(self.method, endpoint, status, self.started.elapsed());
        if let Some(failure) = failure {
            let _ = metrics.record_error(&shared.component, failure.as_str());
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.finish(Some(Failure::Cancelled));
    }
}
