//! Talking to a cluster through kube-rs: server-side apply of a release's manifests with field
//! manager `wharf`, the release phase's Job run to its end, each Deployment's rollout waited
//! for, and what an app no longer has removed. The client comes from kubeconfig or the
//! in-cluster service account.
//!
//! Everything here is a plain request (apply, get, list, delete) polled at an interval, so a
//! conversation with the API is a short, fixed sequence: `tests/it/cluster.rs` replays one.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::manifests::{Manifests, LABEL_APP_ID, MANAGER};

/// The field manager of everything wharf applies.
pub const FIELD_MANAGER: &str = "wharf";

/// Why the cluster did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot set up the Kubernetes client from kubeconfig ($KUBECONFIG, ~/.kube/config) or \
         the in-cluster service account: {0}"
    )]
    Config(String),
    #[error("the Kubernetes API refused to {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Api { action, source }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Job succeeded; every Deployment rolled out.
    Complete,
    /// The Job failed, or a Deployment's rollout did (why, for the app's log).
    Failed(String),
    /// Neither within the time allowed.
    TimedOut,
}

/// A cluster wharf applies releases to; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// How often waits look again.
    poll: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster kubeconfig (`$KUBECONFIG`, `~/.kube/config`) or the in-cluster service
    /// account names.
    pub async fn infer() -> Result<Cluster, ClusterError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster::new(client, Duration::from_secs(1)))
    }

    /// The cluster `client` talks to, looked at every `poll` while waiting.
    pub fn new(client: Client, poll: Duration) -> Cluster {
        Cluster { client, poll }
    }

    fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Applies `object` (server-side, taking over fields others set: wharf owns these objects).
    async fn apply_one<K>(&self, api: &Api<K>, kind: &str, object: &K) -> Result<(), ClusterError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(api_error(format!("apply {kind} {name}")))?;
        Ok(())
    }

    /// Applies what every pod of the release needs first: the namespace, the registry login
    /// and the config Secret. Returns the namespace.
    pub async fn apply_config(&self, manifests: &Manifests) -> Result<String, ClusterError> {
        let namespace = manifests
            .namespace
            .metadata
            .name
            .clone()
            .unwrap_or_default();
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        self.apply_one(&namespaces, "Namespace", &manifests.namespace)
            .await?;
        let secrets: Api<Secret> = self.namespaced(&namespace);
        if let Some(pull) = &manifests.pull_secret {
            self.apply_one(&secrets, "Secret", pull).await?;
        }
        self.apply_one(&secrets, "Secret", &manifests.config)
            .await?;
        Ok(namespace)
    }

    /// Applies the release's objects, in order, except its release-phase Job (see
    /// [`Cluster::release_phase`]): the namespace, the Secrets, the Deployments, the Service
    /// and the Ingress.
    pub async fn apply(&self, manifests: &Manifests) -> Result<(), ClusterError> {
        let namespace = self.apply_config(manifests).await?;
        let deployments: Api<Deployment> = self.namespaced(&namespace);
        for deployment in &manifests.deployments {
            self.apply_one(&deployments, "Deployment", deployment)
                .await?;
        }
        let services: Api<Service> = self.namespaced(&namespace);
        for service in &manifests.services {
            self.apply_one(&services, "Service", service).await?;
        }
        if let Some(ingress) = &manifests.ingress {
            let ingresses: Api<Ingress> = self.namespaced(&namespace);
            self.apply_one(&ingresses, "Ingress", ingress).await?;
        }
        Ok(())
    }

    /// Applies the Secrets and the release phase's Job of `manifests` and waits (at most
    /// `timeout`) for the Job to succeed or fail.
    pub async fn release_phase(
        &self,
        manifests: &Manifests,
        job: &Job,
        timeout: Duration,
    ) -> Result<Outcome, ClusterError> {
        let namespace = self.apply_config(manifests).await?;
        let jobs: Api<Job> = self.namespaced(&namespace);
        self.apply_one(&jobs, "Job", job).await?;
        let name = job.metadata.name.clone().unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = jobs
                .get_status(&name)
                .await
                .map_err(api_error(format!("read Job {name}")))?;
            let status = now.status.unwrap_or_default();
            if status.succeeded.unwrap_or(0) > 0 {
                return Ok(Outcome::Complete);
            }
            if let Some(failed) = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
            {
                return Ok(Outcome::Failed(format!(
                    "the release phase (Job {name}) failed: {}",
                    failed
                        .message
                        .or(failed.reason)
                        .unwrap_or_else(|| "no reason given".to_owned())
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Outcome::TimedOut);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Waits (at most `timeout`) until every Deployment of `manifests` has rolled out: the
    /// controller has seen its newest spec, and every replica is updated and available. A
    /// Deployment whose progress deadline passed has failed.
    pub async fn rollout(
        &self,
        manifests: &Manifests,
        timeout: Duration,
    ) -> Result<Outcome, ClusterError> {
        let namespace = manifests
            .namespace
            .metadata
            .name
            .clone()
            .unwrap_or_default();
        let deployments: Api<Deployment> = self.namespaced(&namespace);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting: BTreeSet<String> = manifests
            .deployments
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        loop {
            for name in waiting.clone() {
                let now = deployments
                    .get_status(&name)
                    .await
                    .map_err(api_error(format!("read Deployment {name}")))?;
                match rollout_state(&now) {
                    RolloutState::Complete => {
                        waiting.remove(&name);
                    }
                    RolloutState::Failed(why) => {
                        return Ok(Outcome::Failed(format!("Deployment {name}: {why}")));
                    }
                    RolloutState::Progressing => {}
                }
            }
            if waiting.is_empty() {
                return Ok(Outcome::Complete);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Outcome::TimedOut);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Deletes the app's Deployments and Services (by its `wharf.dev/app-id` label, and made by
    /// wharf) that `manifests` no longer has: process types taken out of the formation. Says
    /// what it deleted.
    pub async fn prune(&self, manifests: &Manifests) -> Result<Vec<String>, ClusterError> {
        let namespace = manifests
            .namespace
            .metadata
            .name
            .clone()
            .unwrap_or_default();
        let app_id = manifests
            .namespace
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_APP_ID))
            .cloned()
            .unwrap_or_default();
        let selector = ListParams::default().labels(&format!(
            "{LABEL_APP_ID}={app_id},app.kubernetes.io/managed-by={MANAGER}"
        ));
        let wanted: BTreeSet<String> = manifests
            .deployments
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .chain(
                manifests
                    .services
                    .iter()
                    .filter_map(|s| s.metadata.name.clone()),
            )
            .collect();
        let mut deleted = Vec::new();
        let deployments: Api<Deployment> = self.namespaced(&namespace);
        // A Deployment's pods go before it does.
        let foreground = DeleteParams::foreground();
        deleted.extend(
            delete_unwanted(&deployments, "Deployment", &selector, &wanted, &foreground).await?,
        );
        let services: Api<Service> = self.namespaced(&namespace);
        let plain = DeleteParams::default();
        deleted.extend(delete_unwanted(&services, "Service", &selector, &wanted, &plain).await?);
        Ok(deleted)
    }
}

impl Cluster {
    /// The pods of `namespace`, to read, follow or attach to.
    pub fn pods_api(&self, namespace: &str) -> Api<Pod> {
        self.namespaced(namespace)
    }

    /// Checks that the API server answers (its version).
    pub async fn version(&self) -> Result<String, ClusterError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(api_error("tell its version"))?;
        Ok(info.git_version)
    }

    /// The app's pods (its process types', its release phases' and its one-offs'), by its
    /// `wharf.dev/app-id` label.
    pub async fn pods(&self, namespace: &str, app_id: &str) -> Result<Vec<Pod>, ClusterError> {
        let pods: Api<Pod> = self.namespaced(namespace);
        let selector = ListParams::default().labels(&format!(
            "{LABEL_APP_ID}={app_id},app.kubernetes.io/managed-by={MANAGER}"
        ));
        Ok(pods
            .list(&selector)
            .await
            .map_err(api_error("list pods"))?
            .items)
    }

    /// Restarts a Deployment's pods the way `kubectl rollout restart` does: a new value of a
    /// pod-template annotation, so they are replaced in the Deployment's own update order.
    pub async fn restart(
        &self,
        namespace: &str,
        deployment: &str,
        at: &str,
    ) -> Result<(), ClusterError> {
        let deployments: Api<Deployment> = self.namespaced(namespace);
        let patch = serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {
                crate::manifests::ANNOTATION_RESTARTED: at
            }}}}
        });
        deployments
            .patch(deployment, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_error(format!("restart Deployment {deployment}")))?;
        Ok(())
    }

    /// Deletes one pod (its Deployment starts another, fresh).
    pub async fn delete_pod(&self, namespace: &str, pod: &str) -> Result<(), ClusterError> {
        let pods: Api<Pod> = self.namespaced(namespace);
        pods.delete(pod, &DeleteParams::default())
            .await
            .map_err(api_error(format!("delete pod {pod}")))?;
        Ok(())
    }

    /// Deletes the app's namespace, and with it everything of the app's.
    pub async fn remove_namespace(&self, namespace: &str) -> Result<(), ClusterError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.delete(namespace, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            // Gone already.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ClusterError::Api {
                action: format!("delete Namespace {namespace}"),
                source,
            }),
        }
    }

    /// Where the Service `name` takes connections inside the cluster (its cluster IP and
    /// port), once it has one.
    pub async fn service_address(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<std::net::SocketAddr>, ClusterError> {
        let services: Api<Service> = self.namespaced(namespace);
        let service = services
            .get_opt(name)
            .await
            .map_err(api_error(format!("read Service {name}")))?;
        let Some(spec) = service.and_then(|s| s.spec) else {
            return Ok(None);
        };
        let ip = spec
            .cluster_ip
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let port = spec
            .ports
            .and_then(|p| p.first().map(|p| p.port))
            .and_then(|p| u16::try_from(p).ok());
        Ok(ip
            .zip(port)
            .map(|(ip, port)| std::net::SocketAddr::new(ip, port)))
    }
}

