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

/// A running one-off is listed beside the instances' status, can be stopped by name, is held
/// by the same cgroup limits as an instance, and is gone from the list once it ended.
#[tokio::test]
async fn one_offs_are_listed_limited_and_stopped_by_name() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let r = fx.release(2);
    // Cgroups are the machine's: an app id of its own keeps tests running side by side apart.
    let app = format!("oneoff{}", std::process::id());
    let app = app.as_str();
    let one = fx
        .sup
        .run_one_off(app, &r, "sleep 1000", false, sink.clone())
        .await
        .unwrap();
    let listed = fx.sup.one_offs(app);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, one.name);
    assert_eq!(listed[0].process_type, "run");
    assert_eq!(listed[0].release_version, 2);
    assert_eq!(listed[0].command, "sleep 1000");
    assert_eq!(listed[0].pid, one.pid);
    let pid = one.pid.unwrap();
    let cgroups_here = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
        || std::path::Path::new("/sys/fs/cgroup/pids/wharf").is_dir();
    if nix::unistd::geteuid().is_root() && cgroups_here {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroup.contains(&format!("/wharf/{app}/{}", one.name)),
            "{cgroup}"
        );
    }

    assert!(!fx.sup.stop_one_off(app, "run.99"));
    assert!(fx.sup.stop_one_off(app, &one.name));
    let code = tokio::time::timeout(Duration::from_secs(20), one.exit)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(code, 0, "stopped by a signal");
    fx.until("the one-off to leave the list", 20, |f| {
        f.sup.one_offs(app).is_empty()
    })
    .await;
    assert!(sink.has_event(&one.name, "Stopping all processes with SIGTERM"));
    fx.sup.shutdown().await;
}

/// Whether a process runs with exactly `args` as its command line.
fn running_with_args(args: &[&str]) -> bool {
    let wanted: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted)
    })
}

/// Reads a one-off's output until `needle` shows up (or the output ends); what it read.
pub(crate) async fn read_until(
    rx: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    needle: &str,
) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(chunk)) => seen.extend(chunk),
            Ok(None) => break,
            Err(_) => panic!(
                "no `{needle}` within 20 s; the terminal showed {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// In a terminal (as `heroku run bash` has), a one-off sees a terminal of the size asked for,
/// its input is echoed and read a line at a time, and Ctrl-C interrupts it.
async fn terminal_session(mode: SandboxMode) {
    let fx = Fixture::new(mode).await;
    let sink = Sink::new();
    let r = fx.release(1);
    let size = wharf_run::TtySize {
        rows: 33,
        cols: 101,
    };

    // The sleep's argument is this test's own, so it can be told apart from other tests'.
    let sleep = format!("1000.{}", std::process::id());
    let script = format!(
        "test -t 0 && test -t 1 && test -t 2 && echo all-terminal; stty size; \
         echo term=$TERM; read line; echo got:$line; \
         trap 'echo interrupted' INT; sleep {sleep}; echo after; exit 5"
    );
    let mut one = fx
        .sup
        .run_one_off_in_terminal("app1", &r, &script, size, sink.clone())
        .await
        .unwrap();
    assert!(one.tty);
    let mut rx = one.output.take().unwrap();
    let mut stdin = one.stdin.take().unwrap();
    let seen = read_until(&mut rx, "term=").await;
    assert!(seen.contains("all-terminal"), "{seen:?}");
    assert!(seen.contains("33 101"), "{seen:?}");
    // No other process wharf starts meanwhile holds either end of this terminal.
    let mut probe = fx
        .sup
        .run_one_off(
            "app1",
            &r,
            "ls -l /proc/$$/fd | grep -c ptmx || true",
            true,
            sink.clone(),
        )
        .await
        .unwrap();
    let probed = read_until(probe.output.as_mut().unwrap(), "\n").await;
    assert_eq!(
        probed.trim(),
        "0",
        "a terminal's master leaked into another process"
    );
    assert_eq!(probe.exit.await.unwrap(), 0);
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.flush().await.unwrap();
    // The terminal echoes the typed line, then the shell reads it.
    let seen = read_until(&mut rx, "got:hello").await;
    assert!(seen.contains("hello\r\n"), "no echo in {seen:?}");
    // Ctrl-C: SIGINT to the foreground job, the sleep and the shell waiting for it (and to
    // nothing else: not to bubblewrap), which traps it and goes on. Sent once the sleep runs,
    // so the trap is set.
    fx.until("the sleep to start", 20, |_| {
        running_with_args(&["sleep", &sleep])
    })
    .await;
    stdin.write_all(b"\x03").await.unwrap();
    stdin.flush().await.unwrap();
    let seen = read_until(&mut rx, "after").await;
    assert!(seen.contains("interrupted"), "{seen:?}");
    let code = tokio::time::timeout(Duration::from_secs(20), one.exit)
        .await
        .expect("the process ended")
        .unwrap();
    assert_eq!(code, 5);

    // An interactive shell ignores SIGTERM: stopping it hangs up its terminal, which ends it
    // at once instead of after the grace period.
    let mut shell = fx
        .sup
        .run_one_off_in_terminal("app1", &r, "exec sh -i", size, sink.clone())
        .await
        .unwrap();
    let mut rx = shell.output.take().unwrap();
    let mut input = shell.stdin.take().unwrap();
    input.write_all(b"echo ready-$((6*7))\n").await.unwrap();
    input.flush().await.unwrap();
    read_until(&mut rx, "ready-42").await;
    let stopping = std::time::Instant::now();
    assert!(fx.sup.stop_one_off("app1", &shell.name));
    tokio::time::timeout(Duration::from_secs(20), shell.exit)
        .await
        .expect("the shell ended")
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the shell took {:?} to stop: it waited out the grace period",
        stopping.elapsed()
    );
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn a_one_off_in_a_terminal_behaves_like_one() {
    terminal_session(SandboxMode::None).await;
}

#[tokio::test]
async fn a_one_off_in_a_terminal_behaves_like_one_in_namespaces() {
    terminal_session(SandboxMode::Namespaces).await;
}

/// A job the shell put in a process group of its own still holds the terminal: it goes when
/// the one-off ends, and so the output ends.
#[tokio::test]
async fn a_terminal_one_off_takes_its_jobs_with_it() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let r = fx.release(1);
    let mut one = fx
        .sup
        .run_one_off_in_terminal(
            "app1",
            &r,
            "set -m; sleep 1000 & echo bg=$!; exit 0",
            wharf_run::TtySize::default(),
            sink.clone(),
        )
        .await
        .unwrap();
    let mut rx = one.output.take().unwrap();
    let seen = read_until(&mut rx, "\n").await;
    let bg: i32 = seen
        .split("bg=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {seen:?}"));
    assert_eq!(one.exit.await.unwrap(), 0);
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the terminal's output never ended");
    let alive = std::fs::read_to_string(format!("/proc/{bg}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "));
    assert!(!alive, "the background job {bg} outlived its one-off");
    fx.sup.shutdown().await;
}
