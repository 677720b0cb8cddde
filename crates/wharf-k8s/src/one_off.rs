//! One-off processes on the cluster (`wharf run`, `heroku run`, the release phase, app.json's
//! `postdeploy`): a pod each, of the release's image, never restarted. An attached one is
//! attached to (its stdin, or a terminal, and its output); a detached one's output is
//! followed into the app's log. Its exit status is its container's; the pod is deleted when
//! it ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use tokio::io::AsyncReadExt;
use wharf_core::backend::{
    BackendError, DesiredApp, InstanceState, InstanceStatus, LogSink, OneOff, OneOffKind,
    OneOffTable, ReleaseSpec, Stream,
};

use crate::backend::Inner;
use crate::manifests::OneOffIo;
use crate::{manifests, names, Input};

/// A running one-off's pod.
#[derive(Debug, Clone)]
pub(crate) struct OneOffPod {
    api: Api<Pod>,
    name: String,
}

/// The app's one-off processes while they run (each with its pod), and how the last ones
/// ended.
pub(crate) type OneOffs = OneOffTable<OneOffPod>;

/// Deletes the one-off's pod (its process gets SIGTERM, then SIGKILL after the pod's grace
/// period); whether there was one.
pub(crate) fn stop(one_offs: &OneOffs, app_id: &str, name: &str) -> bool {
    one_offs.stop(app_id, name, |pod| {
        delete(pod.api.clone(), pod.name.clone(), None)
    })
}

/// Deletes every one-off's pod at once.
pub(crate) fn stop_all(one_offs: &OneOffs) {
    one_offs.each(|pod| delete(pod.api.clone(), pod.name.clone(), Some(0)));
}

/// The one-off `name` has ended with exit status `code`: recorded, and its pod deleted.
fn finish(one_offs: &OneOffs, app_id: &str, name: &str, code: Option<i32>) {
    if let Some(pod) = one_offs.finish(app_id, name, code, SystemTime::now()) {
        delete(pod.api, pod.name, None);
    }
}

/// Deletes a pod in the background (`grace`: seconds, the pod's own when `None`).
fn delete(api: Api<Pod>, pod: String, grace: Option<u32>) {
    tokio::spawn(async move {
        let params = DeleteParams {
            grace_period_seconds: grace,
            ..Default::default()
        };
        if let Err(e) = api.delete(&pod, &params).await {
            tracing::debug!(pod = %pod, error = %e, "cannot delete a one-off's pod");
        }
    });
}

