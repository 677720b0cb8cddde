//! Stacks: the base images apps are built and run on, in the manner of Heroku's `heroku-24`
//! and Cloud Native Buildpacks' build and run images. A stack is a pair of OCI images in the
//! image store, tagged `stack/<name>/run` and `stack/<name>/build`: the run image is a minimal
//! Debian with the shared libraries runtimes load; the build image adds compilers and headers.
//!
//! wharf makes its default stacks ([`DEFAULT_STACKS`]) itself with `mmdebstrap` from the Debian
//! archive the host is configured with ([`mirror`]). `SOURCE_DATE_EPOCH` is the publication date
//! of the newest package index used, so the same package versions give the same tar, byte for
//! byte; it is kept as the image's one layer unchanged (owners, modes and hard links as Debian
//! made them), and the installed packages and versions are recorded in a label. This crate owns
//! making, reading and listing stacks; it does not build apps or run them. Images come in from
//! elsewhere with skopeo ([`import`]), and release images go out to another registry the same
//! way ([`push`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use wharf_image::{Digest, ImageSpec, ImageStore};

pub mod import;
pub mod launch;
pub mod mirror;
pub mod push;
pub mod rootfs;

/// Tags of stack images start with this: `stack/<name>/run`, `stack/<name>/build`.
pub const TAG_PREFIX: &str = "stack/";

/// Labels every stack image carries.
pub const LABEL_NAME: &str = "dev.wharf.stack.name";
pub const LABEL_ROLE: &str = "dev.wharf.stack.role";
pub const LABEL_SUITE: &str = "dev.wharf.stack.suite";
/// `package=version` lines, sorted: everything installed.
pub const LABEL_PACKAGES: &str = "dev.wharf.stack.packages";
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
/// On a release image: the digest of the run image below its own layers (the stack's name is
/// [`LABEL_NAME`]), and of the build image it was built in.
pub const LABEL_RUN_IMAGE: &str = "dev.wharf.stack.run-image";
pub const LABEL_BUILD_IMAGE: &str = "dev.wharf.stack.build-image";

/// `PATH` in stack images.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a stack is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDef {
    pub name: &'static str,
    /// The Debian release, e.g. `trixie`.
    pub suite: &'static str,
    /// mmdebstrap's variant: `minbase` (dpkg, apt and the required packages) or `essential`.
    pub variant: &'static str,
    /// Packages of the run image, beyond the variant's.
    pub run: &'static [&'static str],
    /// Packages the build image adds to the run image's.
    pub build: &'static [&'static str],
}

/// What runtimes load at run time: TLS, time zones, the C and C++ libraries language runtimes
/// (Node.js) and packages' native extensions link to, a Python, and curl for health checks and
/// scripts. (`libssl3` is
/// `libssl3t64` from trixie on.)
macro_rules! run_packages {
    ($ssl:literal) => {
        &[
            "ca-certificates",
            "tzdata",
            $ssl,
            "libffi8",
            "libstdc++6",
            "libatomic1",
            "libpq5",
            "zlib1g",
            "libsqlite3-0",
            "libyaml-0-2",
            "netbase",
            "python3",
            "curl",
        ]
    };
}

/// What builds add: compilers (C, C++, and Debian's Rust with cargo, for Rust apps), headers of
/// those libraries, git, Python's venv.
const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "cargo",
    "pkg-config",
    "git",
    "python3-dev",
    "python3-venv",
    "libpq-dev",
    "libssl-dev",
    "libffi-dev",
    "zlib1g-dev",
    "libyaml-dev",
];

/// The stacks wharf makes itself, one per supported Debian release.
pub const DEFAULT_STACKS: [StackDef; 2] = [
    StackDef {
        name: "wharf-bookworm",
        suite: "bookworm",
        variant: "minbase",
        run: run_packages!("libssl3"),
        build: BUILD_PACKAGES,
    },
    StackDef {
        name: "wharf-trixie",
        suite: "trixie",
        variant: "minbase",
        run: run_packages!("libssl3t64"),
        build: BUILD_PACKAGES,
    },
];

/// The stack a fresh server makes first.
pub const DEFAULT_STACK: &str = "wharf-trixie";

/// The default stack called `name`.
pub fn default_stack(name: &str) -> Option<&'static StackDef> {
    DEFAULT_STACKS.iter().find(|s| s.name == name)
}

