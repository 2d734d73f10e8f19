//! Coordinated recovery in one process, on paused time: ranks and standbys
//! of an `InMemoryCoordinator` job, each with fenced checkpoints and a
//! `RecoveryCoordinator` whose handler restores the rank's state from the
//! plan's checkpoint.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::damaged_reads::DamagedReads;
use futures::future::join_all;
use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, MembershipFence, SaveOptions,
    ShardData,
};
use steadfast::coordinator::{Coordinator, EpochRecord, InMemoryCoordinator, Membership, Role};
use steadfast::recovery::{
    FailureCause, RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent, RecoveryHandle,
    RecoveryPlan, RecoveryStrategyKind,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::MemoryStorage;
use tokio::sync::broadcast;

type Ckpt = Arc<DistributedCheckpoint<DamagedReads, InMemoryCoordinator>>;

/// One member of the job: its handle, checkpoints, state and recovery.
struct Member {
    handle: InMemoryCoordinator,
    ckpt: Ckpt,
    state: Arc<Mutex<Vec<u8>>>,
    recovery: RecoveryCoordinator<InMemoryCoordinator>,
    events: broadcast::Receiver<RecoveryEvent>,
    task: Option<RecoveryHandle>,
}

struct Job {
    storage: MemoryStorage,
    /// The same storage, as every member reads it: reads of one key can
    /// come back damaged.
    reads: DamagedReads,
    members: Vec<Member>,
    /// The members killed so far.
    dead: Mutex<Vec<String>>,
}

fn config(strategy: RecoveryStrategyKind, quorum: usize) -> RecoveryCoordinatorConfig {
    RecoveryCoordinatorConfig::builder()
        .recovery_strategy(strategy)
        .quorum_size(quorum)
        .recovery_timeout(Duration::from_secs(120))
        .answer_window(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn member(
    handle: InMemoryCoordinator,
    storage: &DamagedReads,
    config: RecoveryCoordinatorConfig,
) -> Member {
    let fence = MembershipFence::new(handle.clone());
    let ckpt: Ckpt = Arc::new(
        DistributedCheckpoint::new(
            storage.clone(),
            handle.clone(),
            RetryPolicy::default(),
            CheckpointOptions::default(),
        )
        .with_fence(fence.clone()),
    );
    let state = Arc::new(Mutex::new(Vec::new()));
    let (restore_into, restore_from) = (Arc::clone(&state), Arc::clone(&ckpt));
    let recovery = RecoveryCoordinator::builder(handle.clone())
        .config(config)
        .checkpoints(Arc::clone(&ckpt))
        .fence(fence)
        .on_failure(move |ctx| {
            let (state, ckpt) = (Arc::clone(&restore_into), Arc::clone(&restore_from));
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
        task: None,
    }
}

impl Job {
    fn new(ranks: usize, standbys: usize, config: RecoveryCoordinatorConfig) -> Job {
        let storage = MemoryStorage::new();
        let reads = DamagedReads::new(storage.clone());
        let handles = InMemoryCoordinator::new(ranks);
        let spares: Vec<_> = (0..standbys)
            .map(|i| handles[0].add_standby(&format!("spare-{i}")).unwrap())
            .collect();
        let members = handles
            .into_iter()
            .chain(spares)
            .map(|h| member(h, &reads, config))
            .collect();
        Job {
            storage,
            reads,
            members,
            dead: Mutex::new(Vec::new()),
        }
    }

    /// Kills the member holding `rank` in the job's current epoch.
    async fn kill(&self, rank: usize) {
        let live = self
            .members
            .iter()
            .find(|m| {
                !self
                    .dead
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|d| d == m.handle.member_id())
            })
            .unwrap();
        let current = live.handle.current_epoch().await.unwrap();
        self.dead.lock().unwrap().push(current.ranks[rank].clone());
        live.handle.faults().kill(rank);
    }

    async fn start(&mut self) {
        let leaders = join_all(
            self.members
                .iter()
                .filter(|m| m.handle.role() != Role::Standby)
                .map(|m| m.recovery.establish_leader(Duration::from_secs(10))),
        )
        .await;
        for leader in leaders {
            assert_eq!(leader.unwrap().member, "rank-0");
        }
        for m in &mut self.members {
            m.task = Some(m.recovery.start());
        }
    }

    fn by_id(&self, id: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.handle.member_id() == id)
            .unwrap()
    }

    /// The members holding a rank now, in rank order.
    fn ranks(&self) -> Vec<&Member> {
        let mut ranks: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| {
                matches!(m.handle.role(), Role::Rank(_))
                    && !self
                        .dead
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|d| d == m.handle.member_id())
            })
            .collect();
        ranks.sort_by_key(|m| m.handle.role().rank());
        ranks
    }

    /// Every rank holder saves `state.{rank}` = `value(rank)` as checkpoint
    /// `name`, at `step`.
    async fn save(
        &self,
        name: &str,
        step: u64,
        value: impl Fn(usize) -> Vec<u8>,
    ) -> Vec<Result<(), CheckpointError>> {
        let saves = self.ranks().into_iter().map(|m| {
            let rank = m.handle.rank();
            let shard = ShardData::new().with_entry(format!("state.{rank}"), value(rank));
            *m.state.lock().unwrap() = value(rank);
            let ckpt = Arc::clone(&m.ckpt);
            let name = name.to_string();
            async move {
                ckpt.save(
                    &name,
                    &shard,
                    SaveOptions::new()
                        .step(step)
                        .timeout(Duration::from_secs(30)),
                )
                .await
                .map(|_| ())
            }
        });
        join_all(saves).await
    }
}

