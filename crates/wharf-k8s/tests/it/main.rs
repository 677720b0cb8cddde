//! The manifests of a release: what they say (insta snapshots of the YAML), and that every
//! object passes the Kubernetes API's own schemas, strictly, for 1.30 to 1.37
//! (`kubernetes-validate`, which scripts/setup installs into target/kubernetes-validate).

mod backend;
mod cluster;
mod rbac;
mod recorded;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wharf_core::app_json::HealthCheck;
use wharf_core::backend::{DesiredApp, ProcessSpec, PullableImage, ReleaseSpec};
use wharf_k8s::{manifests, to_yaml, Input, ManifestError, Settings};

const DIGEST: &str = "sha256:4f1c0c1e8a4e2d5bb3bd7c0f6d6e9f1a2b3c4d5e6f708192a3b4c5d6e7f80910";

fn release(version: u32) -> ReleaseSpec {
    ReleaseSpec {
        version,
        image: DIGEST.to_owned(),
        env: BTreeMap::from([
            ("DATABASE_URL".to_owned(), "postgres://db/shop".to_owned()),
            // The platform's own values win over the config's.
            ("PORT".to_owned(), "1".to_owned()),
        ]),
        image_env: BTreeMap::new(),
        run_image: Some("sha256:run".to_owned()),
        web_health: Some(HealthCheck {
            path: "/health".to_owned(),
            timeout_secs: 3,
        }),
    }
}

fn web() -> ProcessSpec {
    let mut web = ProcessSpec::new("web", 2, "gunicorn shop:app");
    web.memory_limit = Some(512 * 1024 * 1024);
    web.health_path = Some("/health".to_owned());
    web.health_timeout = Some(Duration::from_secs(3));
    web
}

fn worker() -> ProcessSpec {
    let mut worker = ProcessSpec::new("worker", 1, "python worker.py");
    worker.memory_limit = Some(1024 * 1024 * 1024);
    worker.stop_signal = "SIGINT".to_owned();
    worker.grace = Duration::from_secs(60);
    worker
}

fn app(version: u32, processes: Vec<ProcessSpec>) -> DesiredApp {
    DesiredApp {
        app_id: "0b5e3c1e-7d1f-4a52-9d51-3f0c2d6e8a11".to_owned(),
        app_name: "shop".to_owned(),
        release: release(version),
        processes,
    }
}

fn from_wharf() -> PullableImage {
    PullableImage {
        reference: format!("wharf.example.com/shop@{DIGEST}"),
        registry: "wharf.example.com".to_owned(),
        credentials: Some(("wharf".to_owned(), "wharf-pull.token".to_owned())),
    }
}

fn settings(ingress_class: Option<&str>) -> Settings {
    Settings {
        ingress_class: ingress_class.map(str::to_owned),
        boot_timeout: Duration::from_secs(60),
        release_timeout: Duration::from_secs(3600),
    }
}

fn yaml(
    app: &DesiredApp,
    image: &PullableImage,
    release_command: Option<&str>,
    settings: &Settings,
) -> String {
    let hostnames = ["shop.example.com".to_owned(), "www.shop.test".to_owned()];
    let made = manifests(&Input {
        app,
        image,
        release_command,
        hostnames: &hostnames,
        settings,
    })
    .unwrap();
    to_yaml(&made.objects()).unwrap()
}

/// Every kind of object: a web and a worker type, a release phase, a registry login, an
/// Ingress.
#[test]
fn a_release_with_everything() {
    let text = yaml(
        &app(7, vec![web(), worker()]),
        &from_wharf(),
        Some("python manage.py migrate"),
        &settings(Some("nginx")),
    );
    insta::assert_snapshot!(text);
}

/// A web type alone, from a registry that wants no login, without an ingress class: no pull
/// Secret, no Job, no Ingress.
#[test]
fn a_release_with_a_web_type_alone() {
    let public = PullableImage {
        reference: format!("registry.example.com/team/shop@{DIGEST}"),
        registry: "registry.example.com".to_owned(),
        credentials: None,
    };
    let text = yaml(
        &app(3, vec![ProcessSpec::new("web", 1, "bin/web")]),
        &public,
        None,
        &settings(None),
    );
    insta::assert_snapshot!(text);
    assert!(
        !text.contains("kind: Ingress") && !text.contains("kind: Job"),
        "{text}"
    );
    assert!(!text.contains("imagePullSecrets"), "{text}");
}

#[test]
fn a_host_bound_release_has_no_manifests() {
    let mut app = app(2, vec![web()]);
    app.release.run_image = None;
    let made = manifests(&Input {
        app: &app,
        image: &from_wharf(),
        release_command: None,
        hostnames: &[],
        settings: &settings(None),
    });
    assert!(
        matches!(made, Err(ManifestError::HostBound { version: 2 })),
        "{made:?}"
    );
}

/// Every object of every case, for every Kubernetes version from 1.30 to 1.37, passes the
/// API's schema strictly (no field it doesn't know).
#[test]
fn every_object_is_valid_for_kubernetes_1_30_to_1_37() {
    let Some(validate) = wharf_test_support::k8s::kubernetes_validate() else {
        return;
    };
    let mut scaled_to_zero = web();
    scaled_to_zero.quantity = 0;
    let mut odd = worker();
    odd.process_type = "Worker_High".to_owned();
    let cases = [
        (
            "everything",
            yaml(
                &app(7, vec![web(), worker()]),
                &from_wharf(),
                Some("rake db:migrate"),
                &settings(Some("nginx")),
            ),
        ),
        (
            "web alone",
            yaml(
                &app(1, vec![ProcessSpec::new("web", 1, "bin/web")]),
                &from_wharf(),
                None,
                &settings(None),
            ),
        ),
        (
            "scaled to zero",
            yaml(
                &app(9, vec![scaled_to_zero, odd]),
                &from_wharf(),
                None,
                &settings(Some("traefik")),
            ),
        ),
        (
            "a rollback to v2's image and config, as v12",
            yaml(
                &app(12, vec![web(), worker()]),
                &from_wharf(),
                Some("true"),
                &settings(None),
            ),
        ),
        (
            "workers only",
            yaml(
                &app(4, vec![worker()]),
                &from_wharf(),
                None,
                &settings(Some("nginx")),
            ),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, PathBuf)> = cases
        .iter()
        .enumerate()
        .map(|(i, (what, text))| {
            let file = dir.path().join(format!("case-{i}.yaml"));
            std::fs::write(&file, text).unwrap();
            (what.to_string(), file)
        })
        .collect();
    wharf_test_support::k8s::assert_valid(&validate, &files);
}
