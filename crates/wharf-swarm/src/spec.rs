//! What a process type of a release is as a swarm service: `<app>-<type>`, the release image by
//! digest from wharf's registry, config vars plus `PORT` and `DYNO`, replicas, limits, labels,
//! the update order (start-first for web, stop-first otherwise), a health check on `PORT` for
//! web, and the formation's stop signal and grace.

use std::collections::HashMap;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, HealthConfig, Limit,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use wharf_core::backend::{ProcessSpec, ReleaseSpec};

/// Labels on every service and task wharf makes.
pub const LABEL_APP_ID: &str = "dev.wharf.app-id";
pub const LABEL_APP: &str = "dev.wharf.app";
pub const LABEL_RELEASE: &str = "dev.wharf.release";
pub const LABEL_TYPE: &str = "dev.wharf.process-type";

/// The port every task listens on inside its container (`PORT`); the engine publishes it on a
/// host port of its choosing on the task's node.
pub const CONTAINER_PORT: u16 = 5000;

/// Processes a task may run at once: a fork bomb stays inside its task.
const PIDS_LIMIT: i64 = 4096;

/// The service of one process type: `<app>-<type>`.
pub fn service_name(app_name: &str, process_type: &str) -> String {
    format!("{app_name}-{process_type}")
}

/// Runs the command as the image's launcher runs a named process type (in `/app`, with the
/// `.profile.d` scripts sourced), whatever the command: the formation may have changed it.
pub fn args(command: &str) -> Vec<String> {
    vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "for script in /app/.profile.d/*.sh; do if [ -r \"$script\" ]; then . \"$script\"; fi; \
         done; exec /bin/sh -c \"$1\""
            .to_owned(),
        "sh".to_owned(),
        wharf_core::procfile::exec_form(command),
    ]
}

/// A check of `PORT` with nothing but bash (every stack has it): a connection for a TCP check,
/// or a `GET` of `path` that must answer 2xx or 3xx.
fn health_test(path: Option<&str>) -> Vec<String> {
    let script = match path {
        None => "exec 3<>/dev/tcp/127.0.0.1/$PORT".to_owned(),
        Some(path) => format!(
            "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET %s HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' '{}' >&3 \
             && read -r _ status _ <&3 && case $status in 2??|3??) exit 0;; *) exit 1;; esac",
            path.replace('\'', "")
        ),
    };
    vec!["CMD".to_owned(), "bash".to_owned(), "-c".to_owned(), script]
}

/// A process's environment: the release's config vars, then wharf's `PORT`, `DYNO` and
/// `WHARF_RELEASE_VERSION` (which the config can't override).
pub fn env(release: &ReleaseSpec, dyno: &str) -> Vec<String> {
    let mut env: Vec<String> = release
        .env
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "PORT" | "DYNO"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    env.push(format!("PORT={CONTAINER_PORT}"));
    env.push(format!("DYNO={dyno}"));
    env.push(format!("WHARF_RELEASE_VERSION={}", release.version));
    env
}

fn nanos(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// Everything a service spec is made from.
pub struct ServiceInput<'a> {
    pub app_id: &'a str,
    pub app_name: &'a str,
    /// The reference the nodes pull the release's image by.
    pub image: &'a str,
    pub release: &'a ReleaseSpec,
    pub process: &'a ProcessSpec,
}

