//! Tests of `steadfast::config`.
use steadfast::config::*;

#[test]
fn scratch() {
    let text = std::fs::read_to_string("examples/fault_tolerance.toml").unwrap();
    let c = FaultToleranceConfig::from_toml_str(&text);
    match &c { Ok(c) => println!("{}", c.to_toml_string().unwrap()), Err(e) => println!("ERR {e}") }
    let c = c.unwrap();
    println!("{}", c.to_json_string().unwrap());
    for t in [
        "[fault_tolerance.breakers.payments]\nfailure_rate_threshold = 1.5\nsliding_window = { kind = \"count\", size = 10 }\n",
        "[fault_tolerance.breakers.payments]\nfailure_rate_threshold = 0.5\n",
        "[fault_tolerance.breakers.payments]\nfailure_threshold = \"x\"\n",
        "[fault_tolerance.breakers.payments]\nsliding_window = { kind = \"count\", size = 0 }\n",
        "[fault_tolerance.breakers.payments]\nsliding_window = { kind = \"time\", duration = \"soon\" }\n",
        "[fault_tolerance.health]\nheartbeat_interval = \"1m\"\n",
        "[fault_tolerance]\nheartbeat_interval = \"1s\"\n[fault_tolerance.health]\nheartbeat_interval = \"2s\"\n",
        "[fault_tolerance.rate_limiters.x]\npermits = 3\n",
        "[fault_tolerance.checkpoint]\ncheckpoint_storage = \"s3://bucket/x\"\n",
        "[fault_tolerance.replication]\nreplication_factor = 2\n",
        "[fault_tolerance.retries.x]\npreset = \"fast\"\n",
        "[fault_tolerance.health]\ndetection = { phi_accrual = { threshold = -1.0 } }\n",
        "[fault_tolerance.checkpoint]\ncheckpoint_overlap = \"never\"\n",
        "[fault_tolerence]\nx = 1\n",
        "[fault_tolerance]\nx = 1\n",
        "[fault_tolerance.recovery]\nrecovery_strategy = \"pray\"\n",
    ] {
        println!("---\n{t}=> {}", FaultToleranceConfig::from_toml_str(t).unwrap_err());
    }
    for t in [
        "{\"fault_tolerance\": {\n \"breakers\": {\"p\": {\n  \"failure_threshold\": 0}}}}",
        "{\"fault_tolerance\": {\n \"breakers\": {\"p\": {\n  \"failure_threshold\": 0,}}}}",
    ] {
        println!("---\n{t}=> {}", FaultToleranceConfig::from_json_str(t).unwrap_err());
    }
    for v in [
        vec![("STEADFAST_BREAKERS__PAYMENTS__FAILURE_RATE_THRESHOLD", "0.5")],
        vec![("STEADFAST_BREAKERS__PAYMENTS__FAILURE_RATE_THRESHOLD", "abc")],
        vec![("STEADFAST_HEALTH__HEARTBEAT_INTERVL", "5s")],
        vec![("STEADFAST_HEALTH__DETECTION", "missed_heartbeats"), ("STEADFAST_PREDICTION_ENABLED", "yes")],
    ] {
        println!("---\n{v:?}=> {:?}", c.clone().with_env_overrides(v.clone()).map(|_| ()).map_err(|e| e.to_string()));
    }
}
