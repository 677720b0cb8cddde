//! Each provider builds a tiny real app, offline, in every available sandbox mode.

use std::path::PathBuf;

use wharf_build::{SandboxMode, SYSTEM_PATH};

use crate::fixture::{modes, run_in, Fixture};

/// A PEP 517 backend small enough to live in a test: builds a pure-Python wheel of the package
/// `NAME` from `NAME/__init__.py` next to it, with no build requirements (so pip stays offline).
fn backend(name: &str) -> String {
    format!(
        r#"import base64, hashlib, os, zipfile

NAME, VERSION = "{name}", "1.0"
HERE = os.path.dirname(os.path.abspath(__file__))

def _files():
    dist = NAME + "-" + VERSION + ".dist-info/"
    with open(os.path.join(HERE, NAME, "__init__.py")) as f:
        code = f.read()
    return {{
        NAME + "/__init__.py": code,
        dist + "METADATA": "Metadata-Version: 2.1\nName: " + NAME + "\nVersion: " + VERSION + "\n",
        dist + "WHEEL": "Wheel-Version: 1.0\nGenerator: wharf-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        dist + "entry_points.txt": "[console_scripts]\n" + NAME + "-hello = " + NAME + ":hello\n",
    }}

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel = NAME + "-" + VERSION + "-py3-none-any.whl"
    record = NAME + "-" + VERSION + ".dist-info/RECORD"
    lines = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for path, text in _files().items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(path + ",sha256=" + digest + "," + str(len(data)))
            z.writestr(path, data)
        lines.append(record + ",,")
        z.writestr(record, "\n".join(lines) + "\n")
    return wheel
"#
    )
}

fn pyproject(name: &str) -> String {
    format!(
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n\
         [project]\nname = \"{name}\"\nversion = \"1.0\"\n"
    )
}

/// A local package at `dir` whose `VALUE` is `value` and whose console script prints it.
fn python_package(f: &Fixture, dir: &str, name: &str, value: u32) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    f.file(&format!("{prefix}pyproject.toml"), &pyproject(name))
        .file(&format!("{prefix}backend.py"), &backend(name))
        .file(
            &format!("{prefix}{name}/__init__.py"),
            &format!("VALUE = {value}\n\ndef hello():\n    print('hello', VALUE)\n"),
        );
}

#[tokio::test]
async fn python_requirements_install_a_local_package_into_a_portable_venv() {
    for mode in modes() {
        let f = Fixture::new(mode);
        python_package(&f, "vendor/mypkg", "mypkg", 42);
        f.file("requirements.txt", "./vendor/mypkg\n")
            .file("main.py", "import mypkg\nprint(mypkg.VALUE)\n");

        let (out, log) = f.build().await.ok();
        assert_eq!(out.provider, "python");
        assert_eq!(out.dependency_paths, [PathBuf::from(".venv")]);
        assert_eq!(
            out.env["PATH"],
            format!("/app/.venv/bin:{SYSTEM_PATH}"),
            "{mode}"
        );
        assert_eq!(out.env["PYTHONUNBUFFERED"], "1");
        assert!(out.process_types.is_empty(), "{:?}", out.process_types);
        assert!(log.contains("-----> Python app detected\n"), "{log}");
        assert!(
            log.contains("-----> Installing requirements with pip\n"),
            "{log}"
        );
        assert!(log.contains("Successfully installed mypkg-1.0"), "{log}");

        // The venv works from the output dir, not only where it was built.
        let value = run_in(
            &out.app_dir,
            ".venv/bin",
            ".venv/bin/python",
            &["-c", "import mypkg; print(mypkg.VALUE)"],
        );
        assert_eq!(value.trim(), "42");
        let pip = std::fs::read_to_string(out.app_dir.join(".venv/bin/mypkg-hello")).unwrap();
        assert!(pip.starts_with("#!/usr/bin/env python3\n"), "{pip}");
        assert_eq!(
            run_in(&out.app_dir, ".venv/bin", "mypkg-hello", &[]).trim(),
            "hello 42"
        );
        assert!(f.cache.join("python/venv/bin/python").exists());
        assert!(!out.app_dir.join("pip").exists() && !out.app_dir.join("python").exists());

        // Unchanged requirements: the venv comes from the cache and pip does not run.
        let (again, log) = f.build().await.ok();
        assert!(
            log.contains("requirements.txt unchanged: restored .venv from the build cache (pip install skipped)"),
            "{log}"
        );
        assert!(!log.contains("Installing requirements with pip"), "{log}");
        assert_ne!(again.app_dir, out.app_dir);
        let value = run_in(
            &again.app_dir,
            ".venv/bin",
            "python3",
            &["-c", "import mypkg; print(mypkg.VALUE)"],
        );
        assert_eq!(value.trim(), "42");

        // Changed requirements: pip runs again.
        f.file("requirements.txt", "# pinned\n./vendor/mypkg\n");
        let (_, log) = f.build().await.ok();
        assert!(
            log.contains("-----> Installing requirements with pip\n"),
            "{log}"
        );
    }
}

