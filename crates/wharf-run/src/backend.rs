//! The supervisor as the server sees it: wharf-core's [`Backend`] trait, so the control loop
//! drives the local backend and an orchestrator's the same way.

use std::collections::BTreeSet;
use std::sync::Arc;

use wharf_core::backend::{
    Backend, BackendError, BoxFuture, Collected, DesiredApp, InstanceStatus, LogSink, OneOff,
    OneOffKind, ReleaseSpec, Rollout, Target,
};

use crate::{RunError, Supervisor};

impl From<RunError> for BackendError {
    fn from(e: RunError) -> BackendError {
        match e {
            RunError::UnknownApp { app_id } => BackendError::UnknownApp { app_id },
            RunError::UnknownTarget { app_id, target } => {
                BackendError::UnknownTarget { app_id, target }
            }
            RunError::ShuttingDown => BackendError::ShuttingDown,
            other => BackendError::Failed(Box::new(other)),
        }
    }
}

impl Backend for Supervisor {
    fn apply(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        Supervisor::apply(self, desired, log);
    }

    fn remove<'a>(&'a self, app_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(Supervisor::remove(self, app_id))
    }

    fn restart<'a>(
        &'a self,
        app_id: &'a str,
        target: Target,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move { Ok(Supervisor::restart(self, app_id, target).await?) })
    }

    fn status(&self, app_id: &str) -> Vec<InstanceStatus> {
        Supervisor::status(self, app_id)
    }

    fn rollout<'a>(&'a self, app_id: &'a str, version: u32) -> BoxFuture<'a, Rollout> {
        Box::pin(Supervisor::rollout(self, app_id, version))
    }

    fn run<'a>(
        &'a self,
        app_id: &'a str,
        _app_name: &'a str,
        release: &'a ReleaseSpec,
        command: &'a str,
        kind: OneOffKind,
        log: Arc<dyn LogSink>,
    ) -> BoxFuture<'a, Result<OneOff, BackendError>> {
        Box::pin(async move {
            let started = match kind {
                OneOffKind::Detached => {
                    self.run_one_off(app_id, release, command, false, log).await
                }
                OneOffKind::Attached => self.run_one_off(app_id, release, command, true, log).await,
                OneOffKind::Terminal(size) => {
                    self.run_one_off_in_terminal(app_id, release, command, size, log)
                        .await
                }
                OneOffKind::ReleasePhase => {
                    self.run_release_phase(app_id, release, command, log).await
                }
                OneOffKind::Postdeploy => self.run_postdeploy(app_id, release, command, log).await,
            };
            Ok(started?)
        })
    }

    fn one_offs(&self, app_id: &str) -> Vec<InstanceStatus> {
        Supervisor::one_offs(self, app_id)
    }

    fn stop_one_off(&self, app_id: &str, name: &str) -> bool {
        Supervisor::stop_one_off(self, app_id, name)
    }

    fn ended_one_off(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        Supervisor::ended_one_off(self, app_id, name)
    }

    fn images_in_use(&self) -> BTreeSet<String> {
        Supervisor::images_in_use(self).into_iter().collect()
    }

    fn collect_garbage(&self) -> BoxFuture<'_, Result<Collected, BackendError>> {
        Box::pin(async move {
            let trees = self.collect_trees().await?;
            Ok(Collected {
                removed: trees.removed,
                bytes: trees.bytes,
            })
        })
    }

    fn kill_all(&self) {
        Supervisor::kill_all(self);
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Supervisor::shutdown(self))
    }
}