/// Deletes what `api` lists under `selector` that `wanted` doesn't name; says what it deleted.
async fn delete_unwanted<K>(
    api: &Api<K>,
    kind: &str,
    selector: &ListParams,
    wanted: &BTreeSet<String>,
    params: &DeleteParams,
) -> Result<Vec<String>, ClusterError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut deleted = Vec::new();
    for found in api
        .list(selector)
        .await
        .map_err(api_error(format!("list {kind}s")))?
    {
        let name = found.meta().name.clone().unwrap_or_default();
        if !wanted.contains(&name) {
            api.delete(&name, params)
                .await
                .map_err(api_error(format!("delete {kind} {name}")))?;
            deleted.push(format!("{kind} {name}"));
        }
    }
    Ok(deleted)
}

/// Where a Deployment's rollout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    Progressing,
    Complete,
    Failed(String),
}

/// What `kubectl rollout status` would say of `deployment`.
pub fn rollout_state(deployment: &Deployment) -> RolloutState {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return RolloutState::Progressing;
    };
    if let Some(stuck) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return RolloutState::Failed(
            stuck
                .message
                .clone()
                .unwrap_or_else(|| "its progress deadline passed".to_owned()),
        );
    }
    let seen = status.observed_generation.unwrap_or(0) >= generation;
    let updated = status.updated_replicas.unwrap_or(0) >= wanted;
    let available = status.available_replicas.unwrap_or(0) >= wanted;
    // Old pods still terminating count in `replicas`.
    let only_new = status.replicas.unwrap_or(0) <= wanted;
    if seen && updated && available && only_new {
        RolloutState::Complete
    } else {
        RolloutState::Progressing
    }
}
