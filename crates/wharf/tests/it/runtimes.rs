//! Real apps built as Heroku builds them, on a stack: the runtime version the app asks for
//! (from the stack, from the npm registry, from a configured Python source), Django's
//! collectstatic, Node builds with devDependencies pruned after. Each app is built for real
//! and answers through the router.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{http_get, wait_until, Cli, Server};
use crate::stacks::{copy_dir, example, until_answers};

/// A server (whose apps build on the test stack), and a logged-in client with `app` created.
fn on_stack(data: &Path, ports: &str, extra: &[&str], app: &str) -> (Server, Cli) {
    let mut args = vec!["--port-range", ports];
    args.extend_from_slice(extra);
    let server = Server::start_in_with(&data.join("wharf"), &args);
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", app]).success();
    (server, cli)
}

/// `wharf deploy SOURCE -a APP`, which must succeed with each of `needles` in its output;
/// returns the output.
#[track_caller]
fn deploys(cli: &Cli, app: &str, source: &Path, needles: &[&str]) -> String {
    let deployed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    let log = deployed.transcript();
    assert_eq!(deployed.code, Some(0), "{log}");
    for needle in needles {
        assert!(log.contains(needle), "{app}: no `{needle}` in:\n{log}");
    }
    log
}

/// The `href`/`src` in `page` that starts with `prefix`.
fn link<'a>(page: &'a str, prefix: &str) -> &'a str {
    let start = page
        .find(prefix)
        .unwrap_or_else(|| panic!("no link starting {prefix} in:\n{page}"));
    let rest = &page[start..];
    &rest[..rest.find('"').unwrap()]
}

/// examples/python-django, unmodified: the Python its `.python-version` asks for comes from
/// the stack, `collectstatic` runs during the build, and with `DEBUG` off its page and its
/// hashed static file both answer 200 (the page says which `DYNO` served it). The build
/// records the runtime. An app asking for a Python nobody provides fails at once, naming the
/// file, the version and what there is; `DISABLE_COLLECTSTATIC=1` skips collectstatic.
#[test]
fn a_django_app_builds_with_its_python_and_collectstatic() {
    if !crate::test_stack::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let app = "django";
    let (server, cli) = on_stack(data.path(), "34400-34449", &[], app);
    let source = cli.work_dir().join("python-django");
    copy_dir(&example("python-django"), &source);
    let log = deploys(&cli, app, &source, &[]);
    crate::examples::assert_kubernetes_ready(&cli, app);
    assert!(
        log.contains(&format!(
            " from the stack {} (asked for by .python-version: 3.13)",
            crate::test_stack::NAME
        )) && log.contains("Using Python 3.13."),
        "{log}"
    );
    assert!(log.contains("Running Django collectstatic"), "{log}");
    assert!(log.contains("copied to '/app/staticfiles'"), "{log}");

    until_answers(
        server.router_port,
        "django.localhost",
        "Hello from python-django!",
    );
    let (status, page) = http_get(server.router_port, "django.localhost", "/").unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Served by web.1 on Python 3.13."), "{page}");
    let css = link(&page, "/static/hello/site.");
    assert_ne!(
        css, "/static/hello/site.css",
        "the manifest names hashed files"
    );
    let (status, body) = http_get(server.router_port, "django.localhost", css).unwrap();
    assert_eq!(status, 200, "{css}: {body}");
    assert!(body.contains("font-family"), "{body}");

    let builds = cli.run(&["builds", "-a", app, "--json"]).success().json();
    let runtime = builds[0]["runtime"].as_str().unwrap_or_default();
    assert!(runtime.starts_with("python 3.13."), "{builds}");

    // Skipped on request (a build switch read from the config; never seen by build commands).
    cli.run(&["config", "set", "DISABLE_COLLECTSTATIC=1", "-a", app])
        .success();
    std::fs::write(source.join("hello/static/hello/extra.css"), "p {}\n").unwrap();
    let log = deploys(&cli, app, &source, &[]);
    assert!(
        log.contains("Skipping Django collectstatic (DISABLE_COLLECTSTATIC=1)"),
        "{log}"
    );

    // A version no one here has: the build stops before installing anything.
    std::fs::write(source.join(".python-version"), "3.14\n").unwrap();
    let failed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    let log = failed.transcript();
    assert_ne!(failed.code, Some(0), "{log}");
    assert!(
        log.contains("Python 3.14 is asked for by .python-version")
            && log.contains("has Python 3.13.")
            && log.contains("WHARF_PYTHON_URL")
            && !log.contains("Installing requirements"),
        "{log}"
    );
}

