use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use wharf_logs::{LogLine, Source};

use crate::fixture::{all_lines, Fixture};

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![Just(Source::App), Just(Source::Wharf), Just(Source::Router)]
}

fn line() -> impl Strategy<Value = LogLine> {
    (
        -62_000_000_000i64..300_000_000_000,
        0u32..1_000_000_000,
        source(),
        "\\PC{0,12}|[\\t\\\\.a-z0-9]{0,8}",
        any::<String>(),
    )
        .prop_map(|(secs, nanos, source, process, text)| LogLine {
            time: Utc.timestamp_opt(secs, nanos).single().expect("in range"),
            source,
            process,
            text,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn arbitrary_lines_round_trip_through_append_and_read(lines in prop::collection::vec(line(), 1..20)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let fx = Fixture::new();
            let log = fx.store.app("props");
            for line in &lines {
                prop_assert!(log.append(line.clone()));
            }
            log.flush().await;
            let read = log.read(&all_lines()).await.unwrap();
            let expected: Vec<LogLine> = lines.iter().cloned().map(LogLine::normalized).collect();
            let got: Vec<LogLine> = read.into_iter().map(|s| s.line).collect();
            prop_assert_eq!(got, expected);
            Ok(())
        })?;
    }

    #[test]
    fn text_without_line_breaks_is_stored_unchanged(text in "[^\\r\\n]{0,200}") {
        let line = LogLine::app("web.1", text.clone());
        prop_assert_eq!(line.normalized().text, text);
    }
}
