//! Which lines a read or a follow wants.

use crate::error::{shown, LogError};
use crate::line::{LogLine, Source};

/// Lines a read returns when the filter doesn't say.
pub const DEFAULT_LINES: usize = 100;
/// Most lines one read returns (Heroku's limit for `logs -n`); larger requests get this many.
pub const MAX_LINES: usize = 1500;

/// Which lines to read or follow, as `heroku logs` asks for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// How many of the newest matching lines to return (or to start a follow with):
    /// [`DEFAULT_LINES`] when `None`, at most [`MAX_LINES`].
    pub lines: Option<usize>,
    /// Only lines from this source: `app`, `router`, or `wharf` (also spelled `heroku`), which
    /// means every platform line including the router's, as `heroku logs --source heroku` does.
    pub source: Option<String>,
    /// Only lines of this process: `web.1` matches exactly; a type without a number, `web`,
    /// matches `web`, `web.1`, `web.2`… (not `webby.1`), like `heroku logs --dyno`. Empty means any.
    pub process: Option<String>,
}

impl LogFilter {
    /// The number of lines a read returns: `lines`, defaulted and capped.
    pub fn tail_lines(&self) -> usize {
        self.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES)
    }

    /// Checks the filter, so a server can refuse it before starting a stream.
    pub fn check(&self) -> Result<(), LogError> {
        self.matcher().map(drop)
    }

    pub(crate) fn matcher(&self) -> Result<Matcher, LogError> {
        let (app, wharf, router) = match self.source.as_deref() {
            None => (true, true, true),
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "app" => (true, false, false),
                "wharf" | "heroku" => (false, true, true),
                "router" => (false, false, true),
                _ => return Err(LogError::InvalidSource { value: shown(s) }),
            },
        };
        let process = match self.process.as_deref() {
            None | Some("") => None,
            Some(p) if p.contains('.') => Some(ProcessMatch::Exact(p.to_owned())),
            Some(p) => Some(ProcessMatch::Type(p.to_owned())),
        };
        Ok(Matcher {
            app,
            wharf,
            router,
            process,
        })
    }
}

/// A checked [`LogFilter`], applied to each line.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    app: bool,
    wharf: bool,
    router: bool,
    process: Option<ProcessMatch>,
}

#[derive(Debug, Clone)]
enum ProcessMatch {
    Exact(String),
    Type(String),
}

impl Matcher {
    pub(crate) fn matches(&self, line: &LogLine) -> bool {
        let source = match line.source {
            Source::App => self.app,
            Source::Wharf => self.wharf,
            Source::Router => self.router,
        };
        source
            && match &self.process {
                None => true,
                Some(ProcessMatch::Exact(p)) => line.process == *p,
                Some(ProcessMatch::Type(t)) => {
                    line.process
                        .split_once('.')
                        .map_or(&*line.process, |(ty, _)| ty)
                        == t
                }
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &LogFilter, source: Source, process: &str) -> bool {
        filter
            .matcher()
            .unwrap()
            .matches(&LogLine::new(source, process, "x"))
    }

    #[test]
    fn a_process_type_matches_its_numbered_processes_only() {
        let web = LogFilter {
            process: Some("web".into()),
            ..LogFilter::default()
        };
        assert!(matches(&web, Source::App, "web.1"));
        assert!(matches(&web, Source::Wharf, "web.2"));
        assert!(matches(&web, Source::App, "web"));
        assert!(!matches(&web, Source::App, "webby.1"));
        assert!(!matches(&web, Source::App, "worker.1"));
        let web1 = LogFilter {
            process: Some("web.1".into()),
            ..LogFilter::default()
        };
        assert!(matches(&web1, Source::App, "web.1"));
        assert!(!matches(&web1, Source::App, "web.10"));
        assert!(!matches(&web1, Source::App, "web"));
    }

    #[test]
    fn sources_filter_like_heroku() {
        let of = |s: &str| LogFilter {
            source: Some(s.into()),
            ..LogFilter::default()
        };
        assert!(matches(&of("app"), Source::App, "web.1"));
        assert!(!matches(&of("app"), Source::Router, "router"));
        assert!(matches(&of("wharf"), Source::Router, "router"));
        assert!(matches(&of("heroku"), Source::Wharf, "web.1"));
        assert!(!matches(&of("router"), Source::Wharf, "web.1"));
        let err = of("syslog").check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "log source `syslog` is not one of `app`, `wharf` (or `heroku`), `router`"
        );
    }

    #[test]
    fn line_counts_default_and_cap() {
        assert_eq!(LogFilter::default().tail_lines(), DEFAULT_LINES);
        let many = LogFilter {
            lines: Some(1_000_000),
            ..LogFilter::default()
        };
        assert_eq!(many.tail_lines(), MAX_LINES);
    }
}
