//! The Procfile: which process types an app has and the command each one runs.
//!
//! The format is Heroku's: one `type: command` per line. Blank lines and lines whose first
//! non-blank character is `#` are ignored; whitespace around the type and the command is trimmed;
//! CRLF line endings are accepted. The command is everything after the first `:`, so it may
//! contain colons of its own (`web: rails s -b 0.0.0.0:$PORT`).

use std::collections::BTreeMap;

use crate::name::{NameError, ProcessType};

/// A Procfile could not be read. `line` is 1-based; for [`Procfile::new`] it is the entry's
/// position, which is its line in [`Procfile::render`]'s output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcfileError {
    #[error("line {line}: missing `:` — each line must look like `web: command`")]
    MissingColon { line: usize },
    #[error("line {line}: {reason}")]
    InvalidProcessType { line: usize, reason: NameError },
    #[error(
        "line {line}: process type `{process_type}` has an empty command: write it after the `:`"
    )]
    EmptyCommand {
        line: usize,
        process_type: ProcessType,
    },
    #[error(
        "line {line}: the command of process type `{process_type}` contains a line break: a \
         command must fit on one line"
    )]
    MultiLineCommand {
        line: usize,
        process_type: ProcessType,
    },
    #[error(
        "line {line}: duplicate process type `{process_type}` (first defined on line \
         {first_line}): keep only one"
    )]
    Duplicate {
        line: usize,
        process_type: ProcessType,
        first_line: usize,
    },
}

impl ProcfileError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            ProcfileError::MissingColon { line }
            | ProcfileError::InvalidProcessType { line, .. }
            | ProcfileError::EmptyCommand { line, .. }
            | ProcfileError::MultiLineCommand { line, .. }
            | ProcfileError::Duplicate { line, .. } => *line,
        }
    }
}

/// Reads a Procfile; the same as [`Procfile::parse`].
pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
    Procfile::parse(text)
}

/// One `type: command` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfileEntry {
    pub process_type: ProcessType,
    pub command: String,
}

/// A parsed Procfile: entries in file order, each process type at most once, each command
/// non-empty, trimmed and on one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procfile {
    entries: Vec<ProcfileEntry>,
}

impl Procfile {
    /// Reads a Procfile; see the module docs for the format.
    pub fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        let mut entries = Vec::new();
        let mut lines = Vec::new();
        // `split('\n')` rather than `lines()`: a lone `\r` must not end a line, or line numbers
        // would disagree with the user's editor.
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let Some((name, command)) = content.split_once(':') else {
                return Err(ProcfileError::MissingColon { line });
            };
            let process_type = ProcessType::parse(name.trim())
                .map_err(|reason| ProcfileError::InvalidProcessType { line, reason })?;
            entries.push(ProcfileEntry {
                process_type,
                command: command.trim().to_owned(),
            });
            lines.push(line);
        }
        Procfile::check(entries, &lines)
    }

    /// Makes a Procfile from entries, trimming each command as [`Procfile::parse`] does. Fails on
    /// a repeated process type or an empty or multi-line command.
    pub fn new(entries: Vec<ProcfileEntry>) -> Result<Procfile, ProcfileError> {
        let entries = entries
            .into_iter()
            .map(|e| ProcfileEntry {
                command: e.command.trim().to_owned(),
                process_type: e.process_type,
            })
            .collect::<Vec<_>>();
        let lines = (1..=entries.len()).collect::<Vec<_>>();
        Procfile::check(entries, &lines)
    }

    /// Checks entries whose line numbers are `lines[i]`.
    fn check(entries: Vec<ProcfileEntry>, lines: &[usize]) -> Result<Procfile, ProcfileError> {
        let mut seen: BTreeMap<&ProcessType, usize> = BTreeMap::new();
        for (entry, &line) in entries.iter().zip(lines) {
            let process_type = &entry.process_type;
            if let Some(&first_line) = seen.get(process_type) {
                return Err(ProcfileError::Duplicate {
                    line,
                    process_type: process_type.clone(),
                    first_line,
                });
            }
            seen.insert(process_type, line);
            if entry.command.is_empty() {
                return Err(ProcfileError::EmptyCommand {
                    line,
                    process_type: process_type.clone(),
                });
            }
            if entry.command.contains(['\n', '\r']) {
                return Err(ProcfileError::MultiLineCommand {
                    line,
                    process_type: process_type.clone(),
                });
            }
        }
        Ok(Procfile { entries })
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[ProcfileEntry] {
        &self.entries
    }

    /// The command of process type `process_type`, if there is one.
    pub fn get(&self, process_type: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.process_type.as_str() == process_type)
            .map(|e| e.command.as_str())
    }

    /// The process types in file order.
    pub fn process_types(&self) -> impl Iterator<Item = &ProcessType> {
        self.entries.iter().map(|e| &e.process_type)
    }

    /// The Procfile as text, one `type: command` line per entry, which [`Procfile::parse`] reads
    /// back unchanged.
    pub fn render(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}: {}\n", e.process_type, e.command))
            .collect()
    }
}

