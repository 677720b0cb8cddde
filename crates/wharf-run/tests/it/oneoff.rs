use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wharf_run::SandboxMode;

use crate::fixture::{Fixture, Sink};

#[tokio::test]
async fn attached_exit_code_and_stdin_round_trip() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let r = fx.release(3);
    let one = fx
        .sup
        .run_one_off("app1", &r, "sh -c 'exit 7'", true, sink.clone())
        .await
        .unwrap();
    assert_eq!(one.name, "run.1");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), one.exit)
            .await
            .unwrap()
            .unwrap(),
        7
    );

    let mut cat = fx
        .sup
        .run_one_off("app1", &r, "cat", true, sink.clone())
        .await
        .unwrap();
    assert_eq!(cat.name, "run.2");
    let mut stdin = cat.stdin.take().unwrap();
    stdin.write_all(b"ping\n").await.unwrap();
    drop(stdin);
    let mut out = Vec::new();
    let mut rx = cat.output.take().unwrap();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
    {
        out.extend(chunk);
    }
    assert_eq!(out, b"ping\n");
    assert_eq!(cat.exit.await.unwrap(), 0);

    let env = fx
        .sup
        .run_one_off(
            "app1",
            &r,
            "echo $DYNO $WHARF_RELEASE_VERSION",
            false,
            sink.clone(),
        )
        .await
        .unwrap();
    assert!(env.output.is_none());
    assert_eq!(env.exit.await.unwrap(), 0);
    assert_eq!(sink.lines_of("run.3"), ["run.3 3"]);
    fx.sup.shutdown().await;
}
