//! Making stacks (`POST /stacks`, and a build's first use of one of wharf's stacks), one make
//! per stack at a time, under the garbage collector's shared lock (its blobs are unreferenced
//! until tagged). Each make's output goes to `logs/stacks/<name>.log`, which readers follow
//! live as they do a build's; a build that waits for a make sees the same lines in its own
//! output.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wharf_image::ImageStore;
use wharf_stack::{Role, StackDef};

use crate::builds::output::BuildLogs;

/// Why a stack could not be made (or copied, or imported): what its make's output and a build
/// waiting for it say.
#[derive(Debug, thiserror::Error)]
pub enum StackMakeError {
    #[error("the server stopped while the stack was made")]
    StoppedWaiting,
    #[error("the server stopped before the stack was made")]
    Stopped,
    #[error("cannot write the stack's output: {0}")]
    Output(std::io::Error),
    /// mmdebstrap, skopeo or the image store failed: their own message.
    #[error("{0}")]
    Stack(#[from] wharf_stack::StackError),
    /// The store several data directories share stacks through failed.
    #[error("{action} {}: {why}", dir.display())]
    Shared {
        action: &'static str,
        dir: PathBuf,
        why: String,
    },
    #[error("a stack task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

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
    /// Where mmdebstrap and skopeo write: private scratch under `builds/`.
    work: PathBuf,
    /// Where stack images are unpacked as root filesystems (`stacks/`).
    rootfs: PathBuf,
    images: ImageStore,
    /// A directory whose image store several data directories share wharf's stacks through
    /// (see `ServerConfig::stack_cache`).
    shared: Option<PathBuf>,
    gc: Arc<tokio::sync::RwLock<()>>,
    /// Cancelled when the server stops: a make in progress ends.
    stop: CancellationToken,
    /// Names of the stacks being made now.
    making: Arc<Mutex<BTreeSet<String>>>,
    /// Told whenever a make ends.
    ended: Arc<Notify>,
}

impl StackMaker {
    /// Where stack images are unpacked as root filesystems, once each.
    pub fn rootfs_dir(&self) -> &std::path::Path {
        &self.rootfs
    }

    pub fn new(
        data_dir: &std::path::Path,
        images: ImageStore,
        shared: Option<PathBuf>,
        gc: Arc<tokio::sync::RwLock<()>>,
        stop: CancellationToken,
    ) -> std::io::Result<StackMaker> {
        Ok(StackMaker {
            logs: BuildLogs::new(data_dir.join("logs").join("stacks"))?,
            work: data_dir.join("builds").join("stacks"),
            rootfs: data_dir.join("stacks"),
            images,
            shared,
            gc,
            stop,
            making: Arc::default(),
            ended: Arc::default(),
        })
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The garbage collector's lock, held shared while a stack is made.
    pub fn gc_lock(&self) -> Arc<tokio::sync::RwLock<()>> {
        self.gc.clone()
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

    /// Takes `name`'s turn to be made; `false` if it is being made already.
    fn claim(&self, name: &str) -> bool {
        self.making
            .lock()
            .expect("stack lock")
            .insert(name.to_owned())
    }

    fn release(&self, name: &str) {
        self.making.lock().expect("stack lock").remove(name);
        self.ended.notify_waiters();
    }

    /// Starts making stack `name`'s build and run images (`job`) in the background; `false`
    /// if it is being made already.
    pub async fn start(&self, name: &str, job: Job) -> std::io::Result<bool> {
        if !self.claim(name) {
            return Ok(false);
        }
        let maker = self.clone();
        let name = name.to_owned();
        let writer = match self.logs.create(&name).await {
            Ok(writer) => writer,
            Err(e) => {
                self.release(&name);
                return Err(e);
            }
        };
        tokio::spawn(async move {
            let _ = maker.run(&name, &job, writer, &mut |_| {}).await;
            maker.release(&name);
        });
        Ok(true)
    }

    /// Makes sure one of wharf's stacks is made: makes it now if it is not (or waits for the
    /// make under way), each line of its output also to `progress`.
    pub async fn ensure(
        &self,
        def: &'static StackDef,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StackMakeError> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.claim(def.name) {
                break;
            }
            progress(&format!("Stack {} is being made; waiting for it", def.name));
            tokio::select! {
                () = ended => {}
                () = self.stop.cancelled() => return Err(StackMakeError::StoppedWaiting),
            }
        }
        let ready = wharf_stack::list(&self.images)?
            .into_iter()
            .any(|s| s.name == def.name && s.run.is_some() && s.build.is_some());
        let result = match (ready, &self.shared) {
            (true, _) => Ok(()),
            (false, Some(shared)) => self.copy_shared(def, shared, progress).await,
            (false, None) => self.make(self, def, progress).await,
        };
        self.release(def.name);
        result
    }