/// A Python the stack doesn't have comes from the operator's source of prebuilt CPython
/// archives (`WHARF_PYTHON_URL`, here a local HTTP server holding the host's Python 3.11 as an
/// archive with its `.sha256`): the newest 3.11 patch there is found, downloaded, checked, put
/// in the image's runtime layer, and the app runs on it in the stack's run image.
#[test]
fn a_python_the_stack_lacks_comes_from_the_python_source() {
    if !crate::test_stack::available() {
        return;
    }
    let Some(host) = host_python_311() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the host's Python 3.11 is needed (Debian bookworm's python3.11)"
        );
        eprintln!("note: no /usr/bin/python3.11 here; skipped");
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let served = data.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let archive = served.join(format!("cpython-{host}.tar.gz"));
    pack_host_python(&archive);
    let sum = Command::new("sha256sum").arg(&archive).output().unwrap();
    let digest = String::from_utf8(sum.stdout).unwrap();
    let digest = digest.split_whitespace().next().unwrap();
    std::fs::write(
        served.join(format!("cpython-{host}.tar.gz.sha256")),
        format!("{digest}  cpython-{host}.tar.gz\n"),
    )
    .unwrap();
    let http = HttpServer::start(&served);
    let url = format!("http://127.0.0.1:{}/cpython-{{version}}.tar.gz", http.port);

    let app = "py311";
    let (server, cli) = on_stack(data.path(), "34450-34499", &["--python-url", &url], app);
    let source = cli.work_dir().join("py311");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join(".python-version"), "3.11\n").unwrap();
    std::fs::write(source.join("requirements.txt"), "gunicorn>=23\n").unwrap();
    std::fs::write(
        source.join("Procfile"),
        "web: gunicorn --bind 0.0.0.0:$PORT app:app\n",
    )
    .unwrap();
    std::fs::write(
        source.join("app.py"),
        "import sys\n\ndef app(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [('running on Python %d.%d.%d\\n' % sys.version_info[:3]).encode()]\n",
    )
    .unwrap();
    let log = deploys(&cli, app, &source, &[]);
    assert!(
        log.contains(&format!(
            "Using Python {host} from the Python source (asked for by .python-version: 3.11)"
        )),
        "{log}"
    );
    assert!(log.contains("digest checked"), "{log}");
    until_answers(
        server.router_port,
        "py311.localhost",
        &format!("running on Python {host}"),
    );
    let builds = cli.run(&["builds", "-a", app, "--json"]).success().json();
    assert_eq!(builds[0]["runtime"], format!("python {host}"), "{builds}");
}

