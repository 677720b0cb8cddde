//! `WHARF_BACKEND=kubernetes` against a recorded conversation with the Kubernetes API
//! (`conversations/backend-deploy.json`): a release handed to the backend is applied, its
//! rollout watched, its pods read back as instances, their output followed into the app's log,
//! and its web Service published to the router.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf_core::backend::{
    Backend, BackendError, BoxFuture, ImageSource, InstanceState, LogSink, PullableImage, Rollout,
    Routes, Stream, Upstream,
};
use wharf_k8s::{KubeBackend, KubeConfig, Settings};

use crate::cluster::release;
use crate::recorded::RecordedApi;

#[derive(Debug)]
struct Images;

impl ImageSource for Images {
    fn pullable<'a>(
        &'a self,
        _app_id: &'a str,
        app_name: &'a str,
        _version: u32,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<PullableImage, BackendError>> {
        Box::pin(async move {
            Ok(PullableImage {
                reference: format!("registry.example.com/{app_name}@{digest}"),
                registry: "registry.example.com".to_owned(),
                credentials: None,
            })
        })
    }
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
}

impl LogSink for Log {
    fn line(&self, process: &str, _stream: Stream, text: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("{process}: {text}"));
    }

    fn event(&self, process: &str, text: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("{process} (event): {text}"));
    }
}

#[derive(Default)]
struct Router {
    upstreams: Mutex<Vec<Upstream>>,
}

impl Routes for Router {
    fn set(&self, _app_id: &str, upstreams: Vec<Upstream>) {
        *self.upstreams.lock().unwrap() = upstreams;
    }

