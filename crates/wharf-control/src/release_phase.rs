//! Putting a new release into effect, and its release phase.
//!
//! Every path that makes a release (a build, a config change, a rollback, a promotion) hands it
//! to [`Releaser::launch`]. A release whose image declares a `release` process type starts
//! `pending`: its command runs once, as a one-off process (`release.N`) with the new release's
//! environment, its output going to the release's own output file (the API's
//! `output_stream_url`, `wharf releases output`). When it exits 0 the release becomes
//! `succeeded`, so current, and the app converges to it; when it fails or runs past the
//! timeout the release is `failed` with the reason, and the running release is never touched.
//! While a release is pending the store refuses to make another release of the app; builds,
//! which finish unattended, wait for the phase to end instead ([`Releaser::wait_idle`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use wharf_core::backend::{OneOffKind, Stream};
use wharf_core::release::{ReleaseStatus, RELEASE_PHASE_TYPE};
use wharf_logs::LogLine;
use wharf_store::{ReleaseRecord, Store, StoreError};

use crate::builds::output::{BuildLogs, LogWriter};
use crate::converge::Control;

/// How long output a release command's children still write is taken after it exits.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// How long a release phase may run by default (`WHARF_RELEASE_TIMEOUT`).
pub const DEFAULT_RELEASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Puts releases into effect.
#[derive(Debug, Clone)]
pub struct Releaser {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    control: Control,
    /// Release-phase output, one file per release id.
    outputs: BuildLogs,
    timeout: Duration,
    /// Woken whenever a release phase ends.
    ended: Notify,
}

impl Releaser {
    pub fn new(store: Store, control: Control, outputs: BuildLogs, timeout: Duration) -> Self {
        Releaser {
            inner: Arc::new(Inner {
                store,
                control,
                outputs,
                timeout,
                ended: Notify::new(),
            }),
        }
    }

    /// Release-phase output, by release id.
    pub fn outputs(&self) -> &BuildLogs {
        &self.inner.outputs
    }

    /// Puts a release just stored into effect: a pending one runs its release phase first (in
    /// the background; this returns once its output exists), any other is converged to now.
    pub async fn launch(&self, release: &ReleaseRecord) {
        if release.status != ReleaseStatus::Pending {
            self.inner.control.converge(&release.app_id).await;
            return;
        }
        let output = match self.inner.outputs.create(&release.id).await {
            Ok(output) => Some(output),
            Err(e) => {
                tracing::error!(release = %release.id, error = %e, "cannot store release-phase output");
                None
            }
        };
        let inner = self.inner.clone();
        let release = release.clone();
        tokio::spawn(async move { inner.run(release, output).await });
    }

    /// Waits until the app has no release in its release phase.
    pub async fn wait_idle(&self, app_id: &str) -> Result<(), StoreError> {
        loop {
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so a phase ending in between still wakes this.
            ended.as_mut().enable();
            if !self.inner.store.has_pending_release(app_id).await? {
                return Ok(());
            }
            ended.await;
        }
    }

    /// Marks releases left pending by a server that stopped mid-phase as failed: their release
    /// phase was interrupted, and whether it finished is unknown.
    pub async fn fail_interrupted(store: &Store) -> Result<usize, StoreError> {
        let pending = store.pending_releases().await?;
        for release in &pending {
            store
                .finish_release_phase(
                    &release.app_id,
                    release.version.get(),
                    Some("interrupted: the server stopped during the release phase; deploy again"),
                )
                .await?;
        }
        Ok(pending.len())
    }
}

impl Releaser {
    /// Runs app.json's `postdeploy` script once `release` (an app's first deploy) is live: after
    /// its release phase, if any, succeeded. It runs as a detached one-off of that release
    /// (`postdeploy.N`), its output in the app's log, and its exit status is logged; it never
    /// changes the release.
    pub fn postdeploy(&self, release: &ReleaseRecord, command: &str) {
        let releaser = self.clone();
        let inner = self.inner.clone();
        let release = release.clone();
        let command = command.to_owned();
        tokio::spawn(async move {
            let log = inner.control.logs().app(&release.app_id);
            let said = |text: String| {
                log.append(LogLine::event("api", text));
            };
            if let Err(e) = releaser.wait_idle(&release.app_id).await {
                said(format!("postdeploy script not run: {e}"));
                return;
            }
            let live = inner
                .store
                .release(
                    &release.app_id,
                    &wharf_store::ReleaseRef::Id(release.id.clone()),
                )
                .await;
            match live.as_ref().map(|r| r.status) {
                Ok(ReleaseStatus::Succeeded) => {}
                Ok(status) => {
                    said(format!(
                        "postdeploy script not run: {} is {status}, not live",
                        release.version
                    ));
                    return;
                }
                Err(e) => {
                    said(format!("postdeploy script not run: {e}"));
                    return;
                }
            }
            let Some(spec) = inner.control.release_spec(&release) else {
                said("postdeploy script not run: the release's image can't be read".to_owned());
                return;
            };
            said(format!("Running app.json's postdeploy script: `{command}`"));
            let started = inner
                .control
                .backend()
                .run(
                    &release.app_id,
                    &release.app_name,
                    &spec,
                    &command,
                    OneOffKind::Postdeploy,
                    inner.control.sink(&release.app_id),
                )
                .await;
            match started {
                Err(e) => said(format!("postdeploy script could not start: {e}")),
                Ok(one_off) => {
                    let name = one_off.name.clone();
                    match one_off.exit.await {
                        Ok(0) => said(format!("postdeploy script ({name}) succeeded")),
                        Ok(code) => said(format!(
                            "postdeploy script ({name}) failed with status {code}; the release is \
                             unchanged: run it again with `wharf run -a {} -- {command}`",
                            release.app_name
                        )),
                        Err(_) => said(format!(
                            "postdeploy script ({name}): its exit status was lost"
                        )),
                    }
                }
            }
        });
    }
}

