//! The layer against real local servers on `127.0.0.1:0`: axum for HTTP behaviour, a raw
//! socket server for chunked bodies, a rustls server for trust, and small proxies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A server answering each request with `answer(n)` (n counts from 0).
async fn serve<F>(answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(usize) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync + 'static,
{
    let hits = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let state = (Arc::clone(&hits), answer);
    let app = Router::new()
        .fallback(any(
            |State((hits, answer)): State<(Arc<AtomicUsize>, Arc<F>)>| async move {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                let (status, headers, body) = answer(n);
                let mut map = AxumHeaders::new();
                for (name, value) in headers {
                    map.insert(name, value.parse().expect("header"));
                }
                (AxumStatus::from_u16(status).expect("status"), map, body).into_response()
            },
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

fn options() -> Options {
    let mut options = Options::new("test");
    options.proxy_env = ProxyEnv::none();
    options.retry = RetryPolicy {
        attempts: 4,
        base_delay: Duration::ZERO,
        max_retry_after: Duration::from_secs(300),
    };
    options
}

/// A client whose waits are recorded, not slept.
fn recording(options: Options) -> (Client, Arc<Mutex<Vec<Duration>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&waits);
    let client = Client::new(options)
        .expect("client")
        .with_sleeper(Arc::new(move |pause| {
            seen.lock().expect("waits").push(pause);
            Box::pin(async {})
        }));
    (client, waits)
}

#[tokio::test]
async fn a_503_is_retried_until_success() {
    let (url, hits) = serve(|n| {
        if n < 2 {
            (503, vec![], "busy".into())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    let (client, waits) = recording(options());
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(&response.body[..], b"ok");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(waits.lock().expect("waits").len(), 2);
}

#[tokio::test]
async fn retries_stop_after_the_attempts_and_return_the_last_answer() {
    let (url, hits) = serve(|_| (502, vec![], "bad gateway".into())).await;
    let (client, _) = recording(options());
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    let error = response.error_for_status().expect_err("502");
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(error.body_snippet(), "bad gateway");
    assert!(error.to_string().contains("answered HTTP 502"), "{error}");
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date_is_honoured() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let (url, hits) = serve(move |n| match n {
        0 => (429, vec![("retry-after", "1".into())], String::new()),
        1 => (503, vec![("retry-after", date.clone())], String::new()),
        _ => (200, vec![], "ok".into()),
    })
    .await;
    let (client, waits) = recording(options());
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let waits = waits.lock().expect("waits").clone();
    assert_eq!(waits[0], Duration::from_secs(1), "{waits:?}");
    // An HTTP-date has one-second resolution, and time passed since it was written.
    assert!(
        (Duration::from_secs(117)..=Duration::from_secs(120)).contains(&waits[1]),
        "{waits:?}"
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_bound_is_left_to_the_caller() {
    let (url, hits) = serve(|n| match n {
        0 => (429, vec![("retry-after", "86400".into())], String::new()),
        _ => (200, vec![], String::new()),
    })
    .await;
    let mut options = options();
    options.retry.max_retry_after = Duration::from_secs(30);
    let (client, waits) = recording(options);
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(waits.lock().expect("waits").is_empty());
    let error = response.error_for_status().expect_err("429");
    assert_eq!(error.class(), ErrorClass::RateLimited);
    assert_eq!(error.retry_after(), Some(Duration::from_secs(86400)));
}

#[tokio::test]
async fn a_post_is_sent_once_unless_marked_repeatable() {
    let (url, hits) = serve(|_| (503, vec![], String::new())).await;
    let (client, _) = recording(options());
    let response = client
        .send(Request::post(&url).body("{}"))
        .await
        .expect("answer");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a POST is never repeated");

    let (url, hits) = serve(|_| (429, vec![], String::new())).await;
    let response = client.send(Request::post(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "not even after a 429");
    let error = response.error_for_status().expect_err("429");
    assert_eq!(error.class(), ErrorClass::RateLimited);

    let (url, hits) = serve(|_| (503, vec![], String::new())).await;
    client
        .send(Request::post(&url).retry(true))
        .await
        .expect("answer");
    assert_eq!(hits.load(Ordering::SeqCst), 4, "marked safe by the caller");

    let (url, hits) = serve(|_| (503, vec![], String::new())).await;
    client
        .send(Request::get(&url).retry(false))
        .await
        .expect("answer");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a GET the caller wants once"
    );
}

#[tokio::test]
async fn failure_statuses_are_classified() {
    for (status, class) in [
        (400, ErrorClass::Rejected),
        (401, ErrorClass::Auth),
        (403, ErrorClass::Auth),
        (404, ErrorClass::Rejected),
        (429, ErrorClass::RateLimited),
        (500, ErrorClass::Transient),
        (503, ErrorClass::Transient),
    ] {
        let (url, _) = serve(move |_| (status, vec![], String::new())).await;
        let mut options = options();
        options.retry = RetryPolicy::never();
        let client = Client::new(options).expect("client");
        let response = client.send(Request::get(&url)).await.expect("answer");
        let error = response.error_for_status().expect_err("failure");
        assert_eq!(error.class(), class, "HTTP {status}");
    }
}

#[tokio::test]
async fn a_body_over_the_cap_is_an_error() {
    let (url, _) = serve(|_| (200, vec![], "x".repeat(10_000))).await;
    let mut options = options();
    options.max_body = 1_000;
    let client = Client::new(options).expect("client");
    let error = client
        .send(Request::get(&url))
        .await
        .expect_err("too large");
    assert!(
        matches!(error, Error::TooLarge { limit: 1_000, .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Rejected);

    // Without `Content-Length` (chunked): cut off while streaming.
    let chunk = "x".repeat(600);
    let raw = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let addr = raw_server(raw.into_bytes()).await;
    let mut options = self::options();
    options.max_body = 1_000;
    let client = Client::new(options).expect("client");
    let error = client
        .send(Request::get(format!("http://{addr}/")))
        .await
        .expect_err("too large");
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");

    // Under the cap, the same chunked body arrives whole.
    let mut options = self::options();
    options.max_body = 1_200;
    let client = Client::new(options).expect("client");
    let response = client
        .send(Request::get(format!("http://{addr}/")))
        .await
        .expect("answer");
    assert_eq!(response.body.len(), 1_200);
}

/// A server writing `answer` to every connection after the request's head.
async fn raw_server(answer: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let _ = read_head(&mut socket).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

async fn read_head(socket: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut options = options();
    options.timeout = Duration::from_millis(200);
    options.retry = RetryPolicy::never();
    let client = Client::new(options).expect("client");
    let started = std::time::Instant::now();
    let error = client
        .send(Request::get(format!("http://{addr}/slow")))
        .await
        .expect_err("timeout");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(error.to_string().contains("200ms"), "{error}");
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (client, waits) = recording(options());
    let error = client
        .send(Request::get(format!("http://{addr}/")))
        .await
        .expect_err("refused");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(waits.lock().expect("waits").len(), 3);
}

// The limiter runs on the real clock, with windows scaled down to milliseconds.

#[tokio::test]
async fn the_rate_limiter_keeps_each_window() {
    let window = Duration::from_millis(60);
    let limiter = RateLimiter::new(&[Window::new(3, window)]);
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..7 {
        limiter.acquire().await;
        at.push(start.elapsed());
    }
    assert!(at[2] < Duration::from_millis(30), "{at:?}");
    for index in 3..at.len() {
        assert!(at[index] - at[index - 3] >= window, "{at:?}");
    }
    assert!(at[6] >= window * 2 && at[6] < window * 4, "{at:?}");
}

#[tokio::test]
async fn the_rate_limiter_keeps_digicerts_two_windows() {
    // DigiCert's 100 requests per 5 s and 1,000 per 3 min, at 1/100 scale: 10 per 50 ms and
    // 100 per 1.8 s would take seconds; 10 per 20 ms and 30 per 200 ms keep the shape.
    let short = Duration::from_millis(20);
    let long = Duration::from_millis(200);
    let limiter = RateLimiter::new(&[Window::new(10, short), Window::new(30, long)]);
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..31 {
        limiter.acquire().await;
        at.push(start.elapsed());
    }
    for index in 10..at.len() {
        assert!(at[index] - at[index - 10] >= short, "{at:?}");
    }
    // The 31st waits for the first to leave the long window, though the short one has room.
    assert!(at[30] - at[0] >= long, "{at:?}");
    assert!(at[29] < long, "{at:?}");
}

#[tokio::test]
async fn the_rate_limiter_serves_waiters_in_arrival_order() {
    let limiter = Arc::new(RateLimiter::new(&[Window::new(
        1,
        Duration::from_millis(10),
    )]));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..5 {
        let limiter = Arc::clone(&limiter);
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            limiter.acquire().await;
            order.lock().expect("order").push(id);
        }));
        // Let the task reach the queue before the next one is spawned.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn the_client_applies_the_accounts_rate_limit() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    let (url, _) = serve(move |_| {
        seen.lock().expect("times").push(std::time::Instant::now());
        (200, vec![], String::new())
    })
    .await;
    let mut options = options();
    options.limits = vec![Window::new(2, Duration::from_millis(150))];
    let client = Client::new(options).expect("client");
    let sends = (0..6).map(|_| client.send(Request::get(&url)));
    for result in futures_join_all(sends).await {
        result.expect("answer");
    }
    let times = times.lock().expect("times").clone();
    assert_eq!(times.len(), 6);
    let mut sorted = times;
    sorted.sort();
    for index in 2..sorted.len() {
        assert!(
            sorted[index] - sorted[index - 2] >= Duration::from_millis(140),
            "three requests within one window: {sorted:?}"
        );
    }
}

/// Run futures concurrently on the current task, in order (no `futures` dependency).
async fn futures_join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[test]
fn urls_are_redacted() {
    for (url, shown) in [
        ("https://a:b@host/dir", "https://***@host/dir"),
        (
            "https://token@host:8443/x?y=1",
            "https://***@host:8443/x?y=1",
        ),
        ("https://host/dir?x=@", "https://host/dir?x=@"),
        ("https://host/dir/a@b", "https://host/dir/a@b"),
        ("not a url", "not a url"),
        (
            "https://host/p?api_key=s3cr3t&page=2&access_token=t0k",
            "https://host/p?api_key=***&page=2&access_token=***",
        ),
        (
            "https://host/p?X-Amz-Signature=abc#frag",
            "https://host/p?X-Amz-Signature=***#frag",
        ),
        ("https://acme.test/dir", "https://acme.test/dir"),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
}

#[test]
fn secret_headers_are_redacted() {
    let mut headers = HeaderMap::new();
    headers.insert("x-dc-devkey", HeaderValue::from_static("KEY123"));
    headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
    headers.insert("cookie", HeaderValue::from_static("session=1"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    assert_eq!(
        redact_headers(&headers),
        vec![
            "authorization: ***",
            "content-type: application/json",
            "cookie: ***",
            "x-dc-devkey: ***",
        ]
    );
    let request = Request::get("https://h/").header(
        HeaderName::from_static("x-dc-devkey"),
        HeaderValue::from_static("KEY123"),
    );
    assert!(request.headers["x-dc-devkey"].is_sensitive());
    assert!(!format!("{request:?}").contains("KEY123"));
}

#[tokio::test]
async fn errors_never_show_credentials_of_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut options = options();
    options.retry = RetryPolicy::never();
    let client = Client::new(options).expect("client");
    let error = client
        .send(Request::get(format!(
            "http://user:hunter2@{addr}/?token=t0k"
        )))
        .await
        .expect_err("refused");
    let mut text = error.to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    while let Some(current) = cause {
        text.push_str(&format!(" / {current} / {current:?}"));
        cause = current.source();
    }
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("t0k"), "{text}");
    assert!(text.contains("***@"), "{text}");
}

#[test]
fn retry_after_values_parse() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_600); // 2015-10-21 07:30 UTC
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:31:00 GMT", now),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[test]
fn proxy_variables_are_read_in_the_usual_order() {
    let env = ProxyEnv::from_lookup(|name| match name {
        "https_proxy" => Some("http://lower:1".into()),
        "HTTP_PROXY" => Some("http://upper:2".into()),
        "no_proxy" => Some("internal.test".into()),
        "ALL_PROXY" => Some("http://all:3".into()),
        _ => None,
    });
    assert_eq!(env.https_proxy.as_deref(), Some("http://lower:1"));
    assert_eq!(env.http_proxy.as_deref(), Some("http://upper:2"));
    assert_eq!(env.no_proxy.as_deref(), Some("internal.test"));
    let env = ProxyEnv::from_lookup(|name| (name == "ALL_PROXY").then(|| "http://all:3".into()));
    assert_eq!(env.https_proxy.as_deref(), Some("http://all:3"));
    assert_eq!(env.http_proxy.as_deref(), Some("http://all:3"));
    let env = ProxyEnv::from_lookup(|_| Some(String::new()));
    assert_eq!(env, ProxyEnv::none());
}

#[test]
fn an_account_proxy_with_credentials_is_refused() {
    let mut options = options();
    options.proxy = Some("http://user:pw@proxy.test:3128".into());
    let error = Client::new(options).expect_err("credentials");
    assert_eq!(error.class(), ErrorClass::Rejected);
    let text = error.to_string();
    assert!(text.contains("credentials"), "{text}");
    assert!(!text.contains("pw"), "{text}");

    let mut options = self::options();
    options.proxy = Some("socks5://proxy.test:1080".into());
    let error = Client::new(options).expect_err("not http");
    assert!(error.to_string().contains("http://host:port"), "{error}");
}

/// An HTTP proxy on loopback: answers forward (absolute-form) requests itself with
/// `via proxy`, and tunnels CONNECT requests to `tunnel_to`. Records each request line.
async fn proxy_server(tunnel_to: Option<SocketAddr>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(head) = read_head(&mut socket).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or("").to_string();
                seen.lock().expect("lines").push(line.clone());
                if line.starts_with("CONNECT ") {
                    let Some(target) = tunnel_to else {
                        let _ = socket.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                } else {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nvia proxy",
                        )
                        .await;
                }
            });
        }
    });
    (addr, lines)
}

#[tokio::test]
async fn environment_proxies_are_used_except_for_no_proxy_and_loopback() {
    let (server, _) = serve(|_| (200, vec![], "direct".into())).await;
    let server: SocketAddr = server.trim_start_matches("http://").parse().expect("addr");
    let (proxy, lines) = proxy_server(None).await;
    let port = server.port();
    let client = |no_proxy: Option<&str>| {
        let mut options = options();
        options.proxy_env = ProxyEnv {
            https_proxy: None,
            http_proxy: Some(format!("http://{proxy}")),
            no_proxy: no_proxy.map(str::to_string),
        };
        options.resolve = vec![("sim.test".into(), server)];
        Client::new(options).expect("client")
    };

    // A name outside NO_PROXY goes through the proxy.
    let response = client(None)
        .send(Request::get(format!("http://sim.test:{port}/a")))
        .await
        .expect("answer");
    assert_eq!(&response.body[..], b"via proxy");
    assert_eq!(
        *lines.lock().expect("lines"),
        vec![format!("GET http://sim.test:{port}/a HTTP/1.1")]
    );

    // The same name in NO_PROXY is reached directly.
    let response = client(Some("other.test, sim.test"))
        .send(Request::get(format!("http://sim.test:{port}/b")))
        .await
        .expect("answer");
    assert_eq!(&response.body[..], b"direct");

    // Loopback is always direct (the simulators), even without NO_PROXY.
    for host in ["127.0.0.1", "localhost"] {
        let response = client(None)
            .send(Request::get(format!("http://{host}:{port}/c")))
            .await
            .expect("answer");
        assert_eq!(&response.body[..], b"direct", "{host}");
    }
    assert_eq!(lines.lock().expect("lines").len(), 1);
}

#[tokio::test]
async fn an_accounts_proxy_is_used_for_every_request() {
    let (server, _) = serve(|_| (200, vec![], "direct".into())).await;
    let (proxy, lines) = proxy_server(None).await;
    let mut options = options();
    options.proxy = Some(format!("http://{proxy}"));
    options.proxy_env.no_proxy = Some("*".into());
    let client = Client::new(options).expect("client");
    let response = client
        .send(Request::get(format!("{server}/x")))
        .await
        .expect("answer");
    assert_eq!(&response.body[..], b"via proxy");
    assert_eq!(lines.lock().expect("lines").len(), 1);
}

/// A TLS server for `sim.test` (a certificate from a fresh CA) answering `ok` to each
/// connection; returns its address and the CA's PEM.
fn tls_server() -> (SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::io::{Read, Write};

    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["sim.test".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("server config");
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(connection, socket);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    (addr, ca_pem)
}

#[tokio::test]
async fn trust_is_the_bundle_the_system_or_both() {
    let (server, ca_pem) = tls_server();
    let dir = tempfile::tempdir().expect("dir");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &ca_pem).expect("bundle");
    let url = format!("https://sim.test:{}/", server.port());
    let client = |trust: Trust| {
        let mut options = options();
        options.trust = trust;
        options.resolve = vec![("sim.test".into(), server)];
        Client::new(options).expect("client")
    };

    let response = client(Trust::Only(bundle.clone()))
        .send(Request::get(&url))
        .await
        .expect("trusted through the bundle");
    assert_eq!(&response.body[..], b"ok");
    let response = client(Trust::SystemAnd(bundle.clone()))
        .send(Request::get(&url))
        .await
        .expect("trusted through the bundle added to the system's roots");
    assert_eq!(&response.body[..], b"ok");

    // The system alone does not know the test CA: refused, and not retried.
    let (system, waits) = recording({
        let mut options = options();
        options.resolve = vec![("sim.test".into(), server)];
        options
    });
    let error = system
        .send(Request::get(&url))
        .await
        .expect_err("untrusted");
    assert!(matches!(error, Error::Untrusted { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Rejected);
    assert!(waits.lock().expect("waits").is_empty());

    // A bundle without certificates is a setup error naming the file.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here").expect("empty");
    let mut options = options();
    options.trust = Trust::Only(empty);
    let error = Client::new(options).expect_err("empty bundle");
    assert!(error.to_string().contains("empty.pem"), "{error}");
    assert_eq!(error.class(), ErrorClass::Rejected);
}

#[tokio::test]
async fn https_goes_through_the_https_proxy_with_connect() {
    let (server, ca_pem) = tls_server();
    let dir = tempfile::tempdir().expect("dir");
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &ca_pem).expect("bundle");
    let (proxy, lines) = proxy_server(Some(server)).await;
    let client = |no_proxy: Option<&str>| {
        let mut options = options();
        options.trust = Trust::Only(bundle.clone());
        options.proxy_env = ProxyEnv {
            https_proxy: Some(format!("http://{proxy}")),
            http_proxy: None,
            no_proxy: no_proxy.map(str::to_string),
        };
        options.resolve = vec![("sim.test".into(), server)];
        Client::new(options).expect("client")
    };
    let url = format!("https://sim.test:{}/", server.port());
    let response = client(None)
        .send(Request::get(&url))
        .await
        .expect("through the tunnel");
    assert_eq!(&response.body[..], b"ok");
    let port = server.port();
    assert_eq!(
        *lines.lock().expect("lines"),
        vec![format!("CONNECT sim.test:{port} HTTP/1.1")]
    );
    let response = client(Some(".test"))
        .send(Request::get(&url))
        .await
        .expect("direct");
    assert_eq!(&response.body[..], b"ok");
    assert_eq!(
        lines.lock().expect("lines").len(),
        1,
        "NO_PROXY bypassed it"
    );
}

/// With `rate_limit_wait`, 429s are not the policy's attempts: the request waits (doubling
/// from `rate_limit_pause` without `Retry-After`) and resumes until it gets an answer.
#[tokio::test]
async fn a_429_is_waited_out_past_the_policys_attempts() {
    let (url, hits) = serve(|n| {
        if n < 5 {
            (429, vec![], String::new())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    let mut options = options();
    options.rate_limit_wait = Duration::from_secs(60);
    options.rate_limit_pause = Duration::from_millis(10);
    let (client, waits) = recording(options);
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 6, "five 429s, then the answer");
    let waits = waits.lock().expect("waits").clone();
    assert_eq!(
        waits,
        [10, 20, 40, 80, 160].map(Duration::from_millis),
        "doubling from the pause"
    );
}

/// A `Retry-After` that would end past `rate_limit_wait` goes back to the caller at once; a
/// request that may not be repeated is never sent again on 429.
#[tokio::test]
async fn a_429_past_the_wait_or_to_a_create_goes_back_to_the_caller() {
    let (url, hits) = serve(|_| (429, vec![("retry-after", "86400".into())], String::new())).await;
    let mut options = options();
    options.rate_limit_wait = Duration::from_secs(60);
    let (client, waits) = recording(options);
    let response = client.send(Request::get(&url)).await.expect("answer");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(waits.lock().expect("waits").is_empty());
    let response = client
        .send(Request::new(Method::POST, url.clone()))
        .await
        .expect("answer");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "a create is sent once");
}
