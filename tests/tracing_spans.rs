//! The `tracing` spans of retries, checkpoint saves, loads and rollbacks,
//! manager saves and recoveries: their names, fields, outcomes and
//! parentage, as `steadfast::spans` documents them.
//!
//! One subscriber (a registry with a recording layer) is installed for the
//! whole process, so that every call site is enabled whichever test reaches
//! it first (see `tests/common/capture.rs` for the race a per-test
//! subscriber has). Each span goes to the recorder of the thread that made
//! it, if that thread has one; `#[tokio::test]` runs its tasks on the
//! test's own thread, so a test sees its own spans and no other test's.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use steadfast::checkpoint::{
    CheckpointError, CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData,
};
use steadfast::coordinator::InMemoryCoordinator;
use steadfast::manager::{CheckpointManager, JsonState};
use steadfast::recovery::{
    ErrorRecoveryManager, RecoveryCoordinator, RecoveryCoordinatorConfig, RecoveryEvent,
    RecoveryStrategyKind, Severity,
};
use steadfast::retry::RetryPolicy;
use steadfast::storage::testing::Operation;
use steadfast::storage::MemoryStorage;
use tracing::Instrument;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as recorded: its name, its parent (an index into the same
/// list) and its fields (strings as they are, the rest with `Debug`).
#[derive(Clone, Debug)]
struct Recorded {
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

type Sink = Arc<Mutex<Vec<Recorded>>>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Where a span's record went: its sink and its index there.
struct Slot(Sink, usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

struct Recorder;

impl<S> Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(sink) = SINK.with(|sink| sink.borrow().clone()) else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Slot>().map(|slot| slot.1));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let index = {
            let mut spans = sink.lock().unwrap();
            spans.push(Recorded {
                name: attrs.metadata().name(),
                parent,
                fields,
            });
            spans.len() - 1
        };
        span.extensions_mut().insert(Slot(sink, index));
    }

    fn on_record(&self, id: &tracing::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let Some(Slot(sink, index)) = extensions.get::<Slot>() else {
            return;
        };
        let mut spans = sink.lock().unwrap();
        values.record(&mut Fields(&mut spans[*index].fields));
    }
}

/// Records the spans this thread makes until the returned guard is
/// dropped, and gives them back through the sink.
fn record() -> (Sink, impl Drop) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .expect("no other global subscriber in this test binary");
    });
    let sink: Sink = Arc::default();
    SINK.with(|s| *s.borrow_mut() = Some(Arc::clone(&sink)));
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            SINK.with(|s| *s.borrow_mut() = None);
        }
    }
    (sink, Stop)
}

/// The spans recorded so far.
fn recorded(sink: &Sink) -> Vec<Recorded> {
    sink.lock().unwrap().clone()
}

/// The indexes of the spans named `name`.
fn named(spans: &[Recorded], name: &str) -> Vec<usize> {
    (0..spans.len())
        .filter(|&i| spans[i].name == name)
        .collect()
}

/// The indexes of the spans named `name` whose parent is `parent`.
fn children(spans: &[Recorded], parent: usize, name: &str) -> Vec<usize> {
    (0..spans.len())
        .filter(|&i| spans[i].name == name && spans[i].parent == Some(parent))
        .collect()
}

fn field<'a>(span: &'a Recorded, name: &str) -> &'a str {
    span.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("span {} has no field {name}: {span:?}", span.name))
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100))
        .build()
        .unwrap()
}

fn handles(
    storage: &MemoryStorage,
    world_size: usize,
) -> Vec<Arc<DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>>> {
    InMemoryCoordinator::new(world_size)
        .into_iter()
        .map(|rank| {
            Arc::new(DistributedCheckpoint::new(
                storage.clone(),
                rank,
                policy(),
                CheckpointOptions::default(),
            ))
        })
        .collect()
}

