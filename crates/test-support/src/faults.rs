//! A fault-injecting proxy in front of an HTTP peer (moto, fauxqs): each request, picked at a
//! chosen rate among the calls a test names, meets one of S3's and SQS's failures: a 503
//! `SlowDown`, a 500 `InternalError`, a connection reset before the peer saw the request or
//! after it did it, an answer cut short, or added latency. Everything else passes through as the
//! moto shim passes it (moto's misnamed multipart roots renamed). The draws come from a seeded
//! generator, so a failing run can be repeated, and the proxy counts what it injected, so a test
//! can prove the faults happened.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming};

/// One failure a request can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 503 `SlowDown` before the peer sees the request.
    SlowDown,
    /// 500 `InternalError` before the peer sees the request.
    InternalError,
    /// The connection closes before the peer sees the request: nothing happened.
    ResetBefore,
    /// The peer does the request, then the connection closes without its answer.
    ResetAfter,
    /// The answer's status, headers and half its body, then the connection closes.
    Truncated,
    /// The answer, this much later.
    Latency(Duration),
}

impl Fault {
    /// Every failure, with a latency of 200 ms.
    pub fn all() -> Vec<Fault> {
        vec![
            Fault::SlowDown,
            Fault::InternalError,
            Fault::ResetBefore,
            Fault::ResetAfter,
            Fault::Truncated,
            Fault::Latency(Duration::from_millis(200)),
        ]
    }
}

/// A request as the proxy classifies it, for a plan to choose by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `sqs` (the JSON protocol's `X-Amz-Target: AmazonSQS.*`), `query` (a form body with an
    /// `Action`: STS, IAM, or SQS's older protocol) or `s3` (anything else).
    pub service: &'static str,
    /// SQS's and the query protocol's operation name; for S3, the method and whether the path
    /// names an object or a bucket (`GET object`, `PUT bucket`), the query's first key after it
    /// (`GET bucket list-type`).
    pub operation: String,
}

/// Which calls fail, how often and how.
#[derive(Clone)]
pub struct FaultPlan {
    /// The chance that a chosen call fails, 0 to 1.
    pub rate: f64,
    /// What a failing call meets, drawn evenly.
    pub faults: Vec<Fault>,
    /// Which calls may fail.
    pub only: Arc<dyn Fn(&Call) -> bool + Send + Sync>,
}

impl FaultPlan {
    /// Nothing fails.
    pub fn none() -> FaultPlan {
        FaultPlan { rate: 0.0, faults: Vec::new(), only: Arc::new(|_| false) }
    }

    /// `rate` of every call meets one of `faults`.
    pub fn every_call(rate: f64, faults: Vec<Fault>) -> FaultPlan {
        FaultPlan { rate, faults, only: Arc::new(|_| true) }
    }
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultPlan").field("rate", &self.rate).field("faults", &self.faults).finish_non_exhaustive()
    }
}

/// What the proxy injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injected {
    /// Requests the proxy saw.
    pub calls: u64,
    /// Requests that met a fault.
    pub faults: u64,
}

#[derive(Debug)]
struct State {
    plan: Mutex<FaultPlan>,
    rng: Mutex<u64>,
    calls: AtomicU64,
    faults: AtomicU64,
}

impl State {
    /// The fault `call` meets, if any.
    fn draw(&self, call: &Call) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let plan = self.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if plan.faults.is_empty() || plan.rate <= 0.0 || !(plan.only)(call) {
            return None;
        }
        let (roll, pick) = {
            let mut state = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (next(&mut state), next(&mut state))
        };
        if (roll >> 11) as f64 / (1u64 << 53) as f64 >= plan.rate {
            return None;
        }
        self.faults.fetch_add(1, Ordering::Relaxed);
        Some(plan.faults[usize::try_from(pick % plan.faults.len() as u64).unwrap_or(0)])
    }
}

/// xorshift64*: the same draws from the same seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The proxy, on a free loopback port; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`) that injects what `plan` says,
    /// drawing from `seed`.
    pub async fn start(upstream: &str, plan: FaultPlan, seed: u64) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(State {
            plan: Mutex::new(plan),
            rng: Mutex::new(seed.max(1)),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        });
        let upstream: Arc<str> = upstream.into();
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).build().unwrap_or_default();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, client, state) = (upstream.clone(), client.clone(), serving.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (upstream, client, state) = (upstream.clone(), client.clone(), state.clone());
                        async move { handle(request, &upstream, &client, &state).await }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    // A reset ends the connection with an error: nothing to report.
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        FaultProxy { url: format!("http://127.0.0.1:{port}"), state, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the plan, for the requests from now on.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.state.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = plan;
    }

    /// What the proxy saw and injected so far.
    pub fn injected(&self) -> Injected {
        Injected { calls: self.state.calls.load(Ordering::Relaxed), faults: self.state.faults.load(Ordering::Relaxed) }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

/// The connection closes: hyper ends it when its service fails.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for Reset {}

async fn handle(
    request: hyper::Request<Incoming>,
    upstream: &str,
    client: &reqwest::Client,
    state: &State,
) -> Result<hyper::Response<Body>, Reset> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Reset),
    };
    let call = classify(&parts, &body);
    let fault = state.draw(&call);
    let error = |status: u16, code: &str| {
        let sqs = call.service == "sqs";
        let (content_type, text) = if sqs {
            ("application/x-amz-json-1.0", format!(r#"{{"__type":"{code}","message":"injected by the fault proxy"}}"#))
        } else {
            (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>"
                ),
            )
        };
        let mut response = hyper::Response::new(full(Bytes::from(text)));
        *response.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
        Ok(response)
    };
    match fault {
        Some(Fault::SlowDown) => {
            return error(503, if call.service == "sqs" { "ThrottlingException" } else { "SlowDown" });
        }
        Some(Fault::InternalError) => {
            return error(500, if call.service == "sqs" { "InternalFailure" } else { "InternalError" });
        }
        Some(Fault::ResetBefore) => return Err(Reset),
        Some(Fault::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ResetAfter | Fault::Truncated) | None => {}
    }
    let request = hyper::Request::from_parts(parts, http_body_util::Full::new(body));
    let answer = crate::forward(request, upstream, client).await;
    match fault {
        Some(Fault::ResetAfter) => Err(Reset),
        Some(Fault::Truncated) => {
            let (parts, body) = answer.into_parts();
            let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            if bytes.len() < 2 {
                // Nothing to cut: the connection closes instead.
                return Err(Reset);
            }
            let mut response = hyper::Response::from_parts(parts, Truncated::boxed(bytes));
            response.headers_mut().remove(hyper::header::TRANSFER_ENCODING);
            Ok(response)
        }

        _ => Ok(answer.map(|b| b.map_err(|never: Infallible| match never {}).boxed())),
    }
}

