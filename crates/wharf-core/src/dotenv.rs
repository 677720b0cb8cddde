//! The `.env` file format: [`parse`] reads one into config vars and [`render`] writes config vars
//! back out so that `parse` reads exactly the same vars.
//!
//! What `parse` accepts, line by line:
//!
//! - `KEY=value`, with an optional `export ` prefix and whitespace allowed around the key and `=`.
//!   Keys follow [`ConfigKey`]'s rules. `FOO=` sets `FOO` to the empty string.
//! - Blank lines, and comments: a line whose first non-blank character is `#`.
//! - Unquoted values run to the end of the line and are trimmed. A `#` that starts the value or
//!   follows whitespace begins a comment (`FOO=bar # note` is `bar`); other `#`s are kept
//!   (`FOO=a#b` is `a#b`).
//! - Single-quoted values (`'…'`) are literal: no escapes, and they may span lines.
//! - Double-quoted values (`"…"`) may span lines and understand the escapes `\n`, `\r`, `\t`,
//!   `\"`, `\\` and `\$`. A backslash before any other character is kept as written (`\x` stays
//!   `\x`).
//! - After a closing quote, only whitespace or a `# comment` may follow on that line.
//! - A line break inside quotes is read as `\n`, whether the file uses LF or CRLF line endings.
//!
//! `$FOO` and `${FOO}` are kept literally: there is no variable interpolation. Values may not
//! contain NUL bytes, as config vars may not.
//!
//! When a key appears more than once, its last value wins, and it keeps the position of its first
//! appearance.

use std::collections::BTreeMap;

use crate::config::{ConfigError, ConfigKey};

/// A `.env` file could not be read. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: expected `KEY=value`")]
    Expected { line: usize },
    #[error("line {line}: {reason}")]
    InvalidKey { line: usize, reason: ConfigError },
    #[error("line {line}: unterminated double-quoted value starting here: add the closing `\"`")]
    UnterminatedDouble { line: usize },
    #[error("line {line}: unterminated single-quoted value starting here: add the closing `'`")]
    UnterminatedSingle { line: usize },
    #[error(
        "line {line}: unexpected text after the closing quote: only a `# comment` may follow it \
         on the same line"
    )]
    AfterQuote { line: usize },
    #[error("line {line}: the value of `{key}` contains a NUL byte: remove it")]
    Nul { line: usize, key: ConfigKey },
}

impl DotenvError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            DotenvError::Expected { line }
            | DotenvError::InvalidKey { line, .. }
            | DotenvError::UnterminatedDouble { line }
            | DotenvError::UnterminatedSingle { line }
            | DotenvError::AfterQuote { line }
            | DotenvError::Nul { line, .. } => *line,
        }
    }
}

/// Reads `.env` text into config vars in file order, one entry per key; see the module docs for
/// the syntax.
pub fn parse(text: &str) -> Result<Vec<(ConfigKey, String)>, DotenvError> {
    let mut vars: Vec<(ConfigKey, String)> = Vec::new();
    let mut index: BTreeMap<ConfigKey, usize> = BTreeMap::new();
    let mut cursor = Cursor {
        text,
        pos: 0,
        line: 1,
    };
    while !cursor.at_end() {
        if let Some((key, value)) = cursor.entry()? {
            match index.get(&key) {
                Some(&i) => vars[i].1 = value,
                None => {
                    index.insert(key.clone(), vars.len());
                    vars.push((key, value));
                }
            }
        }
    }
    Ok(vars)
}

/// Writes config vars as `.env` text: one `KEY="value"` line each, with `"`, `\`, `$` and line
/// breaks escaped so other tools neither interpolate nor split them. [`parse`] reads the result
/// back as `vars` for any value without NUL bytes, and with no repeated key.
pub fn render(vars: &[(ConfigKey, String)]) -> String {
    let mut out = String::new();
    for (key, value) in vars {
        out.push_str(key.as_str());
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '$' => out.push_str("\\$"),
                c => out.push(c),
            }
        }
        out.push_str("\"\n");
    }
    out
}