/// Why a release phase failed, and so its release: the message is the release's
/// `status_reason`.
#[derive(Debug, thiserror::Error)]
pub enum ReleasePhaseError {
    #[error("the image declares no release command")]
    NoCommand,
    #[error("the release's image can't be read")]
    NoImage,
    #[error("the release command could not start: {0}")]
    Start(wharf_core::backend::BackendError),
    #[error("the release command exited with status {0}")]
    Exit(i32),
    #[error("the release command's exit status was lost")]
    Lost,
    #[error("the release command ran longer than {0}s and was stopped")]
    Timeout(u64),
}

impl Inner {
    async fn run(&self, release: ReleaseRecord, mut output: Option<LogWriter>) {
        let version = release.version;
        let outcome = self.phase(&release, output.as_mut()).await;
        let failure = outcome.err().map(|e| e.to_string());
        if let Some(out) = output.as_mut() {
            let line = match &failure {
                None => format!("-----> Release phase succeeded: {version} is live\n"),
                Some(why) => format!("-----> Release phase failed: {why}\n"),
            };
            out.write(&line).await;
        }
        // The release must not stay pending (it would hold the app): a failed write is retried.
        let mut finished = Err(StoreError::Invalid(String::new()));
        for attempt in 0..5u32 {
            finished = self
                .store
                .finish_release_phase(&release.app_id, version.get(), failure.as_deref())
                .await;
            if finished.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
        }
        self.ended.notify_waiters();
        // Readers of the output see it end once the release's status is final.
        if let Some(out) = output {
            out.finish().await;
        }
        let log = self.control.logs().app(&release.app_id);
        match (finished, &failure) {
            (Err(e), _) => {
                tracing::error!(app = %release.app_name, release = %version, error = %e, "cannot record the end of a release phase");
            }
            (Ok(_), None) => {
                log.append(LogLine::event(
                    "api",
                    format!("Release phase of {version} succeeded; deploying it"),
                ));
                tracing::info!(app = %release.app_name, release = %version, "release phase succeeded");
                self.control.converge(&release.app_id).await;
            }
            (Ok(_), Some(why)) => {
                log.append(LogLine::event(
                    "api",
                    format!(
                        "Release phase of {version} failed: {why}; the running release is unchanged \
                         (its output: wharf releases output {version})"
                    ),
                ));
                tracing::warn!(app = %release.app_name, release = %version, reason = %why, "release phase failed");
            }
        }
    }

    /// Runs the release command; `Err` says why the release failed.
    async fn phase(
        &self,
        release: &ReleaseRecord,
        mut output: Option<&mut LogWriter>,
    ) -> Result<(), ReleasePhaseError> {
        let command = release
            .process_types
            .get(RELEASE_PHASE_TYPE)
            .ok_or(ReleasePhaseError::NoCommand)?;
        let spec = self
            .control
            .release_spec(release)
            .ok_or(ReleasePhaseError::NoImage)?;
        if let Some(out) = output.as_mut() {
            out.write(&format!(
                "-----> Running release phase for {}: {command}\n",
                release.version
            ))
            .await;
        }
        let one_off = self
            .control
            .backend()
            .run(
                &release.app_id,
                &release.app_name,
                &spec,
                command,
                OneOffKind::ReleasePhase,
                self.control.sink(&release.app_id),
            )
            .await
            .map_err(ReleasePhaseError::Start)?;
        let kill = one_off.kill.clone();
        let mut chunks = one_off.output;
        let mut exit = one_off.exit;
        // The output goes to the release's output and, line by line, to the app's log
        // (`app[release.N]`), as Heroku shows it.
        let sink = self.control.sink(&release.app_id);
        let mut partial = String::new();
        // The phase ends when the command exits, even if something it started still holds its
        // output open: what is already written is taken for a moment more, then it's done.
        let mut exited = None;
        let ran = tokio::time::timeout(self.timeout, async {
            loop {
                let chunk = match (chunks.as_mut(), &exited) {
                    (Some(rx), None) => tokio::select! {
                        chunk = rx.recv() => chunk,
                        code = &mut exit => { exited = Some(code); continue; }
                    },
                    (Some(rx), Some(_)) => tokio::time::timeout(OUTPUT_GRACE, rx.recv())
                        .await
                        .ok()
                        .flatten(),
                    (None, None) => {
                        exited = Some((&mut exit).await);
                        None
                    }
                    (None, Some(_)) => None,
                };
                let Some(chunk) = chunk else {
                    chunks = None;
                    if exited.is_some() {
                        break;
                    }
                    continue;
                };
                let text = String::from_utf8_lossy(&chunk);
                if let Some(out) = output.as_mut() {
                    out.write(&text).await;
                }
                partial.push_str(&text);
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    sink.line(
                        &one_off.name,
                        Stream::Stdout,
                        line.trim_end_matches(['\n', '\r']),
                    );
                }
            }
            exited.expect("the loop ends once the command has exited")
        })
        .await;
        if !partial.is_empty() {
            sink.line(&one_off.name, Stream::Stdout, &partial);
        }
        match ran {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(code)) => Err(ReleasePhaseError::Exit(code)),
            Ok(Err(_)) => Err(ReleasePhaseError::Lost),
            Err(_) => {
                kill();
                Err(ReleasePhaseError::Timeout(self.timeout.as_secs()))
            }
        }
    }
}
