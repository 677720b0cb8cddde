//! One app on the swarm: a task that applies the app's desired state to its services whenever
//! it changes, and watches their tasks every second (instances, the router's upstreams, the
//! rollout of a new release, the tasks' output into the app's log).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::auth::DockerCredentials;
use bollard::models::{Task, TaskState};
use bollard::query_parameters::{
    ListServicesOptions, ListTasksOptions, LogsOptions, UpdateServiceOptions,
};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_core::backend::{
    BackendError, DesiredApp, InstanceState, InstanceStatus, LogSink, ReleaseSpec, Rollout, Target,
    Upstream,
};

use crate::spec::{self, LABEL_APP_ID, LABEL_RELEASE};
use crate::{Inner, SwarmError};

/// A label holding a digest of the spec wharf gave a service: a service whose spec didn't
/// change is left alone.
const LABEL_SPEC: &str = "dev.wharf.spec";

/// How often tasks are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Failed tasks of a new release after which its rollout fails.
const FAILED_TASKS: usize = 3;

/// The handle of one app's task.
#[derive(Clone)]
pub(crate) struct AppHandle {
    shared: Arc<Shared>,
    /// The backend (weak: the backend holds its apps' handles).
    inner: std::sync::Weak<Inner>,
    stop: CancellationToken,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

struct Shared {
    desired: Mutex<(DesiredApp, Arc<dyn LogSink>)>,
    changed: watch::Sender<u64>,
    status: Mutex<Vec<InstanceStatus>>,
    /// The release being rolled out, and how its rollout ended (once it has).
    rollout: watch::Sender<(u32, Option<Rollout>)>,
}

impl AppHandle {
    pub(crate) fn start(inner: Arc<Inner>, desired: DesiredApp, log: Arc<dyn LogSink>) -> Self {
        let version = desired.release.version;
        let shared = Arc::new(Shared {
            desired: Mutex::new((desired, log)),
            changed: watch::Sender::new(0),
            status: Mutex::default(),
            rollout: watch::Sender::new((version, None)),
        });
        let stop = inner.stop.child_token();
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(watch_app(inner, shared.clone(), stop.clone()));
        AppHandle {
            shared,
            inner: weak,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    pub(crate) fn set(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        let mut current = self
            .shared
            .desired
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if current.0 == desired {
            return;
        }
        *current = (desired, log);
        drop(current);
        self.shared.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn image(&self) -> String {
        self.desired().release.image
    }

    fn desired(&self) -> DesiredApp {
        self.shared
            .desired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub(crate) fn status(&self) -> Vec<InstanceStatus> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) async fn rollout(&self, version: u32) -> Rollout {
        let mut updates = self.shared.rollout.subscribe();
        loop {
            {
                let (current, outcome) = &*updates.borrow_and_update();
                if *current != version {
                    return Rollout::Superseded;
                }
                if let Some(outcome) = outcome {
                    return outcome.clone();
                }
            }
            if updates.changed().await.is_err() {
                return Rollout::Superseded;
            }
        }
    }

    /// Restarts the tasks of the target's process type, one at a time in the service's update
    /// order (a task is a service's; the swarm restarts tasks by service).
    pub(crate) async fn restart(&self, target: Target) -> Result<(), BackendError> {
        let desired = self.desired();
        let types: Vec<String> = match &target {
            Target::All => desired
                .processes
                .iter()
                .map(|p| p.process_type.clone())
                .collect(),
            Target::Type(name) | Target::Instance(name) => {
                let type_name = name.split('.').next().unwrap_or_default();
                if !desired
                    .processes
                    .iter()
                    .any(|p| p.process_type == type_name)
                {
                    return Err(BackendError::UnknownTarget {
                        app_id: desired.app_id.clone(),
                        target: name.clone(),
                    });
                }
                vec![type_name.to_owned()]
            }
        };
        let inner = self.inner.upgrade().ok_or(BackendError::ShuttingDown)?;
        let (_, credentials) =
            image(&inner, &desired.app_id, &desired.app_name, &desired.release).await?;
        for type_name in types {
            let name = spec::service_name(&desired.app_name, &type_name);
            let service = inner
                .docker
                .inspect_service(&name, None)
                .await
                .map_err(SwarmError::engine(format!("read service {name}")))?;
            let (Some(mut spec), Some(version)) =
                (service.spec, service.version.and_then(|v| v.index))
            else {
                continue;
            };
            if let Some(task) = spec.task_template.as_mut() {
                task.force_update = Some(task.force_update.unwrap_or(0) + 1);
            }
            inner
                .docker
                .update_service(
                    &name,
                    spec,
                    UpdateServiceOptions {
                        version: i32::try_from(version).unwrap_or(i32::MAX),
                        ..Default::default()
                    },
                    Some(credentials.clone()),
                )
                .await
                .map_err(SwarmError::engine(format!("restart service {name}")))?;
        }
        Ok(())
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The reference the nodes pull the release's image by, and what they log in with.
pub(crate) async fn image(
    inner: &Inner,
    app_id: &str,
    app_name: &str,
    release: &ReleaseSpec,
) -> Result<(String, DockerCredentials), SwarmError> {
    let pullable = inner
        .config
        .images
        .pullable(app_id, app_name, release.version, &release.image)
        .await
        .map_err(|source| SwarmError::Image {
            version: release.version,
            source,
        })?;
    let (username, password) = pullable.credentials.unzip();
    let credentials = DockerCredentials {
        username,
        password,
        serveraddress: Some(pullable.registry),
        ..Default::default()
    };
    Ok((pullable.reference, credentials))
}

/// The digest of a spec (FNV-1a over its JSON with every object's keys sorted: the spec's
/// label maps are hash maps, whose order changes from one to the next). A change detector, not
/// a security measure.
fn spec_digest(spec: &bollard::models::ServiceSpec) -> String {
    fn canonical(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for key in keys {
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key.as_str()], out);
                    out.push(',');
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(&serde_json::to_value(spec).unwrap_or_default(), &mut text);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Makes the app's services what `desired` says: each process type's created or updated (only
/// if its spec changed), and those of types it no longer has removed.
async fn apply_services(inner: &Inner, desired: &DesiredApp) -> Result<(), SwarmError> {
    if desired.release.run_image.is_none() {
        return Err(SwarmError::HostBound {
            version: desired.release.version,
        });
    }
    let existing = app_services(inner, &desired.app_id).await?;
    let (image, credentials) =
        image(inner, &desired.app_id, &desired.app_name, &desired.release).await?;
    let mut wanted = HashSet::new();
    for process in &desired.processes {
        let mut spec = spec::service_spec(&spec::ServiceInput {
            app_id: &desired.app_id,
            app_name: &desired.app_name,
            image: &image,
            release: &desired.release,
            process,
        });
        let digest = spec_digest(&spec);
        spec.labels
            .get_or_insert_with(Default::default)
            .insert(LABEL_SPEC.to_owned(), digest.clone());
        let name = spec::service_name(&desired.app_name, &process.process_type);
        wanted.insert(name.clone());
        let credentials = Some(credentials.clone());
        match existing.get(&name) {
            Some((_, _, Some(current))) if *current == digest => {}
            Some((_, version, _)) => {
                inner
                    .docker
                    .update_service(
                        &name,
                        spec,
                        UpdateServiceOptions {
                            version: i32::try_from(*version).unwrap_or(i32::MAX),
                            ..Default::default()
                        },
                        credentials,
                    )
                    .await
                    .map_err(SwarmError::engine(format!("update service {name}")))?;
            }
            None => {
                inner
                    .docker
                    .create_service(spec, credentials)
                    .await
                    .map_err(SwarmError::engine(format!("create service {name}")))?;
            }
        }
    }
    for (name, (id, _, _)) in existing {
        if !wanted.contains(&name) {
            delete_service(inner, &name, &id).await?;
        }
    }
    Ok(())
}

async fn delete_service(inner: &Inner, name: &str, id: &str) -> Result<(), SwarmError> {
    inner
        .docker
        .delete_service(id)
        .await
        .map_err(SwarmError::engine(format!("remove service {name}")))
}

/// The app's services: name → (id, version, spec digest).
async fn app_services(
    inner: &Inner,
    app_id: &str,
) -> Result<HashMap<String, (String, u64, Option<String>)>, SwarmError> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_APP_ID}={app_id}")])]);
    let services = inner
        .docker
        .list_services(Some(ListServicesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(SwarmError::engine("list services"))?;
    Ok(services
        .into_iter()
        .filter_map(|service| {
            let spec = service.spec?;
            let digest = spec
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SPEC).cloned());
            Some((spec.name?, (service.id?, service.version?.index?, digest)))
        })
        .collect())
}

/// Removes every service of the app.
pub(crate) async fn remove_services(inner: &Inner, app_id: &str) -> Result<(), SwarmError> {
    for (name, (id, _, _)) in app_services(inner, app_id).await? {
        delete_service(inner, &name, &id).await?;
    }
    Ok(())
}

/// The app's task: applies changes, watches tasks, until stopped.
async fn watch_app(inner: Arc<Inner>, shared: Arc<Shared>, stop: CancellationToken) {
    let mut changes = shared.changed.subscribe();
    let mut applied: Option<u64> = None;
    // The last failure to apply, said once in the app's log, not every second.
    let mut last_error: Option<String> = None;
    let mut watcher = Watcher::default();
    let started = SystemTime::now();
    loop {
        let generation = *changes.borrow_and_update();
        let (desired, log) = shared
            .desired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if applied != Some(generation) {
            let version = desired.release.version;
            if shared.rollout.borrow().0 != version {
                shared.rollout.send_replace((version, None));
                watcher.rollout_since = Instant::now();
            }
            match apply_services(&inner, &desired).await {
                Ok(()) => {
                    applied = Some(generation);
                    last_error = None;
                }
                Err(e) => {
                    let message = wharf_core::error_chain(&e);
                    if last_error.as_deref() != Some(message.as_str()) {
                        log.event(
                            "swarm",
                            &format!("cannot apply release v{version}: {message}"),
                        );
                        tracing::warn!(
                            app = %desired.app_name,
                            error = %message,
                            "cannot apply the app's release to the swarm"
                        );
                        last_error = Some(message.clone());
                    }
                    if matches!(e, SwarmError::HostBound { .. }) {
                        applied = Some(generation);
                        shared
                            .rollout
                            .send_replace((version, Some(Rollout::Failed(message))));
                    }
                }
            }
        }
        if let Err(e) = watcher
            .observe(&inner, &shared, &desired, &log, started, &stop)
            .await
        {
            tracing::warn!(app = %desired.app_name, error = %e, "cannot read the app's tasks");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            _ = changes.changed() => {}
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
    }
}

/// What the watch remembers between looks.
struct Watcher {
    upstreams: Vec<Upstream>,
    /// Each instance's state, and since when (as this server saw it change).
    states: HashMap<String, (InstanceState, SystemTime)>,
    followed: HashSet<String>,
    rollout_since: Instant,
}

impl Default for Watcher {
    fn default() -> Watcher {
        Watcher {
            upstreams: Vec::new(),
            states: HashMap::new(),
            followed: HashSet::new(),
            rollout_since: Instant::now(),
        }
    }
}

fn task_release(task: &Task) -> u32 {
    task.spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(LABEL_RELEASE))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn task_state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn published_port(task: &Task) -> Option<u16> {
    task.status
        .as_ref()?
        .port_status
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find_map(|p| p.published_port)
        .and_then(|p| u16::try_from(p).ok())
}

fn failed(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED)
    )
}

fn why(task: &Task) -> Option<String> {
    let status = task.status.as_ref()?;
    let code = status.container_status.as_ref().and_then(|c| c.exit_code);
    match (&status.err, code) {
        (Some(err), _) if !err.is_empty() => Some(err.clone()),
        (_, Some(code)) => Some(format!("status {code}")),
        _ => status.message.clone(),
    }
}

impl Watcher {
    async fn observe(
        &mut self,
        inner: &Arc<Inner>,
        shared: &Shared,
        desired: &DesiredApp,
        log: &Arc<dyn LogSink>,
        started: SystemTime,
        stop: &CancellationToken,
    ) -> Result<(), SwarmError> {
        let names: Vec<String> = desired
            .processes
            .iter()
            .map(|p| spec::service_name(&desired.app_name, &p.process_type))
            .collect();
        if names.is_empty() {
            *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = Vec::new();
            return Ok(());
        }
        // Node id → (address, host name) of the nodes that are up.
        let nodes: HashMap<String, (String, String)> = inner
            .docker
            .list_nodes(None)
            .await
            .map_err(SwarmError::engine("list nodes"))?
            .into_iter()
            .filter_map(|node| {
                let hostname = node
                    .description
                    .and_then(|d| d.hostname)
                    .unwrap_or_default();
                let status = node.status?;
                if status.state != Some(bollard::models::NodeState::READY) {
                    return None;
                }
                Some((node.id?, (status.addr?, hostname)))
            })
            .collect();
        let tasks = inner
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(HashMap::from([("service".to_owned(), names)])),
            }))
            .await
            .map_err(SwarmError::engine("list tasks"))?;
        let by_service: HashMap<String, &wharf_core::backend::ProcessSpec> = desired
            .processes
            .iter()
            .map(|p| (spec::service_name(&desired.app_name, &p.process_type), p))
            .collect();
        let service_names: HashMap<String, String> = inner
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{LABEL_APP_ID}={}", desired.app_id)],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(SwarmError::engine("list services"))?
            .into_iter()
            .filter_map(|s| Some((s.id?, s.spec?.name?)))
            .collect();

        // Per slot: its tasks, newest first.
        let mut slots: BTreeMap<(String, i64), Vec<&Task>> = BTreeMap::new();
        for task in &tasks {
            let Some(service) = task
                .service_id
                .as_ref()
                .and_then(|id| service_names.get(id))
            else {
                continue;
            };
            let Some(process) = by_service.get(service) else {
                continue;
            };
            slots
                .entry((process.process_type.clone(), task.slot.unwrap_or(0)))
                .or_default()
                .push(task);
        }
        let mut status = Vec::new();
        let mut upstreams = Vec::new();
        let version = desired.release.version;
        let mut failures: Vec<String> = Vec::new();
        for ((process_type, slot), mut tasks) in slots {
            tasks.sort_by_key(|t| std::cmp::Reverse(t.version.as_ref().and_then(|v| v.index)));
            let name = format!("{process_type}.{slot}");
            let process = by_service[&spec::service_name(&desired.app_name, &process_type)];
            for task in &tasks {
                let running = task_state(task) == Some(TaskState::RUNNING);
                if running {
                    self.follow(inner, task, &name, log, started, stop);
                }
                // A task the swarm is about to stop (an old one, once its replacement runs) or
                // on a node that is down takes no more requests.
                let staying = task.desired_state == Some(TaskState::RUNNING);
                if running && staying && process_type == "web" {
                    let addr = task
                        .node_id
                        .as_ref()
                        .and_then(|n| nodes.get(n))
                        .and_then(|(ip, _)| ip.parse::<std::net::IpAddr>().ok());
                    if let (Some(ip), Some(port), Some(id)) = (addr, published_port(task), &task.id)
                    {
                        upstreams.push(Upstream {
                            id: id.clone(),
                            dyno: name.clone(),
                            addr: SocketAddr::new(ip, port),
                            release_version: task_release(task),
                        });
                    }
                }
                if failed(task_state(task)) && task_release(task) == version {
                    failures.push(format!("{name}: {}", why(task).unwrap_or_default()));
                }
            }
            // The slot's instance: its newest task that is meant to run, else its newest.
            let Some(current) = tasks
                .iter()
                .find(|t| t.desired_state == Some(TaskState::RUNNING))
                .or(tasks.first())
            else {
                continue;
            };
            let state = match task_state(current) {
                Some(TaskState::RUNNING) => InstanceState::Up,
                Some(TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED) => {
                    InstanceState::Crashed
                }
                Some(TaskState::COMPLETE | TaskState::SHUTDOWN | TaskState::REMOVE) => {
                    InstanceState::Down
                }
                _ => {
                    // Failed before, being started again: crashed, as locally.
                    if tasks.iter().skip(1).take(1).any(|t| failed(task_state(t))) {
                        InstanceState::Crashed
                    } else {
                        InstanceState::Starting
                    }
                }
            };
            let previous = self.states.get(&name).copied();
            let since = match previous {
                Some((before, since)) if before == state => since,
                _ => {
                    let from = previous.map_or("down", |(before, _)| before.as_str());
                    log.event(&name, &format!("State changed from {from} to {state}"));
                    let now = SystemTime::now();
                    self.states.insert(name.clone(), (state, now));
                    now
                }
            };
            status.push(InstanceStatus {
                name: name.clone(),
                process_type: process_type.clone(),
                release_version: task_release(current),
                state,
                command: process.command.clone(),
                pid: None,
                node: current
                    .node_id
                    .as_ref()
                    .and_then(|n| nodes.get(n))
                    .map(|(_, hostname)| hostname.clone()),
                port: published_port(current),
                restarts: u32::try_from(tasks.iter().filter(|t| failed(task_state(t))).count())
                    .unwrap_or(u32::MAX),
                last_exit: tasks
                    .iter()
                    .find(|t| failed(task_state(t)))
                    .and_then(|t| why(t)),
                next_restart_in: None,
                since,
            });
        }
        status.sort_by(|a, b| (&a.process_type, &a.name).cmp(&(&b.process_type, &b.name)));
        *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = status;

        upstreams.sort_by(|a, b| a.id.cmp(&b.id));
        if upstreams != self.upstreams {
            inner.config.routes.set(&desired.app_id, upstreams.clone());
            self.upstreams = upstreams.clone();
        }

        // The rollout of the desired release.
        let pending = {
            let current = shared.rollout.borrow();
            current.0 == version && current.1.is_none()
        };
        if pending {
            let wanted = desired
                .processes
                .iter()
                .find(|p| p.process_type == "web")
                .map_or(0, |p| p.quantity as usize);
            let serving = upstreams
                .iter()
                .filter(|u| u.release_version == version)
                .count();
            let outcome = if serving >= wanted {
                Some(Rollout::Complete)
            } else if failures.len() >= FAILED_TASKS {
                Some(Rollout::Failed(format!(
                    "web tasks of v{version} failed: {}",
                    failures.join("; ")
                )))
            } else if self.rollout_since.elapsed() > inner.config.boot_timeout {
                Some(Rollout::Failed(format!(
                    "{serving} of {wanted} web tasks of v{version} ran within {}s",
                    inner.config.boot_timeout.as_secs()
                )))
            } else {
                None
            };
            if let Some(outcome) = outcome {
                shared.rollout.send_replace((version, Some(outcome)));
            }
        }
        Ok(())
    }

    /// Follows a running task's output into the app's log, once per task.
    fn follow(
        &mut self,
        inner: &Arc<Inner>,
        task: &Task,
        name: &str,
        log: &Arc<dyn LogSink>,
        started: SystemTime,
        stop: &CancellationToken,
    ) {
        let Some(id) = task.id.clone() else { return };
        if !self.followed.insert(id.clone()) {
            return;
        }
        // What a task wrote before this server started was logged by the one before.
        let since = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i32::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        let (docker, log, name, stop) = (
            inner.docker.clone(),
            log.clone(),
            name.to_owned(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut output = docker.task_logs(
                &id,
                Some(LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    since,
                    ..Default::default()
                }),
            );
            let mut lines = crate::lines::Lines::default();
            loop {
                let chunk = tokio::select! {
                    () = stop.cancelled() => break,
                    chunk = output.next() => chunk,
                };
                let Some(Ok(chunk)) = chunk else { break };
                if let Some((stream, bytes)) = crate::lines::chunk(chunk) {
                    lines.feed(stream, &bytes, |stream, text| log.line(&name, stream, text));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_core::backend::{ProcessSpec, ReleaseSpec};

    /// The same spec has the same digest however its label maps iterate; a change shows.
    #[test]
    fn a_spec_digest_changes_with_the_spec_only() {
        let release = ReleaseSpec {
            version: 3,
            image: "sha256:abc".into(),
            env: Default::default(),
            image_env: Default::default(),
            run_image: Some("sha256:run".into()),
            web_health: None,
        };
        let web = ProcessSpec::new("web", 2, "gunicorn app:app");
        let make = || {
            spec::service_spec(&spec::ServiceInput {
                app_id: "id",
                app_name: "shop",
                image: "r:1/shop@sha256:abc",
                release: &release,
                process: &web,
            })
        };
        let digests: HashSet<String> = (0..20).map(|_| spec_digest(&make())).collect();
        assert_eq!(digests.len(), 1, "{digests:?}");
        let mut scaled = make();
        scaled.mode = Some(bollard::models::ServiceSpecMode {
            replicated: Some(bollard::models::ServiceSpecModeReplicated { replicas: Some(3) }),
            ..Default::default()
        });
        assert_ne!(spec_digest(&scaled), spec_digest(&make()));
    }
}