/// Reads `.env` text from `pos`, which is always at a character boundary; every delimiter the
/// parser looks for is ASCII, so slicing at one is safe.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    /// The 1-based line `pos` is on.
    line: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips spaces and tabs; returns whether there were any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Moves past the end of the current line (its `\n`, or the end of the text) and returns what
    /// was on it, without a trailing `\r`.
    fn take_line(&mut self) -> &'a str {
        let rest = self.rest();
        let (line, consumed) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        self.pos += consumed;
        if consumed > line.len() {
            self.line += 1;
        }
        line.strip_suffix('\r').unwrap_or(line)
    }

    /// Reads one line, or several for a quoted multi-line value. Returns `None` for a blank or
    /// comment line.
    fn entry(&mut self) -> Result<Option<(ConfigKey, String)>, DotenvError> {
        self.skip_blanks();
        let rest = self.rest();
        let after_cr = rest.trim_start_matches('\r');
        if after_cr.is_empty() || after_cr.starts_with('\n') || rest.starts_with('#') {
            self.take_line();
            return Ok(None);
        }
        let line = self.line;
        if let Some(after) = rest.strip_prefix("export") {
            // `export FOO=1` exports FOO, but `export=1` and `export = 1` set a var named export.
            let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
            if blanks > 0 && !after[blanks..].starts_with('=') {
                self.pos += "export".len() + blanks;
            }
        }
        let rest = self.rest();
        let key_len = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key_text = &rest[..key_len];
        self.pos += key_len;
        self.skip_blanks();
        if self.peek() != Some('=') {
            return Err(DotenvError::Expected { line });
        }
        self.pos += 1;
        let key = ConfigKey::parse(key_text)
            .map_err(|reason| DotenvError::InvalidKey { line, reason })?;
        let blank_before = self.skip_blanks();
        let value = match self.peek() {
            Some('"') => {
                self.pos += 1;
                let value = self.double_quoted(line)?;
                self.after_quote()?;
                value
            }
            Some('\'') => {
                self.pos += 1;
                let value = self.single_quoted(line)?;
                self.after_quote()?;
                value
            }
            _ => unquoted(self.take_line(), blank_before).to_owned(),
        };
        if value.contains('\0') {
            return Err(DotenvError::Nul { line, key });
        }
        Ok(Some((key, value)))
    }

    /// Reads a double-quoted value whose opening quote, on line `start`, was just passed.
    fn double_quoted(&mut self, start: usize) -> Result<String, DotenvError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(DotenvError::UnterminatedDouble { line: start }),
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    None => return Err(DotenvError::UnterminatedDouble { line: start }),
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\' | '$')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        push_raw(&mut value, c);
                    }
                },
                Some(c) => push_raw(&mut value, c),
            }
        }
    }

    /// Reads a single-quoted value whose opening quote, on line `start`, was just passed.
    fn single_quoted(&mut self, start: usize) -> Result<String, DotenvError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(DotenvError::UnterminatedSingle { line: start }),
                Some('\'') => return Ok(value),
                Some(c) => push_raw(&mut value, c),
            }
        }
    }

    /// Checks and skips the rest of the line after a closing quote.
    fn after_quote(&mut self) -> Result<(), DotenvError> {
        let line = self.line;
        let rest = self.take_line().trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with('#') {
            Ok(())
        } else {
            Err(DotenvError::AfterQuote { line })
        }
    }
}

/// Appends a character read inside quotes, turning a CRLF line break into LF.
fn push_raw(value: &mut String, c: char) {
    if c == '\n' && value.ends_with('\r') {
        value.pop();
    }
    value.push(c);
}