/// Every rank saves `name`, at step 7, on its own task (which carries the
/// test's span), and returns each rank's error, if any.
async fn save_on_every_rank(
    ckpts: &[Arc<DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>>],
    name: &str,
) -> Vec<Option<CheckpointError>> {
    let tasks = ckpts.iter().map(|ckpt| {
        let (ckpt, name) = (Arc::clone(ckpt), name.to_string());
        tokio::spawn(
            async move {
                let rank = ckpt.rank();
                let shard = ShardData::new().with_entry(format!("w.{rank}"), vec![rank as u8; 100]);
                ckpt.save(&name, &shard, SaveOptions::new().step(7))
                    .await
                    .err()
            }
            .in_current_span(),
        )
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_fails_twice_then_succeeds_has_one_sequence_span_and_three_attempts() {
    let (sink, _recording) = record();
    let mut calls = 0;
    let value = policy()
        .retry(|| {
            calls += 1;
            let n = calls;
            async move {
                // The operation's own span, inside the attempt's.
                let _op = tracing::info_span!("test.operation", n).entered();
                if n < 3 {
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                } else {
                    Ok(n)
                }
            }
        })
        .named("fetch")
        .await
        .unwrap();
    assert_eq!(value, 3);

    let spans = recorded(&sink);
    let sequences = named(&spans, "steadfast.retry");
    assert_eq!(sequences.len(), 1, "{spans:#?}");
    let sequence = &spans[sequences[0]];
    assert_eq!(field(sequence, "name"), "fetch");
    assert_eq!(field(sequence, "attempts"), "3");
    assert_eq!(field(sequence, "outcome"), "ok");
    assert_eq!(sequence.parent, None);

    let attempts = children(&spans, sequences[0], "steadfast.retry.attempt");
    assert_eq!(attempts.len(), 3, "{spans:#?}");
    let seen: Vec<(&str, &str, Option<&str>)> = attempts
        .iter()
        .map(|&i| {
            let span = &spans[i];
            (
                field(span, "attempt"),
                field(span, "outcome"),
                span.fields.get("delay_ms").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1", "retry", Some("10")),
            ("2", "retry", Some("20")),
            ("3", "ok", None)
        ]
    );
    // Attempts 2 and 3 ran inside their spans; attempt 1 ran before the
    // sequence's span was opened (at its failure).
    for (attempt, n) in [(attempts[1], "2"), (attempts[2], "3")] {
        let ops = children(&spans, attempt, "test.operation");
        assert_eq!(ops.len(), 1, "{spans:#?}");
        assert_eq!(field(&spans[ops[0]], "n"), n);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_at_once_opens_no_span_and_one_that_gives_up_says_why() {
    let (sink, _recording) = record();
    let ok = policy()
        .retry(|| async { Ok::<_, io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(ok, 1);
    assert!(named(&recorded(&sink), "steadfast.retry").is_empty());

    let err = policy()
        .retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut)) })
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 4);
    let denied = policy()
        .retry(|| async { Err::<(), _>("denied") })
        .when(|_| false)
        .await
        .unwrap_err();
    assert_eq!(denied.attempts(), 1);

    let spans = recorded(&sink);
    let sequences = named(&spans, "steadfast.retry");
    assert_eq!(sequences.len(), 2, "{spans:#?}");
    let exhausted = &spans[sequences[0]];
    assert_eq!(field(exhausted, "outcome"), "exhausted");
    assert_eq!(field(exhausted, "attempts"), "4");
    assert!(!exhausted.fields.contains_key("name"));
    let last = children(&spans, sequences[0], "steadfast.retry.attempt");
    assert_eq!(last.len(), 4);
    assert_eq!(field(&spans[last[3]], "outcome"), "exhausted");
    let not_retried = &spans[sequences[1]];
    assert_eq!(field(not_retried, "outcome"), "not_retryable");
    assert_eq!(field(not_retried, "attempts"), "1");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_retry_records_that_it_was_cancelled() {
    let (sink, _recording) = record();
    let retry = policy().retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut)) });
    // The first attempt fails, then the retry waits 10 ms: stop it there.
    assert!(tokio::time::timeout(Duration::from_millis(5), retry)
        .await
        .is_err());
    let spans = recorded(&sink);
    let sequences = named(&spans, "steadfast.retry");
    assert_eq!(sequences.len(), 1, "{spans:#?}");
    assert_eq!(field(&spans[sequences[0]], "outcome"), "cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_distributed_save_has_one_span_per_rank_with_its_phases_then_a_load() {
    let (sink, _recording) = record();
    let storage = MemoryStorage::new();
    let ckpts = handles(&storage, 2);
    let job = tracing::info_span!("test.job");
    let saved = save_on_every_rank(&ckpts, "step-7").instrument(job).await;
    assert!(saved.iter().all(Option::is_none), "{saved:?}");

    let spans = recorded(&sink);
    let jobs = named(&spans, "test.job");
    let saves = children(&spans, jobs[0], "steadfast.checkpoint.save");
    assert_eq!(
        saves.len(),
        2,
        "one save span per rank, under the job: {spans:#?}"
    );
    let mut ranks: Vec<&str> = saves.iter().map(|&i| field(&spans[i], "rank")).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, ["0", "1"]);
    for &save in &saves {
        let span = &spans[save];
        assert_eq!(field(span, "name"), "step-7");
        assert_eq!(field(span, "step"), "7");
        assert_eq!(field(span, "world_size"), "2");
        assert_eq!(field(span, "outcome"), "ok");
        assert_eq!(field(span, "bytes"), "200", "the checkpoint's total size");
        let rank = field(span, "rank");
        for phase in ["write", "gather", "commit"] {
            let name = format!("steadfast.checkpoint.save.{phase}");
            let found = children(&spans, save, &name);
            assert_eq!(
                found.len(),
                1,
                "one {phase} phase under rank {rank}'s save: {spans:#?}"
            );
            assert_eq!(field(&spans[found[0]], "rank"), rank);
        }
        let write = children(&spans, save, "steadfast.checkpoint.save.write")[0];
        assert_eq!(field(&spans[write], "bytes"), "100");
        assert_eq!(field(&spans[write], "outcome"), "ok");
        // The storage calls' retries, when there are any, nest in the
        // phases, never directly under the save.
        assert!(children(&spans, save, "steadfast.retry").is_empty());
    }
    assert!(named(&spans, "steadfast.checkpoint.rollback").is_empty());

    // A load, and a load of a name that does not exist.
    let bytes = ckpts[1]
        .load("step-7", LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(bytes, vec![1u8; 100]);
    let missing = ckpts[1]
        .load("nope", LoadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(missing, CheckpointError::NotFound { .. }));
    let spans = recorded(&sink);
    let loads = named(&spans, "steadfast.checkpoint.load");
    assert_eq!(loads.len(), 2, "{spans:#?}");
    let (ok, not_found) = (&spans[loads[0]], &spans[loads[1]]);
    assert_eq!(
        (
            field(ok, "name"),
            field(ok, "rank"),
            field(ok, "world_size")
        ),
        ("step-7", "1", "2")
    );
    assert_eq!((field(ok, "outcome"), field(ok, "bytes")), ("ok", "100"));
    assert_eq!(field(ok, "entries"), "false");
    assert_eq!(field(not_found, "outcome"), "not_found");
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_records_its_error_and_its_rollback() {
    let (sink, _recording) = record();
    let storage = MemoryStorage::new();
    let ckpts = handles(&storage, 2);
    // Every shard write fails, retries included.
    storage.faults().fail_next(Operation::PutStream, 1_000);
    let saved = save_on_every_rank(&ckpts, "step-9").await;
    for result in &saved {
        assert!(
            matches!(result, Some(CheckpointError::SaveFailed { .. })),
            "{result:?}"
        );
    }

    let spans = recorded(&sink);
    let saves = named(&spans, "steadfast.checkpoint.save");
    assert_eq!(saves.len(), 2, "{spans:#?}");
    for &save in &saves {
        let span = &spans[save];
        assert_eq!(field(span, "outcome"), "save_failed");
        assert!(!span.fields.contains_key("bytes"));
        let write = children(&spans, save, "steadfast.checkpoint.save.write");
        assert_eq!(field(&spans[write[0]], "outcome"), "failed");
        // The shard write was retried inside the write phase.
        let retries = children(&spans, write[0], "steadfast.retry");
        assert_eq!(retries.len(), 1, "{spans:#?}");
        assert_eq!(field(&spans[retries[0]], "outcome"), "exhausted");
        // No commit: the gathered reports say a rank failed.
        assert_eq!(
            children(&spans, save, "steadfast.checkpoint.save.gather").len(),
            1
        );
        assert!(children(&spans, save, "steadfast.checkpoint.save.commit").is_empty());
        let rollbacks = children(&spans, save, "steadfast.checkpoint.rollback");
        assert_eq!(rollbacks.len(), 1, "{spans:#?}");
        let rollback = &spans[rollbacks[0]];
        assert_eq!(field(rollback, "name"), "step-9");
        assert_eq!(field(rollback, "rank"), field(span, "rank"));
        assert_eq!(field(rollback, "sweep"), "true");
        assert_eq!(field(rollback, "failed"), "0");
    }
}

#[tokio::test(start_paused = true)]
async fn a_manager_save_carries_its_span_into_its_task_and_a_restore_has_its_own() {
    let (sink, _recording) = record();
    let storage = MemoryStorage::new();
    let rank = InMemoryCoordinator::new(1).remove(0);
    let ckpt = DistributedCheckpoint::new(storage, rank, policy(), CheckpointOptions::default());
    let manager = CheckpointManager::builder(ckpt).build().unwrap();
    manager.register_state("v", JsonState::new(5u32)).unwrap();
    let pending = manager
        .create_checkpoint(None)
        .instrument(tracing::info_span!("test.caller"))
        .await
        .unwrap();
    let info = pending.wait().await.unwrap();
    let report = manager.restore_latest().await.unwrap().unwrap();
    assert_eq!(report.point.name, info.name);

    let spans = recorded(&sink);
    let callers = named(&spans, "test.caller");
    let saves = children(&spans, callers[0], "steadfast.manager.save");
    assert_eq!(saves.len(), 1, "{spans:#?}");
    let save = &spans[saves[0]];
    assert_eq!(
        (field(save, "name"), field(save, "rank")),
        (info.name.as_str(), "0")
    );
    assert_eq!(field(save, "outcome"), "ok");
    // The checkpoint's save ran on the manager's task, under its span.
    let inner = children(&spans, saves[0], "steadfast.checkpoint.save");
    assert_eq!(inner.len(), 1, "{spans:#?}");
    assert_eq!(field(&spans[inner[0]], "outcome"), "ok");
    assert_eq!(
        children(&spans, inner[0], "steadfast.checkpoint.save.commit").len(),
        1
    );

    let restores = named(&spans, "steadfast.manager.restore");
    assert_eq!(restores.len(), 1, "{spans:#?}");
    let restore = &spans[restores[0]];
    assert_eq!(field(restore, "name"), info.name.as_str());
    assert_eq!(
        (field(restore, "states"), field(restore, "outcome")),
        ("1", "ok")
    );
    // Its reads are loads under it.
    assert!(!children(&spans, restores[0], "steadfast.checkpoint.load").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_recovery_has_its_span_with_epoch_failed_ranks_strategy_and_outcome() {
    let (sink, _recording) = record();
    let config = RecoveryCoordinatorConfig::builder()
        .recovery_strategy(RecoveryStrategyKind::RedistributeWork)
        .quorum_size(2)
        .recovery_timeout(Duration::from_secs(120))
        .answer_window(Duration::from_millis(500))
        .build()
        .unwrap();
    let ranks = InMemoryCoordinator::new(3);
    let mut tasks = Vec::new();
    let mut events = None;
    for member in ranks.iter().cloned() {
        let recovery = RecoveryCoordinator::builder(member)
            .config(config)
            .on_failure(|_ctx| async move { Ok(()) })
            .build();
        events.get_or_insert_with(|| recovery.subscribe());
        tasks.push(recovery.start());
    }
    ranks[0].faults().kill(2);
    let mut events = events.unwrap();
    let recovered = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            if let RecoveryEvent::Recovered { plan, .. } = events.recv().await.unwrap() {
                return plan;
            }
        }
    })
    .await
    .expect("a recovery within 300 s");
    assert_eq!(recovered.epoch, 1);
    for task in tasks {
        task.stop().await;
    }

    let spans = recorded(&sink);
    let recoveries = named(&spans, "steadfast.recovery");
    let mut members: Vec<&str> = recoveries
        .iter()
        .map(|&i| field(&spans[i], "member"))
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["rank-0", "rank-1"],
        "one span per surviving member: {spans:#?}"
    );
    for &i in &recoveries {
        let span = &spans[i];
        assert_eq!(field(span, "epoch"), "1");
        assert_eq!(field(span, "previous_epoch"), "0");
        assert_eq!(field(span, "failed_ranks"), "[2]");
        assert_eq!(field(span, "strategy"), "redistribute_work");
        assert_eq!(field(span, "attempt"), "1");
        assert_eq!(field(span, "outcome"), "recovered");
        let act = children(&spans, i, "steadfast.recovery.act");
        assert_eq!(act.len(), 1, "{spans:#?}");
        assert_eq!(field(&spans[act[0]], "outcome"), "ok");
        assert_eq!(children(&spans, i, "steadfast.recovery.confirm").len(), 1);
    }
    let plans = named(&spans, "steadfast.recovery.plan");
    let proposed: Vec<&Recorded> = plans
        .iter()
        .map(|&i| &spans[i])
        .filter(|s| s.fields.get("outcome").map(String::as_str) == Some("proposed"))
        .collect();
    assert_eq!(
        proposed.len(),
        1,
        "the leader proposed one plan: {spans:#?}"
    );
    assert_eq!(field(proposed[0], "epoch"), "0");
    assert_eq!(field(proposed[0], "failed_ranks"), "[2]");
}

