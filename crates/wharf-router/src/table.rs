//! The two route tables: hostname → app (from the server) and app → upstreams (from the process
//! supervisor). Each is replaced whole and swapped atomically; requests read them without
//! locking. Both point at one [`AppSlot`] per app, so a request needs one lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use wharf_core::backend::Upstream;
use wharf_logs::{AppLog, LogStore};

use crate::config::AppRoute;
use crate::metrics::{AppMetrics, Metrics};
use crate::upstream::UpstreamState;

/// A hostname's entry: the app it routes to, with what each of its requests needs at hand.
pub(crate) struct Site {
    /// The hostname, as log lines show it.
    pub(crate) host: String,
    pub(crate) app: Arc<AppSlot>,
    pub(crate) maintenance: bool,
    pub(crate) https_redirect: bool,
    /// Where the app's router lines go (`None` without a log store).
    pub(crate) log: Option<AppLog>,
    /// A line has been appended to `log` through this site: its writer runs.
    pub(crate) log_started: AtomicBool,
    pub(crate) metrics: Arc<AppMetrics>,
}

/// One app: its upstreams in rotation and every upstream still known by id.
pub(crate) struct AppSlot {
    pub(crate) app_id: String,
    /// The upstreams in rotation, in the order the supervisor gave them.
    pub(crate) rotation: ArcSwap<Vec<Arc<UpstreamState>>>,
    /// Where the next request starts looking, so that sequential requests take turns.
    pub(crate) next: AtomicUsize,
    /// Every upstream by id that is in rotation or still has requests in flight (those hold the
    /// state alive), so a drain finds an upstream already taken out of rotation. Locked only by
    /// table updates and drains.
    known: Mutex<HashMap<String, Weak<UpstreamState>>>,
    /// The app's metric handles, once the host table has named the app.
    metrics: Mutex<Option<Arc<AppMetrics>>>,
}

impl AppSlot {
    fn new(app_id: &str) -> Arc<AppSlot> {
        Arc::new(AppSlot {
            app_id: app_id.to_owned(),
            rotation: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            known: Mutex::new(HashMap::new()),
            metrics: Mutex::new(None),
        })
    }

    /// An upstream of this app by id, in rotation or not, while it exists.
    pub(crate) fn find(&self, upstream_id: &str) -> Option<Arc<UpstreamState>> {
        lock(&self.known).get(upstream_id).and_then(Weak::upgrade)
    }

    /// Publishes how many upstreams take new requests.
    pub(crate) fn count_in_rotation(&self) {
        let n = self
            .rotation
            .load()
            .iter()
            .filter(|u| !u.is_draining())
            .count();
        if let Some(metrics) = lock(&self.metrics).as_ref() {
            metrics.set_upstreams(n);
        }
    }

    fn in_use(&self) -> bool {
        !self.rotation.load().is_empty() || lock(&self.known).values().any(|w| w.strong_count() > 0)
    }
}

