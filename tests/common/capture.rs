//! Capture of the crate's `tracing` events, for the tests that assert a log.
//!
//! A subscriber set per test with `set_default` races the other tests of the
//! binary: `tracing` caches, per call site, whether any subscriber listens,
//! and a call site first reached on another thread while no subscriber is
//! set there can be cached as "nobody listens", so the test's own event is
//! dropped. Here one subscriber is installed for the whole process, it
//! listens to every call site, and each event goes to the recorder of the
//! thread that emitted it, if that thread has one. `#[tokio::test]` runs its
//! tasks on the test's own thread, so a test sees its own events and no
//! other test's.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;

/// One event: its target, level and fields (`message` among them), each
/// field written with `Debug`, as `tracing` gives it.
#[derive(Clone, Debug)]
pub struct CapturedEvent {
    pub target: String,
    pub level: tracing::Level,
    pub fields: BTreeMap<String, String>,
}

impl CapturedEvent {
    /// The event's message, empty when it has none.
    pub fn message(&self) -> &str {
        self.fields.get("message").map(String::as_str).unwrap_or("")
    }
}

type Sink = Arc<Mutex<Vec<CapturedEvent>>>;

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

struct RouteToThread;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RouteToThread {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(sink) = SINK.with(|sink| sink.borrow().clone()) else {
            return;
        };
        struct Fields<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0
                    .insert(field.name().to_string(), format!("{value:?}"));
            }
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let meta = event.metadata();
        sink.lock().unwrap().push(CapturedEvent {
            target: meta.target().to_string(),
            level: *meta.level(),
            fields,
        });
    }
}

/// Records this thread's events until dropped.
pub struct Capture {
    sink: Sink,
}

impl Capture {
    /// Starts recording the events emitted on this thread.
    ///
    /// Panics when another subscriber is already the process's global one:
    /// a test binary that captures logs must not also call `init_tracing`.
    pub fn start() -> Capture {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(RouteToThread),
            )
            .expect("the capture subscriber must be the process's only global subscriber");
        });
        let sink = Sink::default();
        SINK.with(|slot| {
            let previous = slot.borrow_mut().replace(sink.clone());
            assert!(previous.is_none(), "one capture per thread at a time");
        });
        Capture { sink }
    }

    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.sink.lock().unwrap().clone()
    }

    /// The events of `target` at `level`.
    pub fn at(&self, target: &str, level: tracing::Level) -> Vec<CapturedEvent> {
        self.events()
            .into_iter()
            .filter(|event| event.target == target && event.level == level)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        SINK.with(|slot| slot.borrow_mut().take());
    }
}