/// The build or the run image of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Build,
    Run,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Build => "build",
            Role::Run => "run",
        }
    }

    /// The image store tag of stack `name`'s image of this role.
    pub fn tag(self, name: &str) -> String {
        format!("{TAG_PREFIX}{name}/{}", self.as_str())
    }
}

/// One image of a stack in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImage {
    pub manifest: Digest,
    /// When its newest package index was published (its `SOURCE_DATE_EPOCH`).
    pub created: Option<String>,
    pub suite: Option<String>,
    /// `package=version`, sorted.
    pub packages: Vec<String>,
    /// Compressed size of its layers.
    pub size: u64,
}

/// A stack in the store: its images, where made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    pub run: Option<StackImage>,
    pub build: Option<StackImage>,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("unknown stack `{name}`: wharf makes {}", DEFAULT_STACKS.map(|s| s.name).join(" and "))]
    Unknown { name: String },
    #[error("cannot read the Debian archive at {url}: {reason}")]
    Archive { url: String, reason: String },
    #[error(
        "`mmdebstrap` is not installed; it makes stacks from Debian packages: \
         apt-get install mmdebstrap"
    )]
    NoMmdebstrap,
    #[error("mmdebstrap failed ({status}) making the {role} image of `{name}`: {last}")]
    Mmdebstrap {
        name: String,
        role: &'static str,
        status: std::process::ExitStatus,
        last: String,
    },
    #[error("cannot {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`skopeo` is not installed; it brings images in from layouts, archives and registries: \
         apt-get install skopeo"
    )]
    NoSkopeo,
    #[error(
        "`{reference}` is not an image wharf can import: give `oci:DIR[:TAG]`, \
         `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]` or \
         `docker://REGISTRY/IMAGE[:TAG]`"
    )]
    BadReference { reference: String },
    #[error("skopeo failed ({status}) copying `{reference}`: {last}")]
    Skopeo {
        reference: String,
        status: std::process::ExitStatus,
        last: String,
    },
    #[error(
        "layer {layer} of `{reference}` is {media_type}; wharf stores gzip layers: convert it \
         first (`skopeo copy --dest-compress-format gzip`)"
    )]
    NotGzip {
        reference: String,
        layer: String,
        media_type: String,
    },
    #[error(transparent)]
    Image(#[from] wharf_image::ImageError),
}

/// The stacks in `store`, by name.
pub fn list(store: &ImageStore) -> Result<Vec<Stack>, StackError> {
    let mut stacks: BTreeMap<String, Stack> = BTreeMap::new();
    for (tag, manifest) in store.tags()? {
        let Some((name, role)) = tag
            .strip_prefix(TAG_PREFIX)
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            continue;
        };
        let role = match role {
            "run" => Role::Run,
            "build" => Role::Build,
            _ => continue,
        };
        let image = store.image(&manifest)?;
        let labels = image.labels();
        let entry = StackImage {
            manifest,
            created: labels.get(LABEL_CREATED).cloned(),
            suite: labels.get(LABEL_SUITE).cloned(),
            packages: labels
                .get(LABEL_PACKAGES)
                .map(|p| p.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            size: image.layers().iter().map(|l| l.size).sum(),
        };
        let stack = stacks.entry(name.to_owned()).or_insert_with(|| Stack {
            name: name.to_owned(),
            run: None,
            build: None,
        });
        match role {
            Role::Run => stack.run = Some(entry),
            Role::Build => stack.build = Some(entry),
        }
    }
    Ok(stacks.into_values().collect())
}

