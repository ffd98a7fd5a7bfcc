//! The Pushgateway client against hostile or broken gateways: endless
//! answers, a gateway that hangs at shutdown, credentials in `Debug`, and
//! `push_blocking` called from inside a runtime.
#![cfg(feature = "push-gateway")]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beluga_exporter_prometheus::{Auth, PushError, PushGateway};
use beluga_metrics::{Opts, Registry};
use common::{poll, FakePeer, Misbehaviour};

fn registry() -> Registry {
    let registry = Registry::new();
    registry
        .counter(Opts::new("jobs_total", "Jobs."))
        .unwrap()
        .add(3);
    registry
}

#[test]
fn an_endless_answer_is_read_only_up_to_the_cap() {
    for status in [500, 200, 400] {
        let peer = FakePeer::start(Misbehaviour::EndlessBody(status));
        let gateway = PushGateway::builder(peer.url(), "j")
            .registry(&registry())
            .retries(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let result = gateway.push_blocking();
        match (status, &result) {
            (500, Err(PushError::Unavailable { attempts: 1, last })) => {
                assert!(last.contains("500") && last.len() < 1024, "{last}")
            }
            (200, Ok(())) => {}
            (400, Err(PushError::Rejected { status: 400, body })) => {
                assert!(body.len() <= 300 && body.starts_with("xxx"), "{body}")
            }
            _ => panic!("status {status}: unexpected {result:?}"),
        }
        // The client hung up after the cap: the peer's writes failed long
        // before its own 4 GiB bound.
        poll(
            "the peer to notice the hang-up",
            Duration::from_secs(30),
            || (peer.finished.load(Ordering::SeqCst) == 1).then_some(()),
        );
        let written = peer.written.load(Ordering::SeqCst);
        assert!(
            written < 64 << 20,
            "status {status}: {written} bytes were sent before the client hung up"
        );
    }
}

#[test]
fn shutdown_keeps_its_deadline_against_a_hanging_gateway() {
    let peer = FakePeer::start(Misbehaviour::Hang);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let periodic = PushGateway::builder(peer.url(), "j")
            .registry(&registry())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .spawn_periodic(Duration::from_secs(3600));
        // The first periodic push is now stuck on the hanging gateway.
        poll("the first push to connect", Duration::from_secs(10), || {
            (peer.connections.load(Ordering::SeqCst) >= 1).then_some(())
        });
        let start = Instant::now();
        let result = periodic.shutdown(Duration::from_secs(1)).await;
        let took = start.elapsed();
        assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
        assert!(
            matches!(
                result,
                Err(PushError::DeadlineExceeded { .. }) | Err(PushError::Unavailable { .. })
            ),
            "{result:?}"
        );
        // The final push made its own attempt on a new connection.
        assert!(peer.connections.load(Ordering::SeqCst) >= 2);
    });
}

#[test]
fn credentials_never_reach_debug_or_errors() {
    let peer = FakePeer::start(Misbehaviour::EndlessBody(401));
    for auth in [
        Auth::Bearer("s3cret-token".into()),
        Auth::Basic {
            username: "prom".into(),
            password: "s3cret-password".into(),
        },
    ] {
        let gateway = PushGateway::builder(peer.url(), "j")
            .registry(&registry())
            .auth(auth)
            .retries(0)
            .build()
            .unwrap();
        let error = gateway.push_blocking().unwrap_err();
        for text in [
            format!("{gateway:?}"),
            format!("{:?}", gateway.clone()),
            format!("{error:?}"),
            error.to_string(),
        ] {
            assert!(!text.contains("s3cret"), "{text}");
            // base64 of "prom:s3cret-password" starts with this.
            assert!(!text.contains("cHJvbTpzM2NyZX"), "{text}");
        }
    }
}