#[tokio::test]
async fn python_pyproject_installs_the_app_and_reinstalls_changed_code_from_cache() {
    let f = Fixture::new(SandboxMode::None);
    python_package(&f, "", "myapp", 1);
    f.file("Procfile", "web: myapp-hello\n");

    let (out, log) = f.build().await.ok();
    assert!(
        log.contains("Installing the app with pip (pyproject.toml)"),
        "{log}"
    );
    assert_eq!(out.process_types["web"], "myapp-hello");
    assert_eq!(
        run_in(&out.app_dir, ".venv/bin", "myapp-hello", &[]).trim(),
        "hello 1"
    );

    // Same pyproject.toml, new code: dependencies come from the cache, the app is reinstalled.
    f.file(
        "myapp/__init__.py",
        "VALUE = 2\n\ndef hello():\n    print('hello', VALUE)\n",
    );
    let (out, log) = f.build().await.ok();
    assert!(
        log.contains(
            "pyproject.toml unchanged: restored .venv from the build cache (pip install skipped)"
        ),
        "{log}"
    );
    assert!(
        log.contains("Installing the app's package with pip (--no-deps)"),
        "{log}"
    );
    // The console script imports the installed package, not the source next to it.
    assert_eq!(
        run_in(&out.app_dir, ".venv/bin", "myapp-hello", &[]).trim(),
        "hello 2"
    );
}

