//! One app on the cluster: a task that applies the app's desired state when it changes,
//! watches each new release's rollout, and every `look_every` (two seconds) reads the pods back (instances,
//! output, the router's upstream).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::AsyncBufReadExt;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wharf_core::backend::{
    BackendError, DesiredApp, InstanceState, InstanceStatus, LogSink, PullableImage, Rollout,
    Stream, Target, Upstream,
};

use crate::backend::Inner;
use crate::cluster::Outcome;
use crate::{manifests, names, Input, Manifests};

/// What the app task shares with the backend's callers.
#[derive(Debug)]
struct Shared {
    instances: Mutex<Vec<InstanceStatus>>,
    /// Each watched release's rollout, once it ended.
    rollouts: watch::Sender<BTreeMap<u32, Rollout>>,
}

type Desired = (DesiredApp, Arc<dyn LogSink>);

/// The handle of one app's task; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppHandle {
    desired: watch::Sender<Desired>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("app", &self.desired.borrow().0.app_name)
            .finish_non_exhaustive()
    }
}

impl AppHandle {
    pub(crate) fn start(inner: &Arc<Inner>, desired: DesiredApp, log: Arc<dyn LogSink>) -> Self {
        let (tx, rx) = watch::channel((desired, log));
        let shared = Arc::new(Shared {
            instances: Mutex::default(),
            rollouts: watch::channel(BTreeMap::new()).0,
        });
        let stop = inner.stop.child_token();
        let task = inner.tasks.spawn(run(
            Arc::downgrade(inner),
            rx,
            shared.clone(),
            stop.clone(),
            inner.config.look_every,
        ));
        AppHandle {
            desired: tx,
            shared,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    pub(crate) fn set(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        self.desired.send_replace((desired, log));
    }

    pub(crate) fn desired(&self) -> DesiredApp {
        self.desired.borrow().0.clone()
    }

    pub(crate) fn namespace(&self) -> String {
        names::namespace(&self.desired.borrow().0.app_name)
    }

    pub(crate) fn instances(&self) -> Vec<InstanceStatus> {
        self.shared
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves once release `version`'s rollout has ended, or the app moved past it.
    pub(crate) async fn rollout(&self, version: u32) -> Rollout {
        let mut rollouts = self.shared.rollouts.subscribe();
        let mut desired = self.desired.subscribe();
        loop {
            if let Some(outcome) = rollouts.borrow_and_update().get(&version) {
                return outcome.clone();
            }
            if desired.borrow_and_update().0.release.version > version {
                return Rollout::Superseded;
            }
            tokio::select! {
                changed = rollouts.changed() => if changed.is_err() { return Rollout::Superseded },
                changed = desired.changed() => if changed.is_err() { return Rollout::Superseded },
            }
        }
    }

    /// All types, one type (their Deployments restarted in their update order), or one
    /// instance (its pod deleted: its Deployment starts a fresh one).
    pub(crate) async fn restart(&self, inner: &Inner, target: Target) -> Result<(), BackendError> {
        let desired = self.desired();
        let namespace = names::namespace(&desired.app_name);
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let types: Vec<String> = match &target {
            Target::All => desired
                .processes
                .iter()
                .map(|p| p.process_type.clone())
                .collect(),
            Target::Type(kind) => vec![kind.clone()],
            Target::Instance(name) => {
                let pods = inner.cluster.pods(&namespace, &desired.app_id).await?;
                let instances = crate::status::instances(&pods);
                let known = instances.iter().any(|i| i.name == *name);
                let pod = known.then(|| pod_named(&pods, name)).flatten();
                let Some(pod) = pod else {
                    return Err(BackendError::UnknownTarget {
                        app_id: desired.app_id.clone(),
                        target: name.clone(),
                    });
                };
                inner.cluster.delete_pod(&namespace, &pod).await?;
                return Ok(());
            }
        };
        for kind in types {
            if !desired.processes.iter().any(|p| p.process_type == kind) {
                return Err(BackendError::UnknownTarget {
                    app_id: desired.app_id.clone(),
                    target: kind,
                });
            }
            inner
                .cluster
                .restart(&namespace, &names::object(&desired.app_name, &kind), &at)
                .await?;
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

/// The pod behind instance `name`, numbered as [`crate::status::instances`] numbers them.
fn pod_named(pods: &[Pod], name: &str) -> Option<String> {
    let kind = name.split('.').next()?;
    let number: usize = name.split('.').nth(1)?.parse().ok()?;
    let mut of_kind: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get("app.kubernetes.io/component"))
                .is_some_and(|c| *c == names::label_value(kind))
                && labels
                    .and_then(|l| l.get(manifests::LABEL_ONE_OFF))
                    .is_none()
        })
        .collect();
    of_kind.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    of_kind
        .get(number.checked_sub(1)?)
        .and_then(|p| p.metadata.name.clone())
}

/// Where the nodes pull the release's image from, and with what.
pub(crate) async fn pullable(
    inner: &Inner,
    desired: &DesiredApp,
) -> Result<PullableImage, BackendError> {
    inner
        .config
        .images
        .pullable(
            &desired.app_id,
            &desired.app_name,
            desired.release.version,
            &desired.release.image,
        )
        .await
}

/// The manifests of the app's desired state, with `image` as the nodes pull it.
pub(crate) fn make(
    inner: &Inner,
    desired: &DesiredApp,
    image: &PullableImage,
) -> Result<Manifests, BackendError> {
    let settings = crate::Settings {
        // wharf's router reaches the web Service: no Ingress from the backend.
        ingress_class: None,
        ..inner.config.settings.clone()
    };
    manifests::manifests(&Input {
        app: desired,
        image,
        release_command: None,
        hostnames: &[],
        settings: &settings,
    })
    .map_err(|e| BackendError::Failed(Box::new(e)))
}

async fn run(
    inner: Weak<Inner>,
    mut desired: watch::Receiver<Desired>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    look_every: Duration,
) {
    let mut applied: Option<String> = None;
    let mut watched: u32 = 0;
    let mut failing: Option<String> = None;
    // Asked for once per release: a pull token is new each time it is made.
    let mut image: Option<(u32, PullableImage)> = None;
    let mut followers: HashMap<String, Follower> = HashMap::new();
    let mut tick = tokio::time::interval(look_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = desired.changed() => if changed.is_err() { break },
            _ = tick.tick() => {}
        }
        let Some(inner) = inner.upgrade() else { break };
        let (app, log) = desired.borrow_and_update().clone();
        let namespace = names::namespace(&app.app_name);
        let pulled = match &image {
            Some((version, pulled)) if *version == app.release.version => Ok(pulled.clone()),
            _ => pullable(&inner, &app).await,
        };
        if let Ok(pulled) = &pulled {
            image = Some((app.release.version, pulled.clone()));
        }
        match pulled.and_then(|pulled| make(&inner, &app, &pulled)) {
            Ok(made) => {
                let text = serde_json::to_string(&made.objects()).unwrap_or_default();
                if applied.as_deref() != Some(text.as_str()) {
                    let result = async {
                        inner.cluster.apply(&made).await?;
                        inner.cluster.prune(&made).await
                    }
                    .await;
                    match result {
                        Ok(deleted) => {
                            applied = Some(text);
                            failing = None;
                            log.event(
                                "kubernetes",
                                &format!(
                                    "Applied release v{} to namespace {namespace}",
                                    app.release.version
                                ),
                            );
                            for gone in deleted {
                                log.event("kubernetes", &format!("Deleted {gone}"));
                            }
                            if app.release.version > watched {
                                watched = app.release.version;
                                watch_rollout(&inner, &shared, &made, watched);
                            }
                        }
                        Err(e) => {
                            let why = wharf_core::error_chain(&e);
                            if failing.as_deref() != Some(why.as_str()) {
                                log.event("kubernetes", &format!("Cannot apply: {why}"));
                                tracing::warn!(app = %app.app_name, error = %why, "cannot apply");
                                failing = Some(why);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let why = wharf_core::error_chain(&e);
                if failing.as_deref() != Some(why.as_str()) {
                    log.event("kubernetes", &format!("Cannot apply: {why}"));
                    failing = Some(why);
                }
            }
        }
        look(&inner, &app, &namespace, &shared, &log, &mut followers).await;
    }
    for (_, follower) in followers {
        follower.task.abort();
    }
}

/// Waits, in the background, for release `version`'s rollout, and records how it ended.
fn watch_rollout(inner: &Arc<Inner>, shared: &Arc<Shared>, made: &Manifests, version: u32) {
    let (cluster, shared, made) = (inner.cluster.clone(), shared.clone(), made.clone());
    let timeout = inner.config.settings.boot_timeout;
    let stop = inner.stop.clone();
    inner.tasks.spawn(async move {
        // wharf stopping ends the wait, not the rollout: the cluster goes on with it.
        let watched = tokio::select! {
            watched = cluster.rollout(&made, timeout) => watched,
            _ = stop.cancelled() => return,
        };
        let outcome = match watched {
            Ok(Outcome::Complete) => Rollout::Complete,
            Ok(Outcome::Failed(why)) => Rollout::Failed(why),
            Ok(Outcome::TimedOut) => Rollout::Failed(format!(
                "its pods were not all up within {} s (WHARF_BOOT_TIMEOUT)",
                timeout.as_secs()
            )),
            Err(e) => Rollout::Failed(e.to_string()),
        };
        shared.rollouts.send_modify(|r| {
            r.insert(version, outcome);
        });
    });
}

/// Reads the app's pods back: instances, the router's upstream, output followers.
async fn look(
    inner: &Arc<Inner>,
    app: &DesiredApp,
    namespace: &str,
    shared: &Shared,
    log: &Arc<dyn LogSink>,
    followers: &mut HashMap<String, Follower>,
) {
    let pods = match inner.cluster.pods(namespace, &app.app_id).await {
        Ok(pods) => pods,
        Err(e) => {
            tracing::debug!(app = %app.app_name, error = %e, "cannot read the pods");
            return;
        }
    };
    let instances = crate::status::instances(&pods);
    // Each pod that isn't stopping gets a follower of its output, named as its instance was
    // then; one that ended (the container restarted, the stream broke) is followed again from
    // where it ended.
    let now = std::time::Instant::now();
    for instance in &instances {
        if instance.state == InstanceState::Stopping {
            continue;
        }
        let Some(pod) = pod_named(&pods, &instance.name) else {
            continue;
        };
        let since = match followers.get(&pod) {
            Some(f) if !f.task.is_finished() => continue,
            Some(f) => Some(now.duration_since(f.started).as_secs() + 1),
            None => None,
        };
        let task = tokio::spawn(follow(
            inner.cluster.pods_api(namespace),
            pod.clone(),
            instance.name.clone(),
            since,
            log.clone(),
        ));
        followers.insert(pod, Follower { task, started: now });
    }
    let live: std::collections::HashSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    followers.retain(|pod, follower| {
        let keep = live.contains(pod);
        if !keep {
            follower.task.abort();
        }
        keep
    });
    *shared.instances.lock().unwrap_or_else(|e| e.into_inner()) = instances;

    let web = app
        .processes
        .iter()
        .any(|p| p.process_type == "web" && p.quantity > 0);
    let upstreams = if web {
        match inner
            .cluster
            .service_address(namespace, &names::object(&app.app_name, "web"))
            .await
        {
            Ok(Some(addr)) => vec![Upstream {
                id: format!("{namespace}/service"),
                dyno: "web".to_owned(),
                addr,
                release_version: app.release.version,
            }],
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    inner.config.routes.set(&app.app_id, upstreams);
}

/// A follower of one pod's output.
struct Follower {
    task: tokio::task::JoinHandle<()>,
    started: std::time::Instant,
}

/// Follows one pod's output into the app's log as lines of `process`, until the pod ends;
/// `since`: only what it wrote in the last seconds (following it again).
async fn follow(
    pods: Api<Pod>,
    pod: String,
    process: String,
    since: Option<u64>,
    log: Arc<dyn LogSink>,
) {
    let params = LogParams {
        follow: true,
        since_seconds: since.and_then(|s| i64::try_from(s).ok()),
        ..Default::default()
    };
    let Ok(stream) = pods.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = stream.lines();
    while let Some(Ok(line)) = lines.next().await {
        log.line(&process, Stream::Stdout, &line);
    }
}