/// Makes `def`'s images of `roles` with mmdebstrap in `work` (a scratch directory, emptied
/// afterwards), stores and tags them, and says what it does through `progress`, a line at a
/// time (mmdebstrap's own output included).
pub async fn make(
    def: &StackDef,
    roles: &[Role],
    store: &ImageStore,
    work: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Stack, StackError> {
    let mmdebstrap = find_mmdebstrap().ok_or(StackError::NoMmdebstrap)?;
    let archives = mirror::host_archives(Path::new("/etc/apt"));
    let date = mirror::newest_index_date(&archives, def.suite).await?;
    progress(&format!(
        "Making stack {} from Debian {} ({}), packages as of {}",
        def.name,
        def.suite,
        archives
            .iter()
            .map(|a| format!("{} {}{}", a.uri, def.suite, a.suffix))
            .collect::<Vec<_>>()
            .join(", "),
        date.to_rfc3339()
    ));
    std::fs::create_dir_all(work).map_err(io("create", work))?;
    for &role in roles {
        let tar = work.join(format!("{}-{}.tar", def.name, role.as_str()));
        let made = run_mmdebstrap(
            &mmdebstrap,
            def,
            role,
            &archives,
            date.timestamp(),
            &tar,
            progress,
        )
        .await;
        let stored = match made {
            Ok(()) => {
                // Compressing a few hundred MiB: off the async workers.
                let (def, tar_path, store) = (def.clone(), tar.clone(), store.clone());
                tokio::task::spawn_blocking(move || {
                    store_image(&def, role, &tar_path, &date, &store)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(StackError::Io {
                        action: "store",
                        path: tar.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&tar);
        let manifest = stored?;
        progress(&format!(
            "{} image of {}: {}",
            role.as_str(),
            def.name,
            manifest
        ));
    }
    list(store)?
        .into_iter()
        .find(|s| s.name == def.name)
        .ok_or_else(|| StackError::Unknown {
            name: def.name.to_owned(),
        })
}

/// Whether this machine can make wharf's stacks, as the user wharf runs as: mmdebstrap is
/// installed, and as a normal user (mmdebstrap's `unshare` mode) `newuidmap`/`newgidmap` exist
/// and `/etc/subuid` and `/etc/subgid` give the user a range of ids. `Err` says what is missing
/// and how to add it.
pub fn can_make() -> Result<(), String> {
    if find_mmdebstrap().is_none() {
        return Err("mmdebstrap is not installed (apt-get install mmdebstrap)".to_owned());
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return Ok(());
    }
    for tool in ["/usr/bin/newuidmap", "/usr/bin/newgidmap"] {
        if !Path::new(tool).is_file() {
            return Err(format!(
                "{tool} is missing: mmdebstrap needs it to make stacks as a normal user \
                 (apt-get install uidmap)"
            ));
        }
    }
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    for file in ["/etc/subuid", "/etc/subgid"] {
        let ranges = std::fs::read_to_string(file).unwrap_or_default();
        let has_range = ranges.lines().any(|line| {
            let owner = line.split(':').next().unwrap_or_default();
            !owner.is_empty() && (owner == name || owner == uid.to_string())
        });
        if !has_range {
            return Err(format!(
                "{file} gives uid {uid} no range of subordinate ids: mmdebstrap needs one to \
                 make stacks as a normal user (usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 USER)"
            ));
        }
    }
    Ok(())
}

fn find_mmdebstrap() -> Option<PathBuf> {
    ["/usr/bin/mmdebstrap", "/usr/local/bin/mmdebstrap"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StackError {
    let path = path.to_path_buf();
    move |source| StackError::Io {
        action,
        path,
        source,
    }
}

async fn run_mmdebstrap(
    mmdebstrap: &Path,
    def: &StackDef,
    role: Role,
    archives: &[mirror::Archive],
    source_date_epoch: i64,
    tar: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), StackError> {
    let mut packages: Vec<&str> = def.run.to_vec();
    if role == Role::Build {
        packages.extend(def.build);
    }
    let mut command = tokio::process::Command::new(mmdebstrap);
    command
        .arg(format!("--variant={}", def.variant))
        .arg("--format=tar");
    if !packages.is_empty() {
        command.arg(format!("--include={}", packages.join(",")));
    }
    command
        // The host's resolver and name must not end up in the image: the same packages give
        // the same bytes on every host.
        .arg("--customize-hook=printf '' > \"$1/etc/resolv.conf\"; chmod 0644 \"$1/etc/resolv.conf\"")
        .arg("--customize-hook=echo localhost > \"$1/etc/hostname\"; chmod 0644 \"$1/etc/hostname\"")
        .arg(def.suite)
        .arg(tar);
    for archive in archives {
        command.arg(format!(
            "deb {} {}{} main",
            archive.uri, def.suite, archive.suffix
        ));
    }
    command
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: apt and dpkg run below it, and a cancelled make stops them all.
        .process_group(0)
        .kill_on_drop(true);
    progress(&format!(
        "Running mmdebstrap for the {} image ({} packages asked for)",
        role.as_str(),
        packages.len()
    ));
    let (status, last) = run_streamed(command, mmdebstrap, progress).await?;
    if !status.success() {
        return Err(StackError::Mmdebstrap {
            name: def.name.to_owned(),
            role: role.as_str(),
            status,
            last,
        });
    }
    Ok(())
}

/// Runs `command` (set up with piped output, in a process group of its own, killed on drop)
/// to its end, each line of its output to `progress`, indented; its status and last
/// non-empty line. Dropping the future kills the whole group.
pub(crate) async fn run_streamed(
    mut command: tokio::process::Command,
    program: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(std::process::ExitStatus, String), StackError> {
    let mut child = command.spawn().map_err(io("run", program))?;
    let mut group = GroupGuard(child.id());
    let stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut lines = merged_lines(stdout, stderr);
    let mut last = String::new();
    while let Some(line) = lines.recv().await {
        progress(&format!("  {line}"));
        if !line.trim().is_empty() {
            last = line;
        }
    }
    let status = child.wait().await.map_err(io("wait for", program))?;
    group.0 = None;
    Ok((status, last))
}

/// Kills a process group when dropped (a cancelled make), unless disarmed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The lines of both pipes, as they come.
fn merged_lines<A, B>(
    mut a: tokio::io::Lines<A>,
    mut b: tokio::io::Lines<B>,
) -> tokio::sync::mpsc::UnboundedReceiver<String>
where
    A: tokio::io::AsyncBufRead + Unpin + Send + 'static,
    B: tokio::io::AsyncBufRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let tx_b = tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = a.next_line().await {
            let _ = tx.send(line);
        }
    });
    tokio::spawn(async move {
        while let Ok(Some(line)) = b.next_line().await {
            let _ = tx_b.send(line);
        }
    });
    rx
}

/// Stores mmdebstrap's tar as the image's one layer, with the stack's labels, and tags it.
fn store_image(
    def: &StackDef,
    role: Role,
    tar: &Path,
    date: &chrono::DateTime<chrono::Utc>,
    store: &ImageStore,
) -> Result<Digest, StackError> {
    let packages = installed_packages(tar)?;
    let file = std::fs::File::open(tar).map_err(io("read", tar))?;
    let layer = store.import_tar_layer(std::io::BufReader::new(file))?;
    let labels = BTreeMap::from([
        (LABEL_NAME.to_owned(), def.name.to_owned()),
        (LABEL_ROLE.to_owned(), role.as_str().to_owned()),
        (LABEL_SUITE.to_owned(), def.suite.to_owned()),
        (LABEL_PACKAGES.to_owned(), packages.join("\n")),
        (
            LABEL_CREATED.to_owned(),
            date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
    ]);
    let built = store.build_image(&ImageSpec {
        base: vec![layer],
        layers: Vec::new(),
        working_dir: "/".to_owned(),
        env: BTreeMap::from([("PATH".to_owned(), PATH.to_owned())]),
        labels,
        cmd: None,
        entrypoint: None,
        user: None,
    })?;
    store.tag(&role.tag(def.name), &built.manifest)?;
    Ok(built.manifest)
}

/// `package=version` of every package dpkg's status in the tar says is installed, sorted.
pub fn installed_packages(tar: &Path) -> Result<Vec<String>, StackError> {
    let file = std::fs::File::open(tar).map_err(io("read", tar))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut status = String::new();
    for entry in archive.entries().map_err(io("read", tar))? {
        let mut entry = entry.map_err(io("read", tar))?;
        let path = entry.path().map_err(io("read", tar))?;
        if path.strip_prefix(".").unwrap_or(&path) == Path::new("var/lib/dpkg/status") {
            std::io::Read::read_to_string(&mut entry, &mut status).map_err(io("read", tar))?;
            break;
        }
    }
    Ok(parse_dpkg_status(&status))
}

fn parse_dpkg_status(status: &str) -> Vec<String> {
    let mut packages: Vec<String> = status
        .split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
            };
            if !field("Status")?.ends_with(" installed") {
                return None;
            }
            let name = field("Package")?;
            let version = field("Version")?;
            Some(match field("Architecture") {
                Some(arch) if arch != "all" && !name.contains(':') => {
                    format!("{name}:{arch}={version}")
                }
                _ => format!("{name}={version}"),
            })
        })
        .collect();
    packages.sort();
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_come_from_dpkg_status() {
        let status = "Package: python3\nStatus: install ok installed\nArchitecture: amd64\n\
                      Version: 3.13.5-1\n\nPackage: tzdata\nStatus: install ok installed\n\
                      Architecture: all\nVersion: 2025b-4\n\nPackage: gone\n\
                      Status: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n";
        assert_eq!(
            parse_dpkg_status(status),
            ["python3:amd64=3.13.5-1", "tzdata=2025b-4"]
        );
    }

    #[test]
    fn tags_name_the_stack_and_role() {
        assert_eq!(Role::Run.tag("wharf-trixie"), "stack/wharf-trixie/run");
        assert_eq!(Role::Build.tag("wharf-trixie"), "stack/wharf-trixie/build");
        assert!(default_stack("wharf-trixie").is_some());
        assert!(default_stack("heroku-24").is_none());
        let trixie = default_stack("wharf-trixie").unwrap();
        assert!(trixie.run.contains(&"libssl3t64"));
        assert!(trixie.run.contains(&"python3"));
    }
}

/// Why an image can't be rebased.
#[derive(Debug, thiserror::Error)]
pub enum RebaseError {
    #[error("image {image} is not built on a stack (it is host-bound, stack `wharf-1`): nothing to rebase; set a stack (`wharf stack:set`) and deploy")]
    NotOnStack { image: Digest },
    #[error("image {image} is on stack `{stack}`, which is no longer in the store: make it again (`wharf stacks build {stack}`)")]
    StackGone { image: Digest, stack: String },
    #[error("image {image} is on the newest run image of `{stack}` already ({run})")]
    UpToDate {
        image: Digest,
        stack: String,
        run: Digest,
    },
    #[error("image {image}'s bottom layers are not its run image's ({run}): it can't be rebased; deploy again instead")]
    Mismatch { image: Digest, run: Digest },
    #[error(transparent)]
    Image(#[from] wharf_image::ImageError),
}

/// How many of `image`'s layers, from the bottom, are `run`'s: `Some` when `image` sits on the
/// run image `run` (its bottom layers are exactly `run`'s), `None` when it doesn't.
pub fn layers_on(image: &wharf_image::Image, run: &wharf_image::Image) -> Option<usize> {
    let (layers, below) = (image.layers(), run.layers());
    let same =
        layers.len() >= below.len() && layers.iter().zip(&below).all(|(a, b)| a.digest == b.digest);
    same.then_some(below.len())
}

/// A rebased image: what it was on and what it is on now.
#[derive(Debug, Clone)]
pub struct Rebased {
    pub image: wharf_image::BuiltImage,
    pub stack: String,
    pub from: Digest,
    pub to: Digest,
}

/// Rebase, as Cloud Native Buildpacks' `pack rebase`: a new image of `image` (a release
/// image on a stack) whose run layers are those of its stack's newest run image (the one
/// tagged `stack/<name>/run`), with its own layers above them and its config kept byte for
/// byte, but for the label naming the run image. Nothing is rebuilt.
pub fn rebase(store: &ImageStore, image: &Digest) -> Result<Rebased, RebaseError> {
    let old = store.image(image)?;
    let mut labels = old.labels();
    let (Some(stack), Some(from)) = (
        labels.get(LABEL_NAME).cloned(),
        labels
            .get(LABEL_RUN_IMAGE)
            .and_then(|d| Digest::parse(d).ok()),
    ) else {
        return Err(RebaseError::NotOnStack {
            image: image.clone(),
        });
    };
    let Ok(to) = store.resolve(&Role::Run.tag(&stack)) else {
        return Err(RebaseError::StackGone {
            image: image.clone(),
            stack,
        });
    };
    if to == from {
        return Err(RebaseError::UpToDate {
            image: image.clone(),
            stack,
            run: to,
        });
    }
    let Some(below) = layers_on(&old, &store.image(&from)?) else {
        return Err(RebaseError::Mismatch {
            image: image.clone(),
            run: from,
        });
    };
    let mut base = store.image(&to)?.layers();
    base.extend(old.layers()[below..].iter().cloned());
    labels.insert(LABEL_RUN_IMAGE.to_owned(), to.to_string());
    let built = store.build_image(&ImageSpec {
        base,
        layers: Vec::new(),
        working_dir: old.working_dir().unwrap_or_default(),
        env: old.env(),
        labels,
        cmd: old.cmd(),
        entrypoint: old.entrypoint(),
        user: old.user(),
    })?;
    Ok(Rebased {
        image: built,
        stack,
        from,
        to,
    })
}