/// The value in the unquoted text after `=`: up to a comment, trimmed. `blank_before` says whether
/// whitespace came between `=` and `text`, which makes a leading `#` a comment.
fn unquoted(text: &str, blank_before: bool) -> &str {
    let mut prev_blank = blank_before;
    for (i, c) in text.char_indices() {
        if c == '#' && prev_blank {
            return text[..i].trim();
        }
        prev_blank = c.is_whitespace();
    }
    text.trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn one(text: &str) -> String {
        let vars = pairs(text);
        assert_eq!(vars.len(), 1, "{text:?} gave {vars:?}");
        vars.into_iter().next().unwrap().1
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_keys_and_values_in_file_order() {
        let text = "# comment\n\nB=2\n  export A = 1 \n\t# indented comment\nC=\n";
        assert_eq!(
            pairs(text),
            [
                ("B".to_owned(), "2".to_owned()),
                ("A".to_owned(), "1".to_owned()),
                ("C".to_owned(), String::new()),
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("\n\n# only comments\n").unwrap().is_empty());
        assert!(parse("A=1\n  \t").unwrap().len() == 1);
        assert!(parse("A=1\r\n \r").unwrap().len() == 1);
    }

    #[test]
    fn unquoted_values() {
        assert_eq!(one("FOO=bar # note"), "bar");
        assert_eq!(one("FOO=bar\t# note"), "bar");
        assert_eq!(one("FOO=a#b"), "a#b");
        assert_eq!(one("FOO= # only a comment"), "");
        assert_eq!(one("FOO=#not-a-comment"), "#not-a-comment");
        assert_eq!(one("FOO=  spaced   out  "), "spaced   out");
        assert_eq!(
            one("FOO=postgres://u:p@h/db?x=1"),
            "postgres://u:p@h/db?x=1"
        );
        assert_eq!(one("FOO=it's \"fine\""), "it's \"fine\"");
        assert_eq!(one("FOO=\\n"), "\\n");
    }

    #[test]
    fn export_prefix() {
        assert_eq!(pairs("export FOO=1"), [("FOO".to_owned(), "1".to_owned())]);
        assert_eq!(pairs("export\tFOO=1"), [("FOO".to_owned(), "1".to_owned())]);
        assert_eq!(pairs("export=1"), [("export".to_owned(), "1".to_owned())]);
        assert_eq!(pairs("export = 1"), [("export".to_owned(), "1".to_owned())]);
        assert_eq!(
            pairs("exported=1"),
            [("exported".to_owned(), "1".to_owned())]
        );
        assert_eq!(err("export FOO"), "line 1: expected `KEY=value`");
    }

    #[test]
    fn no_interpolation() {
        assert_eq!(one("FOO=$HOME/${BAR}"), "$HOME/${BAR}");
        assert_eq!(one("FOO=\"$HOME\""), "$HOME");
        assert_eq!(one("FOO='$HOME'"), "$HOME");
    }

    #[test]
    fn double_quoted_values() {
        assert_eq!(one(r#"FOO="a b""#), "a b");
        assert_eq!(one(r#"FOO="  padded  ""#), "  padded  ");
        assert_eq!(one(r#"FOO="a\nb\rc\td\"e\\f\$g""#), "a\nb\rc\td\"e\\f$g");
        assert_eq!(one(r#"FOO="\x\'""#), "\\x\\'");
        assert_eq!(
            pairs("FOO=\"line 1\nline 2\"\nBAR=1"),
            [
                ("FOO".to_owned(), "line 1\nline 2".to_owned()),
                ("BAR".to_owned(), "1".to_owned()),
            ]
        );
        assert_eq!(one(r#"FOO="a # b" # comment"#), "a # b");
        assert_eq!(one("FOO=\"\"  "), "");
    }

    #[test]
    fn single_quoted_values() {
        assert_eq!(one(r"FOO='a\nb'"), "a\\nb");
        assert_eq!(one("FOO='\"'"), "\"");
        assert_eq!(one("FOO='one\ntwo'"), "one\ntwo");
        assert_eq!(one("FOO='x' # comment"), "x");
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            pairs("A=1\r\n\r\n# c\r\nB=\"x\"\r\nC='multi\r\nline'\r\nD=\"e\r\nf\"\r\n"),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "x".to_owned()),
                ("C".to_owned(), "multi\nline".to_owned()),
                ("D".to_owned(), "e\nf".to_owned()),
            ]
        );
    }

    #[test]
    fn later_duplicates_win_at_the_first_position() {
        assert_eq!(
            pairs("A=1\nB=2\nA=3"),
            [
                ("A".to_owned(), "3".to_owned()),
                ("B".to_owned(), "2".to_owned()),
            ]
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(err("A=1\nB=2\nnot a var"), "line 3: expected `KEY=value`");
        assert_eq!(err("FOO"), "line 1: expected `KEY=value`");
        assert_eq!(
            err("A=1\n1FOO=x"),
            "line 2: config var key `1FOO` must start with a letter or `_`"
        );
        assert_eq!(
            err("FOO-BAR=x"),
            "line 1: config var key `FOO-BAR` may only contain letters, digits and `_` (found '-')"
        );
        assert_eq!(
            err("=x"),
            "line 1: config var key is empty: use a name such as `DATABASE_URL`"
        );
        assert_eq!(
            err("A=1\n\n\n\n\n\nFOO=\"abc\nBAR=2\n"),
            "line 7: unterminated double-quoted value starting here: add the closing `\"`"
        );
        assert_eq!(
            err("FOO=\"abc\\"),
            "line 1: unterminated double-quoted value starting here: add the closing `\"`"
        );
        assert_eq!(
            err("A=1\nFOO='abc"),
            "line 2: unterminated single-quoted value starting here: add the closing `'`"
        );
        assert_eq!(
            err("FOO=\"a\nb\" c"),
            "line 2: unexpected text after the closing quote: only a `# comment` may follow it \
             on the same line"
        );
        assert_eq!(
            err("A=1\nFOO=a\0b"),
            "line 2: the value of `FOO` contains a NUL byte: remove it"
        );
        assert_eq!(parse("A=1\nB=\"\n\n").unwrap_err().line(), 2);
    }

    #[test]
    fn render_quotes_and_escapes() {
        let vars = vec![
            (ConfigKey::parse("A").unwrap(), "plain".to_owned()),
            (
                ConfigKey::parse("B").unwrap(),
                "q\"b\\d$n\nr\rt\t#".to_owned(),
            ),
        ];
        let text = render(&vars);
        assert_eq!(text, "A=\"plain\"\nB=\"q\\\"b\\\\d\\$n\\nr\\rt\\t#\"\n");
        assert_eq!(parse(&text).unwrap(), vars);
        assert_eq!(render(&[]), "");
    }

    fn unique_vars() -> impl Strategy<Value = Vec<(ConfigKey, String)>> {
        let value = any::<String>().prop_map(|s| s.replace('\0', ""));
        proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,20}", value, 0..8).prop_map(
            |vars| {
                vars.into_iter()
                    .map(|(k, v)| (ConfigKey::parse(&k).unwrap(), v))
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn render_then_parse_round_trips(vars in unique_vars()) {
            prop_assert_eq!(parse(&render(&vars)).unwrap(), vars);
        }

        #[test]
        fn awkward_values_round_trip(
            vars in proptest::collection::vec("[\"'\\\\$# \t\r\n=a-z]{0,12}", 0..5)
        ) {
            let vars: Vec<(ConfigKey, String)> = vars
                .into_iter()
                .enumerate()
                .map(|(i, v)| (ConfigKey::parse(&format!("K{i}")).unwrap(), v))
                .collect();
            prop_assert_eq!(parse(&render(&vars)).unwrap(), vars);
        }

        #[test]
        fn arbitrary_input_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn dotenv_like_input_never_panics(text in "[A-Z=\"'\\\\# \t\r\nx$é]{0,40}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.line() >= 1 && e.line() <= text.split('\n').count());
            }
        }
    }
}
