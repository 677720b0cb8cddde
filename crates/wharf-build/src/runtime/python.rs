//! Which Python an app asks for, and which one it gets.
//!
//! The app asks in `.python-version` (`3.13`, `3.13.5`), else `runtime.txt` (`python-3.11.6`),
//! else `pyproject.toml`'s `requires-python` (`>=3.11`), else `Pipfile`'s `[requires]`. A
//! major.minor is the newest patch wharf can provide. Pythons come from the stack (Debian's, in
//! the build and run images alike) first; a version the stack doesn't have comes from the
//! operator's source of prebuilt CPython archives (`WHARF_PYTHON_URL`), when there is one.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;

use crate::error::BuildError;

/// A full Python version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Version(pub u64, pub u64, pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    pub(crate) fn parse(text: &str) -> Option<Version> {
        let mut parts = text.trim().split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
        let v = Version(next()?, next()?, next()?);
        parts.next().is_none().then_some(v)
    }

    fn minor(self) -> (u64, u64) {
        (self.0, self.1)
    }
}

/// What the app asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    Exact(Version),
    Minor(u64, u64),
    Range(VersionSpecifiers),
}

impl Want {
    pub(crate) fn allows(&self, v: Version) -> bool {
        match self {
            Want::Exact(e) => *e == v,
            Want::Minor(major, minor) => v.minor() == (*major, *minor),
            Want::Range(spec) => spec.contains(&pep440_rs::Version::new([v.0, v.1, v.2])),
        }
    }
}

/// The app's request, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub file: &'static str,
    /// As written, for messages.
    pub asked: String,
    pub want: Want,
}

/// `3.13` or `3.13.5`, with an optional `python-`/`cpython-`/`cpython@` in front.
fn parse_version_text(text: &str) -> Option<Want> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let bare = ["cpython-", "cpython@", "python-", "cpython", "python"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    let parts: Vec<&str> = bare.split('.').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse::<u64>().ok()).collect();
    match nums?.as_slice() {
        [major, minor] => Some(Want::Minor(*major, *minor)),
        [major, minor, patch] => Some(Want::Exact(Version(*major, *minor, *patch))),
        _ => None,
    }
}

/// The Python the app in `dir` asks for, or `None` when it names none.
pub(crate) fn requested(dir: &Path) -> Result<Option<Request>, BuildError> {
    let read = |rel: &'static str| -> Result<Option<String>, BuildError> {
        let path = dir.join(rel);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(BuildError::InvalidManifest {
                    file: rel,
                    reason: "it is not UTF-8 text".to_owned(),
                })
            }
            Err(e) => Err(BuildError::io("read", path, e)),
        }
    };
    if let Some(text) = read(".python-version")? {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let want = parse_version_text(line).ok_or_else(|| BuildError::InvalidManifest {
            file: ".python-version",
            reason: format!(
                "`{line}` is not a Python version: write a major.minor such as `3.13` (the \
                 newest patch is used) or a full version such as `3.13.5`"
            ),
        })?;
        return Ok(Some(Request {
            file: ".python-version",
            asked: line.to_owned(),
            want,
        }));
    }
    if let Some(text) = read("runtime.txt")? {
        let line = text.trim();
        let want = line
            .strip_prefix("python-")
            .and_then(parse_version_text)
            .ok_or_else(|| BuildError::InvalidManifest {
                file: "runtime.txt",
                reason: format!(
                    "`{line}` is not a Python runtime: write `python-3.13` or `python-3.13.5` \
                     (or move the version to .python-version)"
                ),
            })?;
        return Ok(Some(Request {
            file: "runtime.txt",
            asked: line.to_owned(),
            want,
        }));
    }
    if let Some(text) = read("pyproject.toml")? {
        let doc = toml_table("pyproject.toml", &text)?;
        let field = doc
            .get("project")
            .and_then(|p| p.get("requires-python"))
            .and_then(|v| v.as_str());
        if let Some(field) = field {
            let spec =
                VersionSpecifiers::from_str(field).map_err(|e| BuildError::InvalidManifest {
                    file: "pyproject.toml",
                    reason: format!(
                        "`requires-python = \"{field}\"` is not a version specifier: {e}"
                    ),
                })?;
            return Ok(Some(Request {
                file: "pyproject.toml",
                asked: field.to_owned(),
                want: Want::Range(spec),
            }));
        }
    }
    if let Some(text) = read("Pipfile")? {
        let doc = toml_table("Pipfile", &text)?;
        let requires = doc.get("requires");
        for key in ["python_full_version", "python_version"] {
            let Some(value) = requires.and_then(|r| r.get(key)).and_then(|v| v.as_str()) else {
                continue;
            };
            let want = parse_version_text(value).ok_or_else(|| BuildError::InvalidManifest {
                file: "Pipfile",
                reason: format!("`{key} = \"{value}\"` is not a Python version such as `3.13`"),
            })?;
            return Ok(Some(Request {
                file: "Pipfile",
                asked: value.to_owned(),
                want,
            }));
        }
    }
    Ok(None)
}