fn node_app(f: &Fixture) {
    f.file("vendor/dep/package.json", r#"{"name":"dep","version":"1.0.0","main":"index.js"}"#)
        .file("vendor/dep/index.js", "module.exports = 'dep works';\n")
        .file(
            "package.json",
            r#"{"name":"napp","version":"1.0.0","dependencies":{"dep":"file:vendor/dep"},"scripts":{"start":"node server.js"}}"#,
        )
        .file("server.js", "console.log(require('dep'));\n");
}

#[tokio::test]
async fn node_installs_file_dependency_and_restores_it_from_cache() {
    for mode in modes() {
        let f = Fixture::new(mode);
        node_app(&f);

        let (out, log) = f.build().await.ok();
        assert_eq!(out.provider, "node");
        assert!(log.contains("-----> Node.js app detected\n"), "{log}");
        assert!(
            log.contains("-----> Installing dependencies with npm install --include=dev\n"),
            "{log}"
        );
        assert_eq!(out.dependency_paths, [PathBuf::from("node_modules")]);
        assert_eq!(out.runtime_paths, [PathBuf::from(".wharf")]);
        assert!(
            out.runtime
                .as_deref()
                .is_some_and(|r| r.starts_with("node ")),
            "{:?}",
            out.runtime
        );
        assert_eq!(out.process_types["web"], "npm start");
        assert_eq!(out.env["NODE_ENV"], "production");
        assert_eq!(
            out.env["PATH"],
            format!("/app/.wharf/node/bin:/app/node_modules/.bin:{SYSTEM_PATH}")
        );
        let node = out.app_dir.join(".wharf/node/bin/node");
        let node = node.to_str().unwrap();
        let got = run_in(
            &out.app_dir,
            ".wharf/node/bin",
            node,
            &["-e", "console.log(require('dep'))"],
        );
        assert_eq!(got.trim(), "dep works", "{mode}");
        assert!(f.cache.join("node/npm").is_dir());

        let (again, log) = f.build().await.ok();
        assert!(
            log.contains("package.json unchanged: restored the dependencies from the build cache (install skipped)"),
            "{log}"
        );
        let node = again.app_dir.join(".wharf/node/bin/node");
        let got = run_in(
            &again.app_dir,
            ".wharf/node/bin",
            node.to_str().unwrap(),
            &["server.js"],
        );
        assert_eq!(got.trim(), "dep works");
    }
}

#[tokio::test]
async fn node_with_lockfile_uses_npm_ci_and_defaults_to_node_main() {
    let f = Fixture::new(SandboxMode::None);
    f.file("vendor/dep/package.json", r#"{"name":"dep","version":"1.0.0","main":"index.js"}"#)
        .file("vendor/dep/index.js", "module.exports = 'dep works';\n")
        .file(
            "package.json",
            r#"{"name":"napp","version":"1.0.0","main":"app.js","dependencies":{"dep":"file:vendor/dep"}}"#,
        )
        .file("app.js", "console.log(require('dep'));\n");
    let home = f.tmp.path().join("npm-home");
    let lock = std::process::Command::new("npm")
        .args(["install", "--package-lock-only", "--no-audit", "--no-fund"])
        .current_dir(&f.source)
        .env("HOME", &home)
        .env("npm_config_cache", home.join("cache"))
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );

    let (out, log) = f.build().await.ok();
    assert!(
        log.contains("-----> Installing dependencies with npm ci --include=dev\n"),
        "{log}"
    );
    assert_eq!(out.process_types["web"], "node app.js");
    let node = out.app_dir.join(".wharf/node/bin/node");
    let got = run_in(
        &out.app_dir,
        ".wharf/node/bin",
        node.to_str().unwrap(),
        &["app.js"],
    );
    assert_eq!(got.trim(), "dep works");

    let (_, log) = f.build().await.ok();
    assert!(
        log.contains("package-lock.json unchanged: restored the dependencies"),
        "{log}"
    );
}

#[tokio::test]
async fn rust_builds_the_binary_into_the_app_tree() {
    for mode in modes() {
        let f = Fixture::new(mode);
        f.file(
            "Cargo.toml",
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .file(
            "src/main.rs",
            "fn main() { println!(\"hello from wharf\"); }\n",
        );

        let (out, log) = f.build().await.ok();
        assert_eq!(out.provider, "rust");
        assert!(
            log.contains("-----> Building with cargo build --release\n"),
            "{log}"
        );
        assert!(log.contains("installed .wharf/rust-bin/hello"), "{log}");
        assert_eq!(out.process_types["web"], "hello");
        assert!(out.dependency_paths.is_empty());
        assert_eq!(
            out.env["PATH"],
            format!("/app/.wharf/rust-bin:{SYSTEM_PATH}")
        );
        let got = run_in(&out.app_dir, ".wharf/rust-bin", "hello", &[]);
        assert_eq!(got.trim(), "hello from wharf", "{mode}");
        assert!(
            !out.app_dir.join("target").exists(),
            "the target dir belongs in the cache"
        );
        assert!(f.cache.join("rust/target/release/hello").is_file());
    }
}

#[tokio::test]
async fn rust_with_lockfile_builds_locked() {
    let f = Fixture::new(SandboxMode::None);
    f.file("Cargo.toml", "[package]\nname = \"two\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"a\"\npath = \"src/a.rs\"\n\n[[bin]]\nname = \"b\"\npath = \"src/b.rs\"\n")
        .file("Cargo.lock", "version = 3\n\n[[package]]\nname = \"two\"\nversion = \"0.1.0\"\n")
        .file("src/a.rs", "fn main() { println!(\"a\"); }\n")
        .file("src/b.rs", "fn main() { println!(\"b\"); }\n")
        .file("Procfile", "web: a\nworker: b\n");
    let (out, log) = f.build().await.ok();
    assert!(log.contains("cargo build --release --locked"), "{log}");
    assert!(log.contains("several binaries (a, b)"), "{log}");
    assert_eq!(out.process_types.len(), 2);
    assert_eq!(
        run_in(&out.app_dir, ".wharf/rust-bin", "b", &[]).trim(),
        "b"
    );
}

#[tokio::test]
async fn static_site_is_served_by_wharf() {
    let f = Fixture::new(SandboxMode::None);
    f.file("index.html", "<h1>hi</h1>\n");
    let (out, log) = f.build().await.ok();
    assert_eq!(out.provider, "static");
    assert_eq!(out.process_types["web"], "wharf serve-static --port $PORT");
    assert!(out.dependency_paths.is_empty());
    assert_eq!(
        std::fs::read_to_string(out.app_dir.join("index.html")).unwrap(),
        "<h1>hi</h1>\n"
    );
    assert!(log.contains("Default types for static -> web"), "{log}");
}

#[tokio::test]
async fn procfile_overrides_the_default_web_and_adds_types() {
    let f = Fixture::new(SandboxMode::None);
    f.file("index.html", "<h1>hi</h1>\n").file(
        "Procfile",
        "# custom\nweb: ./serve --fast\nrelease: ./migrate\n",
    );
    let (out, log) = f.build().await.ok();
    assert_eq!(out.process_types.len(), 2);
    assert_eq!(out.process_types["web"], "./serve --fast");
    assert_eq!(out.process_types["release"], "./migrate");
    assert!(
        log.contains("Procfile declares types -> web, release"),
        "{log}"
    );
    assert!(!log.contains("Default types"), "{log}");
}

#[tokio::test]
async fn procfile_only_app_is_copied_as_is() {
    let f = Fixture::new(SandboxMode::None);
    f.file("Procfile", "worker: ./run.sh\n")
        .script("run.sh", "#!/bin/sh\necho hi\n");
    let (out, _) = f.build().await.ok();
    assert_eq!(out.provider, "procfile");
    assert_eq!(out.process_types.len(), 1);
    assert_eq!(out.process_types["worker"], "./run.sh");
    assert_eq!(run_in(&out.app_dir, "", "./run.sh", &[]).trim(), "hi");
}

#[tokio::test]
async fn bin_build_runs_in_the_app_tree_with_its_cache() {
    for mode in modes() {
        let f = Fixture::new(mode);
        f.script(
            "bin/build",
            "#!/bin/sh\nset -e\necho \"building in $(pwd)\"\necho built > built.txt\n\
             echo \"runs: $(cat \"$CACHE_DIR/count\" 2>/dev/null)\"\necho again >> \"$CACHE_DIR/count\"\n",
        )
        .file("Procfile", "web: ./server\n");
        let (out, log) = f.build().await.ok();
        assert_eq!(out.provider, "bin-build");
        assert_eq!(out.process_types["web"], "./server");
        assert_eq!(
            std::fs::read_to_string(out.app_dir.join("built.txt")).unwrap(),
            "built\n"
        );
        let expected_dir = match mode {
            SandboxMode::Namespaces => "/app".to_owned(),
            _ => out.app_dir.display().to_string(),
        };
        assert!(
            log.contains(&format!("building in {expected_dir}\n")),
            "{log}"
        );
        assert!(log.contains("runs: \n"), "{log}");

        let (_, log) = f.build().await.ok();
        assert!(
            log.contains("runs: again\n"),
            "the cache persists between builds: {log}"
        );
        assert!(f.cache.join("bin-build/count").is_file());
    }
}

#[tokio::test]
async fn buildpack_compiles_and_its_release_fills_missing_types() {
    for mode in modes() {
        let f = Fixture::new(mode);
        f.script("bin/detect", "#!/bin/sh\necho Testpack\n")
            .script(
                "bin/compile",
                "#!/bin/sh\nset -e\necho \"-----> compiling\"\necho compiled > \"$1/compiled.txt\"\n\
                 touch \"$2/cached\"\nls -A \"$3\" | wc -l | sed 's/^/env files: /'\n",
            )
            .script(
                "bin/release",
                "#!/bin/sh\ncat <<'YAML'\n---\naddons: []\ndefault_process_types:\n  web: ./web --port $PORT\n  worker: \"./work\"\nYAML\n",
            )
            .file("Procfile", "worker: ./better-worker\n");
        let (out, log) = f.build().await.ok();
        assert_eq!(out.provider, "buildpack");
        assert!(log.contains("-----> Testpack app detected\n"), "{log}");
        assert!(log.contains("-----> compiling\n"), "{log}");
        assert!(log.contains("env files: 0\n"), "{log}");
        assert_eq!(out.process_types["web"], "./web --port $PORT");
        assert_eq!(out.process_types["worker"], "./better-worker");
        assert!(out.app_dir.join("compiled.txt").is_file());
        assert!(
            out.app_dir.join("bin/compile").is_file(),
            "the tree is kept as compiled"
        );
        assert!(f.cache.join("buildpack/cached").is_file());
    }
}

#[tokio::test]
#[ignore = "needs network access to pypi.org; run with --ignored"]
async fn python_installs_from_pypi() {
    for mode in modes() {
        let f = Fixture::new(mode);
        f.file("requirements.txt", "six==1.16.0\n");
        let (out, _) = f.build().await.ok();
        let got = run_in(
            &out.app_dir,
            ".venv/bin",
            "python3",
            &["-c", "import six; print(six.__version__)"],
        );
        assert_eq!(got.trim(), "1.16.0");
    }
}
