//! Serves steadfast's metrics on `/metrics` (127.0.0.1) while a named
//! breaker, a named retry, checkpoint saves and a coordinated recovery run,
//! then keeps serving for a while.
//!
//! ```text
//! cargo run -p steadfast-prometheus-example -- [PORT] [SECONDS]
//! ```
//!
//! `PORT` (or the environment variable `METRICS_PORT`; 0, the default: any
//! free port) is where `/metrics` is served; the program prints the
//! address, runs the work, prints a scrape of its own, and serves for
//! `SECONDS` more (default 0) so that a Prometheus or a `curl` can read it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use steadfast_prometheus_example::{install, parse, scrape, workload, BoxError};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next().or_else(|| std::env::var("METRICS_PORT").ok()) {
        Some(port) => port.parse()?,
        None => 0,
    };
    let linger: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);

    let addr = install(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    println!("serving metrics on http://{addr}/metrics");

    let done = workload().await?;
    println!("done: {done:?}");

    let body = scrape(addr, "/metrics").await?;
    let exposition = parse(&body)?;
    for sample in exposition
        .samples
        .iter()
        .filter(|s| s.name.starts_with("fault_tolerance_") && !s.name.ends_with("_bucket"))
    {
        println!("{} {:?} {}", sample.name, sample.labels, sample.value);
    }
    if linger > 0 {
        println!("serving for {linger} s more");
        tokio::time::sleep(Duration::from_secs(linger)).await;
    }
    Ok(())
}
