//! One release of an app as Kubernetes objects, made with k8s-openapi's types: what
//! `wharf k8s manifests` prints and what the Kubernetes backend applies.
//!
//! For app `shop` at release 7, in namespace `wharf-shop`:
//! - Secret `shop-v7-config`: the release's config vars, immutable, so a rollback (a new release
//!   with an old release's config) makes a Secret of its own and no running pod's environment
//!   ever changes under it;
//! - Secret `shop-registry`: where the nodes log in to pull the image, when they must;
//! - Job `shop-release-v7`: the release phase, when the image declares one;
//! - per process type a Deployment `shop-<type>`: the image by digest, the config by `envFrom`,
//!   `PORT` and `DYNO`, memory from the dyno size, the formation's grace period and stop signal,
//!   a read-only root with an `emptyDir` for `HOME` and `/tmp`, as the image's non-root user;
//!   `web` rolls out with `maxUnavailable: 0` behind a readiness probe, other types `Recreate`
//!   (two versions of a worker never run together);
//! - Service `shop-web` for web;
//! - with an ingress class, an Ingress for the app's hostnames.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, LocalObjectReference,
    Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretEnvSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use serde::Serialize;
use wharf_core::backend::{DesiredApp, ProcessSpec, PullableImage};

use crate::names;

/// The port every process listens on (`PORT`), as on the other backends.
pub const CONTAINER_PORT: i32 = 5000;
/// The user and group release images run as (the stacks' `app` user).
pub const APP_UID: i64 = 1000;
/// Where the writable scratch is mounted: the app's `HOME` and `/tmp`.
pub const HOME: &str = "/home/app";
/// `app.kubernetes.io/managed-by` on everything wharf makes.
pub const MANAGER: &str = "wharf";
/// The label with the release number.
pub const LABEL_RELEASE: &str = "wharf.dev/release";
/// The label with the app's id, which outlives renames.
pub const LABEL_APP_ID: &str = "wharf.dev/app-id";
/// The label of a one-off process's pod (the release phase's too): its name, `run.3`.
pub const LABEL_ONE_OFF: &str = "wharf.dev/one-off";
/// A pod-template annotation that `wharf restart` changes to restart a Deployment's pods.
pub const ANNOTATION_RESTARTED: &str = "wharf.dev/restarted-at";

/// What the manifests are made from besides the app's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `WHARF_K8S_INGRESS_CLASS`: with one, an Ingress routes the app's hostnames to its web
    /// Service; without, wharf's own router reaches the Services.
    pub ingress_class: Option<String>,
    /// How long a web pod may take to answer on `PORT` after it starts (`WHARF_BOOT_TIMEOUT`).
    pub boot_timeout: Duration,
    /// How long the release phase may run (`WHARF_RELEASE_TIMEOUT`).
    pub release_timeout: Duration,
}

/// One release of an app, as the manifests need it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The release, and the formation it runs with.
    pub app: &'a DesiredApp,
    /// Where the nodes pull the release image from.
    pub image: &'a PullableImage,
    /// The image's `release` command, if it has one: run as a Job before the Deployments.
    pub release_command: Option<&'a str>,
    /// The hostnames the app answers to (its default one and its custom domains).
    pub hostnames: &'a [String],
    pub settings: &'a Settings,
}

/// Why a release can't be made into manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "release v{version} is on the host-bound stack wharf-1: its image holds only /app and \
         runs on no other machine; set a stack (`wharf stack:set wharf-trixie -a APP`) and deploy"
    )]
    HostBound { version: u32 },
    #[error("cannot write the manifests as YAML: {0}")]
    Yaml(String),
}

/// One object of a release's manifests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    Secret(Secret),
    Job(Job),
    Deployment(Deployment),
    Service(Service),
    Ingress(Ingress),
}

/// The objects of one release, in the order they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    pub namespace: Namespace,
    /// The nodes' login to the registry, when it wants one.
    pub pull_secret: Option<Secret>,
    pub config: Secret,
    pub release_job: Option<Job>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub ingress: Option<Ingress>,
}