/// A process's command as `sh -c` runs it: `exec <command>` when the command is one simple
/// command, so the shell does not stay between the platform and the app (the app gets the
/// stop signal itself); otherwise the command as written (`a && b`, `cd x; ./run`).
pub fn exec_form(command: &str) -> String {
    let first_word = command.split_whitespace().next().unwrap_or("");
    let compound = command
        .chars()
        .any(|c| matches!(c, ';' | '&' | '|' | '\n' | '(' | ')' | '{' | '}' | '`'))
        || first_word.contains('=')
        || matches!(
            first_word,
            // Shell words and builtins that `exec` can't run (`exit 3`, `. ./env.sh`).
            "if" | "for"
                | "while"
                | "until"
                | "case"
                | "exec"
                | "!"
                | "cd"
                | "export"
                | "set"
                | "unset"
                | "exit"
                | "."
                | "source"
                | "eval"
                | "ulimit"
                | "umask"
                | "trap"
                | "read"
                | "wait"
        );
    if compound || command.trim().is_empty() {
        command.to_owned()
    } else {
        format!("exec {command}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(text: &str) -> String {
        Procfile::parse(text).unwrap_err().to_string()
    }

    fn entry(t: &str, command: &str) -> ProcfileEntry {
        ProcfileEntry {
            process_type: ProcessType::parse(t).unwrap(),
            command: command.to_owned(),
        }
    }

    #[test]
    fn reads_heroku_procfiles() {
        let text = "# processes\n\
                    web: bundle exec rails s -b 0.0.0.0:$PORT\r\n\
                    \n   # indented comment\n\
                    \tworker :  bin/worker  --queue=a:b  \n\
                    release:./migrate";
        let p = Procfile::parse(text).unwrap();
        assert_eq!(
            p.entries(),
            [
                entry("web", "bundle exec rails s -b 0.0.0.0:$PORT"),
                entry("worker", "bin/worker  --queue=a:b"),
                entry("release", "./migrate"),
            ]
        );
        assert_eq!(p.get("worker"), Some("bin/worker  --queue=a:b"));
        assert_eq!(p.get("clock"), None);
        let types: Vec<&str> = p.process_types().map(ProcessType::as_str).collect();
        assert_eq!(types, ["web", "worker", "release"]);
        assert!(Procfile::parse("").unwrap().entries().is_empty());
    }

    #[test]
    fn renders_one_line_per_entry() {
        let p = Procfile::new(vec![entry("web", "  serve "), entry("worker", "work")]).unwrap();
        assert_eq!(p.render(), "web: serve\nworker: work\n");
        assert_eq!(Procfile::parse(&p.render()).unwrap(), p);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            err("web: a\n\nnope"),
            "line 3: missing `:` — each line must look like `web: command`"
        );
        assert_eq!(
            err("web: a\nw eb: b"),
            "line 2: process type `w eb` may only contain letters, digits, `-` and `_` (found ' ')"
        );
        assert_eq!(
            err("\n\nWeb!: x"),
            "line 3: process type `Web!` may only contain letters, digits, `-` and `_` (found '!')"
        );
        assert_eq!(
            err(": x"),
            "line 1: process type is empty: use a name such as `web` or `worker`"
        );
        assert_eq!(
            err("web: a\n\n\n\nworker:   "),
            "line 5: process type `worker` has an empty command: write it after the `:`"
        );
        assert_eq!(
            err("# c\nweb: a\nworker: b\nweb: c"),
            "line 4: duplicate process type `web` (first defined on line 2): keep only one"
        );
        assert_eq!(
            Procfile::new(vec![entry("web", "a\nb")])
                .unwrap_err()
                .to_string(),
            "line 1: the command of process type `web` contains a line break: a command must fit \
             on one line"
        );
        assert_eq!(
            Procfile::new(vec![entry("web", "a"), entry("web", "b")])
                .unwrap_err()
                .line(),
            2
        );
    }

    #[test]
    fn lone_carriage_returns_do_not_split_lines() {
        assert_eq!(
            err("web: a\rb\nx"),
            "line 2: missing `:` — each line must look like `web: command`"
        );
    }

    fn entries() -> impl Strategy<Value = Vec<ProcfileEntry>> {
        let command = "[^\r\n]*".prop_filter("non-blank", |c: &String| !c.trim().is_empty());
        proptest::collection::btree_map("[A-Za-z][A-Za-z0-9_-]{0,62}", command, 0..8).prop_map(
            |m| {
                m.into_iter()
                    .map(|(t, c)| ProcfileEntry {
                        process_type: ProcessType::parse(&t).unwrap(),
                        command: c.trim().to_owned(),
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(entries in entries()) {
            let p = Procfile::new(entries).unwrap();
            prop_assert_eq!(Procfile::parse(&p.render()).unwrap(), p);
        }

        #[test]
        fn arbitrary_input_never_panics(text in any::<String>()) {
            let _ = Procfile::parse(&text);
        }

        #[test]
        fn procfile_like_input_never_panics(text in "[a-z: \t\r\n#!]{0,40}") {
            if let Err(e) = Procfile::parse(&text) {
                prop_assert!(e.line() >= 1 && e.line() <= text.split('\n').count());
            }
        }
    }

    #[test]
    fn simple_commands_are_execed() {
        assert_eq!(
            exec_form("python3 -m http.server $PORT"),
            "exec python3 -m http.server $PORT"
        );
        assert_eq!(exec_form("cd x && ./run"), "cd x && ./run");
        assert_eq!(exec_form("FOO=1 ./run"), "FOO=1 ./run");
        assert_eq!(exec_form("exit 3"), "exit 3");
        assert_eq!(exec_form(". ./env.sh"), ". ./env.sh");
        assert_eq!(exec_form("trap '' TERM; sleep 5"), "trap '' TERM; sleep 5");
    }
}
