//! The checkpoint manager saving and restoring under storage chaos.

use super::*;

#[tokio::test(start_paused = true)]
async fn the_manager_saves_and_restores_under_storage_chaos() {
    let seed = seed();
    let memory = MemoryStorage::new();
    let switch = ChaosSwitch::new(true);
    let recorder = ChaosRecorder::new().seed(seed);
    let managers: Vec<_> = InMemoryCoordinator::new(3)
        .into_iter()
        .enumerate()
        .map(|(rank, handle)| {
            let storage =
                ChaosStorage::builder(memory.clone(), every_storage_fault(seed + rank as u64))
                    .switch(switch.clone())
                    .recorder(recorder.clone())
                    .build()
                    .unwrap();
            let ckpt =
                DistributedCheckpoint::new(storage, handle, policy(), CheckpointOptions::default());
            CheckpointManager::builder(ckpt)
                .prefix("run")
                .every_n_steps(1)
                .build()
                .unwrap()
        })
        .collect();
    let tasks: Vec<_> = managers
        .into_iter()
        .map(|m| {
            tokio::spawn(async move {
                let rank = m.checkpoint().rank() as u64;
                let value = JsonState::new(0u64);
                m.register_state("value", value.clone()).unwrap();
                let mut committed = Vec::new();
                for step in 1..=10u64 {
                    value.set(step * 10 + rank);
                    if let Ok(Some(pending)) = m.step().await {
                        let name = pending.name().to_string();
                        if pending.wait().await.is_ok() {
                            committed.push((name, step));
                        }
                    }
                }
                (m, value, committed)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    switch.turn_off();
    let stats = recorder.stats();
    let committed: BTreeSet<(String, u64)> = results.iter().flat_map(|r| r.2.clone()).collect();
    assert!(
        !committed.is_empty(),
        "{stats}: the manager committed nothing"
    );
    let m = &results[0].0;
    let points = m.recovery_points(&RecoveryFilter::all()).await.unwrap();
    let visible: BTreeSet<&str> = points.iter().map(|p| p.name.as_str()).collect();
    for (name, _) in &committed {
        assert!(visible.contains(name.as_str()), "{stats}: {name} lost");
    }
    for point in &points {
        m.checkpoint()
            .verify(&point.name)
            .await
            .unwrap_or_else(|e| panic!("{stats}: {} does not verify: {e}", point.name));
    }
    // Every rank restores the newest checkpoint, with its own value.
    let newest = committed.iter().map(|(_, step)| *step).max().unwrap();
    let restores = join_all(results.iter().map(|(m, value, _)| async move {
        value.set(0);
        let report = m.restore_latest().await.unwrap().unwrap();
        (
            m.checkpoint().rank() as u64,
            report.point.step.unwrap(),
            value.get(),
        )
    }))
    .await;
    for (rank, step, value) in restores {
        assert!(
            step >= newest,
            "{stats}: restored step {step}, newest committed {newest}"
        );
        assert_eq!(value, step * 10 + rank, "{stats}");
    }
}
