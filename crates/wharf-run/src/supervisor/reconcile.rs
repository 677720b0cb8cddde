//! The reconciler of one app: it converges the app's running instances to its desired state.
//!
//! The reconciler is a loop of *steps*. Each step looks at the desired state and the current
//! instances and starts or stops instances; it runs again whenever the desired state or any
//! instance's state changes. Per process type:
//! - an instance is *fresh* when it runs the desired release and spec and is not being
//!   replaced (`restart` marks instances as retiring);
//! - `web`: fresh instances are started for every missing index at once; the others (old
//!   release, retiring) are stopped only once every fresh index is up, so a deploy whose new
//!   instances never come up leaves the old ones serving;
//! - other types: old instances are stopped first, and fresh ones start only once every old
//!   one is gone, so two versions of a worker never run at once;
//! - fresh instances beyond the quantity are stopped; types no longer desired are stopped.
//!
//! After each step the reconciler publishes the web instances that take requests to the router
//! ([`Routes`]): those up and not stopping, and during a deploy only the old release's until
//! every new instance is up, then only the new ones — one atomic swap. A web instance that took
//! requests is drained (the router lets its requests in flight finish) before it is signalled.
//! Each step also updates the app's *rollout*: complete once every web instance of the desired
//! release is up, failed once one of them ended before it ever came up.

use super::instance::run_instance;
use super::*;

/// The reconciler of one app.
pub(super) async fn reconcile(
    inner: Arc<Inner>,
    app: Arc<AppShared>,
    mut desired_rx: watch::Receiver<Arc<(DesiredApp, Arc<dyn LogSink>)>>,
    cancel: CancellationToken,
    finished: CancellationToken,
) {
    loop {
        let desired = desired_rx.borrow_and_update().clone();
        step(&inner, &app, &desired.0, &desired.1, &cancel);
        tokio::select! {
            changed = desired_rx.changed() => if changed.is_err() { break },
            _ = app.changed.notified() => {}
            _ = cancel.cancelled() => break,
        }
    }
    // Out of the router first; then each instance drains and stops.
    publish(&inner, &app, Vec::new());
    let cells: Vec<Arc<Cell>> = lock(&app.instances).clone();
    for cell in &cells {
        cell.stop.cancel();
    }
    for cell in &cells {
        cell.done.cancelled().await;
    }
    finished.cancel();
}

/// One reconciliation step; see the module docs for the rules.
fn step(
    inner: &Arc<Inner>,
    app: &Arc<AppShared>,
    desired: &DesiredApp,
    sink: &Arc<dyn LogSink>,
    cancel: &CancellationToken,
) {
    if cancel.is_cancelled() {
        return;
    }
    let cells: Vec<Arc<Cell>> = lock(&app.instances).clone();
    // Instances to stop: told only once the router no longer sends them requests.
    let mut stops: Vec<&Arc<Cell>> = Vec::new();
    let desired_types: BTreeSet<&str> = desired
        .processes
        .iter()
        .map(|p| p.process_type.as_str())
        .collect();
    for cell in &cells {
        if !desired_types.contains(cell.process_type.as_str()) {
            stops.push(cell);
        }
    }
    // Without web instances there is nothing to wait for.
    let mut phase = Phase::Complete;
    for spec in &desired.processes {
        let of_type: Vec<&Arc<Cell>> = cells
            .iter()
            .filter(|c| c.process_type == spec.process_type)
            .collect();
        let mut fresh_by_index: HashMap<u32, &Arc<Cell>> = HashMap::new();
        let mut old: Vec<&Arc<Cell>> = Vec::new();
        for cell in &of_type {
            if !cell.is_fresh_for(desired, spec) {
                old.push(cell);
            } else if cell.stop.is_cancelled() {
                // A fresh instance on its way out (scaled down): neither counts nor blocks.
            } else if cell.index > spec.quantity || fresh_by_index.contains_key(&cell.index) {
                stops.push(cell);
            } else {
                fresh_by_index.insert(cell.index, cell);
            }
        }
        let missing: Vec<u32> = (1..=spec.quantity)
            .filter(|i| !fresh_by_index.contains_key(i))
            .collect();
        if spec.process_type == "web" {
            for &index in &missing {
                start_instance(inner, app, desired, spec, index, sink);
            }
            let all_up = missing.is_empty()
                && fresh_by_index
                    .values()
                    .all(|c| c.state() == InstanceState::Up);
            if all_up {
                stops.extend(old.iter().copied());
            } else {
                let failure = of_type
                    .iter()
                    .filter(|c| is_current(c, desired, spec))
                    .find_map(|c| lock(&c.boot_failure).clone());
                phase = match failure {
                    Some(why) => Phase::Failed(why),
                    None => Phase::InProgress,
                };
            }
        } else if !old.is_empty() {
            stops.extend(old.iter().copied());
        } else {
            for &index in &missing {
                start_instance(inner, app, desired, spec, index, sink);
            }
        }
    }
    app.rollout.send_if_modified(|r| {
        let moves = r.0 == desired.release.version && r.1 == Phase::InProgress && phase != r.1;
        if moves {
            r.1 = phase;
        }
        moves
    });
    let upstreams = routable(app, desired, &stops);
    publish(inner, app, upstreams);
    for cell in stops {
        cell.stop.cancel();
    }
}

