//! An app's pods as wharf's instances (`wharf ps`): each process type's pods numbered in the
//! order they were made (`web.1`, `web.2`), with the node each runs on, its state as the other
//! backends name them, restarts and how it last exited.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use wharf_core::backend::{InstanceState, InstanceStatus};

use crate::manifests::{CONTAINER_PORT, LABEL_RELEASE};

/// The label a process type's pods carry (its name as a label value).
const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

fn seconds_since_epoch(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> SystemTime {
    let seconds = u64::try_from(time.0.as_second()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The state the other backends would give the pod.
pub fn state(pod: &Pod) -> InstanceState {
    if pod.metadata.deletion_timestamp.is_some() {
        return InstanceState::Stopping;
    }
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.as_ref().and_then(|c| c.first());
    let waiting = container
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref());
    if matches!(
        waiting,
        Some(
            "CrashLoopBackOff"
                | "ErrImagePull"
                | "ImagePullBackOff"
                | "CreateContainerConfigError"
                | "CreateContainerError"
                | "InvalidImageName"
        )
    ) {
        return InstanceState::Crashed;
    }
    match status.phase.as_deref() {
        Some("Running") if container.is_some_and(|c| c.ready) => InstanceState::Up,
        Some("Running" | "Pending") => InstanceState::Starting,
        Some("Succeeded") => InstanceState::Down,
        Some("Failed") => InstanceState::Crashed,
        _ => InstanceState::Starting,
    }
}

/// How the pod's container last ended (`status 1`, `signal 9`), or why it can't start.
fn last_exit(pod: &Pod) -> Option<String> {
    let container = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let ended = container
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| {
            container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
        });
    if let Some(ended) = ended {
        return Some(match ended.signal {
            Some(signal) if signal != 0 => format!("signal {signal}"),
            _ => format!("status {}", ended.exit_code),
        });
    }
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.clone()?;
    (reason != "ContainerCreating" && reason != "PodInitializing").then(|| match &waiting.message {
        Some(message) => format!("{reason}: {message}"),
        None => reason,
    })
}

/// The app's pods of its process types (not release phases or one-offs) as instances, sorted
/// by type and number.
pub fn instances(pods: &[Pod]) -> Vec<InstanceStatus> {
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            labels.and_then(|l| l.get(LABEL_COMPONENT)).is_some()
                && labels
                    .and_then(|l| l.get(crate::manifests::LABEL_ONE_OFF))
                    .is_none()
        })
        .collect();
    pods.sort_by_key(|p| {
        (
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_COMPONENT))
                .cloned()
                .unwrap_or_default(),
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    let mut out: Vec<InstanceStatus> = Vec::new();
    let mut previous: Option<String> = None;
    let mut n = 0;
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let kind = labels.get(LABEL_COMPONENT).cloned().unwrap_or_default();
        if previous.as_deref() != Some(kind.as_str()) {
            n = 0;
            previous = Some(kind.clone());
        }
        n += 1;
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec.containers.first();
        let restarts = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map_or(0, |c| u32::try_from(c.restart_count).unwrap_or(0));
        let since = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(pod.metadata.creation_timestamp.as_ref())
            .map_or(UNIX_EPOCH, seconds_since_epoch);
        out.push(InstanceStatus {
            name: format!("{kind}.{n}"),
            process_type: kind.clone(),
            release_version: labels
                .get(LABEL_RELEASE)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            state: state(pod),
            command: container
                .and_then(|c| c.args.as_ref())
                .and_then(|a| a.get(2))
                .map(|c| c.strip_prefix("exec ").unwrap_or(c).to_owned())
                .unwrap_or_default(),
            pid: None,
            node: spec.node_name.clone(),
            port: container
                .and_then(|c| c.ports.as_ref())
                .map(|_| u16::try_from(CONTAINER_PORT).unwrap_or(5000)),
            restarts,
            last_exit: last_exit(pod),
            next_restart_in: None,
            since,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn web(name: &str, created: &str, status: serde_json::Value) -> Pod {
        pod(serde_json::json!({
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "labels": {"app.kubernetes.io/component": "web", "wharf.dev/release": "7"}
            },
            "spec": {"nodeName": "node-a", "containers": [{
                "name": "web", "args": ["/bin/sh", "-c", "exec gunicorn app:app"],
                "ports": [{"containerPort": 5000}]
            }]},
            "status": status
        }))
    }

    #[test]
    fn pods_are_numbered_per_type_in_the_order_they_were_made() {
        let up = serde_json::json!({"phase": "Running", "startTime": "2026-12-07T10:00:03Z",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {}}}]});
        let crashing = serde_json::json!({"phase": "Running",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 3}}}]});
        let pods = [
            web("shop-web-b", "2026-12-07T10:00:05Z", crashing),
            web("shop-web-a", "2026-12-07T10:00:01Z", up),
            pod(serde_json::json!({"metadata": {"name": "shop-release-v7-x",
                "labels": {"app.kubernetes.io/component": "release", "wharf.dev/one-off": "release.1"}}})),
        ];
        let found = instances(&pods);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].name, "web.1");
        assert_eq!(found[0].state, InstanceState::Up);
        assert_eq!(found[0].node.as_deref(), Some("node-a"));
        assert_eq!(found[0].command, "gunicorn app:app");
        assert_eq!(found[0].release_version, 7);
        assert_eq!(found[0].port, Some(5000));
        assert_eq!(found[1].name, "web.2");
        assert_eq!(found[1].state, InstanceState::Crashed);
        assert_eq!(found[1].restarts, 4);
        assert_eq!(found[1].last_exit.as_deref(), Some("status 3"));
    }

    #[test]
    fn a_pod_that_cannot_pull_its_image_says_why() {
        let pulling = serde_json::json!({"phase": "Pending",
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}]});
        let found = instances(&[web("shop-web-c", "2026-12-07T10:00:01Z", pulling)]);
        assert_eq!(found[0].state, InstanceState::Crashed);
        assert_eq!(
            found[0].last_exit.as_deref(),
            Some("ImagePullBackOff: pull access denied")
        );
    }
}
