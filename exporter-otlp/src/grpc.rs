//! One OTLP/gRPC export (tonic, with `opentelemetry-proto`'s generated
//! client), retried as the OTLP specification says: `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and
//! `DATA_LOSS` are retried with backoff; `RESOURCE_EXHAUSTED` only when the
//! server sends a `google.rpc.RetryInfo` (whose delay is honoured); every
//! other code is final. An answer tonic cannot read (over the 64 KiB cap,
//! or not a response message) is delivery, as on the HTTP path. Attempts
//! and waits never pass the caller's deadline; the retry loop is the shared
//! `beluga-http-client` policy, which also bounds the wait a `RetryInfo`
//! asks for.

use std::time::Duration;

use beluga_http_client::{Outcome, RetryPolicy};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::Code;

use crate::delivery::{export_error, Delivered};
use crate::ExportError;

pub(crate) struct GrpcTransport {
    pub(crate) client: MetricsServiceClient<Channel>,
    /// User headers as gRPC metadata, marked sensitive.
    pub(crate) metadata: MetadataMap,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

// `google.rpc.Status` and the one detail OTLP retries read.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The `RetryInfo` delay in a status's details, if the server sent one.
fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    let decoded = RpcStatus::decode(status.details()).ok()?;
    decoded
        .details
        .iter()
        .filter(|any| any.type_url.ends_with("/google.rpc.RetryInfo"))
        .find_map(|any| RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay)
        .map(|d| {
            Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                .saturating_add(Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0)))
        })
}

/// Whether `status` is tonic refusing to read the collector's answer: over
/// the size cap, or not an `ExportMetricsServiceResponse`. A collector
/// sends a message only for a call it accepted (a refusal is a status in
/// the trailers, with no message), so such a call was delivered: retrying
/// it would make the collector count its data twice. tonic says so only in
/// its message text; `tests/grpc.rs` answers with a 100 KB
/// `partial_success` through a real gRPC server to pin that text.
fn answer_unreadable(status: &tonic::Status) -> bool {
    match status.code() {
        Code::OutOfRange => status
            .message()
            .starts_with("Error, decoded message length too large"),
        Code::Internal => status
            .message()
            .starts_with("failed to decode Protobuf message"),
        _ => false,
    }
}

/// What a failed call means for the export.
fn classify(status: &tonic::Status) -> Outcome<Delivered, ExportError> {
    if answer_unreadable(status) {
        return Outcome::Done(Delivered {
            rejected_data_points: 0,
            message: String::new(),
        });
    }
    let why = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry {
            why,
            retry_after: retry_delay(status),
        },
        Code::ResourceExhausted => match retry_delay(status) {
            Some(delay) => Outcome::Retry {
                why,
                retry_after: Some(delay),
            },
            None => Outcome::Fatal(ExportError::RejectedGrpc {
                code: format!("{:?}", status.code()),
                message: status.message().chars().take(200).collect(),
            }),
        },
        _ => Outcome::Fatal(ExportError::RejectedGrpc {
            code: format!("{:?}", status.code()),
            message: status.message().chars().take(200).collect(),
        }),
    }
}

impl GrpcTransport {
    pub(crate) async fn send(
        &self,
        request: &ExportMetricsServiceRequest,
        deadline: Instant,
    ) -> Result<Delivered, ExportError> {
        let result = self
            .retry
            .run(Some(deadline), |left| self.attempt(request, left))
            .await;
        result.map_err(export_error)
    }

    async fn attempt(
        &self,
        request: &ExportMetricsServiceRequest,
        left: Option<Duration>,
    ) -> Outcome<Delivered, ExportError> {
        let limit = left.map_or(self.timeout, |left| left.min(self.timeout));
        let mut call = tonic::Request::new(request.clone());
        *call.metadata_mut() = self.metadata.clone();
        // The server learns the deadline (`grpc-timeout`); the client
        // enforces it whatever the server does.
        call.set_timeout(limit);
        let mut client = self.client.clone();
        match tokio::time::timeout(limit, client.export(call)).await {
            Ok(Ok(response)) => {
                let partial = response.into_inner().partial_success.unwrap_or_default();
                Outcome::Done(Delivered {
                    rejected_data_points: partial.rejected_data_points,
                    message: partial.error_message,
                })
            }
            Ok(Err(status)) => classify(&status),
            Err(_) => Outcome::Retry {
                why: format!("no answer within {limit:?}"),
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status with `code`, carrying a `RetryInfo` of `seconds` and `nanos`.
    fn with_retry_info(code: Code, seconds: i64, nanos: i32) -> tonic::Status {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration { seconds, nanos }),
        };
        let details = RpcStatus {
            code: code as i32,
            message: "retry later".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        tonic::Status::with_details(code, "retry later", details.encode_to_vec().into())
    }

    #[test]
    fn retry_info_is_read_from_the_status_details() {
        let status = with_retry_info(Code::ResourceExhausted, 2, 500_000_000);
        assert_eq!(retry_delay(&status), Some(Duration::from_millis(2500)));
        assert!(matches!(classify(&status), Outcome::Retry { .. }));
        let status = with_retry_info(Code::Unavailable, i64::MAX, i32::MAX);
        assert!(retry_delay(&status).is_some_and(|d| d >= Duration::from_secs(i64::MAX as u64)));
        let bare = tonic::Status::new(Code::ResourceExhausted, "no info");
        assert!(matches!(
            classify(&bare),
            Outcome::Fatal(ExportError::RejectedGrpc { .. })
        ));
        assert!(matches!(
            classify(&tonic::Status::new(Code::InvalidArgument, "bad")),
            Outcome::Fatal(_)
        ));
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::DataLoss,
        ] {
            assert!(matches!(
                classify(&tonic::Status::new(code, "x")),
                Outcome::Retry { .. }
            ));
        }
    }
}