/// The host's Python 3.11 version (`3.11.2`), when it has one.
fn host_python_311() -> Option<String> {
    let out = Command::new("/usr/bin/python3.11")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The host's `python3.11` and its standard library as a relocatable archive, laid out as
/// prebuilt CPython archives are (`python/bin/python3`, `python/lib/python3.11/`).
fn pack_host_python(archive: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("python");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::copy("/usr/bin/python3.11", root.join("bin/python3.11")).unwrap();
    std::os::unix::fs::symlink("python3.11", root.join("bin/python3")).unwrap();
    let status = Command::new("cp")
        .args(["-a", "/usr/lib/python3.11"])
        .arg(root.join("lib"))
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(root.join("lib/python3.11/test"));
    let status = Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .args(["-czf"])
        .arg(archive)
        .arg("python")
        .status()
        .unwrap();
    assert!(status.success());
}

/// Python's `http.server` on a free port of 127.0.0.1, serving `dir`; stopped on drop.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = HttpServer { child, port };
        wait_until(Duration::from_secs(20), "the HTTP server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        server
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// examples/node-vite, unmodified: Node.js from `engines.node` (22.x) fetched from the npm
/// registry, `npm ci` with devDependencies, `npm run build` (Vite), devDependencies pruned, and
/// at run time `npm start` under `NODE_ENV=production` serving what Vite built.
#[test]
fn a_vite_app_builds_on_node_from_the_registry() {
    if !crate::test_stack::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let app = "vite";
    let (server, cli) = on_stack(data.path(), "34500-34549", &[], app);
    let source = cli.work_dir().join("node-vite");
    copy_dir(&example("node-vite"), &source);
    deploys(
        &cli,
        app,
        &source,
        &[
            "Using Node.js 22.",
            "(asked for by package.json engines.node: 22.x)",
            "Installing dependencies with npm ci --include=dev",
            "Running build (npm run build)",
            "Pruning devDependencies (npm prune --omit=dev)",
            "Default types for node -> web",
        ],
    );
    crate::examples::assert_kubernetes_ready(&cli, app);

    until_answers(
        server.router_port,
        "vite.localhost",
        "Hello from node-vite!",
    );
    let (_, page) = http_get(server.router_port, "vite.localhost", "/").unwrap();
    let script = link(&page, "/assets/index-");
    let (status, body) = http_get(server.router_port, "vite.localhost", script).unwrap();
    assert_eq!(status, 200, "{script}: {body}");
    assert!(body.contains("/api/hello"), "{body}");
    let (status, api) = http_get(server.router_port, "vite.localhost", "/api/hello").unwrap();
    assert_eq!(status, 200, "{api}");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert!(api["node"].as_str().unwrap().starts_with("22."), "{api}");
    assert_eq!(api["env"], "production");
    assert_eq!(api["dyno"], "web.1");

    // devDependencies are gone from the image; the runtime is its own layer.
    let pruned = cli
        .run(&[
            "run",
            "-a",
            app,
            "--",
            "test -e node_modules/vite && echo vite-kept || echo vite-pruned; node --version",
        ])
        .success();
    assert!(pruned.stdout.contains("vite-pruned"), "{pruned:#?}");
    assert!(pruned.stdout.contains("v22."), "{pruned:#?}");
    let builds = cli.run(&["builds", "-a", app, "--json"]).success().json();
    assert!(
        builds[0]["runtime"]
            .as_str()
            .unwrap()
            .starts_with("node 22."),
        "{builds}"
    );
}

/// Express apps installed by the package manager their files name, on the host-bound stack:
/// pnpm pinned by `packageManager` (with a `heroku-postbuild` that runs instead of `build`),
/// Yarn classic by its `yarn.lock` (on the Node.js `engines.node` asks for), and Yarn Berry
/// (Plug'n'Play) by `packageManager`. Each answers through the router, started by its own
/// manager's `start` under `NODE_ENV=production`.
#[test]
fn package_managers_install_as_the_app_says() {
    let server = Server::start_with(&["--port-range", "34550-34599"]);
    let cli = Cli::logged_in(&server);
    let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps");
    let cases: [(&str, &[&str]); 3] = [
        (
            "pnpm-web",
            &[
                "Using pnpm 9.15.9 (packageManager: pnpm@9.15.9)",
                "Installing dependencies with pnpm install --frozen-lockfile --prod=false",
                "Running heroku-postbuild (pnpm run heroku-postbuild)",
                "postbuild ran with v",
                "Pruning devDependencies (pnpm prune --prod)",
                "Default types for node -> web",
            ],
        ),
        (
            "yarn-web",
            &[
                "(asked for by package.json engines.node: 20.x)",
                "Using yarn 1.22.",
                "Installing dependencies with yarn install --frozen-lockfile --production=false",
                "Pruning devDependencies (yarn install --production=true",
            ],
        ),
        (
            "yarn-berry-web",
            &[
                "Using yarn 4.9.2 (packageManager: yarn@4.9.2)",
                "Installing dependencies with yarn install --immutable",
            ],
        ),
    ];
    for (name, needles) in cases {
        cli.run(&["apps", "create", name]).success();
        let source = cli.work_dir().join(name);
        copy_dir(&apps.join(name), &source);
        deploys(&cli, name, &source, needles);
        until_answers(
            server.router_port,
            &format!("{name}.localhost"),
            &format!("Hello from {name} on Node.js "),
        );
        let (_, body) = http_get(server.router_port, &format!("{name}.localhost"), "/").unwrap();
        assert!(body.ends_with("(production)\n"), "{name}: {body}");
        if name == "yarn-web" {
            assert!(body.contains("on Node.js 20."), "{body}");
        }
    }
}

/// Python apps installed by the package manager their lockfile names, on a stack: uv
/// (FastAPI under uvicorn; `requires-python` picks the stack's Python), Poetry and Pipenv
/// (Flask under gunicorn). Each tool is installed once into the build cache; each app
/// answers through the router; a second build of an unchanged lockfile skips the install.
#[test]
fn python_package_managers_install_from_their_lockfiles() {
    if !crate::test_stack::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (server, cli) = on_stack(data.path(), "34600-34649", &[], "uv-fastapi");
    let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps");
    let cases: [(&str, &[&str]); 3] = [
        (
            "uv-fastapi",
            &[
                "(asked for by pyproject.toml: >=3.11)",
                "Installing uv with pip",
                "Installing dependencies with uv sync --locked --no-dev",
            ],
        ),
        (
            "poetry-flask",
            &[
                "Installing poetry with pip",
                "Installing dependencies with poetry install --only main --no-root",
            ],
        ),
        (
            "pipenv-flask",
            &[
                "Installing pipenv with pip",
                "Installing dependencies with pipenv install --deploy",
            ],
        ),
    ];
    for (name, needles) in cases {
        if name != "uv-fastapi" {
            cli.run(&["apps", "create", name]).success();
        }
        let source = cli.work_dir().join(name);
        copy_dir(&apps.join(name), &source);
        deploys(&cli, name, &source, needles);
        until_answers(
            server.router_port,
            &format!("{name}.localhost"),
            &format!("Hello from {name}"),
        );
    }
    // Unchanged lockfile, changed code: the venv comes from the cache.
    let source = cli.work_dir().join("poetry-flask");
    let app_py = std::fs::read_to_string(source.join("app.py")).unwrap();
    std::fs::write(
        source.join("app.py"),
        app_py.replace("Hello from", "Hi again from"),
    )
    .unwrap();
    let log = deploys(&cli, "poetry-flask", &source, &[]);
    assert!(
        log.contains(
            "poetry.lock unchanged: restored .venv from the build cache (poetry install skipped)"
        ),
        "{log}"
    );
    until_answers(
        server.router_port,
        "poetry-flask.localhost",
        "Hi again from poetry-flask",
    );
}

/// app.json on the first deploy, where Heroku reads it: `env` values and generated secrets
/// become config vars, `formation` sets quantities and sizes, `scripts.postdeploy` runs once as
/// a one-off after the release is live, and `healthchecks.web` gates each web instance (wharf
/// asks its `/health` before routing to it). Later deploys leave the config as it is. An app
/// whose app.json requires a var it lacks fails to build, naming it, and a bad key is named.
#[test]
fn app_json_sets_up_the_first_deploy() {
    let server = Server::start_with(&["--port-range", "34650-34699"]);
    let cli = Cli::logged_in(&server);
    let app = "app-json";
    cli.run(&["apps", "create", app]).success();
    let source = cli.work_dir().join(app);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/app-json"),
        &source,
    );
    deploys(
        &cli,
        app,
        &source,
        &[
            "uses: env GREETING, OPTIONAL_FLAG, SECRET_KEY; formation web, worker; scripts.postdeploy; web health check /health",
            "First deploy: config vars from app.json: GREETING, SECRET_KEY",
            "First deploy: formation from app.json: web=2:standard-2x worker=1",
            "app.json's postdeploy script runs once v",
        ],
    );
    let config = cli.run(&["config", "-a", app, "--json"]).success().json();
    assert_eq!(config["GREETING"], "hello from app.json", "{config}");
    assert_eq!(config["SECRET_KEY"].as_str().unwrap().len(), 64, "{config}");
    assert!(config.get("OPTIONAL_FLAG").is_none(), "{config}");

    until_answers(
        server.router_port,
        "app-json.localhost",
        "GREETING=hello from app.json",
    );
    let (_, body) = http_get(server.router_port, "app-json.localhost", "/").unwrap();
    assert!(body.contains("SECRET_KEY=64 chars"), "{body}");
    let checks: u32 = body
        .split("health checks=")
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(checks >= 1, "wharf asked /health before routing: {body}");
    wait_until(Duration::from_secs(60), "2 web and 1 worker up", || {
        let ps = cli.run(&["ps", "--json", "-a", app]).success().json();
        let up = |kind: &str| {
            ps.as_array()
                .unwrap()
                .iter()
                .filter(|d| d["type"] == kind && d["state"] == "up")
                .count()
        };
        match (up("web"), up("worker")) {
            (2, 1) => Ok(()),
            other => Err(format!("{other:?}: {ps}")),
        }
    });
    wait_until(
        Duration::from_secs(60),
        "the postdeploy script's output",
        || {
            let logs = cli.run(&["logs", "-a", app, "-n", "200"]).success().stdout;
            if logs.contains("postdeploy ran with GREETING=hello from app.json")
                && logs.contains("postdeploy script (postdeploy.1) succeeded")
            {
                Ok(())
            } else {
                Err(logs)
            }
        },
    );

    // Later deploys: app.json's env no longer applies; config changes stay.
    cli.run(&["config", "set", "GREETING=changed by hand", "-a", app])
        .success();
    let log = deploys(&cli, app, &source, &[]);
    assert!(!log.contains("First deploy"), "{log}");
    let config = cli.run(&["config", "-a", app, "--json"]).success().json();
    assert_eq!(config["GREETING"], "changed by hand", "{config}");

    // A required var the app lacks stops its first deploy, named with its description.
    cli.run(&["apps", "create", "needs-token"]).success();
    std::fs::write(
        source.join("app.json"),
        r#"{"env": {"API_TOKEN": {"description": "from the vendor's dashboard"}}}"#,
    )
    .unwrap();
    let failed = cli.run(&["deploy", source.to_str().unwrap(), "-a", "needs-token"]);
    let log = failed.transcript();
    assert_ne!(failed.code, Some(0), "{log}");
    assert!(
        log.contains("app.json requires config vars this app doesn't have: API_TOKEN (from the vendor's dashboard)")
            && log.contains("wharf config set API_TOKEN="),
        "{log}"
    );
    cli.run(&["config", "set", "API_TOKEN=abc", "-a", "needs-token"])
        .success();
    let fixed = cli.run(&["deploy", source.to_str().unwrap(), "-a", "needs-token"]);
    assert_eq!(fixed.code, Some(0), "{}", fixed.transcript());

    // A key of the wrong shape is named.
    std::fs::write(
        source.join("app.json"),
        r#"{"formation": {"web": {"quantity": "two"}}}"#,
    )
    .unwrap();
    let bad = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    let log = bad.transcript();
    assert_ne!(bad.code, Some(0), "{log}");
    assert!(log.contains("`formation.web.quantity`"), "{log}");
}
