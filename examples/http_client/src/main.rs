//! A flaky HTTP server on 127.0.0.1 and a real HTTP client (hyper's) that
//! calls it through steadfast's tower layers: retries that hide the flaky
//! answers, a timeout that cuts a hung answer short, a circuit breaker that
//! trips on a dependency that is down and recovers with it, and a whole
//! pipeline with hedging that races a slow answer with a second request.
//!
//! Run with `cargo run -p steadfast-http-client-example`; it takes about two
//! seconds and prints what happened.
//!
//! The stack, outermost first (see `client_stack`):
//!
//! ```text
//! RetryLayer → CircuitBreakerLayer → TimeoutLayer → BulkheadLayer → HTTP client
//! ```
//!
//! and, for hedging, one `PipelineLayer` (see `hedged_client`):
//!
//! ```text
//! PipelineLayer(timeout → hedge → attempt timeout) → HTTP client
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use steadfast::breaker::{BreakerError, CircuitBreaker};
use steadfast::pipeline::{Bulkhead, Hedge, Pipeline, PipelineError};
use steadfast::retry::{RetryError, Transient};
use steadfast::tower::{
    BulkheadLayer, CircuitBreakerLayer, PipelineLayer, RetryLayer, TimeoutLayer,
};
use steadfast::RetryPolicy;
use tokio::net::TcpListener;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

// ---- the flaky server ------------------------------------------------------

/// What the server counts and how it behaves.
#[derive(Default)]
struct ServerState {
    /// Requests seen, per path.
    hits: Mutex<HashMap<String, u32>>,
    /// Whether `/down` is healed.
    healed: AtomicBool,
}

impl ServerState {
    fn hit(&self, path: &str) -> u32 {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let n = hits.entry(path.to_string()).or_default();
        *n += 1;
        *n
    }

    fn hits(&self, path: &str) -> u32 {
        let hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        hits.get(path).copied().unwrap_or(0)
    }
}

/// - `/flaky`: 503 twice, then 200, and so on (two of three requests fail).
/// - `/slow`: its first request hangs for 5 s, the others answer at once.
/// - `/down`: 500 until healed, then 200.
/// - `/lagging`: every other request (the 1st, 3rd, …) takes 2 s, the
///   others answer at once.
async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let n = state.hit(&path);
    let (status, body) = match path.as_str() {
        "/flaky" if !n.is_multiple_of(3) => (StatusCode::SERVICE_UNAVAILABLE, "busy, try again"),
        "/flaky" => (StatusCode::OK, "flaky answered"),
        "/slow" => {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            (StatusCode::OK, "slow answered")
        }
        "/down" if !state.healed.load(Ordering::SeqCst) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "down")
        }
        "/down" => (StatusCode::OK, "back up"),
        "/lagging" => {
            if n % 2 == 1 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            (StatusCode::OK, "lagging answered")
        }
        _ => (StatusCode::NOT_FOUND, "no such path"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    Ok(response)
}

/// Serves on a free port of 127.0.0.1 until the process ends.
async fn start_server(state: Arc<ServerState>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                // A connection the client drops (a timed-out call) ends with
                // an error here; nothing to report.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

// ---- the client ----------------------------------------------------------

/// What a call to the server can fail with, below the layers.
#[derive(Debug)]
enum HttpError {
    /// The server answered with a 5xx status.
    Status(StatusCode),
    /// The request did not get an answer (connect, send, receive).
    Transport(hyper_util::client::legacy::Error),
    /// The answer's body could not be read.
    Body(hyper::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status(status) => write!(f, "server answered {status}"),
            HttpError::Transport(e) => write!(f, "request failed: {e}"),
            HttpError::Body(e) => write!(f, "body failed: {e}"),
        }
    }
}

impl Error for HttpError {}

/// Which errors the retry layer retries: every 5xx and every transport
/// error (a real client would also read `Retry-After` here).
impl Transient for HttpError {
    fn is_transient(&self) -> bool {
        true
    }
}

/// The error of a call through the whole stack, outermost layer first.
type StackError = RetryError<
    BreakerError<steadfast::tower::TimeoutError<steadfast::pipeline::BulkheadError<HttpError>>>,
>;

