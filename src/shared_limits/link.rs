//! `RedisLink`: one node's connection to the cluster's Redis, shared by
//! every route's limiters.
//!
//! The connection lives on a current-thread tokio runtime driven by a
//! thread of its own, so it outlives no actix worker and needs none: a
//! request on any worker sends through it and awaits the answer with a
//! short deadline. While Redis cannot be reached the link says so (`None`
//! from [`RedisLink::connection`], [`RedisLink::failed`]) and the limiters
//! fall back to their local state; it tries to connect again at most once
//! per [`RECONNECT_EVERY`], and resumes by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Notify};

/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The least time between two connection attempts while Redis is away.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Redis errors the limiters met over the process's lifetime: a call
/// that failed, came too late or could not be made (no connection), and a
/// failed connection attempt. The
/// `openclaw_webhooks_limiter_backend_errors_total` counter.
pub static BACKEND_ERRORS: AtomicU64 = AtomicU64::new(0);

pub struct RedisLink {
    client: redis::Client,
    /// How long a request waits for Redis before using local limits.
    pub(crate) timeout: Duration,
    state: Mutex<Conn>,
    /// Whether the last call failed: the outage's first failure logs, the
    /// first success after it logs again.
    down: AtomicBool,
    handle: Handle,
    /// Woken after each connection attempt.
    attempted: Notify,
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

#[derive(Default)]
struct Conn {
    manager: Option<ConnectionManager>,
    last_attempt: Option<Instant>,
    connecting: bool,
}

impl RedisLink {
    /// Starts the link's runtime thread; connects lazily. `url` is only
    /// parsed here (its form was checked by the Gateway).
    pub fn start(url: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("the Redis URL is not usable: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Redis runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("redis-limits".into())
            .spawn(move || {
                // Returns when told to stop or when the link is dropped;
                // dropping the runtime ends every task on it.
                let _ = runtime.block_on(stop_rx);
            })
            .map_err(|e| format!("cannot start the Redis thread: {e}"))?;
        Ok(Arc::new(Self {
            client,
            timeout,
            state: Mutex::new(Conn::default()),
            down: AtomicBool::new(false),
            handle,
            attempted: Notify::new(),
            stop: Mutex::new(Some((stop_tx, thread))),
        }))
    }

    /// The runtime the link's tasks (lease renewals, releases) run on.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A connection to use now, or `None` while Redis is away (a new
    /// attempt starts in the background when the last one is old enough).
    pub(crate) fn connection(self: &Arc<Self>) -> Option<ConnectionManager> {
        let mut state = self.state.lock();
        if let Some(manager) = &state.manager {
            return Some(manager.clone());
        }
        let due = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= RECONNECT_EVERY);
        if due && !state.connecting {
            state.connecting = true;
            state.last_attempt = Some(Instant::now());
            let link = Arc::clone(self);
            self.handle.spawn(async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(link.timeout)
                    .set_number_of_retries(1);
                let made = ConnectionManager::new_with_config(link.client.clone(), config).await;
                let mut state = link.state.lock();
                state.connecting = false;
                match made {
                    Ok(manager) => state.manager = Some(manager),
                    Err(e) => {
                        drop(state);
                        link.failed(&format!("cannot connect: {e}"));
                    }
                }
                link.attempted.notify_waiters();
            });
        }
        None
    }

    /// Waits, at most `within`, until the link has a connection: a start
    /// calls it so that the first requests are counted cluster-wide.
    /// `false` when Redis could not be reached in time (the limiters then
    /// start on local limits and switch over by themselves).
    pub async fn connect(self: &Arc<Self>, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let attempted = self.attempted.notified();
            if self.connection().is_some() {
                return true;
            }
            let wait = if self.state.lock().connecting {
                // The attempt under way ends with a notification.
                deadline
            } else {
                // The next attempt is due after RECONNECT_EVERY.
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100))
            };
            if tokio::time::timeout_at(wait, attempted).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return self.state.lock().manager.is_some();
            }
        }
    }

    /// Records a failed call or attempt: counted, and logged once per
    /// outage.
    pub(crate) fn failed(&self, detail: &str) {
        BACKEND_ERRORS.fetch_add(1, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            log::warn!(
                target: "limits",
                "Redis is unreachable ({detail}); each Gateway applies its own limits until it is back"
            );
        }
    }

    /// Records a call that Redis answered.
    pub(crate) fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            log::info!(target: "limits", "Redis answers again; limits are cluster-wide again");
        }
    }

    /// Whether the last call failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Stops the runtime thread: every connection closes and every lease
    /// renewal ends, without releasing anything (as when the process
    /// dies). Calls made afterwards fail and fall back to local limits.
    pub fn halt(&self) {
        self.state.lock().manager = None;
        if let Some((stop, thread)) = self.stop.lock().take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        // No attempt can start on a stopped runtime.
        self.state.lock().last_attempt =
            Some(Instant::now() + Duration::from_secs(3600 * 24 * 365));
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.stop.get_mut().take() {
            let _ = stop.send(());
            // The last reference may be dropped on the link's own thread
            // (by a task); joining it there would wait forever.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}
