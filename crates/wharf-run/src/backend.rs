//! The supervisor as the server sees it: wharf-core's [`Backend`] trait, so the control loop
//! drives the local backend and an orchestrator's the same way.

use std::sync::Arc;

use wharf_core::backend::{
    Backend, BackendError, BoxFuture, DesiredApp, InstanceStatus, LogSink, Rollout, Target,
};

use crate::Supervisor;

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
        Box::pin(async move {
            Supervisor::restart(self, app_id, target)
                .await
                .map_err(|e| BackendError(e.to_string()))
        })
    }

    fn status(&self, app_id: &str) -> Vec<InstanceStatus> {
        Supervisor::status(self, app_id)
    }

    fn rollout<'a>(&'a self, app_id: &'a str, version: u32) -> BoxFuture<'a, Rollout> {
        Box::pin(Supervisor::rollout(self, app_id, version))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Supervisor::shutdown(self))
    }
}