/// `text` of `file` as a TOML table.
fn toml_table(file: &'static str, text: &str) -> Result<toml::Table, BuildError> {
    toml::from_str(text).map_err(|e| BuildError::InvalidManifest {
        file,
        reason: format!("it is not valid TOML: {}", one_line(&e.to_string())),
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A Python the stack has: its program (as build commands see it) and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub program: String,
    pub version: Version,
}

/// What to use, given the stack's Pythons (`offers`, the default `python3` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    /// One of the stack's.
    Stack(Offer),
    /// An exact version was asked for; the stack has the same minor in another patch.
    SameMinor(Offer),
    /// The stack has none that fits.
    Missing,
}

/// The stack's Python for `request` (see [`Pick`]).
pub(crate) fn pick(request: Option<&Request>, offers: &[Offer]) -> Pick {
    let Some(request) = request else {
        return offers.first().cloned().map_or(Pick::Missing, Pick::Stack);
    };
    let newest = |allows: &dyn Fn(Version) -> bool| {
        offers
            .iter()
            .filter(|o| allows(o.version))
            .max_by_key(|o| o.version)
            .cloned()
    };
    if let Some(offer) = newest(&|v| request.want.allows(v)) {
        return Pick::Stack(offer);
    }
    if let Want::Exact(exact) = request.want {
        if let Some(offer) = newest(&|v| v.minor() == exact.minor()) {
            return Pick::SameMinor(offer);
        }
    }
    Pick::Missing
}

/// The Pythons of wharf's own stacks, for messages (the stacks' Debian suites decide them).
pub(crate) const WHARF_STACK_PYTHONS: &str = "wharf-bookworm has 3.11, wharf-trixie has 3.13";

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    fn asked(files: &[(&str, &str)]) -> Result<Option<Request>, BuildError> {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), files);
        requested(tmp.path())
    }

    #[test]
    fn files_are_read_in_heroku_order() {
        let r = asked(&[
            (".python-version", "# pinned\n3.12\n"),
            ("runtime.txt", "python-3.11.6"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((r.file, r.want), (".python-version", Want::Minor(3, 12)));

        let r = asked(&[("runtime.txt", "python-3.11.6\n"), ("Pipfile", "")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.file, r.want),
            ("runtime.txt", Want::Exact(Version(3, 11, 6)))
        );

        let r = asked(&[(
            "pyproject.toml",
            "[project]\nname = \"x\"\nrequires-python = \">=3.11,<3.13\"\n",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(r.file, "pyproject.toml");
        assert!(r.want.allows(Version(3, 12, 4)));
        assert!(!r.want.allows(Version(3, 13, 0)));

        let r = asked(&[("Pipfile", "[requires]\npython_version = \"3.11\"\n")])
            .unwrap()
            .unwrap();
        assert_eq!((r.file, r.want), ("Pipfile", Want::Minor(3, 11)));

        assert_eq!(
            asked(&[("pyproject.toml", "[project]\nname = \"x\"\n")]).unwrap(),
            None
        );
        assert_eq!(asked(&[]).unwrap(), None);
    }

    #[test]
    fn bad_requests_name_the_file_and_the_fix() {
        let e = asked(&[(".python-version", "latest\n")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(".python-version") && e.contains("`latest`"),
            "{e}"
        );
        let e = asked(&[("runtime.txt", "3.11")]).unwrap_err().to_string();
        assert!(
            e.contains("runtime.txt") && e.contains("python-3.13"),
            "{e}"
        );
        let e = asked(&[("pyproject.toml", "[project]\nrequires-python = \"three\"\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("requires-python"), "{e}");
        assert_eq!(
            parse_version_text("cpython@3.14").unwrap(),
            Want::Minor(3, 14)
        );
    }

    #[test]
    fn the_stack_python_is_picked_by_minor_and_range() {
        let offers = [
            Offer {
                program: "python3".into(),
                version: Version(3, 13, 5),
            },
            Offer {
                program: "/usr/bin/python3.11".into(),
                version: Version(3, 11, 2),
            },
        ];
        let req = |want| Request {
            file: ".python-version",
            asked: String::new(),
            want,
        };
        assert_eq!(pick(None, &offers), Pick::Stack(offers[0].clone()));
        assert_eq!(
            pick(Some(&req(Want::Minor(3, 11))), &offers),
            Pick::Stack(offers[1].clone())
        );
        assert_eq!(
            pick(Some(&req(Want::Exact(Version(3, 11, 9)))), &offers),
            Pick::SameMinor(offers[1].clone())
        );
        assert_eq!(pick(Some(&req(Want::Minor(3, 14))), &offers), Pick::Missing);
        let range = Want::Range(VersionSpecifiers::from_str(">=3.10").unwrap());
        assert_eq!(
            pick(Some(&req(range)), &offers),
            Pick::Stack(offers[0].clone())
        );
    }
}
