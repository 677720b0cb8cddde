//! One-off processes on the swarm (`wharf run`, `heroku run`, the release phase, app.json's
//! `postdeploy`): each a one-shot container of the release image on the manager's engine,
//! pulled from wharf's registry, attached to the caller (its input, output and terminal) or
//! with its output in the app's log; removed once it exits, with its exit status reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    RemoveContainerOptions, ResizeContainerTTYOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio_util::task::TaskTracker;
use wharf_core::backend::{
    InstanceState, InstanceStatus, LogSink, OneOff, OneOffKind, ReleaseSpec,
};

use crate::spec::{self, LABEL_APP_ID, LABEL_RELEASE};
use crate::{Inner, SwarmError};

/// The one-offs that run, by app (each with what kills its container), and the tasks that
/// follow them.
#[derive(Default)]
pub(crate) struct OneOffs {
    pub(crate) table: wharf_core::backend::OneOffTable<wharf_core::backend::Kill>,
    tasks: TaskTracker,
}

impl OneOffs {
    /// Waits until every one-off's container is gone.
    pub(crate) async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts a one-off of `release` running `command`; see the module.
pub(crate) async fn run(
    inner: &Arc<Inner>,
    app_id: &str,
    app_name: &str,
    release: &ReleaseSpec,
    command: &str,
    kind: OneOffKind,
    log: Arc<dyn LogSink>,
) -> Result<OneOff, SwarmError> {
    if release.run_image.is_none() {
        return Err(SwarmError::HostBound {
            version: release.version,
        });
    }
    let docker = inner.docker.clone();
    let (image, credentials) = crate::app::image(inner, app_id, app_name, release).await?;
    let mut pull = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.clone()),
            ..Default::default()
        }),
        None,
        Some(credentials),
    );
    while let Some(progress) = pull.next().await {
        progress.map_err(SwarmError::engine(format!("pull {image}")))?;
    }
    let prefix = match kind {
        OneOffKind::ReleasePhase => "release",
        OneOffKind::Postdeploy => "postdeploy",
        _ => "run",
    };
    let name = inner.one_offs.table.next_name(app_id, prefix);
    let tty = matches!(kind, OneOffKind::Terminal(_));
    let input = matches!(kind, OneOffKind::Attached | OneOffKind::Terminal(_));
    let attached = input || kind == OneOffKind::ReleasePhase;
    let mut env = spec::env(release, &name);
    if tty {
        env.push("TERM=xterm-256color".to_owned());
    }
    let container_name = format!(
        "wharf-{app_name}-{}-{}",
        name.replace('.', "-"),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let labels = HashMap::from([
        (LABEL_APP_ID.to_owned(), app_id.to_owned()),
        (LABEL_RELEASE.to_owned(), release.version.to_string()),
    ]);
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(container_name.clone()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(image.clone()),
                cmd: Some(spec::args(command)),
                env: Some(env),
                labels: Some(labels),
                tty: Some(tty),
                open_stdin: Some(input),
                stdin_once: Some(input),
                attach_stdin: Some(input),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                host_config: Some(HostConfig {
                    pids_limit: Some(4096),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(SwarmError::engine(format!(
            "create the container of {name}"
        )))?;
    let attach = docker
        .attach_container(
            &container_name,
            Some(AttachContainerOptions {
                stream: true,
                stdin: input,
                stdout: true,
                stderr: true,
                logs: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(SwarmError::engine(format!("attach to {name}")))?;
    let remove = |docker: bollard::Docker, container: String| async move {
        let _ = docker
            .remove_container(
                &container,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    };
    if let Err(e) = docker.start_container(&container_name, None).await {
        remove(docker.clone(), container_name.clone()).await;
        return Err(SwarmError::engine(format!("start {name}"))(e));
    }
    if let OneOffKind::Terminal(size) = kind {
        let _ = docker
            .resize_container_tty(
                &container_name,
                ResizeContainerTTYOptions {
                    h: i32::from(size.rows),
                    w: i32::from(size.cols),
                },
            )
            .await;
    }
    log.event(&name, &format!("Starting process with command `{command}`"));

    let handle = tokio::runtime::Handle::current();
    let kill: wharf_core::backend::Kill = {
        let (docker, container) = (docker.clone(), container_name.clone());
        Arc::new(move || {
            let (docker, container) = (docker.clone(), container.clone());
            handle.spawn(async move {
                let _ = docker
                    .kill_container(
                        &container,
                        Some(KillContainerOptions {
                            signal: "SIGKILL".to_owned(),
                        }),
                    )
                    .await;
            });
        })
    };
    inner.one_offs.table.insert(
        app_id,
        // The manager's engine runs it.
        InstanceStatus::one_off(
            &name,
            prefix,
            release.version,
            command,
            InstanceState::Up,
            SystemTime::now(),
        ),
        release.image.clone(),
        kill.clone(),
    );

    // Output: to the caller when attached, else into the app's log, line by line.
    let (output_tx, output_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    let mut stream = attach.output;
    let forwarding = {
        let (log, name) = (log.clone(), name.clone());
        inner.one_offs.tasks.spawn(async move {
            let mut lines = crate::lines::Lines::default();
            while let Some(Ok(chunk)) = stream.next().await {
                let Some((stream, bytes)) = crate::lines::chunk(chunk) else {
                    continue;
                };
                if attached {
                    if output_tx.send(bytes.to_vec()).await.is_err() {
                        break;
                    }
                    continue;
                }
                lines.feed(stream, &bytes, |stream, text| log.line(&name, stream, text));
            }
            lines.finish(|stream, text| log.line(&name, stream, text));
        })
    };
    {
        let (inner, app_id, name, container) = (
            inner.clone(),
            app_id.to_owned(),
            name.clone(),
            container_name.clone(),
        );
        inner.clone().one_offs.tasks.spawn(async move {
            let mut waiting = inner.docker.wait_container(
                &container,
                Some(WaitContainerOptions {
                    condition: "not-running".to_owned(),
                }),
            );
            let code = match waiting.next().await {
                Some(Ok(response)) => Some(response.status_code),
                // A non-zero exit comes as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Some(code)
                }
                _ => None,
            };
            // Its output first, then its end.
            let _ = forwarding.await;
            let code = code.map(|c| i32::try_from(c).unwrap_or(255));
            inner
                .one_offs
                .table
                .finish(&app_id, &name, code, SystemTime::now());
            remove(inner.docker.clone(), container).await;
            if let Some(code) = code {
                log.event(&name, &format!("Process exited with status {code}"));
                let _ = exit_tx.send(code);
            }
        });
    }
    Ok(OneOff {
        name,
        pid: None,
        stdin: input.then(|| Box::new(attach.input) as wharf_core::backend::OneOffInput),
        output: attached.then_some(output_rx),
        exit: exit_rx,
        tty,
        kill,
    })
}
