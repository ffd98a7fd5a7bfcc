//! How an export travels: OTLP/HTTP with protobuf bodies (here) or OTLP/gRPC
//! (`grpc.rs`, with the `grpc` feature), chosen by the builder or
//! `OTEL_EXPORTER_OTLP_*PROTOCOL`.
//!
//! One OTLP/HTTP export, retried as the OTLP specification says: with
//! exponential backoff and jitter on 429, 502, 503, 504, connection errors and
//! timeouts, honouring `Retry-After`, never on other statuses, never past
//! the caller's deadline. Connections, timeouts, the response-size cap and
//! the retry loop are the shared `beluga-http-client`'s.

use std::time::Duration;

use beluga_http_client::http::header::{self, HeaderName, HeaderValue};
use beluga_http_client::http::StatusCode;
use beluga_http_client::{retry_after, Endpoint, HttpClient, Outcome, RetryPolicy};
use bytes::Bytes;
use http_body_util::Full;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tokio::time::Instant;

use crate::delivery::{export_error, Delivered};
use crate::ExportError;

/// The export's way to the collector.
pub(crate) enum Transport {
    Http(HttpTransport),
    #[cfg(feature = "grpc")]
    Grpc(crate::grpc::GrpcTransport),
}

impl Transport {
    /// Delivers `request`, retrying until it is delivered, refused, or
    /// `deadline` passes.
    pub(crate) async fn send(
        &self,
        request: &ExportMetricsServiceRequest,
        deadline: Instant,
    ) -> Result<Delivered, ExportError> {
        match self {
            Transport::Http(http) => http.send(request, deadline).await,
            #[cfg(feature = "grpc")]
            Transport::Grpc(grpc) => grpc.send(request, deadline).await,
        }
    }
}

pub(crate) struct HttpTransport {
    pub(crate) client: HttpClient,
    pub(crate) endpoint: Endpoint,
    /// User headers; values marked sensitive (they often carry API keys).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) gzip: bool,
    pub(crate) retry: RetryPolicy,
}

impl HttpTransport {
    /// Encodes `request` (gzipped if configured) and sends it until it is
    /// delivered, refused, or `deadline` passes.
    async fn send(
        &self,
        request: &ExportMetricsServiceRequest,
        deadline: Instant,
    ) -> Result<Delivered, ExportError> {
        let mut body = request.encode_to_vec();
        if self.gzip {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            body = gz
                .write_all(&body)
                .and_then(|()| gz.finish())
                .map_err(|e| ExportError::InvalidConfig(format!("gzip: {e}")))?;
        }
        let body = Bytes::from(body);
        let result = self
            .retry
            .run(Some(deadline), |left| self.attempt(body.clone(), left))
            .await;
        result.map_err(export_error)
    }

    async fn attempt(
        &self,
        body: Bytes,
        left: Option<Duration>,
    ) -> Outcome<Delivered, ExportError> {
        let mut request = self
            .endpoint
            .post(body.clone())
            .header(header::CONTENT_TYPE, "application/x-protobuf");
        if self.gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Outcome::Fatal(ExportError::InvalidConfig(e.to_string())),
        };
        let response = match self.client.send_with_time_left(request, left).await {
            Ok(response) => response,
            Err(no_answer) => return no_answer.into(),
        };
        let status = response.status;
        if status.is_success() {
            // A body cut at the cap, or one that is not a response message,
            // reads as full success: the data was accepted.
            let decoded = ExportMetricsServiceResponse::decode(response.body).unwrap_or_default();
            let partial = decoded.partial_success.unwrap_or_default();
            return Outcome::Done(Delivered {
                rejected_data_points: partial.rejected_data_points,
                message: partial.error_message,
            });
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Outcome::Retry {
                why: status.to_string(),
                retry_after: retry_after(&response.headers),
            },
            _ => Outcome::Fatal(ExportError::Rejected {
                status: status.as_u16(),
                message: response.body_text(200),
            }),
        }
    }
}