/// The service spec of one process type of a release.
pub fn service_spec(input: &ServiceInput<'_>) -> ServiceSpec {
    let ServiceInput {
        app_id,
        app_name,
        image,
        release,
        process,
    } = input;
    let web = process.process_type == "web";
    let labels: HashMap<String, String> = [
        (LABEL_APP_ID, app_id.to_string()),
        (LABEL_APP, app_name.to_string()),
        (LABEL_RELEASE, release.version.to_string()),
        (LABEL_TYPE, process.process_type.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // The engine fills the task's slot in: web.1, web.2, …
    let env = env(
        release,
        &format!("{}.{{{{.Task.Slot}}}}", process.process_type),
    );
    let health_check = web.then(|| HealthConfig {
        test: Some(health_test(process.health_path.as_deref())),
        interval: Some(nanos(std::time::Duration::from_secs(2))),
        timeout: Some(nanos(
            process
                .health_timeout
                .unwrap_or(std::time::Duration::from_secs(5)),
        )),
        retries: Some(3),
        start_period: Some(nanos(std::time::Duration::from_secs(60))),
        ..Default::default()
    });
    ServiceSpec {
        name: Some(service_name(app_name, &process.process_type)),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                labels: Some(labels),
                args: Some(args(&process.command)),
                env: Some(env),
                stop_signal: Some(process.stop_signal.clone()),
                stop_grace_period: Some(nanos(process.grace)),
                health_check,
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    memory_bytes: process
                        .memory_limit
                        .and_then(|bytes| i64::try_from(bytes).ok()),
                    pids: Some(PIDS_LIMIT),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(std::time::Duration::from_secs(1))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(process.quantity)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            // Web: each new task up (healthy) before an old one stops; others: two versions
            // of a worker never run together.
            order: Some(if web {
                ServiceSpecUpdateConfigOrderEnum::START_FIRST
            } else {
                ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
            }),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE),
            ..Default::default()
        }),
        endpoint_spec: web.then(|| EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(i64::from(CONTAINER_PORT)),
                // Host mode, no port given: the engine picks a free one on the task's node.
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn release() -> ReleaseSpec {
        ReleaseSpec {
            version: 7,
            image: "sha256:abc".into(),
            env: BTreeMap::from([
                ("DATABASE_URL".into(), "postgres://db/x".into()),
                ("PORT".into(), "1".into()),
            ]),
            image_env: BTreeMap::new(),
            run_image: Some("sha256:run".into()),
            web_health: None,
        }
    }

    #[test]
    fn a_web_process_is_a_start_first_service_published_in_host_mode() {
        let release = release();
        let mut web = ProcessSpec::new("web", 3, "gunicorn app:app");
        web.memory_limit = Some(512 * 1024 * 1024);
        web.health_path = Some("/health".into());
        web.grace = Duration::from_secs(9);
        web.stop_signal = "SIGINT".into();
        let spec = service_spec(&ServiceInput {
            app_id: "id-1",
            app_name: "shop",
            image: "10.0.0.1:7070/shop@sha256:abc",
            release: &release,
            process: &web,
        });
        assert_eq!(spec.name.as_deref(), Some("shop-web"));
        let task = spec.task_template.as_ref().unwrap();
        let container = task.container_spec.as_ref().unwrap();
        assert_eq!(
            container.image.as_deref(),
            Some("10.0.0.1:7070/shop@sha256:abc")
        );
        let env = container.env.as_ref().unwrap();
        assert!(env.contains(&"DATABASE_URL=postgres://db/x".to_owned()));
        assert!(
            env.contains(&"PORT=5000".to_owned()),
            "wharf's PORT wins: {env:?}"
        );
        assert!(!env.contains(&"PORT=1".to_owned()));
        assert!(env.contains(&"DYNO=web.{{.Task.Slot}}".to_owned()));
        assert_eq!(container.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(container.stop_grace_period, Some(9_000_000_000));
        assert_eq!(container.args.as_ref().unwrap()[4], "exec gunicorn app:app");
        let check = container
            .health_check
            .as_ref()
            .unwrap()
            .test
            .as_ref()
            .unwrap();
        assert!(check[3].contains("'/health'"), "{check:?}");
        let limits = task.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits.memory_bytes, Some(512 * 1024 * 1024));
        assert_eq!(limits.pids, Some(PIDS_LIMIT));
        assert_eq!(spec.mode.unwrap().replicated.unwrap().replicas, Some(3));
        assert_eq!(
            spec.update_config.unwrap().order,
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST)
        );
        let ports = spec.endpoint_spec.unwrap().ports.unwrap();
        assert_eq!(
            ports[0].publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(ports[0].published_port, None);
        assert_eq!(spec.labels.unwrap()[LABEL_RELEASE], "7");
    }

    #[test]
    fn other_processes_stop_first_and_publish_nothing() {
        let release = release();
        let worker = ProcessSpec::new("worker", 1, "python worker.py");
        let spec = service_spec(&ServiceInput {
            app_id: "id-1",
            app_name: "shop",
            image: "r:1/shop@sha256:abc",
            release: &release,
            process: &worker,
        });
        assert_eq!(spec.name.as_deref(), Some("shop-worker"));
        assert_eq!(
            spec.update_config.unwrap().order,
            Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST)
        );
        assert!(spec.endpoint_spec.is_none());
        let container = spec.task_template.unwrap().container_spec.unwrap();
        assert!(container.health_check.is_none());
    }
}