/// Waits for `member`'s next `Recovered` event and returns its plan.
async fn recovered(member: &mut Member) -> Arc<RecoveryPlan> {
    let wait = async {
        loop {
            match member.events.recv().await {
                Ok(RecoveryEvent::Recovered { plan, .. }) => return plan,
                Ok(RecoveryEvent::GaveUp { reason }) => panic!("gave up: {reason}"),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .expect("no recovery within 300 s")
}

fn state_of(rank: usize) -> Vec<u8> {
    vec![rank as u8 + 1; 16]
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_a_dead_rank_from_the_last_checkpoint() {
    let mut job = Job::new(3, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 2));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.kill(2).await;

    let mut plans = Vec::new();
    for id in ["rank-0", "rank-1", "spare-0"] {
        let i = job
            .members
            .iter()
            .position(|m| m.handle.member_id() == id)
            .unwrap();
        plans.push(recovered(&mut job.members[i]).await);
    }
    assert!(
        plans.windows(2).all(|w| w[0] == w[1]),
        "every member on the same plan"
    );
    let plan = &plans[0];
    assert_eq!(plan.epoch, 1);
    assert_eq!(plan.checkpoint.as_deref(), Some("step-1"));
    assert_eq!(plan.failed[0].rank, 2);
    assert_eq!(plan.failed[0].kind, FailureCause::Crashed);
    let spare = job.by_id("spare-0");
    assert_eq!(spare.handle.role(), Role::Rank(2));
    assert_eq!(spare.handle.epoch(), 1);
    assert_eq!(
        *spare.state.lock().unwrap(),
        state_of(2),
        "the standby restored rank 2's state"
    );

    // The job goes on at the same world size: the next save commits.
    for r in job.save("step-2", 2, |r| vec![r as u8; 4]).await {
        r.unwrap();
    }
    let latest = job.members[0].ckpt.latest().await.unwrap().unwrap();
    assert_eq!((latest.name.as_str(), latest.world_size), ("step-2", 3));
    let manifest = job.members[0].ckpt.manifest("step-2").await.unwrap();
    assert_eq!(manifest.commit.unwrap().epoch, 1);
}

/// Saves `step-1` on a 3-rank job with one standby, damages the next
/// `reads` reads of rank 2's shard, kills rank 2 and returns the standby's
/// plan.
async fn plan_with_damaged_reads(reads: u64) -> (Job, Arc<RecoveryPlan>) {
    let mut job = Job::new(3, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 2));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    let manifest = job.members[0].ckpt.manifest("step-1").await.unwrap();
    let shard = manifest.shards.iter().find(|s| s.rank == 2).unwrap();
    job.reads.damage(&shard.key, reads);
    job.kill(2).await;
    let i = job
        .members
        .iter()
        .position(|m| m.handle.member_id() == "spare-0")
        .unwrap();
    let plan = recovered(&mut job.members[i]).await;
    job.reads.heal();
    (job, plan)
}

#[tokio::test(start_paused = true)]
async fn a_read_damaged_once_does_not_make_the_plan_skip_a_good_checkpoint() {
    let (job, plan) = plan_with_damaged_reads(1).await;
    assert_eq!(job.reads.damaged(), 1, "the plan's verification read it");
    assert_eq!(plan.checkpoint.as_deref(), Some("step-1"));
    let spare = job.by_id("spare-0");
    assert_eq!(spare.handle.role(), Role::Rank(2));
    assert_eq!(*spare.state.lock().unwrap(), state_of(2));
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_whose_reads_are_all_damaged_is_skipped_by_the_plan() {
    let (job, plan) = plan_with_damaged_reads(u64::MAX).await;
    assert!(job.reads.damaged() > 1, "read again before it was skipped");
    assert_eq!(plan.checkpoint, None);
    assert_eq!(job.by_id("spare-0").handle.role(), Role::Rank(2));
}

#[tokio::test(start_paused = true)]
async fn without_standbys_the_dead_ranks_work_is_redistributed() {
    let mut job = Job::new(3, 0, config(RecoveryStrategyKind::RedistributeWork, 2));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.kill(0).await;
    let a = recovered(&mut job.members[1]).await;
    let b = recovered(&mut job.members[2]).await;
    assert_eq!(a, b);
    assert_eq!(a.world_size(), 2);
    assert_eq!(job.members[1].handle.role(), Role::Rank(0));
    assert_eq!(job.members[2].handle.role(), Role::Rank(1));
    let mut all: Vec<u8> = job.members[1].state.lock().unwrap().clone();
    all.extend(job.members[2].state.lock().unwrap().iter());
    let mut expected = [state_of(0), state_of(1), state_of(2)].concat();
    all.sort();
    expected.sort();
    assert_eq!(all, expected, "the survivors hold every shard between them");
    // The new leader (the dead rank led) commits the next save.
    for r in job.save("step-2", 2, |r| vec![r as u8; 4]).await {
        r.unwrap();
    }
    let stamp = job.members[1]
        .ckpt
        .manifest("step-2")
        .await
        .unwrap()
        .commit
        .unwrap();
    assert_ne!(stamp.leader, "rank-0");
    assert_eq!(stamp.leader, a.leader.member);
}

#[tokio::test(start_paused = true)]
async fn fastest_node_takes_all_the_failed_shards() {
    let mut job = Job::new(4, 0, config(RecoveryStrategyKind::FastestNode, 2));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.kill(1).await;
    job.kill(3).await;
    let plan = recovered(&mut job.members[0]).await;
    assert_eq!(plan.world_size(), 2);
    let takers: Vec<_> = plan
        .assignments
        .iter()
        .filter(|a| a.shards.len() > 1)
        .collect();
    assert_eq!(
        takers.len(),
        1,
        "one node takes every failed shard: {plan:?}"
    );
    assert_eq!(takers[0].shards[1..], [1, 3]);
}

#[tokio::test(start_paused = true)]
async fn simultaneous_failures_are_recovered_in_one_plan_or_the_next() {
    let mut job = Job::new(4, 2, config(RecoveryStrategyKind::RestartFromCheckpoint, 2));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.kill(1).await;
    job.kill(2).await;
    // A plan may cover one failure and the next the other: wait until the
    // job holds four live ranks again.
    let mut last = recovered(&mut job.members[0]).await;
    while last.world_size() != 4 || job.ranks().len() != 4 {
        last = recovered(&mut job.members[0]).await;
    }
    let spares: Vec<_> = job
        .ranks()
        .iter()
        .map(|m| m.handle.member_id().to_string())
        .collect();
    assert_eq!(spares, ["rank-0", "spare-0", "spare-1", "rank-3"]);
    assert_eq!(*job.by_id("spare-0").state.lock().unwrap(), state_of(1));
    assert_eq!(*job.by_id("spare-1").state.lock().unwrap(), state_of(2));
    let epochs: Vec<u64> = job.ranks().iter().map(|m| m.handle.epoch()).collect();
    assert!(epochs.iter().all(|&e| e == epochs[0]), "{epochs:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_during_recovery_leads_to_a_second_plan() {
    let mut job = Job::new(3, 2, config(RecoveryStrategyKind::RestartFromCheckpoint, 1));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    // Rank 2 dies; while the first plan is carried out, rank 1 dies too.
    let mut events = job.members[0].recovery.subscribe();
    job.kill(2).await;
    loop {
        if let Ok(RecoveryEvent::PlanAdopted(_)) = events.recv().await {
            break;
        }
    }
    job.kill(1).await;
    let mut plan = recovered(&mut job.members[0]).await;
    while job.ranks().len() != 3 {
        plan = recovered(&mut job.members[0]).await;
    }
    assert!(plan.epoch >= 2, "{plan:?}");
    assert!(
        plan.attempt >= 2 || plan.failed.iter().any(|f| f.member == "rank-1"),
        "{plan:?}"
    );
    let live: Vec<_> = job
        .ranks()
        .iter()
        .map(|m| (m.handle.member_id().to_string(), m.handle.epoch()))
        .collect();
    assert!(live.iter().all(|(_, e)| *e == plan.epoch), "{live:?}");
    assert_eq!(*job.by_id("spare-1").state.lock().unwrap(), state_of(1));
}

#[tokio::test(start_paused = true)]
async fn the_leader_dying_mid_save_fails_the_save_everywhere_and_a_new_leader_commits_next() {
    let mut job = Job::new(3, 0, config(RecoveryStrategyKind::RedistributeWork, 1));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    // Shard writes now take 10 s: the leader dies while they are in flight.
    job.storage
        .faults()
        .set_latency(Operation::PutStream, Duration::from_secs(10));
    let saving = job.save("step-2", 2, state_of);
    let killing = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        job.kill(0).await;
    };
    let (results, ()) = tokio::join!(saving, killing);
    job.storage.faults().clear();
    for (rank, r) in results.iter().enumerate().skip(1) {
        assert!(
            r.is_err(),
            "rank {rank}'s save of step-2 must fail, got {r:?}"
        );
    }
    assert!(job.members[1].ckpt.manifest("step-2").await.is_err());
    let plan = recovered(&mut job.members[1]).await;
    assert_ne!(plan.leader.member, "rank-0");
    for r in job.save("step-3", 3, state_of).await {
        r.unwrap();
    }
    let stamp = job.members[1]
        .ckpt
        .manifest("step-3")
        .await
        .unwrap()
        .commit
        .unwrap();
    assert_eq!(stamp.leader, plan.leader.member);
    assert!(stamp.term > 0);
}

#[tokio::test(start_paused = true)]
async fn a_fenced_committer_never_has_a_checkpoint_restored() {
    // Rank 0 leads and commits; its manifest write is slow, and while it is
    // in flight rank 0's lease lapses: the job replaces it with the
    // standby, whose epoch commits a checkpoint of its own. Then rank 0's
    // write lands.
    let mut job = Job::new(2, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 1));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.storage
        .faults()
        .set_latency(Operation::PutIfAbsent, Duration::from_secs(30));
    let saving = job.save("step-2-stale", 2, state_of);
    let fencing = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        job.storage.faults().clear();
        job.kill(0).await;
    };
    let (results, ()) = tokio::join!(saving, fencing);
    for (rank, r) in results.iter().enumerate() {
        assert!(
            r.is_err(),
            "rank {rank}'s save of step-2-stale must fail, got {r:?}"
        );
    }
    let plan = recovered(&mut job.members[1]).await;
    assert_eq!(plan.assignments[0].member, "spare-0");
    for r in job.save("step-3", 3, state_of).await {
        r.unwrap();
    }
    let spare = job.by_id("spare-0");
    let names: Vec<_> = spare
        .ckpt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["step-3", "step-1"]);
    // The fenced committer did write its manifest (storage cannot refuse
    // it), and then took it away when the fence refused to confirm it.
    let stale = "step-2-stale/metadata.json";
    assert!(job
        .storage
        .calls()
        .iter()
        .any(|c| c.operation == Operation::PutIfAbsent && c.key == stale));
    assert!(job
        .storage
        .calls()
        .iter()
        .any(|c| c.operation == Operation::Delete && c.key == stale));
    assert!(matches!(
        spare.ckpt.manifest("step-2-stale").await,
        Err(CheckpointError::NotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn without_a_quorum_nothing_is_planned() {
    let mut job = Job::new(3, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 3));
    job.start().await;
    job.kill(2).await;
    let wait = async {
        loop {
            if let Ok(RecoveryEvent::NoQuorum {
                answered, quorum, ..
            }) = job.members[0].events.recv().await
            {
                return (answered, quorum);
            }
        }
    };
    let (answered, quorum) = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap();
    assert_eq!((answered, quorum), (2, 3));
    assert_eq!(
        job.members[0].handle.current_epoch().await.unwrap().epoch,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_from_an_unknown_member_is_ignored_and_logged() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("steadfast=debug")
        .with_test_writer()
        .try_init();
    let mut job = Job::new(2, 0, config(RecoveryStrategyKind::RedistributeWork, 1));
    job.start().await;
    let current = job.members[0].handle.current_epoch().await.unwrap();
    let mut forged = EpochRecord::next_after(&current);
    forged.payload = r#"{"epoch":1,"previous_epoch":0,"previous_world_size":2,"attempt":1,"strategy":"redistribute_work",
            "leader":{"member":"intruder","term":99},"failed":[],"checkpoint":null,
            "assignments":[{"rank":0,"member":"rank-0","previous_rank":0,"shards":[0]},
                           {"rank":1,"member":"rank-1","previous_rank":1,"shards":[1]}]}"#
        .to_string();
    assert!(job.members[0]
        .handle
        .propose_epoch(0, &forged)
        .await
        .unwrap()
        .is_accepted());
    let wait = async {
        loop {
            if let Ok(RecoveryEvent::PlanIgnored { reason, .. }) =
                job.members[1].events.recv().await
            {
                return reason;
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap();
    assert!(reason.contains("intruder"), "{reason}");
    assert_eq!(
        job.members[1].handle.epoch(),
        0,
        "the forged plan was not adopted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_predicted_failure_migrates_the_member_away() {
    let mut job = Job::new(2, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 1));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.members[0]
        .recovery
        .migrate("rank-1", 0.97)
        .await
        .unwrap();
    let plan = recovered(&mut job.members[0]).await;
    assert_eq!(plan.failed[0].kind, FailureCause::Predicted);
    assert_eq!(plan.assignments[1].member, "spare-0");
    let fenced = async {
        loop {
            if let Ok(RecoveryEvent::Fenced { epoch }) = job.members[1].events.recv().await {
                return epoch;
            }
        }
    };
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), fenced)
            .await
            .unwrap(),
        1
    );
    assert_eq!(*job.by_id("spare-0").state.lock().unwrap(), state_of(1));
}

#[tokio::test(start_paused = true)]
async fn the_job_reads_only_confirmed_commits() {
    let storage = MemoryStorage::new();
    let rank = InMemoryCoordinator::new(1).remove(0);
    let open = |fenced: bool| {
        let ckpt = DistributedCheckpoint::new(
            storage.clone(),
            rank.clone(),
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        if fenced {
            ckpt.with_fence(MembershipFence::new(rank.clone()))
        } else {
            ckpt
        }
    };
    let (fenced, unfenced) = (open(true), open(false));
    let shard = ShardData::new().with_entry("w", vec![1, 2, 3]);
    fenced
        .save("a", &shard, SaveOptions::new().step(1))
        .await
        .unwrap();
    // A commit nothing confirms, as a fenced committer's manifest would be.
    unfenced
        .save("b", &shard, SaveOptions::new().step(2))
        .await
        .unwrap();
    let names = |infos: Vec<steadfast::checkpoint::CheckpointInfo>| -> Vec<String> {
        infos.into_iter().map(|i| i.name).collect()
    };
    assert_eq!(names(unfenced.list().await.unwrap()), ["b", "a"]);
    assert_eq!(names(fenced.list().await.unwrap()), ["a"]);
    assert_eq!(fenced.latest().await.unwrap().unwrap().name, "a");
    assert!(matches!(
        fenced.manifest("b").await,
        Err(CheckpointError::Unconfirmed { .. })
    ));
    assert!(matches!(
        fenced.load_entry("b", "w").await,
        Err(CheckpointError::Unconfirmed { .. })
    ));
    assert_eq!(fenced.load_entry("a", "w").await.unwrap(), vec![1, 2, 3]);
    assert_eq!(fenced.manifest("a").await.unwrap().commit.unwrap().epoch, 0);
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_minority_stops_and_rejoins_under_the_current_epoch_when_healed() {
    // Four ranks, a quorum of three. Rank 3 is cut off when rank 1 dies:
    // the two others are no quorum, so nothing is planned and nothing is
    // committed; once the partition heals, rank 3 answers, the job
    // recovers, and rank 3 holds a rank of the new epoch.
    let mut job = Job::new(4, 0, config(RecoveryStrategyKind::RedistributeWork, 3));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    job.members[0].handle.faults().partition(&["rank-3"]);
    job.kill(1).await;
    let wait = async {
        loop {
            if let Ok(RecoveryEvent::NoQuorum { answered, .. }) = job.members[0].events.recv().await
            {
                return answered;
            }
        }
    };
    let answered = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap();
    assert_eq!(answered, 2);
    // The cut-off side cannot commit either.
    let cut_off = job.members[3]
        .ckpt
        .save(
            "step-2",
            &ShardData::new(),
            SaveOptions::new().timeout(Duration::from_secs(5)),
        )
        .await;
    assert!(cut_off.is_err(), "{cut_off:?}");
    assert_eq!(
        job.members[0].handle.current_epoch().await.unwrap().epoch,
        0
    );

    job.members[0].handle.faults().heal();
    let plan = recovered(&mut job.members[0]).await;
    assert_eq!(plan.world_size(), 3);
    assert_eq!(job.members[3].handle.role(), Role::Rank(2));
    assert_eq!(job.members[3].handle.epoch(), plan.epoch);
    for r in job.save("step-2", 2, state_of).await {
        r.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_predictor_hands_a_degrading_rank_over_for_migration() {
    use steadfast::recovery::prediction::{
        FailurePredictor, LogisticModel, PredictionConfig, TraceGenerator,
    };
    let mut job = Job::new(2, 1, config(RecoveryStrategyKind::RestartFromCheckpoint, 1));
    job.start().await;
    for r in job.save("step-1", 1, state_of).await {
        r.unwrap();
    }
    let history: Vec<_> = (1..=5u64)
        .flat_map(|seed| TraceGenerator::new(seed).batch(60))
        .collect();
    let mut model = LogisticModel::new(Duration::from_secs(10)).unwrap();
    model.train(&history).unwrap();
    let predictor = FailurePredictor::new(
        PredictionConfig::builder()
            .prediction_interval(Duration::from_secs(1))
            .build()
            .unwrap(),
        model,
    );
    predictor.set_learning(false);
    job.members[0]
        .recovery
        .migrate_predicted(&predictor, 0.9)
        .unwrap();
    let _evaluating = predictor.start().unwrap();
    // Both ranks are healthy for a minute, then rank 1's error rate climbs
    // to 70% over 20 s.
    for s in 0..100u64 {
        let at = tokio::time::Instant::now();
        for rank in [0usize, 1] {
            predictor.observe_heartbeat(rank, at);
            let rate = if rank == 1 && s >= 60 {
                ((s - 60) as f64 / 20.0).min(1.0) * 0.7
            } else {
                0.0
            };
            let errors = (rate * 10.0).round() as u32;
            for op in 0..10 {
                predictor.observe_outcome(rank, op >= errors, Duration::from_millis(20), at);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if job.by_id("spare-0").handle.role() == Role::Rank(1) {
            break;
        }
    }
    let plan = recovered(&mut job.members[0]).await;
    assert_eq!(plan.failed[0].kind, FailureCause::Predicted);
    assert_eq!(plan.failed[0].member, "rank-1");
    assert!(
        plan.failed[0].reason.starts_with("predicted:"),
        "{}",
        plan.failed[0].reason
    );
    assert_eq!(*job.by_id("spare-0").state.lock().unwrap(), state_of(1));
}

/// A membership whose watch takes its first snapshot late, as etcd's does
/// (its first read runs on a task of its own, some time after
/// `watch_membership` returns): the in-memory one, wrapped.
#[derive(Debug, Clone)]
struct LateWatch {
    inner: InMemoryCoordinator,
    snapshot_after: Duration,
}

#[async_trait::async_trait]
impl Coordinator for LateWatch {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn barrier(&self, timeout: Duration) -> steadfast::coordinator::Result<()> {
        self.inner.barrier(timeout).await
    }
    async fn all_gather(
        &self,
        data: Vec<u8>,
        timeout: Duration,
    ) -> steadfast::coordinator::Result<Vec<Vec<u8>>> {
        self.inner.all_gather(data, timeout).await
    }
    async fn signal(&self, key: &str, payload: Vec<u8>) -> steadfast::coordinator::Result<u64> {
        self.inner.signal(key, payload).await
    }
    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        after: u64,
        timeout: Duration,
    ) -> steadfast::coordinator::Result<steadfast::coordinator::Signal> {
        self.inner.wait_for_rank(rank, key, after, timeout).await
    }
}

#[async_trait::async_trait]
impl Membership for LateWatch {
    fn member_id(&self) -> &str {
        self.inner.member_id()
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    fn role(&self) -> Role {
        self.inner.role()
    }
    async fn current_epoch(&self) -> steadfast::coordinator::Result<EpochRecord> {
        self.inner.current_epoch().await
    }
    async fn propose_epoch(
        &self,
        expected: u64,
        next: &EpochRecord,
    ) -> steadfast::coordinator::Result<steadfast::coordinator::EpochOutcome> {
        self.inner.propose_epoch(expected, next).await
    }
    async fn enter_epoch(&self, record: &EpochRecord) -> steadfast::coordinator::Result<()> {
        self.inner.enter_epoch(record).await
    }
    async fn live_members(
        &self,
    ) -> steadfast::coordinator::Result<Vec<steadfast::coordinator::LiveMember>> {
        self.inner.live_members().await
    }
    fn watch_membership(&self) -> steadfast::coordinator::MembershipWatch {
        use futures::StreamExt;
        let (inner, after) = (self.inner.clone(), self.snapshot_after);
        let late = futures::stream::once(async move {
            tokio::time::sleep(after).await;
            inner.watch_membership()
        })
        .flatten();
        steadfast::coordinator::MembershipWatch::new(late)
    }
    async fn declare_failed(
        &self,
        rank: usize,
        reason: &str,
    ) -> steadfast::coordinator::Result<()> {
        self.inner.declare_failed(rank, reason).await
    }
    async fn read_record(
        &self,
        key: &str,
    ) -> steadfast::coordinator::Result<Option<steadfast::coordinator::Versioned>> {
        self.inner.read_record(key).await
    }
    async fn list_records(
        &self,
        prefix: &str,
    ) -> steadfast::coordinator::Result<Vec<(String, steadfast::coordinator::Versioned)>> {
        self.inner.list_records(prefix).await
    }
    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> steadfast::coordinator::Result<steadfast::coordinator::CasOutcome> {
        self.inner.compare_and_set(key, expected, value).await
    }
    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&steadfast::coordinator::Leadership>,
    ) -> steadfast::coordinator::Result<u64> {
        self.inner.put_fenced(key, value, leadership).await
    }
    async fn campaign(
        &self,
        timeout: Duration,
    ) -> steadfast::coordinator::Result<steadfast::coordinator::Leadership> {
        self.inner.campaign(timeout).await
    }
    async fn leader(
        &self,
    ) -> steadfast::coordinator::Result<Option<steadfast::coordinator::Leadership>> {
        self.inner.leader().await
    }
    async fn resign(
        &self,
        leadership: &steadfast::coordinator::Leadership,
    ) -> steadfast::coordinator::Result<()> {
        self.inner.resign(leadership).await
    }
}

/// A rank that reads no leader, and whose watch takes its first snapshot
/// only after rank 0 was elected, still learns the leader: the election is
/// in the snapshot, not among the watch's changes.
#[tokio::test(start_paused = true)]
async fn establish_leader_sees_a_leader_elected_before_its_watch_snapshot() {
    let ranks = InMemoryCoordinator::new(2);
    let late = LateWatch {
        inner: ranks[1].clone(),
        snapshot_after: Duration::from_secs(1),
    };
    let follower = RecoveryCoordinator::builder(late).build();
    let leader = RecoveryCoordinator::builder(ranks[0].clone()).build();
    let (followed, led) = tokio::join!(follower.establish_leader(Duration::from_secs(10)), async {
        // Elected after the follower's first read, before its watch's
        // snapshot.
        tokio::time::sleep(Duration::from_millis(500)).await;
        leader.establish_leader(Duration::from_secs(10)).await
    });
    let led = led.unwrap();
    assert_eq!(led.member, "rank-0");
    assert_eq!(followed.unwrap(), led);
}
