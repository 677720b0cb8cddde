//! Build output: each build's output is a file (`logs/builds/<id>.log`), appended as the build
//! runs. Readers replay the file from the start and, while the build runs, follow it: a watch
//! channel per live build says how far the file has grown and whether it is complete. After the
//! build (or after a restart) the file alone is the whole output.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How much of a live log exists.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    done: bool,
}

/// Every build's output.
#[derive(Debug, Clone)]
pub struct BuildLogs {
    dir: PathBuf,
    /// Live builds' progress, by build id; an entry exists from `create` until `finish`.
    live: Arc<Mutex<HashMap<String, watch::Sender<Progress>>>>,
}

/// Appends to one build's output.
#[derive(Debug)]
pub struct LogWriter {
    id: String,
    file: tokio::fs::File,
    progress: watch::Sender<Progress>,
    logs: BuildLogs,
}

impl BuildLogs {
    pub fn new(dir: PathBuf) -> std::io::Result<BuildLogs> {
        std::fs::create_dir_all(&dir)?;
        Ok(BuildLogs {
            dir,
            live: Arc::default(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Whether `id` has output (running or ended).
    pub fn exists(&self, id: &str) -> bool {
        self.path(id).is_file()
    }

    /// Starts the (empty) output of build `id`.
    pub async fn create(&self, id: &str) -> std::io::Result<LogWriter> {
        let file = tokio::fs::File::create(self.path(id)).await?;
        let (progress, _) = watch::channel(Progress::default());
        self.live
            .lock()
            .expect("log registry lock")
            .insert(id.to_owned(), progress.clone());
        Ok(LogWriter {
            id: id.to_owned(),
            file,
            progress,
            logs: self.clone(),
        })
    }

    /// The build's output so far and, while it runs, as it grows; `None` if there is none.
    pub async fn stream(
        &self,
        id: &str,
    ) -> Option<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        // Subscribe before opening, so nothing written in between is missed.
        let progress = self
            .live
            .lock()
            .expect("log registry lock")
            .get(id)
            .map(watch::Sender::subscribe);
        let file = tokio::fs::File::open(self.path(id)).await.ok()?;
        struct Reader {
            file: tokio::fs::File,
            progress: Option<watch::Receiver<Progress>>,
            saw_done: bool,
        }
        let reader = Reader {
            file,
            progress,
            saw_done: false,
        };
        Some(futures_util::stream::unfold(reader, |mut r| async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.file.read(&mut buf).await {
                    Ok(0) => {}
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((Ok(Bytes::from(buf)), r));
                    }
                    Err(e) => {
                        return Some((
                            Err(e),
                            Reader {
                                saw_done: true,
                                progress: None,
                                ..r
                            },
                        ))
                    }
                }
                // At the end of what is written so far.
                if r.saw_done {
                    return None;
                }
                let progress = r.progress.as_mut()?;
                if progress.borrow_and_update().done {
                    // Everything was written before `done` was set: one more read gets the rest.
                    r.saw_done = true;
                    continue;
                }
                if progress.changed().await.is_err() {
                    // The writer is gone without saying done (the build task ended): read what is left.
                    r.saw_done = true;
                }
            }
        }))
    }
}

impl LogWriter {
    /// Appends `text` and wakes readers.
    pub async fn write(&mut self, text: &str) {
        // Output is best effort: a full disk must not fail the build itself.
        if let Err(e) = self.file.write_all(text.as_bytes()).await {
            tracing::warn!(build = %self.id, error = %e, "cannot write build output");
            return;
        }
        let _ = self.file.flush().await;
        self.progress.send_modify(|_| {});
    }

    /// Marks the output complete.
    pub async fn finish(mut self) {
        let _ = self.file.flush().await;
        let _ = self.file.sync_data().await;
        self.progress.send_modify(|p| p.done = true);
        self.logs
            .live
            .lock()
            .expect("log registry lock")
            .remove(&self.id);
    }
}
