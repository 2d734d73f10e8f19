//! Coordinated recovery under chaos and heavy load: a standby takes over.

use super::*;

struct Member {
    handle: Coord,
    ckpt: Ckpt,
    state: Arc<Mutex<Vec<u8>>>,
    recovery: RecoveryCoordinator<Coord>,
    events: broadcast::Receiver<RecoveryEvent>,
}

fn member(handle: Coord, storage: Store) -> Member {
    let fence = MembershipFence::new(handle.clone());
    let ckpt: Ckpt = Arc::new(
        DistributedCheckpoint::new(
            storage,
            handle.clone(),
            policy(),
            CheckpointOptions::default(),
        )
        .with_fence(fence.clone()),
    );
    let state = Arc::new(Mutex::new(Vec::new()));
    let (into, from) = (Arc::clone(&state), Arc::clone(&ckpt));
    let config = RecoveryCoordinatorConfig::builder()
        .recovery_strategy(RecoveryStrategyKind::RestartFromCheckpoint)
        .quorum_size(2)
        .recovery_timeout(Duration::from_secs(120))
        .answer_window(Duration::from_millis(500))
        .build()
        .unwrap();
    let recovery = RecoveryCoordinator::builder(handle.clone())
        .config(config)
        .checkpoints(Arc::clone(&ckpt))
        .fence(fence)
        .on_failure(move |ctx| {
            let (state, ckpt) = (Arc::clone(&into), Arc::clone(&from));
            async move {
                let Some(name) = &ctx.plan.checkpoint else {
                    return Ok(());
                };
                let mut restored = Vec::new();
                for shard in &ctx.assignment.shards {
                    restored.extend(ckpt.load_entry(name, &format!("state.{shard}")).await?);
                }
                *state.lock().unwrap() = restored;
                Ok(())
            }
        })
        .build();
    let events = recovery.subscribe();
    Member {
        handle,
        ckpt,
        state,
        recovery,
        events,
    }
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_under_chaos_and_heavy_load() {
    let seed = seed();
    let memory = MemoryStorage::new();
    let switch = ChaosSwitch::new(true);
    let recorder = ChaosRecorder::new().seed(seed);
    let handles = InMemoryCoordinator::new(3);
    let spare = handles[0].add_standby("spare-0").unwrap();
    let latency = ChaosConfig::builder()
        .seed(seed)
        .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(30))
        .build()
        .unwrap();
    // Writes fail and every call is slow, but reads are not damaged: the
    // recovery plan reads a checkpoint that does not verify again before it
    // falls back past it, but the restore below (`load_entry` in the
    // handler) refuses a damaged entry without reading it again, and after
    // three failed attempts at the plan the recovery gives up (seed 1234).
    let storage_faults = |s: u64| {
        StorageChaosConfig::builder()
            .seed(s)
            .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(30))
            .errors(0.05)
            .failed_writes(0.05)
            .build()
            .unwrap()
    };
    let mut members: Vec<Member> = handles
        .into_iter()
        .chain([spare])
        .enumerate()
        .map(|(i, h)| {
            let handle = ChaosCoordinator::builder(h, latency.clone())
                .switch(switch.clone())
                .recorder(recorder.clone())
                .build()
                .unwrap();
            let storage = ChaosStorage::builder(memory.clone(), storage_faults(seed + i as u64))
                .switch(switch.clone())
                .recorder(recorder.clone())
                .build()
                .unwrap();
            member(handle, storage)
        })
        .collect();
    let leaders = join_all(
        members
            .iter()
            .filter(|m| m.handle.role() != Role::Standby)
            .map(|m| m.recovery.establish_leader(Duration::from_secs(10))),
    )
    .await;
    for leader in leaders {
        assert_eq!(leader.unwrap().member, "rank-0");
    }
    let tasks: Vec<_> = members.iter().map(|m| m.recovery.start()).collect();

    // Heavy load: a stream of calls through a chaotic pipeline runs all
    // along, and the ranks save until one save commits.
    let load = Chaos::builder(
        ChaosConfig::builder()
            .seed(seed)
            .latency_between(1.0, Duration::from_millis(1), Duration::from_millis(5))
            .errors(0.2)
            .build()
            .unwrap(),
    )
    .error_with(|| io::Error::from(io::ErrorKind::ConnectionReset))
    .recorder(recorder.clone())
    .build()
    .unwrap();
    let served = Arc::new(AtomicU32::new(0));
    let background = {
        let (served, pipeline) = (
            Arc::clone(&served),
            Pipeline::builder()
                .retry(
                    RetryPolicy::builder()
                        .max_retries(5)
                        .initial_delay(Duration::from_millis(1))
                        .build()
                        .unwrap(),
                )
                .strategy(load)
                .build()
                .unwrap(),
        );
        tokio::spawn(async move {
            for _ in 0..2_000 {
                if pipeline
                    .execute(|| async { Ok::<_, io::Error>(()) })
                    .await
                    .is_ok()
                {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let state_of = |name: &str, rank: usize| shard_bytes(name, rank);
    let mut attempts = BTreeMap::new();
    let mut committed = BTreeSet::new();
    for attempt in 0..10 {
        let name = format!("step-{attempt}");
        let saves = members
            .iter()
            .filter(|m| matches!(m.handle.role(), Role::Rank(_)))
            .map(|m| {
                let rank = m.handle.rank();
                *m.state.lock().unwrap() = state_of(&name, rank);
                let shard =
                    ShardData::new().with_entry(format!("state.{rank}"), state_of(&name, rank));
                let (ckpt, name) = (Arc::clone(&m.ckpt), name.clone());
                async move {
                    ckpt.save(
                        &name,
                        &shard,
                        SaveOptions::new()
                            .step(attempt)
                            .timeout(Duration::from_secs(30)),
                    )
                    .await
                }
            });
        let outcomes = join_all(saves).await;
        attempts.insert(
            name.clone(),
            (0..3).map(|r| state_of(&name, r)).collect::<Vec<_>>(),
        );
        if outcomes.iter().any(Result::is_ok) {
            committed.insert(name);
            break;
        }
    }
    let stats = recorder.stats();
    assert!(!committed.is_empty(), "{stats}: no save committed");

    // Rank 2 dies while the load goes on; the standby takes its place from
    // the newest checkpoint that verifies.
    members[0].handle.inner().faults().kill(2);
    let spare = members
        .iter_mut()
        .find(|m| m.handle.member_id() == "spare-0")
        .unwrap();
    let plan = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match spare.events.recv().await {
                Ok(RecoveryEvent::Recovered { plan, .. }) => return plan,
                Ok(RecoveryEvent::GaveUp { reason }) => panic!("{stats}: gave up: {reason}"),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{stats}: no recovery within 300 s"));
    let name = plan
        .checkpoint
        .clone()
        .expect("the plan restores a checkpoint");
    assert!(
        committed.contains(&name),
        "{stats}: the plan restores {name}, not the newest committed {committed:?}"
    );
    assert_eq!(spare.handle.role(), Role::Rank(2));
    assert_eq!(*spare.state.lock().unwrap(), state_of(&name, 2), "{stats}");
    background.await.unwrap();
    assert!(
        served.load(Ordering::Relaxed) > 1_500,
        "{}",
        recorder.stats()
    );
    for task in tasks {
        drop(task);
    }
    // Chaos off: everything committed is there and verifies.
    switch.turn_off();
    let survivor = members
        .iter()
        .find(|m| m.handle.member_id() == "rank-0")
        .unwrap();
    check_visible(&survivor.ckpt, &attempts, &committed, &recorder).await;
}