impl Manifests {
    /// Every object, in the order to apply them: the namespace, the Secrets, the release
    /// phase's Job, the Deployments, the Service, the Ingress.
    pub fn objects(&self) -> Vec<Object> {
        let mut objects = vec![Object::Namespace(self.namespace.clone())];
        objects.extend(self.pull_secret.clone().map(Object::Secret));
        objects.push(Object::Secret(self.config.clone()));
        objects.extend(self.release_job.clone().map(Object::Job));
        objects.extend(self.deployments.iter().cloned().map(Object::Deployment));
        objects.extend(self.services.iter().cloned().map(Object::Service));
        objects.extend(self.ingress.clone().map(Object::Ingress));
        objects
    }
}

/// The manifests of `input`'s release.
pub fn manifests(input: &Input<'_>) -> Result<Manifests, ManifestError> {
    let app = input.app;
    let release = &app.release;
    if release.run_image.is_none() {
        return Err(ManifestError::HostBound {
            version: release.version,
        });
    }
    let namespace = names::namespace(&app.app_name);
    let meta = |name: String, component: Option<&str>| ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.clone()),
        labels: Some(labels(input, component)),
        ..Default::default()
    };

    let pull_secret = input.image.credentials.as_ref().map(|(user, password)| {
        let auth = base64_encode(&format!("{user}:{password}"));
        let config = serde_json::json!({
            "auths": {
                input.image.registry.as_str(): {
                    "username": user,
                    "password": password,
                    "auth": auth,
                }
            }
        });
        Secret {
            metadata: meta(names::pull_secret(&app.app_name), None),
            type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                ByteString(config.to_string().into_bytes()),
            )])),
            ..Default::default()
        }
    });

    let config = Secret {
        metadata: meta(names::config_secret(&app.app_name, release.version), None),
        type_: Some("Opaque".to_owned()),
        immutable: Some(true),
        data: Some(
            release
                .env
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };

    let release_job = input.release_command.map(|command| {
        let component = "release";
        let mut pod = pod_spec(input, component, command, "release.1");
        pod.restart_policy = Some("Never".to_owned());
        Job {
            metadata: meta(
                names::release_job(&app.app_name, release.version),
                Some(component),
            ),
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                active_deadline_seconds: Some(
                    i64::try_from(input.settings.release_timeout.as_secs()).unwrap_or(i64::MAX),
                ),
                // Kept a day for its logs and status, then collected.
                ttl_seconds_after_finished: Some(24 * 60 * 60),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some({
                            let mut labels = labels(input, Some(component));
                            labels.insert(LABEL_ONE_OFF.to_owned(), "release.1".to_owned());
                            labels
                        }),
                        ..Default::default()
                    }),
                    spec: Some(pod),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    });

    let deployments = app
        .processes
        .iter()
        .map(|process| deployment(input, process, &meta))
        .collect();

    let web = app.processes.iter().any(|p| p.process_type == "web");
    let services = if web {
        vec![Service {
            metadata: meta(names::object(&app.app_name, "web"), Some("web")),
            spec: Some(ServiceSpec {
                selector: Some(selector(input, "web")),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };

    let ingress = match (&input.settings.ingress_class, web) {
        (Some(class), true) if !input.hostnames.is_empty() => Some(Ingress {
            metadata: meta(app.app_name.clone(), Some("web")),
            spec: Some(IngressSpec {
                ingress_class_name: Some(class.clone()),
                rules: Some(
                    input
                        .hostnames
                        .iter()
                        .map(|host| IngressRule {
                            host: Some(host.clone()),
                            http: Some(HTTPIngressRuleValue {
                                paths: vec![HTTPIngressPath {
                                    path: Some("/".to_owned()),
                                    path_type: "Prefix".to_owned(),
                                    backend: IngressBackend {
                                        service: Some(IngressServiceBackend {
                                            name: names::object(&app.app_name, "web"),
                                            port: Some(ServiceBackendPort {
                                                name: Some("http".to_owned()),
                                                number: None,
                                            }),
                                        }),
                                        resource: None,
                                    },
                                }],
                            }),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }),
        _ => None,
    };

    Ok(Manifests {
        namespace: Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some(labels(input, None)),
                ..Default::default()
            },
            ..Default::default()
        },
        pull_secret,
        config,
        release_job,
        deployments,
        services,
        ingress,
    })
}

/// The objects as YAML, one document per object, in the order to apply them.
pub fn to_yaml(objects: &[Object]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(
            &yaml_serde::to_string(object).map_err(|e| ManifestError::Yaml(e.to_string()))?,
        );
    }
    Ok(out)
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The labels of an object of the app's (of one process type's, with `component`).
fn labels(input: &Input<'_>, component: Option<&str>) -> BTreeMap<String, String> {
    let app = input.app;
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), app.app_name.clone()),
        (
            "app.kubernetes.io/instance".to_owned(),
            app.app_name.clone(),
        ),
        (
            "app.kubernetes.io/version".to_owned(),
            format!("v{}", app.release.version),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
        (LABEL_RELEASE.to_owned(), app.release.version.to_string()),
        (LABEL_APP_ID.to_owned(), app.app_id.clone()),
    ]);
    if let Some(component) = component {
        labels.insert(
            "app.kubernetes.io/component".to_owned(),
            names::label_value(component),
        );
    }
    labels
}

/// What selects a process type's pods: never the release, which changes under a Deployment.
fn selector(input: &Input<'_>, process_type: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            input.app.app_name.clone(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            names::label_value(process_type),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
    ])
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// One process type's Deployment.
fn deployment(
    input: &Input<'_>,
    process: &ProcessSpec,
    meta: &dyn Fn(String, Option<&str>) -> ObjectMeta,
) -> Deployment {
    let app = input.app;
    let kind = process.process_type.as_str();
    let web = kind == "web";
    // A Deployment's pods have no ordinal: each is its type and its pod's name.
    let mut pod = pod_spec(
        input,
        kind,
        &process.command,
        &format!("{kind}.$(WHARF_POD_NAME)"),
    );
    pod.termination_grace_period_seconds = Some(i64::from(seconds(process.grace)));
    let container = &mut pod.containers[0];
    if let Some(bytes) = process.memory_limit {
        let memory = Quantity(bytes.to_string());
        container.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("memory".to_owned(), memory.clone())])),
            limits: Some(BTreeMap::from([("memory".to_owned(), memory)])),
            ..Default::default()
        });
    }
    if process.stop_signal != "SIGTERM" {
        // Kubernetes stops a container with SIGTERM; the formation's signal goes first, and
        // the hook waits (within the grace period) for the process to end on it.
        let signal = process.stop_signal.trim_start_matches("SIG");
        container.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "/bin/sh".to_owned(),
                        "-c".to_owned(),
                        format!("kill -{signal} 1; while kill -0 1 2>/dev/null; do sleep 1; done"),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if web {
        container.ports = Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: CONTAINER_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]);
        let timeout = process
            .health_timeout
            .unwrap_or(Duration::from_secs(5))
            .max(Duration::from_secs(1));
        let check = |probe: Probe| Probe {
            http_get: process.health_path.as_ref().map(|path| HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::String("http".to_owned()),
                ..Default::default()
            }),
            tcp_socket: process.health_path.is_none().then(|| TCPSocketAction {
                port: IntOrString::String("http".to_owned()),
                ..Default::default()
            }),
            timeout_seconds: Some(seconds(timeout)),
            ..probe
        };
        // Up within the boot timeout, checked every second until then.
        container.startup_probe = Some(check(Probe {
            period_seconds: Some(1),
            failure_threshold: Some(seconds(input.settings.boot_timeout).max(1)),
            ..Default::default()
        }));
        container.readiness_probe = Some(check(Probe {
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }));
        // Restarted when its port stops taking connections for half a minute.
        container.liveness_probe = Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("http".to_owned()),
                ..Default::default()
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(seconds(timeout)),
            failure_threshold: Some(3),
            ..Default::default()
        });
    }
    let strategy = if web {
        DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        }
    } else {
        DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        }
    };
    Deployment {
        metadata: meta(names::object(&app.app_name, kind), Some(kind)),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(process.quantity).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector(input, kind)),
                ..Default::default()
            },
            strategy: Some(strategy),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(input, Some(kind))),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How a one-off process's pod is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneOffIo {
    /// Output to its log; no input.
    Detached,
    /// stdin kept open for the client that attaches.
    Stdin,
    /// A terminal, for the client that attaches.
    Terminal,
}