fn full(bytes: Bytes) -> Body {
    http_body_util::Full::new(bytes).map_err(|never: Infallible| match never {}).boxed()
}

/// An answer's first half, then an error: hyper closes the connection short of the
/// Content-Length it announced.
struct Truncated {
    half: Option<Bytes>,
}

impl Truncated {
    fn boxed(bytes: Bytes) -> Body {
        let half = bytes.slice(..bytes.len() / 2);
        Truncated { half: Some(half) }.boxed()
    }
}

impl hyper::body::Body for Truncated {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(match self.half.take() {
            Some(half) => Ok(Frame::data(half)),
            None => Err(std::io::Error::other("answer cut short by the fault proxy")),
        }))
    }
}

/// What a request is, for a plan to choose by.
fn classify(parts: &hyper::http::request::Parts, body: &[u8]) -> Call {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        return Call { service: "sqs", operation };
    }
    let form = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form && let Some((_, action)) = form_urlencoded::parse(body).find(|(k, _)| k == "Action") {
        return Call { service: "query", operation: action.into_owned() };
    }
    let path = parts.uri.path().trim_start_matches('/');
    let what = if path.contains('/') && !path.ends_with('/') { "object" } else { "bucket" };
    let mut operation = format!("{} {what}", parts.method);
    let first_key = parts.uri.query().and_then(|q| q.split('&').next()).and_then(|p| p.split('=').next());
    if let Some(key) = first_key.filter(|k| !k.is_empty() && !k.starts_with("X-Amz-")) {
        operation.push(' ');
        operation.push_str(key);
    }
    Call { service: "s3", operation }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> hyper::http::request::Parts {
        let mut request = hyper::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap_or_default().into_parts().0
    }

    #[test]
    fn calls_are_named_by_service_and_operation() {
        let sqs = parts("POST", "/", &[("x-amz-target", "AmazonSQS.ReceiveMessage")]);
        assert_eq!(classify(&sqs, b"{}"), Call { service: "sqs", operation: "ReceiveMessage".to_owned() });
        let form = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
        let sts = parts("POST", "/", &form);
        assert_eq!(
            classify(&sts, b"Action=AssumeRole&Version=2011-06-15"),
            Call { service: "query", operation: "AssumeRole".to_owned() }
        );
        let named = |method, uri| classify(&parts(method, uri, &[]), b"").operation;
        assert_eq!(named("GET", "/bucket/a/b.txt"), "GET object");
        assert_eq!(named("GET", "/bucket?list-type=2&prefix=a"), "GET bucket list-type");
        assert_eq!(named("PUT", "/bucket/key?partNumber=1&uploadId=x"), "PUT object partNumber");
        assert_eq!(named("GET", "/bucket/key?X-Amz-Algorithm=AWS4"), "GET object");
    }

    #[test]
    fn draws_follow_the_rate_and_the_choice() {
        let state = State {
            plan: Mutex::new(FaultPlan {
                rate: 0.1,
                faults: vec![Fault::SlowDown, Fault::ResetAfter],
                only: Arc::new(|call| call.service == "s3"),
            }),
            rng: Mutex::new(42),
            calls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        };
        let s3 = Call { service: "s3", operation: "GET object".to_owned() };
        let sqs = Call { service: "sqs", operation: "ReceiveMessage".to_owned() };
        let drawn: Vec<_> = (0..10_000).filter_map(|_| state.draw(&s3)).collect();
        assert!((800..1200).contains(&drawn.len()), "{} of 10,000 at 10%", drawn.len());
        assert!(drawn.contains(&Fault::SlowDown) && drawn.contains(&Fault::ResetAfter));
        assert!((0..1000).all(|_| state.draw(&sqs).is_none()), "only S3 calls fail");
        assert_eq!(
            (state.calls.load(Ordering::Relaxed), state.faults.load(Ordering::Relaxed)),
            (11_000, drawn.len() as u64)
        );
    }
}
