//! The wrappers themselves: the same seed gives the same faults, a wrapper
//! switched off (or at rate 0) is transparent, rates are validated, the
//! switch flips at run time, and faults hit the selected operations.

use super::*;

fn everything(seed: u64) -> ChaosConfig {
    ChaosConfig::builder()
        .seed(seed)
        .latency_between(0.4, Duration::from_millis(1), Duration::from_millis(100))
        .errors(0.2)
        .wrong_results(0.2)
        .drops(0.1, Duration::from_millis(5))
        .build()
        .unwrap()
}

fn operation_chaos(config: ChaosConfig) -> Chaos<u64, io::Error> {
    Chaos::builder(config)
        .error_with(|| io::Error::other("injected"))
        .mutate_with(|n| n + 1_000_000)
        .recorder(ChaosRecorder::with_log(1_000))
        .build()
        .unwrap()
}

/// What 200 calls through `chaos` return, and how long each took.
async fn outcomes(chaos: &Chaos<u64, io::Error>) -> Vec<(Result<u64, String>, Duration)> {
    let mut out = Vec::new();
    for i in 0..200u64 {
        let start = Instant::now();
        let result = chaos
            .run(|| async move { Ok::<_, io::Error>(i) })
            .await
            .map_err(|e| e.to_string());
        out.push((result, start.elapsed()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults() {
    let a = operation_chaos(everything(42));
    let b = operation_chaos(everything(42));
    let c = operation_chaos(everything(43));
    let (ra, rb, rc) = (outcomes(&a).await, outcomes(&b).await, outcomes(&c).await);
    assert_eq!(ra, rb);
    assert_eq!(a.recorder().log(), b.recorder().log());
    assert_ne!(ra, rc, "another seed, other faults");
    let stats = a.recorder().stats();
    for kind in [
        FaultKind::Latency,
        FaultKind::Error,
        FaultKind::WrongResult,
        FaultKind::Dropped,
    ] {
        assert!(stats.count(kind) > 0, "{stats}: no {kind}");
    }
    assert!(stats.to_string().starts_with("seed 42: "), "{stats}");

    // Storage: the same calls, the same seed, the same faults and bytes.
    async fn storage_run(seed: u64) -> (Vec<String>, Vec<steadfast::chaos::InjectedFault>) {
        let memory = MemoryStorage::new();
        let storage = ChaosStorage::builder(memory, every_storage_fault(seed))
            .recorder(ChaosRecorder::with_log(1_000))
            .build()
            .unwrap();
        let mut seen = Vec::new();
        for i in 0..100 {
            let key = format!("k/{}", i % 7);
            seen.push(format!(
                "{:?}",
                storage.put(&key, vec![i as u8; 64].into()).await
            ));
            seen.push(format!("{:?}", storage.get(&key).await));
            seen.push(format!("{:?}", storage.get_range(&key, 3..40).await));
        }
        (seen, storage.recorder().log())
    }
    let (s1, log1) = storage_run(7).await;
    let (s2, log2) = storage_run(7).await;
    assert_eq!(s1, s2);
    assert_eq!(log1, log2);
    assert!(!log1.is_empty());
}

#[tokio::test(start_paused = true)]
async fn switched_off_or_at_rate_zero_a_wrapper_is_transparent() {
    // Operation: the switch off, then rate 0.
    let off = operation_chaos(everything(1));
    off.switch().turn_off();
    let zero = operation_chaos(ChaosConfig::builder().seed(1).build().unwrap());
    for chaos in [&off, &zero] {
        for (i, (result, took)) in outcomes(chaos).await.into_iter().enumerate() {
            assert_eq!(result, Ok(i as u64));
            assert_eq!(took, Duration::ZERO);
        }
        assert_eq!(chaos.recorder().total(), 0);
    }

    // No draw while off: calls made while off do not shift the faults of
    // the calls made after.
    let through = operation_chaos(everything(9));
    let paused = operation_chaos(everything(9));
    let mut expected = Vec::new();
    for i in 0..50u64 {
        expected.push(
            through
                .run(|| async move { Ok(i) })
                .await
                .map_err(|e| e.to_string()),
        );
    }
    let mut got = Vec::new();
    for i in 0..50u64 {
        if i == 20 {
            paused.switch().turn_off();
            for j in 0..30u64 {
                assert_eq!(paused.run(|| async move { Ok(j) }).await.unwrap(), j);
            }
            paused.switch().turn_on();
        }
        got.push(
            paused
                .run(|| async move { Ok(i) })
                .await
                .map_err(|e| e.to_string()),
        );
    }
    assert_eq!(got, expected);

    // Storage and coordinator: the same answers as the bare ones, no time.
    let bare = MemoryStorage::new();
    let wrapped = ChaosStorage::builder(MemoryStorage::new(), every_storage_fault(3))
        .build()
        .unwrap();
    wrapped.switch().turn_off();
    let start = Instant::now();
    for i in 0..50u8 {
        let key = format!("a/{i}");
        let data = vec![i; 100];
        bare.put(&key, data.clone().into()).await.unwrap();
        wrapped.put(&key, data.into()).await.unwrap();
        assert_eq!(
            bare.get(&key).await.unwrap(),
            wrapped.get(&key).await.unwrap()
        );
        assert_eq!(
            bare.get_range(&key, 5..9).await.unwrap(),
            wrapped.get_range(&key, 5..9).await.unwrap()
        );
        assert_eq!(
            bare.get_sized(&key, 100).await.unwrap(),
            wrapped.get_sized(&key, 100).await.unwrap()
        );
    }
    let keys =
        |l: Vec<steadfast::storage::ObjectMeta>| l.into_iter().map(|m| m.key).collect::<Vec<_>>();
    assert_eq!(
        keys(bare.list("a").await.unwrap()),
        keys(wrapped.list("a").await.unwrap())
    );
    assert!(matches!(
        wrapped.get("missing").await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(wrapped.recorder().total(), 0);

    let ranks: Vec<Coord> = InMemoryCoordinator::new(2)
        .into_iter()
        .map(|r| {
            let config = ChaosConfig::builder().seed(5).errors(1.0).build().unwrap();
            let chaos = ChaosCoordinator::builder(r, config).build().unwrap();
            chaos.switch().turn_off();
            chaos
        })
        .collect();
    let (a, b) = tokio::join!(
        ranks[0].all_gather(vec![0], Duration::from_secs(1)),
        ranks[1].all_gather(vec![1], Duration::from_secs(1)),
    );
    assert_eq!(a.unwrap(), vec![vec![0], vec![1]]);
    assert_eq!(b.unwrap(), vec![vec![0], vec![1]]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[test]
fn rates_and_ranges_are_validated() {
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let err = ChaosConfig::builder().errors(bad).build().unwrap_err();
        assert_eq!(err.field(), "error_rate");
        let err = ChaosConfig::builder()
            .latency(bad, Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "latency_rate");
        let err = StorageChaosConfig::builder()
            .corrupt_reads(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "corrupt_read_rate");
        let err = StorageChaosConfig::builder()
            .failed_writes(bad)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "failed_write_rate");
    }
    for edge in [0.0, 1.0] {
        assert!(ChaosConfig::builder()
            .drops(edge, Duration::ZERO)
            .build()
            .is_ok());
    }
    let err = ChaosConfig::builder()
        .latency_between(1.0, Duration::from_secs(2), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_latency");
    assert_eq!(
        StorageChaosConfig::builder()
            .operations([])
            .build()
            .unwrap_err()
            .field(),
        "operations"
    );
    // Deserialization checks the same rules, and names unknown keys.
    for (json, field) in [
        (r#"{"error_rate": 2}"#, "error_rate"),
        (r#"{"drop_rate": -1}"#, "drop_rate"),
        (
            r#"{"min_latency": "2s", "max_latency": "1s"}"#,
            "max_latency",
        ),
        (r#"{"error_rat": 0.5}"#, "error_rat"),
    ] {
        let err = serde_json::from_str::<ChaosConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{json}: {err}");
    }
    let err = serde_json::from_str::<StorageChaosConfig>(r#"{"operations": ["gte"]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gte"), "{err}");
    // A rate above zero needs what it injects.
    let err = Chaos::<u8, String>::builder(ChaosConfig::builder().errors(0.1).build().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "error_rate");
    let err =
        Chaos::<u8, String>::builder(ChaosConfig::builder().wrong_results(0.1).build().unwrap())
            .build()
            .unwrap_err();
    assert_eq!(err.field(), "wrong_result_rate");
    // A coordinator takes no wrong results and no drops.
    let rank = InMemoryCoordinator::new(1).remove(0);
    let config = ChaosConfig::builder()
        .drops(0.1, Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        ChaosCoordinator::builder(rank, config)
            .build()
            .unwrap_err()
            .field(),
        "drop_rate"
    );
}

#[tokio::test(start_paused = true)]
async fn the_switch_flips_at_run_time_from_another_task() {
    let chaos: Chaos<u32, String> =
        Chaos::builder(ChaosConfig::builder().errors(1.0).build().unwrap())
            .error_with(|| "injected".to_string())
            .build()
            .unwrap();
    let switch = chaos.switch().clone();
    let flipper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        switch.turn_off();
        tokio::time::sleep(Duration::from_secs(5)).await;
        switch.turn_on();
    });
    let mut seen = Vec::new();
    for second in 0..15 {
        seen.push((second, chaos.run(|| async { Ok(1) }).await.is_ok()));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    flipper.await.unwrap();
    for (second, ok) in seen {
        assert_eq!(ok, (5..10).contains(&second), "second {second}");
    }
    assert_eq!(chaos.recorder().count(FaultKind::Error), 10);
}

#[tokio::test(start_paused = true)]
async fn latency_is_slept_on_tokios_clock_and_drops_cancel_the_operation() {
    let config = ChaosConfig::builder()
        .latency_between(1.0, Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap();
    let chaos: Chaos<(), ()> = Chaos::builder(config).build().unwrap();
    for _ in 0..20 {
        let start = Instant::now();
        chaos.run(|| async { Ok(()) }).await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(10) && took <= Duration::from_millis(20),
            "{took:?}"
        );
    }

    // Never polled: the operation's body never runs.
    let ran = Arc::new(AtomicBool::new(false));
    let never: Chaos<(), io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .drops(1.0, Duration::ZERO)
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let flag = Arc::clone(&ran);
    let err = never
        .run(|| async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ChaosError::Dropped(d) if d.after == Duration::ZERO));
    assert!(!ran.load(Ordering::SeqCst));

    // Dropped mid-way: started, then dropped after 50 ms; what it holds is
    // released (its drop guard runs), and it never finishes.
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let released = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let midway: Chaos<(), io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .drops(1.0, Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let (r, f) = (Arc::clone(&released), Arc::clone(&finished));
    let start = Instant::now();
    let err = midway
        .run(|| async move {
            let _guard = Guard(r);
            tokio::time::sleep(Duration::from_secs(1)).await;
            f.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_dropped());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert!(released.load(Ordering::SeqCst) && !finished.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn retries_and_breakers_under_injected_errors_and_wrong_results() {
    // A retry outlasts a 30 % error rate; a check of the value would catch
    // the wrong results, which the recorder counts.
    let chaos: Chaos<u64, io::Error> = Chaos::builder(
        ChaosConfig::builder()
            .seed(seed())
            .errors(0.3)
            .wrong_results(0.1)
            .drops(0.05, Duration::from_millis(1))
            .build()
            .unwrap(),
    )
    .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
    .mutate_with(|n| n ^ 1)
    .build()
    .unwrap();
    let pipeline = Pipeline::builder()
        .retry(
            RetryPolicy::builder()
                .max_retries(10)
                .initial_delay(Duration::from_millis(1))
                .build()
                .unwrap(),
        )
        .strategy(chaos.clone())
        .build()
        .unwrap();
    let mut wrong = 0;
    for i in 0..200u64 {
        let answer = pipeline
            .execute(|| async move { Ok::<_, io::Error>(i) })
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", chaos.recorder().stats()));
        if answer != i {
            wrong += 1;
        }
    }
    let stats = chaos.recorder().stats();
    assert_eq!(wrong, stats.count(FaultKind::WrongResult), "{stats}");
    assert!(
        stats.count(FaultKind::Error) > 0 && stats.count(FaultKind::Dropped) > 0,
        "{stats}"
    );

    // A breaker opens when every call fails, and closes once chaos stops.
    let failing: Chaos<u64, io::Error> =
        Chaos::builder(ChaosConfig::builder().errors(1.0).build().unwrap())
            .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
            .build()
            .unwrap();
    let breaker = CircuitBreaker::builder()
        .failure_threshold(5)
        .build()
        .unwrap();
    let guarded = Pipeline::builder()
        .circuit_breaker(breaker.clone())
        .strategy(failing.clone())
        .build()
        .unwrap();
    let mut stopped = Vec::new();
    for _ in 0..10 {
        let err = guarded
            .execute(|| async { Ok::<u64, io::Error>(1) })
            .await
            .unwrap_err();
        stopped.push(err.stopped_by());
    }
    assert!(stopped.contains(&StoppedBy::CircuitBreaker), "{stopped:?}");
    assert_eq!(failing.recorder().count(FaultKind::Error), 5);
    failing.switch().turn_off();
    let mut recovered = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if guarded
            .execute(|| async { Ok::<u64, io::Error>(1) })
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the breaker never closed once chaos stopped");
    let dropped: Result<u64, PipelineError<io::Error>> = Pipeline::of(
        Chaos::builder(
            ChaosConfig::builder()
                .drops(1.0, Duration::from_millis(3))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap(),
    )
    .execute(|| async { Ok(1) })
    .await;
    assert!(
        matches!(dropped, Err(PipelineError::TimedOut { after }) if after == Duration::from_millis(3))
    );
}

#[tokio::test(start_paused = true)]
async fn storage_faults_hit_the_selected_operations_one_bit_or_the_tail() {
    use tokio::io::AsyncReadExt;
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let config = |damage: &str| {
        let b = StorageChaosConfig::builder().seed(seed()).operations([
            Operation::Get,
            Operation::GetStream,
            Operation::GetRange,
        ]);
        match damage {
            "corrupt" => b.corrupt_reads(1.0),
            _ => b.torn_reads(1.0),
        }
        .build()
        .unwrap()
    };
    let corrupt = ChaosStorage::builder(MemoryStorage::new(), config("corrupt"))
        .build()
        .unwrap();
    let torn = ChaosStorage::builder(MemoryStorage::new(), config("torn"))
        .build()
        .unwrap();
    for storage in [&corrupt, &torn] {
        // Writes and heads are not selected: they pass through.
        storage.put("k", data.clone().into()).await.unwrap();
        assert_eq!(storage.head("k").await.unwrap().size, 10_000);
    }
    let flipped_bits = |read: &[u8], from: &[u8]| -> u32 {
        read.iter()
            .zip(from)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    };
    for _ in 0..20 {
        let read = corrupt.get("k").await.unwrap();
        assert_eq!((read.len(), flipped_bits(&read, &data)), (10_000, 1));
        let range = corrupt.get_range("k", 100..600).await.unwrap();
        assert_eq!(flipped_bits(&range, &data[100..600]), 1);
        let mut stream = corrupt.get_stream("k").await.unwrap();
        let mut bytes = Vec::new();
        stream.reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!((bytes.len(), flipped_bits(&bytes, &data)), (10_000, 1));

        let read = torn.get("k").await.unwrap();
        assert!(read.len() < 10_000 && data.starts_with(&read));
        let mut stream = torn.get_stream("k").await.unwrap();
        assert_eq!(
            stream.meta.size, 10_000,
            "the size still claims the whole object"
        );
        let mut bytes = Vec::new();
        stream.reader.read_to_end(&mut bytes).await.unwrap();
        assert!(bytes.len() < 10_000 && data.starts_with(&bytes));
    }
    assert_eq!(corrupt.recorder().count(FaultKind::CorruptRead), 60);
    assert_eq!(torn.recorder().count(FaultKind::TornRead), 40);
    // get_sized knows the size to expect: a torn read is a length mismatch.
    let sized_torn = ChaosStorage::builder(MemoryStorage::new(), config("torn"))
        .build()
        .unwrap();
    sized_torn
        .inner()
        .put("k", data.clone().into())
        .await
        .unwrap();
    assert!(matches!(
        sized_torn.get_sized("k", 10_000).await,
        Err(StorageError::LengthMismatch {
            expected: 10_000,
            ..
        })
    ));
}
