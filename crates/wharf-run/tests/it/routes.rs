//! What the supervisor tells the router: which web instances take requests, when they are
//! drained, and how a release's rollout ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf_core::backend::BoxFuture;
use wharf_run::{ProcessSpec, Rollout, Routes, SandboxMode, Upstream};

use crate::fixture::{web, worker, Fixture, Sink};

/// Records every published table, and puts each drain into the app's event timeline, so a test
/// can see it came before the instance's stop signal.
struct Recorder {
    tables: Mutex<Vec<Vec<Upstream>>>,
    timeline: Arc<Sink>,
    /// Upstreams drained while the last table still routed them.
    drained_while_routed: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(timeline: Arc<Sink>) -> Arc<Recorder> {
        Arc::new(Recorder {
            tables: Mutex::new(Vec::new()),
            timeline,
            drained_while_routed: Mutex::new(Vec::new()),
        })
    }

    fn tables(&self) -> Vec<Vec<Upstream>> {
        self.tables.lock().unwrap().clone()
    }

    fn last_versions(&self) -> Vec<u32> {
        self.tables()
            .last()
            .map(|t| t.iter().map(|u| u.release_version).collect())
            .unwrap_or_default()
    }
}

impl Routes for Recorder {
    fn set(&self, app_id: &str, upstreams: Vec<Upstream>) {
        assert_eq!(app_id, "app1");
        self.tables.lock().unwrap().push(upstreams);
    }

    fn drain<'a>(&'a self, _app_id: &'a str, upstream_id: &'a str) -> BoxFuture<'a, ()> {
        // Out of the table before it is drained: no request can reach it meanwhile.
        if let Some(last) = self.tables.lock().unwrap().last() {
            if last.iter().any(|u| u.id == upstream_id) {
                self.drained_while_routed
                    .lock()
                    .unwrap()
                    .push(upstream_id.to_owned());
            }
        }
        let dyno = upstream_id.split('-').next().unwrap().to_owned();
        wharf_run::LogSink::event(self.timeline.as_ref(), &dyno, "drained");
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_deploy_swaps_the_routes_at_once_and_drains_before_stopping() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let routes = Recorder::new(sink.clone());
    fx.sup.set_routes(routes.clone());
    fx.sup
        .apply(fx.desired(1, vec![web(2), worker(1)]), sink.clone());
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), fx.sup.rollout("app1", 1)).await,
        Ok(Rollout::Complete)
    );
    fx.until("v1 routed", 30, |_| routes.last_versions() == [1, 1])
        .await;
    let v1 = routes.tables().last().unwrap().clone();
    let ports: Vec<u16> = fx.status().iter().filter_map(|s| s.port).collect();
    for upstream in &v1 {
        assert!(ports.contains(&upstream.addr.port()), "{upstream:?}");
        assert!(upstream.dyno.starts_with("web."));
    }

    fx.sup
        .apply(fx.desired(2, vec![web(2), worker(1)]), sink.clone());
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), fx.sup.rollout("app1", 2)).await,
        Ok(Rollout::Complete)
    );
    fx.until("v2 routed", 30, |_| routes.last_versions() == [2, 2])
        .await;
    fx.until("v1 gone", 30, |f| f.status().len() == 3).await;
    // No table ever mixed the releases, and once v1 was routed none was empty or partial: v1
    // served until all of v2 could.
    let tables = routes.tables();
    let first_full = tables.iter().position(|t| t.len() == 2).unwrap();
    for table in &tables[first_full..] {
        let versions: Vec<u32> = table.iter().map(|u| u.release_version).collect();
        assert!(versions == [1, 1] || versions == [2, 2], "{tables:#?}");
    }
    // Each old web instance was drained before it was signalled; workers are not drained.
    let events = sink.events();
    for dyno in ["web.1", "web.2"] {
        let drained = events
            .iter()
            .position(|(p, t)| p == dyno && t == "drained")
            .unwrap_or_else(|| panic!("{dyno} drained: {events:#?}"));
        let stopped = events
            .iter()
            .position(|(p, t)| p == dyno && t.starts_with("Stopping all processes"))
            .unwrap();
        assert!(drained < stopped, "{events:#?}");
    }
    assert!(!sink.has_event("worker.1", "drained"));

    tokio::time::timeout(Duration::from_secs(30), fx.sup.remove("app1"))
        .await
        .expect("the app's instances stopped");
    assert_eq!(routes.tables().last().unwrap(), &Vec::<Upstream>::new());
    // Every drain came after the table without the instance: removal, deploy and scaling.
    assert_eq!(
        *routes.drained_while_routed.lock().unwrap(),
        Vec::<String>::new()
    );
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn a_release_whose_web_never_comes_up_fails_and_the_old_one_keeps_serving() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let routes = Recorder::new(sink.clone());
    fx.sup.set_routes(routes.clone());
    fx.sup.apply(fx.desired(1, vec![web(1)]), sink.clone());
    assert_eq!(fx.sup.rollout("app1", 1).await, Rollout::Complete);

    let broken = ProcessSpec::new("web", 1, "sh -c 'echo no port here; exit 3'");
    fx.sup.apply(fx.desired(2, vec![broken]), sink.clone());
    let ended = tokio::time::timeout(Duration::from_secs(30), fx.sup.rollout("app1", 2))
        .await
        .expect("the rollout ended");
    assert_eq!(
        ended,
        Rollout::Failed("web.1 exited (status 3) before it was up".to_owned())
    );
    // v1 still serves, alone in the table.
    assert_eq!(routes.last_versions(), [1]);
    assert!(fx
        .status()
        .iter()
        .any(|s| s.release_version == 1 && s.state.as_str() == "up"));

    // Going back to v1 ends the broken instances and completes at once.
    fx.sup.apply(fx.desired(1, vec![web(1)]), sink.clone());
    assert_eq!(fx.sup.rollout("app1", 1).await, Rollout::Complete);
    fx.until("only v1 left", 30, |f| {
        f.status().iter().all(|s| s.release_version == 1)
    })
    .await;
    // A rollout asked about a release the app no longer runs is superseded.
    assert_eq!(fx.sup.rollout("app1", 2).await, Rollout::Superseded);
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn a_release_without_web_completes_once_applied() {
    let fx = Fixture::new(SandboxMode::None).await;
    fx.sup.apply(fx.desired(1, vec![worker(1)]), Sink::new());
    assert_eq!(fx.sup.rollout("app1", 1).await, Rollout::Complete);
    assert_eq!(fx.sup.rollout("nope", 1).await, Rollout::Superseded);
    fx.sup.shutdown().await;
}