/// Runs the desired release with the desired definition (a restart's retiring instance too).
fn is_current(cell: &Cell, desired: &DesiredApp, spec: &ProcessSpec) -> bool {
    cell.release == desired.release && same_definition(&cell.spec, spec)
}

/// The web instances that take requests now: up, not stopping and not about to (`stopping`).
/// While a deploy is under way (some up instance runs something else than the desired release),
/// only the old ones — and of those only the ones already routed, so that a deploy overtaking
/// another never adds the half-rolled-out release: the new ones join all at once, when the last
/// of them is up and the old ones are about to stop.
fn routable(app: &AppShared, desired: &DesiredApp, stopping: &[&Arc<Cell>]) -> Vec<Upstream> {
    let spec = desired.processes.iter().find(|p| p.process_type == "web");
    let cells: Vec<Arc<Cell>> = lock(&app.instances)
        .iter()
        .filter(|c| {
            c.process_type == "web"
                && !c.stop.is_cancelled()
                && !stopping.iter().any(|s| Arc::ptr_eq(s, c))
        })
        .cloned()
        .collect();
    let up: Vec<(&Arc<Cell>, u16)> = cells
        .iter()
        .filter_map(|c| {
            let s = lock(&c.state);
            match (s.state, s.port) {
                (InstanceState::Up, Some(port)) => Some((c, port)),
                _ => None,
            }
        })
        .collect();
    let current = |c: &Cell| spec.is_some_and(|spec| is_current(c, desired, spec));
    let deploying = up.iter().any(|(c, _)| !current(c));
    let routed: Vec<String> = lock(&app.routed).iter().map(|u| u.id.clone()).collect();
    let old_routed = up
        .iter()
        .any(|(c, _)| !current(c) && routed.contains(&c.upstream_id()));
    let mut upstreams: Vec<Upstream> = up
        .into_iter()
        .filter(|(c, _)| {
            !deploying || (!current(c) && (!old_routed || routed.contains(&c.upstream_id())))
        })
        .map(|(c, port)| Upstream {
            id: c.upstream_id(),
            dyno: c.name.clone(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            release_version: c.release.version,
        })
        .collect();
    upstreams.sort_by(|a, b| a.id.cmp(&b.id));
    upstreams
}

/// Hands the app's upstreams to the router, when they changed.
fn publish(inner: &Inner, app: &AppShared, upstreams: Vec<Upstream>) {
    let Some(routes) = inner.routes.get() else {
        return;
    };
    let mut routed = lock(&app.routed);
    if *routed != upstreams {
        routes.set(&app.app_id, upstreams.clone());
        *routed = upstreams;
    }
}

fn start_instance(
    inner: &Arc<Inner>,
    app: &Arc<AppShared>,
    desired: &DesiredApp,
    spec: &ProcessSpec,
    index: u32,
    sink: &Arc<dyn LogSink>,
) {
    let cell = Arc::new(Cell {
        name: format!("{}.{index}", spec.process_type),
        process_type: spec.process_type.clone(),
        index,
        generation: inner.generation.fetch_add(1, Ordering::SeqCst),
        release: desired.release.clone(),
        spec: spec.clone(),
        retiring: AtomicBool::new(false),
        ever_up: AtomicBool::new(false),
        boot_failure: Mutex::new(None),
        // Not a child of the app's token: the reconciler takes the app out of the router before
        // it stops the instances.
        stop: CancellationToken::new(),
        done: CancellationToken::new(),
        state: Mutex::new(CellState {
            state: InstanceState::Starting,
            pid: None,
            port: None,
            restarts: 0,
            last_exit: None,
            next_restart_at: None,
            since: SystemTime::now(),
        }),
    });
    lock(&app.instances).push(cell.clone());
    inner.tasks.spawn_on(
        run_instance(inner.clone(), app.clone(), cell, sink.clone()),
        &inner.runtime,
    );
}
