//! `wharf stacks`: the stacks as a table and as JSON, and a clear refusal to make a stack
//! wharf doesn't make.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{http_get, run_to_end, wait_until, Cli, Server, WHARF};

#[test]
fn stacks_are_listed_and_unknown_ones_refused() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let table = cli.run(&["stacks"]).success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines[0], "=== Stacks", "{table:#?}");
    assert!(lines[1].starts_with("  NAME"), "{table:#?}");
    assert!(lines[2].starts_with("* wharf-1 "), "{table:#?}");
    assert!(
        lines[4].starts_with("  wharf-trixie") && lines[4].contains("absent"),
        "{table:#?}"
    );
    let json = cli.run(&["stacks", "--json"]).success().json();
    assert_eq!(json[2]["name"], "wharf-trixie");
    assert_eq!(json[2]["suite"], "trixie");
    let info = cli.run(&["stacks", "info", "wharf-bookworm"]).success();
    assert!(info.stdout.contains("Run image:"), "{info:#?}");
    assert!(info.stdout.contains("not made"), "{info:#?}");

    let refused = cli.run(&["stacks", "build", "heroku-24"]).failure();
    let error = refused.error();
    assert!(
        error.contains("heroku-24") && error.contains("wharf-trixie"),
        "{error}"
    );
}

