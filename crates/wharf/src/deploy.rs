//! `wharf deploy [DIR]`: packs the directory (honouring `.gitignore` and `.slugignore`), uploads
//! it with a progress bar, starts a build, streams its output, and ends with the release and the
//! app's URL. A failed build exits non-zero.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use wharf_client::Client;
use wharf_core::api::{BuildCreate, BuildSourceRequest};
use wharf_core::build::BuildStatus;

use crate::cli::{DeployArgs, Global};
use crate::context;

pub async fn run(global: &Global, args: DeployArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: run `wharf deploy` in the app's directory or pass it",
            dir.display()
        );
    }
    let app = context::app_name_in(&args.app, &dir)?;
    // Fail early, before packing, if the app doesn't exist.
    let app_info = client.app(&app).await?;
    let version = args.source_version.clone().or_else(|| git_version(&dir));
    let shown = dir.display().to_string();
    let release = deploy_dir(&client, &app, &dir, &shown, version).await?;
    println!(
        "Deployed {app}: release v{} is at {}",
        release.version, app_info.web_url
    );
    Ok(())
}

/// Packs `dir` (called `shown` in what is printed), uploads it, builds it as `app`, streaming
/// the build's output (stdout) and progress (stderr), and returns the release once it is live (after its release phase, if it
/// has one). Fails with the reason when the build or the release phase does.
pub async fn deploy_dir(
    client: &Client,
    app: &str,
    dir: &Path,
    shown: &str,
    source_version: Option<String>,
) -> anyhow::Result<wharf_core::api::Release> {
    eprintln!("-----> Packing {shown}");
    let archive =
        tempfile::NamedTempFile::new().context("cannot make a temporary file for the archive")?;
    let pack_dir = dir.to_path_buf();
    let pack_path = archive.path().to_path_buf();
    let summary = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&pack_path)?;
        let summary = wharf_image::archive::pack_dir(&pack_dir, std::io::BufWriter::new(file))?;
        Ok::<_, anyhow::Error>(summary)
    })
    .await??;
    let size = std::fs::metadata(archive.path())?.len();
    eprintln!(
        "       {} entries, {} → {} compressed",
        summary.entries,
        wharf_core::size::human(summary.bytes),
        wharf_core::size::human(size)
    );

    let source = client.create_source().await?;
    upload(client, &source.source_blob.put_url, archive.path(), size).await?;

    let build = client
        .create_build(
            app,
            &BuildCreate {
                source_blob: BuildSourceRequest {
                    url: Some(source.source_blob.get_url.clone()),
                    version: source_version,
                    ..BuildSourceRequest::default()
                },
                buildpacks: None,
            },
        )
        .await?;
    eprintln!("-----> Building {app} (build {})", build.id);

    crate::output::copy_stream(client, &build.output_stream_url, &mut std::io::stdout()).await?;

    let build = wait_for_end(client, app, &build.id).await?;
    match build.phase {
        BuildStatus::Succeeded => {
            let release = match &build.release {
                Some(release) => client.release(app, &release.id).await?,
                None => bail!("the build succeeded but made no release"),
            };
            // A release phase runs before the release goes live: show it, and its outcome.
            crate::releases::follow(client, app, release).await
        }
        _ => bail!(
            "the build of {app} failed: {}",
            build.error.as_deref().unwrap_or("see the output above")
        ),
    }
}

/// The stream ends when the build does, but the build's record may be written a moment later.
async fn wait_for_end(
    client: &Client,
    app: &str,
    id: &str,
) -> anyhow::Result<wharf_core::api::Build> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let build = client.build(app, id).await?;
        if build.phase.is_finished() {
            return Ok(build);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the build's output ended but the build is still {}",
                build.phase
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn upload(client: &Client, put_url: &str, path: &Path, size: u64) -> anyhow::Result<()> {
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "-----> Uploading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let file = tokio::fs::File::open(path).await?;
    let progress = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            progress.inc(chunk.len() as u64);
        }
    });
    let result = client
        .upload_source(put_url, reqwest::Body::wrap_stream(stream), size)
        .await;
    bar.finish_and_clear();
    result?;
    eprintln!("-----> Uploaded {}", wharf_core::size::human(size));
    Ok(())
}

/// The short commit of `dir`'s git checkout, if it is one.
pub fn git_version(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
