//! Where stacks' packages come from: the Debian archive this host is configured with (its apt
//! sources), and the date that archive says its newest index has, which becomes the stack's
//! `SOURCE_DATE_EPOCH`.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::StackError;

/// One archive of the host's sources: `uri` serves suites named `<suite><suffix>` (`""`,
/// `-updates`, `-security`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub uri: String,
    pub suffix: String,
}

/// The Debian archives of the host's apt sources (`/etc/apt/sources.list` and
/// `sources.list.d/*.list|*.sources`), each with the suffix its suites add to the host's
/// release name; Debian's own (`deb.debian.org`) when none is configured.
pub fn host_archives(etc_apt: &Path) -> Vec<Archive> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(deb822_entries(&text)),
            _ => entries.extend(one_line_entries(&text)),
        }
    }
    // The host's release is the shortest suite name its Debian archives serve.
    let debian: Vec<(String, String)> = entries
        .into_iter()
        .filter(|(uri, _)| uri.contains("debian"))
        .collect();
    let Some(release) = debian
        .iter()
        .map(|(_, suite)| suite.as_str())
        .min_by_key(|s| s.len())
        .map(str::to_owned)
    else {
        return default_archives();
    };
    let mut archives: Vec<Archive> = Vec::new();
    for (uri, suite) in debian {
        let Some(suffix) = suite.strip_prefix(&release) else {
            continue;
        };
        let archive = Archive {
            uri: uri.trim_end_matches('/').to_owned(),
            suffix: suffix.to_owned(),
        };
        if !archives.contains(&archive) {
            archives.push(archive);
        }
    }
    archives
}

fn default_archives() -> Vec<Archive> {
    [
        ("http://deb.debian.org/debian", ""),
        ("http://deb.debian.org/debian", "-updates"),
        ("http://deb.debian.org/debian-security", "-security"),
    ]
    .iter()
    .map(|(uri, suffix)| Archive {
        uri: (*uri).to_owned(),
        suffix: (*suffix).to_owned(),
    })
    .collect()
}

/// `deb [options] URI SUITE COMPONENTS…` lines: (uri, suite).
fn one_line_entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim_start();
            // Options in brackets come before the URI.
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']')?.1.trim_start(),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// deb822 stanzas with `Types: deb`: (uri, suite) for each of their URIs and suites.
fn deb822_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.split_whitespace().map(str::to_owned).collect())
                })
                .unwrap_or_default()
        };
        if !field("Types").iter().any(|t| t == "deb") || field("Enabled").iter().any(|e| e == "no")
        {
            continue;
        }
        for uri in field("URIs") {
            for suite in field("Suites") {
                out.push((uri.clone(), suite));
            }
        }
    }
    out
}

/// The newest `Date:` of the archives' `InRelease` files for `suite`: when the newest package
/// index the stack is made from was published. The same archive state gives the same date,
/// and so, as `SOURCE_DATE_EPOCH`, the same timestamps in the stack.
pub async fn newest_index_date(
    archives: &[Archive],
    suite: &str,
) -> Result<DateTime<Utc>, StackError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| StackError::Archive {
            url: String::new(),
            reason: e.to_string(),
        })?;
    let mut newest: Option<DateTime<Utc>> = None;
    for archive in archives {
        let url = format!("{}/dists/{suite}{}/InRelease", archive.uri, archive.suffix);
        let failed = |reason: String| StackError::Archive {
            url: url.clone(),
            reason,
        };
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "the archive answered {}",
                response.status()
            )));
        }
        let text = response.text().await.map_err(|e| failed(e.to_string()))?;
        let date = release_date(&text)
            .ok_or_else(|| failed("it has no valid `Date:` field".to_owned()))?;
        newest = newest.max(Some(date));
    }
    newest.ok_or_else(|| StackError::Archive {
        url: String::new(),
        reason: "the host has no Debian archive configured".to_owned(),
    })
}

/// The `Date:` field of a Release file (RFC 2822, e.g. `Sat, 05 Dec 2026 03:33:30 UTC`).
fn release_date(text: &str) -> Option<DateTime<Utc>> {
    let value = text.lines().find_map(|l| l.strip_prefix("Date:"))?.trim();
    // RFC 2822 wants a numeric zone; Release files say `UTC`.
    let value = value.strip_suffix(" UTC").map(|v| format!("{v} +0000"));
    DateTime::parse_from_rfc2822(value.as_deref()?)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_come_from_both_source_formats_with_their_suffixes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n\
             deb-src http://mirror.example/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\n\nTypes: deb\nURIs: http://security.example/debian-security\n\
             Suites: bookworm-security\nComponents: main\n\nTypes: deb\n\
             URIs: http://other.example/ubuntu\nSuites: noble\nComponents: main\n",
        )
        .unwrap();
        let archives = host_archives(dir.path());
        let pairs: Vec<(&str, &str)> = archives
            .iter()
            .map(|a| (a.uri.as_str(), a.suffix.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("http://mirror.example/debian", ""),
                ("http://mirror.example/debian", "-updates"),
                ("http://security.example/debian-security", "-security"),
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(host_archives(empty.path()), default_archives());
    }

    #[test]
    fn release_dates_are_read() {
        let text = "Origin: Debian\nDate: Sat, 05 Dec 2026 03:33:30 UTC\nValid-Until: x\n";
        assert_eq!(
            release_date(text).unwrap().timestamp(),
            1_796_441_610,
            "the date mmdebstrap's SOURCE_DATE_EPOCH was measured with"
        );
        assert!(release_date("Date: yesterday\n").is_none());
    }
}