#[tokio::test(start_paused = true)]
async fn an_error_recovery_manager_opens_a_span_per_recorded_error() {
    let (sink, _recording) = record();
    let recovery = ErrorRecoveryManager::default();
    let action = recovery.record("op", "net", Severity::Medium, "reset");
    let spans = recorded(&sink);
    let errors = named(&spans, "steadfast.recovery.error");
    assert_eq!(errors.len(), 1, "{spans:#?}");
    let span = &spans[errors[0]];
    assert_eq!(
        (field(span, "operation"), field(span, "kind")),
        ("op", "net")
    );
    assert_eq!(field(span, "occurrence"), "1");
    assert_eq!(field(span, "action"), action.to_string());
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_retry_has_the_same_spans_under_the_pipeline_retry_name() {
    use steadfast::pipeline::{Pipeline, RetryStrategy};

    let (sink, _recording) = record();
    let pipeline = Pipeline::builder()
        .strategy(RetryStrategy::new(policy()).name("orders"))
        .build()
        .unwrap();
    let calls = std::sync::atomic::AtomicU32::new(0);
    let value = pipeline
        .execute(|| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            async move {
                let _op = tracing::info_span!("test.operation", n).entered();
                if n < 3 {
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(value, 3);
    // A call that succeeds at once opens no span.
    pipeline
        .execute(|| async { Ok::<_, io::Error>(0) })
        .await
        .unwrap();
    // One that is never transient gives up at once, and says why.
    let refused: Result<u32, _> = pipeline
        .execute(|| async { Err(io::Error::from(io::ErrorKind::NotFound)) })
        .await;
    assert!(refused.is_err());

    let spans = recorded(&sink);
    let sequences = named(&spans, "steadfast.retry");
    assert_eq!(sequences.len(), 2, "{spans:#?}");
    let first = &spans[sequences[0]];
    assert_eq!(field(first, "name"), "orders");
    assert_eq!(field(first, "attempts"), "3");
    assert_eq!(field(first, "outcome"), "ok");
    let attempts = children(&spans, sequences[0], "steadfast.retry.attempt");
    let seen: Vec<(&str, &str)> = attempts
        .iter()
        .map(|&i| (field(&spans[i], "attempt"), field(&spans[i], "outcome")))
        .collect();
    assert_eq!(seen, [("1", "retry"), ("2", "retry"), ("3", "ok")]);
    for (attempt, n) in [(attempts[1], "2"), (attempts[2], "3")] {
        let ops = children(&spans, attempt, "test.operation");
        assert_eq!(ops.len(), 1, "{spans:#?}");
        assert_eq!(field(&spans[ops[0]], "n"), n);
    }
    let second = &spans[sequences[1]];
    assert_eq!(field(second, "attempts"), "1");
    assert_eq!(field(second, "outcome"), "not_retryable");
}

#[tokio::test(start_paused = true)]
async fn the_handler_rollback_and_single_object_saves_open_the_checkpoint_spans() {
    use steadfast::handler::{CheckpointRollbackManager, FaultToleranceHandler, RollbackTarget};
    use steadfast::storage::CheckpointStorage;
    use steadfast::timeout::TimeoutHandler;

    let (sink, _recording) = record();
    let storage = MemoryStorage::new();
    let saver = CheckpointRollbackManager::new(storage.clone(), policy());
    saver
        .save_with_rollback("state.json", || async { Ok::<_, io::Error>(vec![7; 5]) })
        .await
        .unwrap();
    let refused = saver
        .save_with_rollback("state.json", || async {
            Err::<Vec<u8>, _>(io::Error::from(io::ErrorKind::NotFound))
        })
        .await;
    assert!(refused.is_err());
    storage
        .put("ckpt/shard-a.bin", vec![1].into())
        .await
        .unwrap();
    let handler = FaultToleranceHandler::new(storage.clone(), policy(), TimeoutHandler::default());
    let report = handler.rollback(RollbackTarget::checkpoint("ckpt")).await;
    assert_eq!(report.deleted.len(), 1);

    let spans = recorded(&sink);
    let saves = named(&spans, "steadfast.checkpoint.save");
    assert_eq!(saves.len(), 2, "{spans:#?}");
    assert_eq!(field(&spans[saves[0]], "name"), "state.json");
    assert_eq!(field(&spans[saves[0]], "outcome"), "ok");
    assert_eq!(field(&spans[saves[0]], "bytes"), "5");
    assert_eq!(field(&spans[saves[1]], "outcome"), "save_failed");
    let rollbacks = named(&spans, "steadfast.checkpoint.rollback");
    assert_eq!(rollbacks.len(), 1, "{spans:#?}");
    let rollback = &spans[rollbacks[0]];
    assert_eq!(field(rollback, "name"), "ckpt");
    assert_eq!(field(rollback, "target"), "checkpoint");
    assert_eq!(field(rollback, "deleted"), "1");
    assert_eq!(field(rollback, "failed"), "0");
}
