//! The one way wharf writes an error with its causes, for logs and for messages users read.

/// `error`, then each of its causes, joined by `: ` (`cannot start `web`: No such file or
/// directory`).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start `web`")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_every_cause() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        assert_eq!(error_chain(&e), "cannot start `web`: no such file");
    }
}
