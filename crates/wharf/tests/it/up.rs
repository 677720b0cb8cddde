//! `wharf up`: one command takes a directory to a running app on an embedded wharf, serves it
//! through the router, redeploys it on a change with `--watch`, and leaves nothing running
//! after Ctrl-C.

use std::time::Duration;

use crate::harness::{get_page, pids, port_in_url, wait_until, Cli, Foreground, WHARF};

/// Answers every GET with `$GREETING` and the contents of `code.txt`.
const APP: &str = r#"import os, http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %s" % (os.environ.get("GREETING", "none"), open("code.txt").read().strip())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Every process descending from `root`, as (pid, start time).
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut table = Vec::new();
    for pid in pids() {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(start)) = (
            fields.get(1).and_then(|p| p.parse::<u32>().ok()),
            fields.get(19).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if fields.first() != Some(&"Z") {
            table.push((pid, ppid, start));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(table.iter().filter(|t| t.1 == parent).map(|t| t.0));
        i += 1;
    }
    table
        .iter()
        .filter(|t| t.0 != root && found.contains(&t.0))
        .map(|t| (t.0, t.2))
        .collect()
}

fn still_running(process: (u32, u64)) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", process.0)).is_ok_and(|text| {
        let rest = &text[text.rfind(')').unwrap_or(0) + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.first() != Some(&"Z")
            && fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(process.1)
    })
}

#[test]
fn up_builds_serves_reloads_and_stops_cleanly() {
    let cli = Cli::new();
    let dir = cli.work_dir().join("Up_App");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), "web: python3 app.py\n").unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("code.txt"), "one\n").unwrap();
    std::fs::write(
        dir.join(".env"),
        "# loaded into the app's config\nGREETING=hello\n",
    )
    .unwrap();

    let data_dir = cli.work_dir().join("data");
    let mut command = cli.command(WHARF.as_str());
    command
        .args([
            "up",
            dir.to_str().unwrap(),
            "--watch",
            "--router-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .env("WHARF_PORT_RANGE", "33100-33199");
    // On the test stack, as `wharf up` would be on wharf's own.
    if let Some(stack) = crate::harness::test_stack_for(&data_dir, &[]) {
        command.env("WHARF_STACK", stack);
    }
    let mut up = Foreground::spawn(command);
    let within = Duration::from_secs(180);

    // The app is named after its directory, its config comes from .env, and it is served.
    let port = port_in_url(&up.wait_for("is up at http://up-app.localhost:", within));
    let body = wait_until(Duration::from_secs(30), "the app to answer", || {
        get_page(port, "up-app.localhost")
    });
    assert_eq!(body, "hello one");

    // A change is rebuilt and swapped in.
    std::fs::write(dir.join("code.txt"), "two\n").unwrap();
    up.wait_for("up-app runs v", within);
    let body = wait_until(Duration::from_secs(30), "the new code", || match get_page(
        port,
        "up-app.localhost",
    )? {
        body if body == "hello two" => Ok(body),
        other => Err(other),
    });
    assert_eq!(body, "hello two");
    // A broken change keeps the running release serving.
    std::fs::write(dir.join("Procfile"), "web: python3 app.py\nweb: again\n").unwrap();
    up.wait_for("the running release keeps serving", within);
    assert_eq!(get_page(port, "up-app.localhost").unwrap(), "hello two");

    // Ctrl-C stops it all, and nothing it started is left.
    let children = descendants(up.child.id());
    assert!(
        !children.is_empty(),
        "the app runs as a descendant of wharf up"
    );
    let status = up.stop_with("-INT", Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", up.seen.join("\n"));
    let left: Vec<_> = children.into_iter().filter(|p| still_running(*p)).collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(
        get_page(port, "up-app.localhost").is_err(),
        "the router stopped too"
    );
}
