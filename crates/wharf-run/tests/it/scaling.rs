use std::time::Duration;

use wharf_run::{InstanceState, SandboxMode, Target};

use crate::fixture::{web, worker, Fixture, Sink};

#[tokio::test]
async fn scaling_keeps_exact_counts() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    fx.sup
        .apply(fx.desired(1, vec![web(3), worker(1)]), sink.clone());
    fx.until("web=3 worker=1 up", 30, |f| {
        f.names_in("up") == ["web.1", "web.2", "web.3", "worker.1"]
    })
    .await;
    let ports: Vec<_> = fx.status().iter().map(|s| s.port.unwrap()).collect();
    let unique: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(unique.len(), ports.len(), "every instance has its own PORT");

    // Applying the same state again changes nothing.
    let pids: Vec<_> = fx.status().iter().map(|s| s.pid).collect();
    fx.sup
        .apply(fx.desired(1, vec![web(3), worker(1)]), sink.clone());
    assert_eq!(fx.status().iter().map(|s| s.pid).collect::<Vec<_>>(), pids);

    fx.sup.apply(fx.desired(1, vec![web(1)]), sink.clone());
    fx.until("web=1 only", 30, |f| {
        f.status()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
            == ["web.1"]
    })
    .await;
    assert_eq!(
        fx.status()[0].pid,
        pids[0],
        "web.1 kept running through the scale-down"
    );

    fx.sup
        .apply(fx.desired(1, vec![web(0), worker(2)]), sink.clone());
    fx.until("web=0 worker=2", 30, |f| {
        f.names_in("up") == ["worker.1", "worker.2"] && f.status().len() == 2
    })
    .await;
    fx.sup.remove("app1").await;
    assert!(fx.status().is_empty());
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn new_release_starts_web_before_stopping_old() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    fx.sup
        .apply(fx.desired(1, vec![web(2), worker(1)]), sink.clone());
    fx.until("v1 up", 30, |f| f.names_in("up").len() == 3).await;
    let old: Vec<_> = fx.status().iter().map(|s| s.pid.unwrap()).collect();

    fx.sup
        .apply(fx.desired(2, vec![web(2), worker(1)]), sink.clone());
    fx.until("v2 up everywhere", 30, |f| {
        let s = f.status();
        s.len() == 3
            && s.iter()
                .all(|i| i.release_version == 2 && i.state == InstanceState::Up)
    })
    .await;
    for s in fx.status() {
        assert!(!old.contains(&s.pid.unwrap()));
    }
    // Web: both new instances were up before the first old one was told to stop.
    let events = sink.events();
    let pos = |process: &str, text: &str, nth: usize| {
        events
            .iter()
            .enumerate()
            .filter(|(_, (p, t))| p == process && t == text)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no event #{nth} `{text}` of {process}: {events:#?}"))
    };
    let stop = "Stopping all processes with SIGTERM";
    let up = "State changed from starting to up";
    let first_web_stop = pos("web.1", stop, 0).min(pos("web.2", stop, 0));
    assert!(pos("web.1", up, 1) < first_web_stop);
    assert!(pos("web.2", up, 1) < first_web_stop);
    // Worker: the old one stopped before the new one started.
    let worker_start = "Starting process with command `sh -c 'while true; do sleep 1; done'`";
    let old_worker_exit = events
        .iter()
        .position(|(p, t)| p == "worker.1" && t.starts_with("Process exited with"))
        .expect("the old worker exited");
    assert!(old_worker_exit < pos("worker.1", worker_start, 1));
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn restart_replaces_web_one_by_one() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    fx.sup.apply(fx.desired(1, vec![web(2)]), sink.clone());
    fx.until("up", 30, |f| f.names_in("up").len() == 2).await;
    let old: Vec<_> = fx.status().iter().map(|s| s.pid.unwrap()).collect();
    tokio::time::timeout(Duration::from_secs(30), fx.sup.restart("app1", Target::All))
        .await
        .expect("restart finished")
        .unwrap();
    fx.until("both replaced and up", 30, |f| {
        f.names_in("up").len() == 2 && f.status().len() == 2
    })
    .await;
    for s in fx.status() {
        assert!(!old.contains(&s.pid.unwrap()));
    }
    assert!(matches!(
        fx.sup
            .restart("app1", Target::Instance("web.9".into()))
            .await,
        Err(wharf_run::RunError::UnknownTarget { .. })
    ));
    fx.sup.shutdown().await;
}
