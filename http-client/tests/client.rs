//! The client against real TCP servers that misbehave: an endless body, a
//! server that never answers, and keep-alive reuse.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beluga_http_client::{ClientConfig, Endpoint, HttpClient, SendError};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Reads one request head (and a body of `Content-Length` bytes, if any).
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.is_ok()
}

async fn server(
    handle: impl Fn(tokio::net::TcpStream) -> tokio::task::JoinHandle<()> + Send + 'static,
) -> (Endpoint, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            handle(stream);
        }
    });
    (
        Endpoint::parse(&format!("http://{addr}/x")).unwrap(),
        accepted,
    )
}

/// Tells the test when a server task ends, however it ends.
struct NotifyOnDrop(Arc<tokio::sync::Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

fn post(endpoint: &Endpoint) -> hyper::Request<http_body_util::Full<Bytes>> {
    endpoint
        .post(Bytes::from_static(b"payload"))
        .body(http_body_util::Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    let sent = Arc::new(AtomicUsize::new(0));
    let total = sent.clone();
    let stopped = Arc::new(tokio::sync::Notify::new());
    let stop = stopped.clone();
    let (endpoint, _) = server(move |mut stream| {
        let total = total.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _stop = NotifyOnDrop(stop);
            if !read_request(&mut stream).await {
                return;
            }
            let head = b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "e".repeat(8192));
            // Bounded: stops on its own after 1 GiB if the client never hangs up.
            for _ in 0..(1 << 17) {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                total.fetch_add(8192, Ordering::SeqCst);
            }
        })
    })
    .await;
    let client = HttpClient::new(ClientConfig::default().max_response_body(4096));
    let response = client.send(post(&endpoint)).await.unwrap();
    assert_eq!(response.status.as_u16(), 500);
    assert!(response.truncated);
    assert_eq!(response.body.len(), 4096);
    assert!(response.body.iter().all(|&b| b == b'e'));
    // The client hung up: the server's writes fail and it stops long
    // before its own bound.
    tokio::time::timeout(Duration::from_secs(30), stopped.notified())
        .await
        .expect("the server is still writing: the client did not hang up");
    let written = sent.load(Ordering::SeqCst);
    assert!(written < 64 << 20, "server kept writing: {written} bytes");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let (endpoint, _) = server(|mut stream| {
        tokio::spawn(async move {
            let _ = read_request(&mut stream).await;
            // Never answers; holds the connection until the client leaves.
            let mut rest = [0u8; 1];
            let _ = stream.read(&mut rest).await;
        })
    })
    .await;
    let client = HttpClient::new(ClientConfig::default());
    let error = client
        .send_within(post(&endpoint), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(error, SendError::Timeout(Duration::from_millis(200)));
}

#[tokio::test]
async fn connections_are_reused() {
    let (endpoint, accepted) = server(|mut stream| {
        tokio::spawn(async move {
            while read_request(&mut stream).await {
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        })
    })
    .await;
    let client = HttpClient::new(ClientConfig::default());
    for _ in 0..5 {
        let response = client.send(post(&endpoint)).await.unwrap();
        assert_eq!(
            (response.status.as_u16(), &response.body[..]),
            (200, &b"ok"[..])
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one keep-alive connection for five requests"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
    let client = HttpClient::new(ClientConfig::default());
    let error = client.send(post(&endpoint)).await.unwrap_err();
    assert!(matches!(error, SendError::Connect(_)), "{error:?}");
}