/// hyper's client as a tower service from a URI to the body of a 2xx
/// answer.
fn http_client(
) -> impl Service<Uri, Response = String, Error = HttpError, Future: Send> + Clone + Send + 'static
{
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    service_fn(move |uri: Uri| {
        let client = client.clone();
        async move {
            let response = client.get(uri).await.map_err(HttpError::Transport)?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(HttpError::Body)?
                .to_bytes();
            if status.is_server_error() {
                return Err(HttpError::Status(status));
            }
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
    })
}

/// The client behind steadfast's layers.
fn client_stack(
    breaker: &CircuitBreaker,
) -> Result<impl Service<Uri, Response = String, Error = StackError> + Clone, steadfast::ConfigError>
{
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(50))
        // A rejection by the open breaker asks to wait its recovery time
        // (1 s), past this budget: the call gives up at once.
        .max_elapsed(Duration::from_millis(500))
        .build()?;
    let bulkhead = Bulkhead::builder().max_concurrent(4).build()?;
    Ok(ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .layer(BulkheadLayer::new(bulkhead))
        .service(http_client()))
}

/// The client behind one pipeline: 3 s for the whole call, a second request
/// when the first has not answered in 100 ms (the first answer wins, the
/// other request is dropped), 2.5 s for each request.
fn hedged_client(
    hedge: &Hedge,
) -> Result<
    impl Service<Uri, Response = String, Error = PipelineError<HttpError>> + Clone,
    steadfast::ConfigError,
> {
    let pipeline = Pipeline::builder()
        .name("hedged")
        .timeout(Duration::from_secs(3))
        .hedge(hedge.clone())
        .timeout(Duration::from_millis(2500))
        .build()?;
    Ok(PipelineLayer::new(pipeline).layer(http_client()))
}

/// One GET through the stack, printed.
async fn get<S>(stack: &S, base: &str, path: &str) -> Result<String, StackError>
where
    S: Service<Uri, Response = String, Error = StackError> + Clone,
{
    let uri: Uri = format!("{base}{path}").parse().expect("a valid URI");
    let started = std::time::Instant::now();
    let result = stack.clone().oneshot(uri).await;
    let took = started.elapsed().as_millis();
    match &result {
        Ok(body) => println!("  GET {path:<7} -> {body:?} ({took} ms)"),
        Err(e) => println!(
            "  GET {path:<7} -> failed after {} attempt(s), {}: {} ({took} ms)",
            e.attempts(),
            e.reason(),
            describe(e.inner()),
        ),
    }
    result
}

/// What stopped a call, in words.
fn describe(
    error: &BreakerError<
        steadfast::tower::TimeoutError<steadfast::pipeline::BulkheadError<HttpError>>,
    >,
) -> String {
    match error {
        BreakerError::Rejected { state, .. } => format!("refused by the {state} circuit breaker"),
        BreakerError::Inner(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let state = Arc::new(ServerState::default());
    let addr = start_server(state.clone()).await?;
    let base = format!("http://{addr}");
    println!("flaky server on {base}");

    let breaker = CircuitBreaker::builder()
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(1))
        .build()?;
    let stack = client_stack(&breaker)?;

    println!("\nretries: /flaky fails two requests in three");
    for _ in 0..3 {
        get(&stack, &base, "/flaky").await?;
    }
    println!(
        "  the server saw {} requests for 3 calls",
        state.hits("/flaky")
    );

    println!("\ntimeout: the first request to /slow hangs; it is cut at 200 ms and retried");
    get(&stack, &base, "/slow").await?;
    println!("  the server saw {} requests", state.hits("/slow"));

    println!("\ncircuit breaker: /down answers 500 until healed");
    let _ = get(&stack, &base, "/down").await;
    println!(
        "  breaker is {} after {} failures",
        breaker.state(),
        state.hits("/down")
    );
    for _ in 0..3 {
        let _ = get(&stack, &base, "/down").await;
    }
    println!(
        "  the server still saw {} requests: the open breaker kept the calls from it",
        state.hits("/down")
    );

    println!("\nrecovery: /down is healed; after the breaker's 1 s a trial call closes it");
    state.healed.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    get(&stack, &base, "/down").await?;
    println!("  breaker is {}", breaker.state());

    println!("\nhedging: every other request to /lagging takes 2 s; a second one races it");
    let hedge = Hedge::builder()
        .max_attempts(2)
        .delay(Duration::from_millis(100))
        .build()?;
    let hedged = hedged_client(&hedge)?;
    for _ in 0..2 {
        let uri: Uri = format!("{base}/lagging").parse()?;
        let started = std::time::Instant::now();
        let body = hedged.clone().oneshot(uri).await?;
        println!(
            "  GET /lagging -> {body:?} ({} ms)",
            started.elapsed().as_millis()
        );
    }
    let snapshot = hedge.snapshot();
    println!(
        "  {} calls, {} hedged; the server saw {} requests",
        snapshot.calls,
        snapshot.hedges,
        state.hits("/lagging")
    );

    Ok(())
}
