//! The cluster half against recorded conversations with the Kubernetes API
//! (`conversations/*.json`, see `recorded.rs`), in their order.

use std::time::Duration;

use wharf_core::backend::{DesiredApp, ProcessSpec, PullableImage};
use wharf_k8s::cluster::Outcome;
use wharf_k8s::{manifests, Input, Settings};

use crate::recorded::RecordedApi;

pub(crate) fn release() -> DesiredApp {
    DesiredApp {
        app_id: "0b5e3c1e-7d1f-4a52-9d51-3f0c2d6e8a11".to_owned(),
        app_name: "shop".to_owned(),
        release: wharf_core::backend::ReleaseSpec {
            version: 4,
            image: "sha256:4f1c".to_owned(),
            env: [("DATABASE_URL".to_owned(), "postgres://db/shop".to_owned())].into(),
            image_env: Default::default(),
            run_image: Some("sha256:run".to_owned()),
            web_health: None,
        },
        processes: vec![ProcessSpec::new("web", 2, "bin/web")],
    }
}

pub(crate) fn made(
    release_command: Option<&str>,
    ingress_class: Option<&str>,
) -> wharf_k8s::Manifests {
    made_of(release(), release_command, ingress_class)
}

fn worker_only() -> wharf_k8s::Manifests {
    let mut app = release();
    app.processes = vec![ProcessSpec::new("worker", 1, "bin/worker")];
    made_of(app, None, None)
}

fn made_of(
    app: DesiredApp,
    release_command: Option<&str>,
    ingress_class: Option<&str>,
) -> wharf_k8s::Manifests {
    let image = PullableImage {
        reference: "registry.example.com/shop@sha256:4f1c".to_owned(),
        registry: "registry.example.com".to_owned(),
        credentials: None,
    };
    manifests(&Input {
        app: &app,
        image: &image,
        release_command,
        hostnames: &["shop.example.test".to_owned()],
        settings: &Settings {
            ingress_class: ingress_class.map(str::to_owned),
            boot_timeout: Duration::from_secs(60),
            release_timeout: Duration::from_secs(600),
        },
    })
    .unwrap()
}

/// A deploy: the objects applied in order (server-side, field manager `wharf`; the Ingress
/// last), the web
/// Deployment watched until every replica is updated and available, and the Deployment of a
/// process type the formation no longer has deleted.
#[tokio::test]
async fn a_release_is_applied_rolled_out_and_pruned() {
    let api = RecordedApi::start("deploy.json").await;
    let cluster = api.cluster();
    let manifests = made(None, Some("nginx"));
    cluster.apply(&manifests).await.unwrap();
    let outcome = cluster
        .rollout(&manifests, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Complete);
    let deleted = cluster.prune(&manifests).await.unwrap();
    assert_eq!(deleted, ["Deployment shop-worker"]);
    api.assert_done();
}

/// A release phase that fails: its Job is applied after the config it needs, and its failure
/// comes back with the reason.
#[tokio::test]
async fn a_failed_release_phase_says_why() {
    let api = RecordedApi::start("release-phase-fails.json").await;
    let cluster = api.cluster();
    let manifests = made(Some("rake db:migrate"), None);
    let job = manifests.release_job.clone().unwrap();
    let outcome = cluster
        .release_phase(&manifests, &job, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Failed(
            "the release phase (Job shop-release-v4) failed: Job has reached the specified backoff limit"
                .to_owned()
        )
    );
    api.assert_done();
}

/// A rollout whose progress deadline passes has failed, with the controller's message.
#[tokio::test]
async fn a_stuck_rollout_fails_with_the_controllers_message() {
    let api = RecordedApi::start("rollout-stuck.json").await;
    let cluster = api.cluster();
    let outcome = cluster
        .rollout(&made(None, None), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Failed(
            "Deployment shop-web: ReplicaSet \"shop-web-7d4b9c\" has timed out progressing."
                .to_owned()
        )
    );
    api.assert_done();
}

/// A formation without web any more: its Deployment and its Service go (a Service deletion
/// answers with a Status, not the object).
#[tokio::test]
async fn a_formation_without_web_loses_its_deployment_and_service() {
    let api = RecordedApi::start("web-scaled-away.json").await;
    let deleted = api.cluster().prune(&worker_only()).await.unwrap();
    assert_eq!(deleted, ["Deployment shop-web", "Service shop-web"]);
    api.assert_done();
}
