//! Making stacks (`POST /stacks`) in the background, one make per stack at a time, under the
//! garbage collector's shared lock (its blobs are unreferenced until tagged). Each make's
//! output goes to `logs/stacks/<name>.log`, which readers follow live as they do a build's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wharf_stack::{Role, StackDef};

use crate::builds::output::BuildLogs;
use crate::AppState;

/// How a stack comes about.
#[derive(Debug, Clone)]
pub enum Job {
    /// One of wharf's own, made from Debian packages.
    Make(&'static StackDef),
    /// Images brought in from elsewhere: each role's image reference (skopeo's syntax).
    Import(Vec<(Role, String)>),
}

#[derive(Debug, Clone)]
pub struct StackMaker {
    logs: BuildLogs,
    /// Where mmdebstrap writes its tars: private scratch under `builds/`.
    work: PathBuf,
    /// Names of the stacks being made now.
    making: Arc<Mutex<BTreeSet<String>>>,
}

impl StackMaker {
    pub fn new(data_dir: &std::path::Path) -> std::io::Result<StackMaker> {
        Ok(StackMaker {
            logs: BuildLogs::new(data_dir.join("logs").join("stacks"))?,
            work: data_dir.join("builds").join("stacks"),
            making: Arc::default(),
        })
    }

    pub fn logs(&self) -> &BuildLogs {
        &self.logs
    }

    /// Names of the stacks being made or imported now.
    pub fn making(&self) -> Vec<String> {
        self.making
            .lock()
            .expect("stack lock")
            .iter()
            .cloned()
            .collect()
    }

    pub fn is_making(&self, name: &str) -> bool {
        self.making.lock().expect("stack lock").contains(name)
    }

    /// Whether a make of `name` has left output to read.
    pub fn has_output(&self, name: &str) -> bool {
        self.logs.exists(name)
    }

    /// Starts making stack `name`'s build and run images (`job`); `false` if it is being made
    /// already.
    pub async fn start(&self, state: &AppState, name: &str, job: Job) -> std::io::Result<bool> {
        if !self
            .making
            .lock()
            .expect("stack lock")
            .insert(name.to_owned())
        {
            return Ok(false);
        }
        let mut writer = match self.logs.create(name).await {
            Ok(writer) => writer,
            Err(e) => {
                self.making.lock().expect("stack lock").remove(name);
                return Err(e);
            }
        };
        let name = name.to_owned();
        let (state, maker) = (state.clone(), self.clone());
        tokio::spawn(async move {
            let (lines, mut next) = tokio::sync::mpsc::unbounded_channel::<String>();
            let writing = tokio::spawn(async move {
                while let Some(line) = next.recv().await {
                    writer.write(&format!("{line}\n")).await;
                }
                writer
            });
            let outcome = {
                let _shared = state.gc.read().await;
                let images = state.control.images().clone();
                let work = maker.work.join(&name);
                let mut progress = |line: &str| {
                    let _ = lines.send(line.to_owned());
                };
                let doing = async {
                    match &job {
                        Job::Make(def) => {
                            wharf_stack::make(
                                def,
                                &[Role::Run, Role::Build],
                                &images,
                                &work,
                                &mut progress,
                            )
                            .await
                        }
                        Job::Import(refs) => {
                            wharf_stack::import::import(&name, refs, &images, &work, &mut progress)
                                .await
                        }
                    }
                };
                let made = tokio::select! {
                    made = doing => made.map_err(|e| e.to_string()),
                    () = state.background.cancelled() => Err("the server stopped before the stack was made".to_owned()),
                };
                let _ = std::fs::remove_dir_all(&work);
                made
            };
            match &outcome {
                Ok(stack) => {
                    tracing::info!(stack = %name, run = ?stack.run.as_ref().map(|i| i.manifest.to_string()), "made a stack");
                    let _ = lines.send(format!("-----> Stack {} is ready", name));
                }
                Err(e) => {
                    tracing::warn!(stack = %name, error = %e, "making a stack failed");
                    let _ = lines.send(format!("-----> Making stack {} failed: {e}", name));
                }
            }
            drop(lines);
            if let Ok(writer) = writing.await {
                writer.finish().await;
            }
            maker.making.lock().expect("stack lock").remove(&name);
        });
        Ok(true)
    }
}