/// An app set to a stack builds in the stack's build image and runs in its run image: the
/// release image is whole (the run image's layers, then the app's, with an Entrypoint that
/// starts a process type by name as a non-root user), it serves through the router, a one-off
/// sees the stack's Debian and not the host's, and `podman` runs the image copied out of
/// wharf's store with `skopeo`.
#[test]
fn an_app_on_a_stack_builds_and_runs_in_its_images() {
    if !crate::test_stack::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("wharf");
    crate::test_stack::install(&data_dir);
    let server = Server::start_in_with(&data_dir, &["--port-range", "34300-34349"]);
    let cli = Cli::logged_in(&server);
    let app = "on-stack";
    cli.run(&["apps", "create", app]).success();

    // Only a stack there is can be set.
    let unknown = cli.run(&["stack:set", "nope", "-a", app]).failure().error();
    assert!(
        unknown.contains("unknown stack `nope`") && unknown.contains(crate::test_stack::NAME),
        "{unknown}"
    );
    let set = cli
        .run(&["stack:set", crate::test_stack::NAME, "-a", app])
        .success();
    assert!(set.stdout.contains(crate::test_stack::NAME), "{set:#?}");
    let info = cli
        .run(&["apps", "info", "-a", app, "--json"])
        .success()
        .json();
    assert_eq!(info["build_stack"]["name"], crate::test_stack::NAME);

    // python-web, with a worker that says where it runs.
    let source = cli.work_dir().join("python-web");
    copy_dir(&example("python-web"), &source);
    let procfile = std::fs::read_to_string(source.join("Procfile")).unwrap();
    std::fs::write(
        source.join("Procfile"),
        format!(
            "{procfile}worker: echo \"worker $DYNO on Debian $(cat /etc/debian_version) as $(id -u)\"\n"
        ),
    )
    .unwrap();
    let deployed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    let log = deployed.transcript();
    assert!(
        log.contains(&format!("Building on stack {}", crate::test_stack::NAME)),
        "{log}"
    );
    until_answers(
        server.router_port,
        &format!("{app}.localhost"),
        "Hello from python-web!",
    );

    // A one-off runs in the run image: trixie (13), not the host's Debian; no compilers.
    let one_off = cli
        .run(&[
            "run",
            "-a",
            app,
            "--",
            "cat /etc/debian_version; command -v gcc || echo no-gcc; echo home=$HOME; \
             echo x > $HOME/written && echo home-writable",
        ])
        .success();
    assert!(one_off.stdout.starts_with("13."), "{one_off:#?}");
    assert!(one_off.stdout.contains("no-gcc"), "{one_off:#?}");
    assert!(one_off.stdout.contains("home=/home/app"), "{one_off:#?}");
    assert!(one_off.stdout.contains("home-writable"), "{one_off:#?}");

    // The image: the run image below, then the app's layers; the launcher on top.
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    let digest = releases[0]["slug"]["id"].as_str().unwrap().to_owned();
    let deployed_version = releases[0]["version"].as_u64().unwrap();
    assert_eq!(releases[0]["portable"], true, "{releases}");
    assert_eq!(releases[0]["stack"]["name"], crate::test_stack::NAME);
    let shown = cli.run(&["releases", "info", "-a", app]).success();
    assert!(shown.stdout.contains("; portable)"), "{shown:#?}");
    let store = wharf_image::ImageStore::open(&data_dir.join("images")).unwrap();
    let image = store.image(&digest.parse().unwrap()).unwrap();
    let run_image = store
        .resolve(&wharf_stack::Role::Run.tag(crate::test_stack::NAME))
        .unwrap();
    let below = store.image(&run_image).unwrap().layers();
    assert_eq!(image.layers()[..below.len()], below[..]);
    assert!(image.layers().len() >= below.len() + 2, "{image:?}");
    assert_eq!(
        image.entrypoint(),
        Some(vec![wharf_stack::launch::LAUNCHER.to_owned()])
    );
    assert_eq!(image.cmd(), Some(vec!["web".to_owned()]));
    assert_eq!(image.user().as_deref(), Some("1000:1000"));
    let labels = image.labels();
    assert_eq!(labels[wharf_stack::LABEL_NAME], crate::test_stack::NAME);
    assert_eq!(labels[wharf_stack::LABEL_RUN_IMAGE], run_image.to_string());
    assert_eq!(releases[0]["run_image"], run_image.to_string());

    let builds = cli.run(&["builds", "-a", app, "--json"]).success().json();
    let tag = format!("build-{}", builds[0]["id"].as_str().unwrap());
    podman_runs_the_image(&data_dir.join("images"), &tag);

    // Rebase: a newer run image (the same plus one file, as a security update would be)...
    let update = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(update.path().join("etc")).unwrap();
    std::fs::write(update.path().join("etc/wharf-rebased"), "yes\n").unwrap();
    let old_run = store.image(&run_image).unwrap();
    let newer = store
        .build_image(&wharf_image::ImageSpec {
            base: below.clone(),
            layers: vec![wharf_image::LayerSpec {
                root: update.path().to_path_buf(),
                prefix: String::new(),
                select: wharf_image::Select::All,
            }],
            working_dir: "/".to_owned(),
            env: old_run.env(),
            labels: old_run.labels(),
            ..Default::default()
        })
        .unwrap();
    store
        .tag(
            &wharf_stack::Role::Run.tag(crate::test_stack::NAME),
            &newer.manifest,
        )
        .unwrap();
    // ...becomes the app's base in a new release, its own layers kept byte for byte.
    let rebased = cli.run(&["stacks:rebase", "-a", app]).success();
    let next = format!("v{}", deployed_version + 1);
    assert!(
        rebased
            .stdout
            .starts_with(&format!("Rebased {app}: {next} ")),
        "{rebased:#?}"
    );
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    let v2 = store
        .image(&releases[0]["slug"]["id"].as_str().unwrap().parse().unwrap())
        .unwrap();
    let digests = |layers: &[wharf_image::LayerInfo]| -> Vec<String> {
        layers.iter().map(|l| l.digest.to_string()).collect()
    };
    let (v2_layers, run_layers) = (v2.layers(), newer.layers.len());
    assert_eq!(digests(&v2_layers[..run_layers]), digests(&newer.layers));
    assert_eq!(
        digests(&v2_layers[run_layers..]),
        digests(&image.layers()[below.len()..])
    );
    assert_eq!(
        v2.labels()[wharf_stack::LABEL_RUN_IMAGE],
        newer.manifest.to_string()
    );
    until_answers(
        server.router_port,
        &format!("{app}.localhost"),
        &format!("release {next}"),
    );
    let sees = cli
        .run(&["run", "-a", app, "--", "cat /etc/wharf-rebased"])
        .success();
    assert_eq!(sees.stdout, "yes\n", "{sees:#?}");
    // Once is enough; --all says who was skipped and why.
    let again = cli.run(&["stacks:rebase", "-a", app]).failure().error();
    assert!(again.contains("newest run image"), "{again}");
    let all = cli.run(&["stacks", "rebase", "--all"]).success();
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with(app) && l.contains("skipped")),
        "{all:#?}"
    );
}