/// The pod of one-off process `dyno` (`run.3`, `release.2`) running `command` with the
/// release's environment: the same image, config, limits and security as its process types',
/// never restarted, named `prefix` and a suffix the API server picks.
pub fn one_off_pod(
    input: &Input<'_>,
    prefix: &str,
    dyno: &str,
    command: &str,
    io: OneOffIo,
) -> k8s_openapi::api::core::v1::Pod {
    let kind = dyno.split('.').next().unwrap_or("run");
    let mut spec = pod_spec(input, kind, command, dyno);
    spec.restart_policy = Some("Never".to_owned());
    let container = &mut spec.containers[0];
    if io != OneOffIo::Detached {
        container.stdin = Some(true);
        container.stdin_once = Some(true);
        container.tty = Some(io == OneOffIo::Terminal);
    }
    if io == OneOffIo::Terminal {
        container
            .env
            .get_or_insert_with(Vec::new)
            .push(value("TERM", "xterm-256color"));
    }
    let mut labels = labels(input, Some(kind));
    labels.insert(LABEL_ONE_OFF.to_owned(), dyno.to_owned());
    k8s_openapi::api::core::v1::Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_owned()),
            namespace: Some(names::namespace(&input.app.app_name)),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

/// The pod of a process of type `kind` running `command` as `dyno`.
fn pod_spec(input: &Input<'_>, kind: &str, command: &str, dyno: &str) -> PodSpec {
    let app = input.app;
    let release = &app.release;
    // `$(WHARF_POD_NAME)` in DYNO refers to the variable defined before it.
    let env = vec![
        EnvVar {
            name: "WHARF_POD_NAME".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        value("DYNO", dyno),
        value("HOME", HOME),
        value("PORT", &CONTAINER_PORT.to_string()),
        value("TMPDIR", "/tmp"),
        value("WHARF_RELEASE_VERSION", &release.version.to_string()),
    ];
    let container = Container {
        name: names::label_value(kind),
        image: Some(input.image.reference.clone()),
        // The image's launcher (its Entrypoint) runs it in /app, with .profile.d sourced; a
        // simple command replaces the shell, so the process gets the stop signal itself.
        args: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            wharf_core::procfile::exec_form(command),
        ]),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: names::config_secret(&app.app_name, release.version),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        // After `envFrom`, so the config can't override them.
        env: Some(env),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "scratch".to_owned(),
                mount_path: HOME.to_owned(),
                sub_path: Some("home".to_owned()),
                ..Default::default()
            },
            VolumeMount {
                name: "scratch".to_owned(),
                mount_path: "/tmp".to_owned(),
                sub_path: Some("tmp".to_owned()),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodSpec {
        containers: vec![container],
        // The registry's login, when it wants one; pods reach no API server.
        image_pull_secrets: input.image.credentials.as_ref().map(|_| {
            vec![LocalObjectReference {
                name: names::pull_secret(&app.app_name),
            }]
        }),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(APP_UID),
            run_as_group: Some(APP_UID),
            fs_group: Some(APP_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        volumes: Some(vec![Volume {
            name: "scratch".to_owned(),
            // Wiped with the pod: every start is a clean one.
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}