    /// Makes `def` into `into`'s image store, its output in this maker's log and to `progress`.
    async fn make(
        &self,
        into: &StackMaker,
        def: &'static StackDef,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StackMakeError> {
        match self.logs.create(def.name).await {
            Ok(writer) => into.run(def.name, &Job::Make(def), writer, progress).await,
            Err(e) => Err(StackMakeError::Output(e)),
        }
    }

    /// Copies `def` from the shared store in `shared`, making it there first if no data
    /// directory has yet (one make at a time across processes, under a file lock).
    async fn copy_shared(
        &self,
        def: &'static StackDef,
        shared: &std::path::Path,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StackMakeError> {
        let failed = |action: &'static str, e: &dyn std::fmt::Display| StackMakeError::Shared {
            action,
            dir: shared.to_path_buf(),
            why: e.to_string(),
        };
        std::fs::create_dir_all(shared).map_err(|e| failed("cannot create", &e))?;
        let lock = shared.join(format!("{}.lock", def.name));
        let file = std::fs::File::create(&lock).map_err(|e| failed("cannot create", &e))?;
        use nix::fcntl::{Flock, FlockArg};
        let _held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => held,
            Err((file, _)) => {
                progress(&format!(
                    "Stack {} is being made by another wharf; waiting for it",
                    def.name
                ));
                let waited = tokio::task::spawn_blocking(move || {
                    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e)
                });
                tokio::select! {
                    held = waited => held?
                        .map_err(|e| failed("cannot lock the stacks in", &e))?,
                    () = self.stop.cancelled() => return Err(StackMakeError::StoppedWaiting),
                }
            }
        };
        let store = ImageStore::open(&shared.join("images"))
            .map_err(|e| failed("cannot open the stacks in", &e))?;
        let tags = [Role::Run.tag(def.name), Role::Build.tag(def.name)];
        if tags.iter().any(|t| store.resolve(t).is_err()) {
            let into = StackMaker {
                images: store.clone(),
                ..self.clone()
            };
            self.make(&into, def, progress).await?;
        }
        let _shared = self.gc.read().await;
        for tag in tags {
            let manifest = store
                .resolve(&tag)
                .map_err(|e| failed("cannot read the stacks in", &e))?;
            let (from, to) = (store.clone(), self.images.clone());
            let copied = tokio::task::spawn_blocking(move || {
                to.copy_image(&from, &manifest)?;
                to.tag(&tag, &manifest)
            })
            .await?;
            copied.map_err(|e| failed("cannot copy the stack from", &e))?;
        }
        progress(&format!(
            "-----> Stack {} copied from {}, where it was made once for every `wharf up`",
            def.name,
            shared.display()
        ));
        Ok(())
    }

    /// Does `job` for stack `name` (claimed by the caller), its output to `writer` and to
    /// `progress`.
    async fn run(
        &self,
        name: &str,
        job: &Job,
        mut writer: crate::builds::output::LogWriter,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StackMakeError> {
        let (lines, mut next) = tokio::sync::mpsc::unbounded_channel::<String>();
        let writing = tokio::spawn(async move {
            while let Some(line) = next.recv().await {
                writer.write(&format!("{line}\n")).await;
            }
            writer
        });
        let mut say = |line: &str| {
            progress(line);
            let _ = lines.send(line.to_owned());
        };
        let outcome = {
            let _shared = self.gc.read().await;
            let work = self.work.join(name);
            let doing = async {
                match job {
                    Job::Make(def) => {
                        wharf_stack::make(
                            def,
                            &[Role::Run, Role::Build],
                            &self.images,
                            &work,
                            &mut say,
                        )
                        .await
                    }
                    Job::Import(refs) => {
                        wharf_stack::import::import(name, refs, &self.images, &work, &mut say).await
                    }
                }
            };
            let made = tokio::select! {
                made = doing => made.map_err(StackMakeError::from),
                () = self.stop.cancelled() => Err(StackMakeError::Stopped),
            };
            let _ = std::fs::remove_dir_all(&work);
            made
        };
        let result = match outcome {
            Ok(stack) => {
                tracing::info!(stack = %name, run = ?stack.run.as_ref().map(|i| i.manifest.to_string()), "made a stack");
                say(&format!("-----> Stack {name} is ready"));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(stack = %name, error = %e, "making a stack failed");
                say(&format!("-----> Making stack {name} failed: {e}"));
                Err(e)
            }
        };
        drop(lines);
        if let Ok(writer) = writing.await {
            writer.finish().await;
        }
        result
    }
}