/// `skopeo copy` of the image out of wharf's store, then `podman run` of it: web serves on the
/// `PORT` it is given, and `IMAGE worker` runs the worker as the image's non-root user.
fn podman_runs_the_image(store: &std::path::Path, tag: &str) {
    let Some(podman) = Podman::new() else {
        return;
    };
    let layout = podman.root().join("layout");
    let copied = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:{tag}", store.display()))
        .arg(format!("oci:{}:app", layout.display()))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{copied:?}");
    let image = format!("oci:{}:app", layout.display());
    let worker = podman
        .command(&["run", "--rm", "--network", "host", &image, "worker"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&worker.stdout);
    assert!(worker.status.success(), "{worker:?}");
    assert!(said.starts_with("worker worker.1 on Debian 13."), "{said}");
    assert!(said.trim_end().ends_with("as 1000"), "{said}");

    let port = free_port();
    podman.start(&["--network", "host", "-e", &format!("PORT={port}"), &image]);
    until_answers(port, "localhost", "Hello from python-web!");
}

/// podman (runc, no daemon) with a storage of its own, so tests leave the host's untouched and
/// run at once: removed when dropped, with every container [`Podman::start`] started.
pub(crate) struct Podman {
    root: std::path::PathBuf,
    started: std::cell::RefCell<Vec<String>>,
}

impl Podman {
    /// `None`, after a note, where podman isn't installed or this isn't root (outside CI).
    pub(crate) fn new() -> Option<Podman> {
        if !Path::new("/usr/bin/podman").exists() || !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none() || !nix::unistd::geteuid().is_root(),
                "podman is needed (scripts/setup installs it)"
            );
            eprintln!("note: podman is not installed or not root; skipped running the image");
            return None;
        }
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // podman wants lowercase paths.
        let root = std::env::temp_dir().join(format!("wharf-podman-{}-{made}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\nevents_logger = \"none\"\n",
        )
        .unwrap();
        Some(Podman {
            root,
            started: Default::default(),
        })
    }

    /// Scratch that goes with the storage.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `podman ARGS` on this storage.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.root.join("containers.conf"))
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
            // Plain copies: overlay mounts may not nest where the tests run (in a container).
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    }

    /// `podman run -d --rm ARGS` under a name of its own, removed with the storage; the name.
    pub(crate) fn start(&self, args: &[&str]) -> String {
        let name = format!(
            "wharf-test-{}-{}",
            std::process::id(),
            self.started.borrow().len()
        );
        let started = self
            .command(&["run", "-d", "--rm", "--name", &name])
            .args(args)
            .output()
            .unwrap();
        assert!(started.status.success(), "{started:?}");
        self.started.borrow_mut().push(name.clone());
        name
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in self.started.borrow().iter() {
            let _ = self.command(&["rm", "-f", "-t", "0", name]).output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Waits (up to two minutes) until `GET /` of `host` on `port` answers 200 with `needle`.
pub(crate) fn until_answers(port: u16, host: &str, needle: &str) {
    wait_until(
        Duration::from_secs(120),
        &format!("{host} to answer with `{needle}`"),
        || match http_get(port, host, "/")? {
            (200, body) if body.contains(needle) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// `wharf stacks import`: a stack made elsewhere comes in from an OCI layout and a Docker
/// archive (through skopeo, on the server), is listed as ready with the layout's digest, and
/// apps may be set to it; wharf's own names and unknown transports are refused.
#[test]
fn a_stack_made_elsewhere_is_imported() {
    if !Path::new("/usr/bin/skopeo").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo is needed (scripts/setup installs it)"
        );
        eprintln!("note: skopeo is not installed; skipped");
        return;
    }
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    // An image made by another tool: a layout with a run and a build image of two layers.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let store = wharf_image::ImageStore::open(&layout).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/os-release"), "ID=elsewhere\n").unwrap();
    let spec = |extra: &str| wharf_image::ImageSpec {
        layers: vec![wharf_image::LayerSpec {
            root: tree.clone(),
            prefix: extra.to_owned(),
            select: wharf_image::Select::All,
        }],
        working_dir: "/".to_owned(),
        ..Default::default()
    };
    let run = store.build_image(&spec("")).unwrap();
    let build = store.build_image(&spec("opt")).unwrap();
    store.tag("run", &run.manifest).unwrap();
    store.tag("build", &build.manifest).unwrap();
    let archive = dir.path().join("build.tar");
    let exported = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:build", layout.display()))
        .arg(format!(
            "docker-archive:{}:elsewhere:build",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");

    let imported = cli
        .run(&[
            "stacks",
            "import",
            "elsewhere",
            "--run",
            &format!("oci:{}:run", layout.display()),
            "--build",
            &format!("docker-archive:{}", archive.display()),
            "--json",
        ])
        .success();
    let stack = imported.json();
    assert_eq!(stack["status"], "ready", "{imported:#?}");
    assert_eq!(stack["run_image"]["digest"], run.manifest.to_string());
    assert!(stack["build_image"]["digest"].is_string(), "{stack}");
    assert!(
        imported.stderr.contains("Copying the run image"),
        "{imported:#?}"
    );
    cli.run(&["apps", "create", "elsewhere-app"]).success();
    cli.run(&["stack:set", "elsewhere", "-a", "elsewhere-app"])
        .success();

    // Layers compressed with zstd (as registries serve more and more) come in recompressed
    // with gzip: the same files, under new layer digests.
    let zstd = dir.path().join("zstd");
    let recompressed = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-compress",
            "--dest-compress-format",
            "zstd",
        ])
        .arg(format!("oci:{}:run", layout.display()))
        .arg(format!("oci:{}:run", zstd.display()))
        .output()
        .unwrap();
    assert!(recompressed.status.success(), "{recompressed:?}");
    let imported = cli
        .run(&[
            "stacks",
            "import",
            "elsewhere-zstd",
            "--run",
            &format!("oci:{}:run", zstd.display()),
            "--build",
            &format!("oci:{}:build", layout.display()),
            "--json",
        ])
        .success();
    assert!(
        imported
            .stderr
            .contains("layers are application/vnd.oci.image.layer.v1.tar+zstd; recompressing"),
        "{imported:#?}"
    );
    let stack = imported.json();
    assert_eq!(stack["status"], "ready", "{imported:#?}");
    let images = wharf_image::ImageStore::open(&server.data_dir.join("images")).unwrap();
    let run_image = images
        .image(&wharf_image::Digest::parse(stack["run_image"]["digest"].as_str().unwrap()).unwrap())
        .unwrap();
    assert!(run_image
        .manifest
        .layers()
        .iter()
        .all(|l| l.media_type().to_string() == wharf_image::LAYER_MEDIA_TYPE));
    let root = tempfile::tempdir().unwrap();
    images
        .extract(&run_image.manifest_digest, &root.path().join("x"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("x/etc/os-release")).unwrap(),
        "ID=elsewhere\n"
    );

    for (name, run, expected) in [
        ("wharf-trixie", "oci:/x", "one of wharf's own stacks"),
        (
            "other",
            "http://example.com/x",
            "not an image wharf can import",
        ),
        ("Bad Name", "oci:/x", "can't name a stack"),
    ] {
        let refused = cli
            .run(&["stacks", "import", name, "--run", run, "--build", run])
            .failure()
            .error();
        assert!(refused.contains(expected), "{name} {run}: {refused}");
    }
}

/// A server whose default stack is one of wharf's makes it the first time a build needs it,
/// with its progress in that build's output, and keeps it: the next app's build starts at
/// once. A default stack that doesn't exist stops the server at start.
#[test]
fn a_fresh_server_makes_its_default_stack_on_first_use() {
    if !crate::test_stack::available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut refused = Command::new(WHARF.as_str());
    refused
        .arg("server")
        .arg("--data-dir")
        .arg(data.path().join("refused"))
        .args(["--api-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0"])
        .args(["--stack", "nope"]);
    let refused = run_to_end(refused, &["server"], None, Duration::from_secs(60));
    assert_ne!(refused.code, Some(0), "{refused:#?}");
    assert!(
        refused.stderr.contains("WHARF_STACK is `nope`"),
        "{refused:#?}"
    );

    // `auto`, the default (named here only so the harness leaves out its test stack): with
    // bubblewrap and mmdebstrap, new apps build on wharf-trixie.
    let server = Server::start_with(&["--stack", "auto", "--port-range", "34350-34399"]);
    assert!(
        server
            .startup
            .contains("Stack: wharf-trixie (images that run anywhere), made from Debian packages"),
        "{}",
        server.startup
    );
    let cli = Cli::logged_in(&server);
    for (n, app) in ["first", "second"].into_iter().enumerate() {
        cli.run(&["apps", "create", app]).success();
        let info = cli
            .run(&["apps", "info", "-a", app, "--json"])
            .success()
            .json();
        assert_eq!(info["build_stack"]["name"], "wharf-trixie");
        // The first deploy downloads and unpacks Debian twice (run and build images).
        let source = example("python-web");
        let args = ["deploy", source.to_str().unwrap(), "-a", app];
        let mut command = cli.command(WHARF.as_str());
        command.args(args);
        let deployed = run_to_end(command, &args, None, Duration::from_secs(15 * 60));
        assert_eq!(deployed.code, Some(0), "{deployed:#?}");
        let log = deployed.transcript();
        let made = log.contains("Making stack wharf-trixie (first use");
        assert_eq!(made, n == 0, "{log}");
        until_answers(
            server.router_port,
            &format!("{app}.localhost"),
            "Hello from python-web!",
        );
    }
    let stack = cli
        .run(&["stacks", "info", "wharf-trixie", "--json"])
        .success()
        .json();
    assert_eq!(stack["status"], "ready", "{stack}");
    let one_off = cli
        .run(&["run", "-a", "second", "--", "cat /etc/debian_version"])
        .success();
    assert!(one_off.stdout.starts_with("13."), "{one_off:#?}");
}
