//! What the user reads when a build fails.

use wharf_build::{BuildError, SandboxMode};

use crate::fixture::Fixture;

#[tokio::test]
async fn no_provider_lists_what_was_looked_for() {
    let f = Fixture::new(SandboxMode::None);
    f.file("README.md", "hello\n");
    let (err, _) = f.build().await.err();
    assert!(matches!(err, BuildError::NoProviderMatched));
    let msg = err.to_string();
    for looked_for in [
        "bin/build",
        "bin/detect + bin/compile",
        "requirements.txt",
        "pyproject.toml",
        "package.json",
        "Cargo.toml",
        "index.html",
        "Procfile",
    ] {
        assert!(msg.contains(looked_for), "{looked_for} missing from: {msg}");
    }
}

#[tokio::test]
async fn invalid_procfile_names_the_line() {
    let f = Fixture::new(SandboxMode::None);
    f.file("index.html", "hi")
        .file("Procfile", "web: ./serve\n\nworker ./work\n");
    let (err, log) = f.build().await.err();
    assert!(matches!(err, BuildError::InvalidProcfile(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the Procfile is invalid: line 3: missing `:` — each line must look like `web: command`"
    );
    assert!(
        log.is_empty(),
        "nothing is built with a broken Procfile: {log}"
    );
}

#[tokio::test]
async fn failing_command_reports_its_step_and_status() {
    let f = Fixture::new(SandboxMode::None);
    f.script(
        "bin/build",
        "#!/bin/sh\necho 'compiling...'\necho 'oops: syntax error' >&2\nexit 3\n",
    );
    let (err, log) = f.build().await.err();
    match &err {
        BuildError::CommandFailed { step, status } => {
            assert_eq!(step, "bin/build");
            assert_eq!(status.code(), Some(3));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "step `bin/build` failed (exit status: 3): its output is above; fix what it reports and build again"
    );
    assert!(log.contains("compiling...\noops: syntax error\n"), "{log}");
}

#[tokio::test]
async fn non_executable_build_script_says_how_to_fix_it() {
    let f = Fixture::new(SandboxMode::None);
    f.file("bin/build", "#!/bin/sh\necho hi\n");
    let (err, _) = f.build().await.err();
    assert_eq!(
        err.to_string(),
        "`bin/build` is not executable: run `chmod +x bin/build` and commit the change"
    );
}

#[tokio::test]
async fn buildpack_that_rejects_the_app_fails_the_build() {
    let f = Fixture::new(SandboxMode::None);
    f.script("bin/detect", "#!/bin/sh\necho 'no Gemfile' \nexit 1\n")
        .script("bin/compile", "#!/bin/sh\nexit 0\n");
    let (err, _) = f.build().await.err();
    match &err {
        BuildError::BuildpackRejected { status } => assert_eq!(status.code(), Some(1)),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("bin/detect exited with exit status: 1"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_package_json_is_reported() {
    let f = Fixture::new(SandboxMode::None);
    f.file("package.json", "{ not json");
    let (err, _) = f.build().await.err();
    assert!(
        err.to_string()
            .starts_with("package.json is invalid: key must be a string at line 1"),
        "{err}"
    );
}