    fn drain<'a>(&'a self, _app_id: &'a str, _upstream_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Polls `check` until it holds; panics with what it last saw after a deadline.
async fn until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within 20 s; last saw {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The backend over `api`, and the router it publishes to.
fn backend_of(api: &RecordedApi) -> (KubeBackend, Arc<Router>) {
    // One look at the pods: the conversations have one.
    backend_with(api, Arc::new(Images), Duration::from_secs(3600))
}

/// The backend over `api` with `images`, looking at the pods every `look_every`.
fn backend_with(
    api: &RecordedApi,
    images: Arc<dyn ImageSource>,
    look_every: Duration,
) -> (KubeBackend, Arc<Router>) {
    let router = Arc::new(Router::default());
    let backend = KubeBackend::with_cluster(
        api.cluster(),
        KubeConfig {
            images,
            routes: router.clone(),
            settings: Settings {
                ingress_class: None,
                boot_timeout: Duration::from_secs(30),
                release_timeout: Duration::from_secs(60),
            },
            look_every,
        },
    );
    (backend, router)
}

#[tokio::test]
async fn a_release_rolls_out_and_its_pods_come_back_as_instances() {
    let api = RecordedApi::start("backend-deploy.json").await;
    let (backend, router) = backend_of(&api);
    let log = Arc::new(Log::default());
    let app = release();
    backend.apply(app.clone(), log.clone());
    assert_eq!(backend.rollout(&app.app_id, 4).await, Rollout::Complete);

    let instances = until("two web instances", || {
        let found = backend.status(&app.app_id);
        (found.len() == 2)
            .then_some(found.clone())
            .ok_or(format!("{found:?}"))
    })
    .await;
    assert_eq!(instances[0].name, "web.1");
    assert_eq!(instances[0].state, InstanceState::Up);
    assert_eq!(instances[0].node.as_deref(), Some("node-a"));
    assert_eq!(instances[0].command, "bin/web");
    assert_eq!(instances[1].name, "web.2");
    assert_eq!(instances[1].node.as_deref(), Some("node-b"));

    until("each pod's output in the app's log", || {
        let lines = log.lines.lock().unwrap().clone();
        let both = lines.contains(&"web.1: listening on 5000".to_owned())
            && lines.contains(&"web.2: listening on 5000 too".to_owned());
        both.then_some(()).ok_or(format!("{lines:?}"))
    })
    .await;
    assert!(log
        .lines
        .lock()
        .unwrap()
        .contains(&"kubernetes (event): Applied release v4 to namespace wharf-shop".to_owned()));
    let upstreams = until("the web Service as the router's upstream", || {
        let set = router.upstreams.lock().unwrap().clone();
        (!set.is_empty())
            .then_some(set.clone())
            .ok_or(format!("{set:?}"))
    })
    .await;
    assert_eq!(upstreams[0].addr, "10.96.12.7:80".parse().unwrap());
    assert_eq!(upstreams[0].release_version, 4);

    until("every recorded request", || {
        (api.left() == 0)
            .then_some(())
            .ok_or(format!("{} left", api.left()))
    })
    .await;
    backend.shutdown().await;
    api.assert_done();
}

/// Restarts (a type: its Deployment's pod template changes; an instance: its pod goes), a
/// detached one-off (a pod of its own, its output into the app's log, its exit status, the pod
/// deleted after), and the app's removal (its namespace).
#[tokio::test]
async fn restarts_one_offs_and_removal_speak_to_the_api() {
    let api = RecordedApi::start("backend-operations.json").await;
    let (backend, _router) = backend_of(&api);
    let log = Arc::new(Log::default());
    let app = release();
    backend.apply(app.clone(), log.clone());
    assert_eq!(backend.rollout(&app.app_id, 4).await, Rollout::Complete);
    until("two web instances", || {
        let found = backend.status(&app.app_id);
        (found.len() == 2).then_some(()).ok_or(format!("{found:?}"))
    })
    .await;

    backend
        .restart(&app.app_id, wharf_core::backend::Target::Type("web".into()))
        .await
        .unwrap();
    backend
        .restart(
            &app.app_id,
            wharf_core::backend::Target::Instance("web.2".into()),
        )
        .await
        .unwrap();
    let unknown = backend
        .restart(
            &app.app_id,
            wharf_core::backend::Target::Type("clock".into()),
        )
        .await;
    assert!(
        matches!(unknown, Err(BackendError::UnknownTarget { .. })),
        "{unknown:?}"
    );

    let one_off = backend
        .run(
            &app.app_id,
            &app.app_name,
            &app.release,
            "echo migrating; exit 3",
            wharf_core::backend::OneOffKind::Detached,
            log.clone(),
        )
        .await
        .unwrap();
    assert_eq!(one_off.name, "run.1");
    assert_eq!(one_off.exit.await.unwrap(), 3);
    until("the one-off's output and end in the log", || {
        let lines = log.lines.lock().unwrap().clone();
        let seen = lines.contains(&"run.1: migrating".to_owned())
            && lines.contains(&"run.1 (event): Process exited with status 3".to_owned());
        seen.then_some(()).ok_or(format!("{lines:?}"))
    })
    .await;
    let ended = until("the one-off to have ended", || {
        backend
            .ended_one_off(&app.app_id, "run.1")
            .ok_or_else(|| format!("{:?}", backend.one_offs(&app.app_id)))
    })
    .await;
    assert_eq!(ended.state, InstanceState::Crashed);
    assert_eq!(ended.last_exit.as_deref(), Some("status 3"));

    backend.remove(&app.app_id).await;
    assert!(backend.status(&app.app_id).is_empty());
    until("every recorded request", || {
        (api.left() == 0)
            .then_some(())
            .ok_or(format!("{} left", api.left()))
    })
    .await;
    backend.shutdown().await;
    api.assert_done();
}

/// An image source whose every answer has a new pull token, as wharf's registry endpoint's.
#[derive(Debug, Default)]
struct FreshTokens(std::sync::atomic::AtomicU32);

impl ImageSource for FreshTokens {
    fn pullable<'a>(
        &'a self,
        _app_id: &'a str,
        app_name: &'a str,
        _version: u32,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<PullableImage, BackendError>> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            Ok(PullableImage {
                reference: format!("registry.example.com/{app_name}@{digest}"),
                registry: "registry.example.com".to_owned(),
                credentials: Some(("wharf".to_owned(), format!("token-{n}"))),
            })
        })
    }
}

/// Looking again and again at an app whose desired state didn't change applies nothing again
/// (though a pull token is new each time one is made): each object is applied once, however
/// many times the pods are read back.
#[tokio::test]
async fn an_unchanged_app_is_applied_once() {
    let api = RecordedApi::start("backend-steady.json").await;
    let (backend, _router) = backend_with(
        &api,
        Arc::new(FreshTokens::default()),
        Duration::from_millis(20),
    );
    let app = release();
    backend.apply(app.clone(), Arc::new(Log::default()));
    let pods = "GET /api/v1/namespaces/wharf-shop/pods?&labelSelector=wharf.dev%2Fapp-id%3D0b5e3c1e-7d1f-4a52-9d51-3f0c2d6e8a11%2Capp.kubernetes.io%2Fmanaged-by%3Dwharf";
    until("five looks at the pods", || {
        let looks = api.times(pods);
        (looks >= 5).then_some(()).ok_or(format!("{looks} looks"))
    })
    .await;
    backend.shutdown().await;
    api.assert_done();
}
