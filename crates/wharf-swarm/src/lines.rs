//! A container's output, as the engine streams it (chunks of stdout and stderr), cut into the
//! lines of the app's log.

use bollard::container::LogOutput;
use wharf_core::backend::Stream;

/// Which stream a chunk is of, and its bytes; `None` for what is no output (stdin echoes).
pub(crate) fn chunk(output: LogOutput) -> Option<(Stream, bytes::Bytes)> {
    match output {
        LogOutput::StdErr { message } => Some((Stream::Stderr, message)),
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            Some((Stream::Stdout, message))
        }
        LogOutput::StdIn { .. } => None,
    }
}

/// What each stream has written since its last newline.
#[derive(Default)]
pub(crate) struct Lines {
    stdout: String,
    stderr: String,
}

impl Lines {
    fn buffer(&mut self, stream: Stream) -> &mut String {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// Adds a chunk of `stream`; every line it completes goes to `line`, without its newline.
    pub(crate) fn feed(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        mut line: impl FnMut(Stream, &str),
    ) {
        let buffer = self.buffer(stream);
        buffer.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = buffer.find('\n') {
            let text: String = buffer.drain(..=end).collect();
            line(stream, text.trim_end_matches(['\n', '\r']));
        }
    }

    /// The unfinished last line of each stream, once the output has ended.
    pub(crate) fn finish(&mut self, mut line: impl FnMut(Stream, &str)) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(self.buffer(stream));
            if !rest.is_empty() {
                line(stream, &rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_become_lines_per_stream() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        let mut add = |s: Stream, t: &str| seen.push((s, t.to_owned()));
        lines.feed(Stream::Stdout, b"one\r\ntw", &mut add);
        lines.feed(Stream::Stderr, b"oops", &mut add);
        lines.feed(Stream::Stdout, b"o\nthree", &mut add);
        lines.finish(&mut add);
        assert_eq!(
            seen,
            [
                (Stream::Stdout, "one".to_owned()),
                (Stream::Stdout, "two".to_owned()),
                (Stream::Stdout, "three".to_owned()),
                (Stream::Stderr, "oops".to_owned()),
            ]
        );
    }
}