#[test]
fn credentials_in_a_gateway_url_are_refused_and_never_printed() {
    let builder = PushGateway::builder("http://prom:s3cret@127.0.0.1:9091", "j");
    assert!(!format!("{builder:?}").contains("s3cret"));
    let error = builder.build().unwrap_err();
    assert!(matches!(error, PushError::InvalidUrl { .. }), "{error:?}");
    assert!(
        !format!("{error:?} {error}").contains("s3cret"),
        "{error:?}"
    );
    assert!(error.to_string().contains("credentials"), "{error}");
}

#[test]
fn push_blocking_inside_a_runtime_is_an_error_not_a_panic() {
    let gateway = PushGateway::builder("http://127.0.0.1:9", "j")
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async { gateway.push_blocking() });
    assert!(
        matches!(result, Err(PushError::Runtime(ref why)) if why.contains("push().await")),
        "{result:?}"
    );
}

/// A gateway's `Retry-After` can name any wait: the largest ones end the
/// retries with an error (never a panic in the pushing task), a wait of
/// zero or a date in the past waits the client's own backoff.
#[test]
fn retry_after_from_the_gateway_is_bounded_both_ways() {
    for wait in [
        "18446744073709551615",
        "99999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let peer = FakePeer::start(Misbehaviour::RetryAfter(503, wait));
        let gateway = PushGateway::builder(peer.url(), "j")
            .registry(&registry())
            .retries(3)
            .build()
            .unwrap();
        let result = gateway.push_blocking();
        assert!(
            matches!(&result, Err(PushError::Unavailable { attempts: 1, last }) if last.contains("503")),
            "Retry-After: {wait}: {result:?}"
        );
        // The periodic task survives it too: its shutdown makes a final push.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let periodic = {
            let _inside = runtime.enter();
            gateway.spawn_periodic(Duration::from_millis(20))
        };
        poll("periodic pushes", Duration::from_secs(10), || {
            (peer.requests.load(Ordering::SeqCst) >= 4).then_some(())
        });
        let result = runtime.block_on(periodic.shutdown(Duration::from_secs(2)));
        assert!(
            matches!(result, Err(PushError::Unavailable { .. })),
            "{result:?}"
        );
    }
    for wait in ["0", "Thu, 01 Jan 1970 00:00:00 GMT"] {
        let peer = FakePeer::start(Misbehaviour::RetryAfter(503, wait));
        let gateway = PushGateway::builder(peer.url(), "j")
            .registry(&registry())
            .retries(3)
            .backoff(Duration::from_millis(100))
            .build()
            .unwrap();
        let started = Instant::now();
        let result = gateway.push_blocking();
        let took = started.elapsed();
        assert!(
            matches!(result, Err(PushError::Unavailable { attempts: 4, .. })),
            "Retry-After: {wait}: {result:?}"
        );
        assert_eq!(peer.requests.load(Ordering::SeqCst), 4);
        // Backoff 100, 200, 400 ms, each times a jitter factor of at least 0.5.
        assert!(
            took >= Duration::from_millis(350),
            "Retry-After: {wait}: three retries in {took:?}"
        );
    }
}

/// A secret in a URL's query (`?token=…`) or fragment is never printed:
/// the URL is refused, and the error and `Debug` show `***` in its place.
#[cfg(feature = "remote-write")]
#[test]
fn secrets_in_a_url_query_are_never_printed() {
    use beluga_exporter_prometheus::{RemoteWriteBuilder, RemoteWriteError};
    for url in [
        "http://127.0.0.1:9091/?token=s3cret",
        "http://127.0.0.1:9091/p?a=1&api_key=s3cret",
        "http://127.0.0.1:9091/p#s3cret",
    ] {
        let builder = PushGateway::builder(url, "j");
        let error = builder.build().unwrap_err();
        let shown = format!("{error:?} {error}");
        assert!(matches!(error, PushError::InvalidUrl { .. }), "{shown}");
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );

        let writer = RemoteWriteBuilder::new(url);
        assert!(!format!("{writer:?}").contains("s3cret"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime.block_on(async { writer.spawn() }).unwrap_err();
        let shown = format!("{error:?} {error}");
        assert!(
            matches!(error, RemoteWriteError::InvalidUrl { .. }),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );
    }
}
