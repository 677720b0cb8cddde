//! Finding the language toolchains (python3, cargo): in the build image when the app
//! builds on a stack, else on the host.
//!
//! Builds get the system `PATH` only. A toolchain installed elsewhere (rustup in `~/.cargo/bin`,
//! pyenv, nvm) is found through the server's own `PATH`, resolved to the directory holding the
//! real binaries (not a rustup or pyenv shim, which would need the server's HOME), and that one
//! directory is put in front of the build's `PATH`. Nothing else of the server's environment is
//! passed on.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::BuildError;
use crate::sandbox::{find_program, SYSTEM_PATH};
use crate::tree::is_executable;

/// How long a toolchain probe (`rustc --print sysroot`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

fn server_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

/// Runs `program args` in the server's environment (it is the platform's toolchain, not the
/// app's code) from `/`, so that no app file such as `rust-toolchain.toml` affects it.
async fn probe(program: &Path, args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PROBE_TIMEOUT, run).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}

/// In a build image (`root`, a stack's root filesystem), its own tools are the only ones: each
/// of `tools` must be on its system `PATH`, and nothing is put in front of it.
fn in_image(root: &Path, tools: &[&'static str]) -> Result<Vec<PathBuf>, BuildError> {
    for tool in tools {
        let found = SYSTEM_PATH
            .split(':')
            .any(|dir| is_executable(&root.join(dir.trim_start_matches('/')).join(tool)));
        if !found {
            return Err(BuildError::NotInStack { tool });
        }
    }
    Ok(Vec::new())
}

/// Directories to put in front of `PATH` so that `python3` is a real interpreter.
pub(crate) async fn python(root: Option<&Path>) -> Result<Vec<PathBuf>, BuildError> {
    if let Some(root) = root {
        return in_image(root, &["python3"]);
    }
    if find_program("python3", SYSTEM_PATH).is_some() {
        return Ok(Vec::new());
    }
    let missing = BuildError::ToolMissing {
        tool: "python3",
        hint: "install Python 3 with the venv module on the wharf host \
               (`apt-get install python3 python3-venv`)",
    };
    let Some(found) = find_program("python3", &server_path()) else {
        return Err(missing);
    };
    // pyenv and similar put a shim on PATH; ask the interpreter where it really is.
    let exe = probe(&found, &["-c", "import sys; print(sys.executable)"]).await;
    match exe.as_deref().map(Path::new).and_then(Path::parent) {
        Some(dir) => Ok(vec![dir.to_path_buf()]),
        None => Err(missing),
    }
}

/// Directories to put in front of `PATH` so that `cargo` and `rustc` are real binaries.
pub(crate) async fn rust(root: Option<&Path>) -> Result<Vec<PathBuf>, BuildError> {
    if let Some(root) = root {
        return in_image(root, &["cargo", "rustc"]);
    }
    let path = server_path();
    let rustc = find_program("rustc", SYSTEM_PATH).or_else(|| find_program("rustc", &path));
    if let Some(rustc) = rustc {
        // rustup's proxies need the server's HOME; the toolchain's own bin directory does not.
        if let Some(sysroot) = probe(&rustc, &["--print", "sysroot"]).await {
            let bin = Path::new(&sysroot).join("bin");
            if is_executable(&bin.join("cargo")) && is_executable(&bin.join("rustc")) {
                return Ok(vec![bin]);
            }
        }
    }
    if find_program("cargo", SYSTEM_PATH).is_some() {
        return Ok(Vec::new());
    }
    match find_program("cargo", &path).and_then(|p| p.parent().map(Path::to_path_buf)) {
        Some(dir) => Ok(vec![dir]),
        None => Err(BuildError::ToolMissing {
            tool: "cargo",
            hint: "install Rust on the wharf host (rustup, or the distribution's cargo package)",
        }),
    }
}
