//! The layer around a plain tower service (as hyper and tonic use it): a
//! user function naming endpoints, service errors, HEAD responses and
//! cancelled requests.

use std::borrow::Cow;
use std::time::Duration;

use beluga_http_middleware::MetricsLayer;
use beluga_metrics::Format;
use beluga_monitor::Monitor;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};

fn monitor() -> Monitor {
    Monitor::builder()
        .registry(&Default::default())
        .build()
        .unwrap()
}

fn text(monitor: &Monitor) -> String {
    monitor.registry().encode(Format::PrometheusText)
}

fn layer(monitor: &Monitor) -> MetricsLayer {
    MetricsLayer::builder(monitor)
        .component("grpc")
        .endpoint_from(|parts| match parts.uri.path() {
            "/agent.v1.Agent/Chat" => Some(Cow::Borrowed("Chat")),
            _ => None,
        })
        .unmatched_label("other")
        .build()
        .unwrap()
}

fn request(method: &str, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn a_user_function_names_endpoints_and_a_service_error_is_a_500() {
    let monitor = monitor();
    let service = layer(&monitor).layer(tower::service_fn(
        |req: http::Request<Full<Bytes>>| async move {
            if req.uri().path() == "/agent.v1.Agent/Chat" {
                Ok(http::Response::new(Full::new(Bytes::from_static(b"hi"))))
            } else {
                Err(std::io::Error::other("no route"))
            }
        },
    ));
    let ok = service
        .clone()
        .oneshot(request("POST", "/agent.v1.Agent/Chat"))
        .await
        .unwrap();
    ok.into_body().collect().await.unwrap();
    assert!(service
        .oneshot(request("POST", "/x.y/Unknown"))
        .await
        .is_err());

    let text = text(&monitor);
    for line in [
        "monitoring_api_requests_total{method=\"POST\",endpoint=\"Chat\",status=\"200\"} 1\n",
        "monitoring_api_requests_total{method=\"POST\",endpoint=\"other\",status=\"500\"} 1\n",
        "monitoring_errors_total{component=\"grpc\",error_type=\"service_error\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn head_responses_and_complete_bodies_are_recorded_at_the_response() {
    let monitor = monitor();
    let service = layer(&monitor).layer(tower::service_fn(
        |_req: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
                b"body",
            ))))
        },
    ));
    // Neither body is ever polled: a server sends no body for HEAD.
    let head = service
        .clone()
        .oneshot(request("HEAD", "/agent.v1.Agent/Chat"))
        .await
        .unwrap();
    drop(head);
    let empty = layer(&monitor).layer(tower::service_fn(
        |_req: http::Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        },
    ));
    drop(
        empty
            .oneshot(request("GET", "/agent.v1.Agent/Chat"))
            .await
            .unwrap(),
    );

    let text = text(&monitor);
    assert!(
        text.contains(
            "monitoring_api_requests_total{method=\"HEAD\",endpoint=\"Chat\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "monitoring_api_requests_total{method=\"GET\",endpoint=\"Chat\",status=\"200\"} 1\n"
        ),
        "{text}"
    );
    assert!(!text.contains("error_type=\"cancelled\""), "{text}");
}

#[tokio::test]
async fn a_request_dropped_before_its_response_is_a_cancelled_499() {
    let monitor = monitor();
    let service = layer(&monitor).layer(tower::service_fn(
        |_req: http::Request<Full<Bytes>>| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        },
    ));
    let timed_out = tokio::time::timeout(
        Duration::from_millis(20),
        service.oneshot(request("POST", "/agent.v1.Agent/Chat")),
    )
    .await;
    assert!(timed_out.is_err());
    let text = text(&monitor);
    assert!(
        text.contains(
            "monitoring_api_requests_total{method=\"POST\",endpoint=\"Chat\",status=\"499\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("monitoring_errors_total{component=\"grpc\",error_type=\"cancelled\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("monitoring_api_requests_in_flight{method=\"POST\",endpoint=\"Chat\"} 0.0\n"),
        "{text}"
    );
}