/// The exit status of the pod's container, once it has one.
fn exit_code(pod: &Pod) -> Option<i32> {
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.as_ref()?.first()?;
    container
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// Starts a one-off of `release` running `command`; see the module.
pub(crate) async fn run(
    inner: &Arc<Inner>,
    app: &DesiredApp,
    release: &ReleaseSpec,
    command: &str,
    kind: OneOffKind,
    log: Arc<dyn LogSink>,
) -> Result<OneOff, BackendError> {
    let prefix = match kind {
        OneOffKind::ReleasePhase => "release",
        OneOffKind::Postdeploy => "postdeploy",
        _ => "run",
    };
    let (io, attach) = match kind {
        OneOffKind::Attached => (OneOffIo::Stdin, true),
        OneOffKind::Terminal(_) => (OneOffIo::Terminal, true),
        _ => (OneOffIo::Detached, false),
    };
    // The release phase's output goes back to the caller; so does an attached one's.
    let to_caller = attach || kind == OneOffKind::ReleasePhase;
    let mut desired = app.clone();
    desired.release = release.clone();
    let image = crate::app::pullable(inner, &desired).await?;
    let name = inner.one_offs.next_name(&app.app_id, prefix);
    // `shop-run-3-` and a suffix of the API server's: unique across restarts of wharf, which
    // number one-offs from 1 again.
    let pod_prefix = format!(
        "{}-",
        names::dns_label(&format!("{}-{}", app.app_name, name.replace('.', "-")))
    );
    let settings = inner.config.settings.clone();
    let pod = manifests::one_off_pod(
        &Input {
            app: &desired,
            image: &image,
            release_command: None,
            hostnames: &[],
            settings: &settings,
        },
        &pod_prefix,
        &name,
        command,
        io,
    );
    let namespace = names::namespace(&app.app_name);
    // The namespace and the config Secret the pod needs.
    let made = crate::app::make(inner, &desired, &image)?;
    inner.cluster.apply_config(&made).await?;
    let pods = inner.cluster.pods_api(&namespace);
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .map_err(|source| crate::cluster::ClusterError::Api {
            action: format!("create a pod for {name}"),
            source,
        })?;
    let pod_name = created.metadata.name.unwrap_or_default();
    inner.one_offs.insert(
        &app.app_id,
        InstanceStatus::one_off(
            &name,
            prefix,
            release.version,
            command,
            InstanceState::Starting,
            SystemTime::now(),
        ),
        release.image.clone(),
        OneOffPod {
            api: pods.clone(),
            name: pod_name.clone(),
        },
    );
    let fail = |why: String| {
        finish(&inner.one_offs, &app.app_id, &name, None);
        BackendError::Failed(why.into())
    };
    // Until its container runs (or has already ended), within the boot timeout.
    let deadline = tokio::time::Instant::now() + settings.boot_timeout;
    loop {
        let now = pods.get(&pod_name).await.map_err(|e| fail(e.to_string()))?;
        let phase = now.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Running" | "Succeeded" | "Failed")) {
            break;
        }
        if let InstanceState::Crashed = crate::status::state(&now) {
            return Err(fail(format!(
                "{name} could not start: {}",
                crate::status::instances(std::slice::from_ref(&now))
                    .first()
                    .and_then(|i| i.last_exit.clone())
                    .unwrap_or_else(|| "its pod failed".to_owned())
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "{name} did not start within {} s (WHARF_BOOT_TIMEOUT)",
                settings.boot_timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    inner
        .one_offs
        .set_state(&app.app_id, &name, InstanceState::Up, SystemTime::now());

    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    let (output_tx, output_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut stdin = None;
    let mut attached = None;
    if attach {
        let params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(io != OneOffIo::Terminal)
            .tty(io == OneOffIo::Terminal);
        let mut process = pods
            .attach(&pod_name, &params)
            .await
            .map_err(|e| fail(format!("cannot attach to {name}: {e}")))?;
        stdin = process
            .stdin()
            .map(|w| Box::new(w) as wharf_core::backend::OneOffInput);
        for reader in [process.stdout(), process.stderr()].into_iter().flatten() {
            let tx = output_tx.clone();
            inner.tasks.spawn(async move {
                let mut reader = reader;
                let mut buffer = vec![0u8; 8192];
                while let Ok(n) = reader.read(&mut buffer).await {
                    if n == 0 || tx.send(buffer[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            });
        }
        attached = Some(process);
    } else {
        let (pods, pod_name, name, log, tx) = (
            pods.clone(),
            pod_name.clone(),
            name.clone(),
            log.clone(),
            output_tx.clone(),
        );
        inner.tasks.spawn(async move {
            let params = LogParams {
                follow: true,
                ..Default::default()
            };
            let Ok(stream) = pods.log_stream(&pod_name, &params).await else {
                return;
            };
            let mut lines = stream.lines();
            while let Some(Ok(line)) = lines.next().await {
                if to_caller {
                    let mut bytes = line.into_bytes();
                    bytes.push(b'\n');
                    if tx.send(bytes).await.is_err() {
                        break;
                    }
                } else {
                    log.line(&name, Stream::Stdout, &line);
                }
            }
        });
    }
    drop(output_tx);
    {
        let (inner2, pods, pod_name, name, app_id, log) = (
            inner.clone(),
            pods.clone(),
            pod_name.clone(),
            name.clone(),
            app.app_id.clone(),
            log.clone(),
        );
        let stop = inner.stop.clone();
        inner.tasks.spawn(async move {
            if let Some(mut process) = attached {
                if let Some(status) = process.take_status() {
                    tokio::select! {
                        _ = status => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            // The exit status is the container's, once the kubelet has recorded it.
            let code = loop {
                match pods.get(&pod_name).await {
                    Ok(now) => {
                        if let Some(code) = exit_code(&now) {
                            break Some(code);
                        }
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => break None,
                    Err(_) => {}
                }
                // Stopping wharf deleted the pod; an API that no longer answers can't say more.
                if stop.is_cancelled() {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            match code {
                Some(code) => {
                    log.event(&name, &format!("Process exited with status {code}"));
                    let _ = exit_tx.send(code);
                }
                None => log.event(&name, "Process was deleted before it exited"),
            }
            finish(&inner2.one_offs, &app_id, &name, code);
        });
    }
    let kill_api = pods.clone();
    let kill_pod = pod_name.clone();
    Ok(OneOff {
        name,
        pid: None,
        stdin,
        output: to_caller.then_some(output_rx),
        exit: exit_rx,
        tty: io == OneOffIo::Terminal,
        kill: Arc::new(move || delete(kill_api.clone(), kill_pod.clone(), Some(0))),
    })
}
