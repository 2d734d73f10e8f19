//! Storage and coordinator faults against distributed checkpoints: single
//! faults, several at once, a partition, cascading failures, retention.

use super::*;

#[tokio::test(start_paused = true)]
async fn corrupt_and_torn_reads_are_detected_and_never_returned() {
    for (label, config) in [
        ("corrupt", StorageChaosConfig::builder().corrupt_reads(1.0)),
        ("torn", StorageChaosConfig::builder().torn_reads(1.0)),
    ] {
        let mut job = Job::new(
            2,
            |seed| config.clone().seed(seed).build().unwrap(),
            ChaosConfig::default(),
        );
        job.switch.turn_off();
        for r in job.save("clean", 1).await {
            r.unwrap();
        }
        job.switch.turn_on();
        for ckpt in &job.ckpts {
            let rank = ckpt.rank();
            let load = ckpt.load("clean", LoadOptions::default()).await;
            assert!(
                load.is_err(),
                "{label}: a damaged read was returned: {load:?}"
            );
            let entry = ckpt.load_entry("clean", &format!("state.{rank}")).await;
            assert!(
                entry.is_err(),
                "{label}: a damaged entry was returned: {entry:?}"
            );
            assert!(ckpt.verify("clean").await.is_err(), "{label}");
        }
        let kind = if label == "corrupt" {
            FaultKind::CorruptRead
        } else {
            FaultKind::TornRead
        };
        assert!(job.recorder.count(kind) > 0, "{}", job.recorder.stats());
        job.check_no_loss().await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_fault_at_a_time_no_committed_checkpoint_is_lost() {
    type Faults = fn(u64) -> StorageChaosConfig;
    let faults: [(&str, Faults); 6] = [
        ("errors", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .errors(0.3)
                .build()
                .unwrap()
        }),
        ("drops", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .drops(0.2, Duration::from_millis(2))
                .build()
                .unwrap()
        }),
        ("failed writes", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .failed_writes(0.3)
                .build()
                .unwrap()
        }),
        ("corrupt reads", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .corrupt_reads(0.3)
                .build()
                .unwrap()
        }),
        ("torn reads", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .torn_reads(0.3)
                .build()
                .unwrap()
        }),
        ("latency", |s| {
            StorageChaosConfig::builder()
                .seed(s)
                .latency_between(1.0, Duration::from_millis(1), Duration::from_secs(2))
                .build()
                .unwrap()
        }),
    ];
    for (label, config) in faults {
        let mut job = Job::new(3, config, ChaosConfig::default());
        for step in 0..8 {
            let name = format!("step-{step}");
            job.save(&name, step).await;
            job.load_under_chaos(&name).await;
        }
        assert!(job.recorder.total() > 0, "{label}: nothing injected");
        job.check_no_loss().await;
        if label == "latency" || label == "corrupt reads" || label == "torn reads" {
            // Reads and delays never fail a save.
            assert_eq!(job.committed.len(), 8, "{label}: {}", job.recorder.stats());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn several_faults_at_once_on_storage_and_coordinator() {
    let coord = ChaosConfig::builder()
        .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(200))
        .errors(0.02)
        .build()
        .unwrap();
    let mut job = Job::new(4, every_storage_fault, coord);
    for step in 0..15 {
        let name = format!("step-{step}");
        job.save(&name, step).await;
        job.load_under_chaos(&name).await;
    }
    let stats = job.recorder.stats();
    assert!(
        stats.count(FaultKind::Latency) > 0 && stats.count(FaultKind::Error) > 0,
        "{stats}"
    );
    assert!(!job.committed.is_empty(), "{stats}: nothing committed");
    // A later clean-up finds every leftover of the failed saves, and leaves
    // every committed checkpoint.
    job.switch.turn_off();
    let report = job.ckpts[0]
        .cleanup_uncommitted(Duration::ZERO)
        .await
        .unwrap();
    assert!(report.objects.failed.is_empty(), "{report:?}");
    job.check_no_loss().await;
    let listed: BTreeSet<String> = job.ckpts[0]
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    for object in job.storage.list("").await.unwrap() {
        let prefix = object.key.rsplit_once('/').map_or("", |(p, _)| p);
        assert!(
            listed.contains(prefix),
            "{stats}: leftover {} after the clean-up",
            object.key
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_partition_fails_saves_on_both_sides_until_it_heals() {
    let mut job = Job::new(
        4,
        |s| StorageChaosConfig::builder().seed(s).build().unwrap(),
        ChaosConfig::default(),
    );
    for r in job.save("before", 1).await {
        r.unwrap();
    }
    job.partition.cut([3], Duration::from_secs(120));
    let start = Instant::now();
    let during = job.save("during", 2).await;
    assert!(during.iter().all(Result::is_err), "{during:?}");
    assert!(
        matches!(&during[3], Err(CheckpointError::Timeout { missing_ranks, .. }) if missing_ranks.contains(&0))
            || matches!(
                &during[3],
                Err(CheckpointError::Coordinator(
                    CoordinatorError::Timeout { .. }
                ))
            ),
        "{:?}",
        during[3]
    );
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "saves wait for their timeout"
    );
    assert!(job.recorder.count(FaultKind::Partition) > 0);
    // Wait out the partition; the job goes on.
    tokio::time::sleep_until(start + Duration::from_secs(120)).await;
    assert!(!job.partition.is_active());
    for step in 3..6 {
        for r in job.save(&format!("after-{step}"), step).await {
            r.unwrap();
        }
    }
    // A short partition only delays a collective.
    job.partition.cut([0, 1], Duration::from_secs(10));
    let start = Instant::now();
    for r in job.save("short", 9).await {
        r.unwrap();
    }
    assert!(start.elapsed() >= Duration::from_secs(10));
    job.load_under_chaos("short").await;
    job.check_no_loss().await;
}

#[tokio::test(start_paused = true)]
async fn cascading_failures_storage_then_coordinator_then_partition_then_a_dead_rank() {
    let coord = ChaosConfig::builder()
        .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(50))
        .errors(0.05)
        .build()
        .unwrap();
    let mut job = Job::new(4, every_storage_fault, coord);
    let mut step = 0;
    let mut save = async |job: &mut Job| {
        step += 1;
        let name = format!("step-{step}");
        job.save(&name, step).await;
        job.load_under_chaos(&name).await;
    };
    for _ in 0..4 {
        save(&mut job).await;
    }
    // Then a partition on top of it.
    job.partition.cut([1, 2], Duration::from_secs(45));
    for _ in 0..3 {
        save(&mut job).await;
    }
    // Then rank 3 dies for good: every save fails, nothing is lost.
    job.ckpts[0].coordinator().inner().faults().kill(3);
    let before = job.committed.len();
    for _ in 0..3 {
        let name = format!("dead-{}", job.attempts.len());
        let outcomes = job.save(&name, 100).await;
        assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    }
    assert_eq!(job.committed.len(), before);
    job.check_no_loss().await;
    println!("{}", job.recorder.stats());
}

#[tokio::test(start_paused = true)]
async fn retention_under_chaos_keeps_the_newest_committed() {
    let mut job = Job::new(2, every_storage_fault, ChaosConfig::default());
    let mut order = Vec::new();
    for step in 0..12 {
        let name = format!("step-{step:02}");
        job.save(&name, step).await;
        if job.committed.contains(&name) {
            order.push(name);
        }
        let _ = job.ckpts[0].retain_last(3).await;
    }
    job.switch.turn_off();
    let listed: Vec<String> = job.ckpts[0]
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    for name in order.iter().rev().take(3) {
        assert!(
            listed.contains(name),
            "{}: {name} lost; listed {listed:?}",
            job.recorder.stats()
        );
    }
    // What retention removed is no longer expected; the rest must verify.
    let kept: BTreeSet<String> = listed.iter().cloned().collect();
    let committed: BTreeSet<String> = job.committed.intersection(&kept).cloned().collect();
    check_visible(&job.ckpts[0], &job.attempts, &committed, &job.recorder).await;
}

#[tokio::test(start_paused = true)]
async fn a_commit_read_back_damaged_on_the_way_never_deletes_a_committed_checkpoint() {
    // The manifest's write lands but reports an error, and reading it back
    // returns damaged bytes: the committer must not take them for another
    // save's manifest and roll back, which would delete the shards of a
    // checkpoint whose manifest is stored.
    for damage in ["corrupt", "torn"] {
        let mut job = Job::new(
            2,
            |seed| {
                let config = StorageChaosConfig::builder()
                    .seed(seed)
                    .operations([Operation::PutIfAbsent, Operation::GetStream])
                    .failed_writes(1.0);
                match damage {
                    "corrupt" => config.corrupt_reads(1.0),
                    _ => config.torn_reads(1.0),
                }
                .build()
                .unwrap()
            },
            ChaosConfig::default(),
        );
        // The save may fail (the outcome is unknown) or succeed (a damaged
        // read-back that still reads as the same manifest); either way the
        // checkpoint stays whole.
        job.save("landed", 1).await;
        let stats = job.recorder.stats();
        assert!(stats.count(FaultKind::FailedWrite) > 0, "{damage}: {stats}");
        job.check_no_loss().await;
        let listed = job.ckpts[0].list().await.unwrap();
        assert_eq!(listed.len(), 1, "{damage}: the manifest landed");
    }
}