/// Both tables.
pub(crate) struct Tables {
    /// Hostname (lowercase, no port) → its site. Read by every request.
    pub(crate) hosts: ArcSwap<HashMap<String, Arc<Site>>>,
    /// Every app by id. Locked only by table updates and drains, never by requests; it also
    /// keeps two updates from interleaving.
    apps: Mutex<HashMap<String, Arc<AppSlot>>>,
    max_idle: usize,
    /// Pool slots per upstream: one per worker thread.
    slots: usize,
    logs: Option<LogStore>,
    metrics: Metrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tables {
    pub(crate) fn new(
        max_idle: usize,
        slots: usize,
        logs: Option<LogStore>,
        metrics: Metrics,
    ) -> Tables {
        Tables {
            hosts: ArcSwap::from_pointee(HashMap::new()),
            apps: Mutex::new(HashMap::new()),
            max_idle,
            slots,
            logs,
            metrics,
        }
    }

    pub(crate) fn app(&self, app_id: &str) -> Option<Arc<AppSlot>> {
        lock(&self.apps).get(app_id).cloned()
    }

    /// Replaces an app's upstreams. Upstreams that keep their id keep their state; those left
    /// out are retired (idle connections closed) while their requests in flight finish.
    pub(crate) fn set_upstreams(&self, app_id: &str, upstreams: Vec<Upstream>) {
        let mut apps = lock(&self.apps);
        let slot = Arc::clone(
            apps.entry(app_id.to_owned())
                .or_insert_with(|| AppSlot::new(app_id)),
        );
        let old = slot.rotation.load_full();
        let mut rotation: Vec<Arc<UpstreamState>> = Vec::with_capacity(upstreams.len());
        {
            let mut known = lock(&slot.known);
            for upstream in &upstreams {
                let existing = known
                    .get(&upstream.id)
                    .and_then(Weak::upgrade)
                    .filter(|s| s.addr == upstream.addr);
                let state = existing.unwrap_or_else(|| {
                    let state = UpstreamState::new(upstream, self.max_idle, self.slots);
                    known.insert(upstream.id.clone(), Arc::downgrade(&state));
                    state
                });
                if !rotation.iter().any(|s| Arc::ptr_eq(s, &state)) {
                    state.set_retired(false);
                    rotation.push(state);
                }
            }
            for state in old.iter() {
                if !rotation.iter().any(|s| Arc::ptr_eq(s, state)) {
                    state.set_retired(true);
                }
            }
            slot.rotation.store(Arc::new(rotation));
            drop(old);
            known.retain(|_, w| w.strong_count() > 0);
        }
        slot.count_in_rotation();
        tracing::debug!(app = app_id, upstreams = upstreams.len(), "upstreams set");
        self.prune(&mut apps);
    }

    /// Replaces the host table.
    pub(crate) fn set_hosts(&self, hosts: Vec<(String, AppRoute)>) {
        let mut apps = lock(&self.apps);
        let mut table = HashMap::with_capacity(hosts.len());
        for (host, route) in hosts {
            let slot = Arc::clone(
                apps.entry(route.app_id.clone())
                    .or_insert_with(|| AppSlot::new(&route.app_id)),
            );
            let metrics = {
                let mut current = lock(&slot.metrics);
                match current.as_ref() {
                    Some(m) if m.name == route.app_name => Arc::clone(m),
                    _ => {
                        if let Some(old) = current.take() {
                            self.metrics.forget(&old.name);
                        }
                        let m = self.metrics.app(&route.app_name);
                        *current = Some(Arc::clone(&m));
                        m
                    }
                }
            };
            slot.count_in_rotation();
            let mut host = host.to_ascii_lowercase();
            if host.ends_with('.') {
                host.pop();
            }
            let site = Site {
                host: host.clone(),
                log: self.logs.as_ref().map(|logs| logs.app(&route.app_id)),
                log_started: AtomicBool::new(false),
                app: slot,
                maintenance: route.maintenance,
                https_redirect: route.https_redirect,
                metrics,
            };
            table.insert(host, Arc::new(site));
        }
        tracing::debug!(hosts = table.len(), "host table set");
        self.hosts.store(Arc::new(table));
        self.prune(&mut apps);
    }

    /// Forgets apps that no hostname routes to and that have no upstream left.
    fn prune(&self, apps: &mut HashMap<String, Arc<AppSlot>>) {
        let hosts = self.hosts.load();
        apps.retain(|app_id, slot| {
            let keep = slot.in_use() || hosts.values().any(|s| s.app.app_id == *app_id);
            if !keep {
                if let Some(m) = lock(&slot.metrics).take() {
                    self.metrics.forget(&m.name);
                }
            }
            keep
        });
    }

    /// Closes idle upstream connections too old to be reused.
    pub(crate) fn sweep_idle(&self) {
        let slots: Vec<Arc<AppSlot>> = lock(&self.apps).values().cloned().collect();
        for slot in slots {
            let states: Vec<_> = lock(&slot.known)
                .values()
                .filter_map(Weak::upgrade)
                .collect();
            for state in states {
                state.pool.sweep();
            }
        }
    }

    /// Closes every idle upstream connection.
    pub(crate) fn close_idle(&self) {
        for slot in lock(&self.apps).values() {
            for state in lock(&slot.known).values().filter_map(Weak::upgrade) {
                state.pool.clear();
            }
        }
    }
}
