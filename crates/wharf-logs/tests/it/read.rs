use chrono::{TimeZone, Utc};
use wharf_logs::{LogError, LogFilter, LogLine, Source};

use crate::fixture::{all_lines, app_line, ids, texts, Fixture};

#[tokio::test]
async fn every_field_round_trips_through_append_and_read() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    let time = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
    let lines = vec![
        LogLine {
            time,
            source: Source::App,
            process: "web.1".into(),
            text: "tab\there back\\slash \\t \\\\n ünïcødé 🚢 \u{0}\u{1b}[31mred".into(),
        },
        LogLine {
            time: time + chrono::Duration::nanoseconds(1),
            source: Source::Wharf,
            process: "run.1".into(),
            text: "State changed from starting to up".into(),
        },
        LogLine {
            time,
            source: Source::Router,
            process: "router".into(),
            text: "at=info method=GET path=\"/a?b=c\tc\" status=200".into(),
        },
        LogLine {
            time,
            source: Source::App,
            process: "worker.12".into(),
            text: String::new(),
        },
    ];
    for line in &lines {
        assert!(log.append(line.clone()));
    }
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(ids(&read), [1, 2, 3, 4]);
    let read_lines: Vec<LogLine> = read.into_iter().map(|s| s.line).collect();
    assert_eq!(read_lines, lines);
}

#[tokio::test]
async fn line_breaks_inside_a_line_are_replaced_so_it_stays_one_line() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    assert!(log.append(app_line("web.1", "one\r\ntwo\rthree\nfour\r\n")));
    assert!(log.append(app_line("web.1", "next")));
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(texts(&read), ["one two three four", "next"]);
    assert!(read[0]
        .line
        .heroku_format()
        .ends_with(" app[web.1]: one two three four"));
}

#[tokio::test]
async fn lines_returns_the_newest_lines_oldest_first() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for i in 1..=300 {
        assert!(log.append(app_line("web.1", format!("line {i}"))));
    }
    log.flush().await;
    let default = log.read(&LogFilter::default()).await.unwrap();
    assert_eq!(default.len(), 100);
    assert_eq!(default[0].line.text, "line 201");
    assert_eq!(default[99].line.text, "line 300");
    let five = LogFilter {
        lines: Some(5),
        ..LogFilter::default()
    };
    assert_eq!(
        ids(&log.read(&five).await.unwrap()),
        [296, 297, 298, 299, 300]
    );
    let none = LogFilter {
        lines: Some(0),
        ..LogFilter::default()
    };
    assert!(log.read(&none).await.unwrap().is_empty());
    let huge = LogFilter {
        lines: Some(usize::MAX),
        ..LogFilter::default()
    };
    assert_eq!(log.read(&huge).await.unwrap().len(), 300);
}

#[tokio::test]
async fn the_line_limit_is_1500() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for i in 1..=1600 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(read.len(), 1500);
    assert_eq!(read[0].id.get(), 101);
}

#[tokio::test]
async fn source_and_process_filters_select_lines() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    let lines = [
        LogLine::new(Source::App, "web.1", "a web.1"),
        LogLine::new(Source::App, "web.2", "a web.2"),
        LogLine::new(Source::App, "webby.1", "a webby.1"),
        LogLine::new(Source::App, "worker.1", "a worker.1"),
        LogLine::event("web.1", "w web.1"),
        LogLine::router("r router"),
        LogLine::new(Source::App, "api", "a api"),
    ];
    for line in lines {
        assert!(log.append(line));
    }
    log.flush().await;
    let read = |source: Option<&str>, process: Option<&str>| {
        let filter = LogFilter {
            lines: None,
            source: source.map(str::to_owned),
            process: process.map(str::to_owned),
        };
        let log = log.clone();
        async move { texts(&log.read(&filter).await.unwrap()) }
    };
    assert_eq!(
        read(None, Some("web")).await,
        ["a web.1", "a web.2", "w web.1"]
    );
    assert_eq!(read(None, Some("web.1")).await, ["a web.1", "w web.1"]);
    assert_eq!(read(Some("app"), Some("web")).await, ["a web.1", "a web.2"]);
    assert_eq!(read(Some("wharf"), None).await, ["w web.1", "r router"]);
    assert_eq!(read(Some("heroku"), None).await, ["w web.1", "r router"]);
    assert_eq!(read(Some("router"), None).await, ["r router"]);
    assert_eq!(read(None, Some("router")).await, ["r router"]);
    assert_eq!(read(None, Some("api")).await, ["a api"]);
    assert_eq!(read(None, Some("")).await.len(), 7);
    assert_eq!(read(Some("app"), Some("nope")).await, Vec::<String>::new());
}

#[tokio::test]
async fn bad_filters_and_app_ids_are_refused_with_clear_errors() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    let filter = LogFilter {
        source: Some("kernel".into()),
        ..LogFilter::default()
    };
    let err = log.read(&filter).await.unwrap_err();
    assert!(matches!(err, LogError::InvalidSource { .. }), "{err:?}");
    assert!(log.follow(filter, None).await.is_err());

    for bad in ["../escape", "", ".hidden", "a/b", "x\ny"] {
        let log = fx.store.app(bad);
        assert!(!log.append(app_line("web.1", "nope")));
        let err = log.read(&LogFilter::default()).await.unwrap_err();
        assert!(
            err.to_string().starts_with("app id `")
                && err.to_string().contains("cannot name a log directory"),
            "{err}"
        );
        assert!(log.follow(LogFilter::default(), None).await.is_err());
        log.flush().await;
        assert!(fx.store.remove_app(bad).await.is_err());
    }
    assert!(!fx.dir.path().parent().unwrap().join("escape").exists());
    assert_eq!(log.stats().accepted, 0);
}

#[tokio::test]
async fn an_app_never_written_reads_empty() {
    let fx = Fixture::new();
    let log = fx.store.app("quiet");
    assert!(log.read(&LogFilter::default()).await.unwrap().is_empty());
    log.flush().await;
    assert!(!fx.app_dir("quiet").exists(), "reading creates nothing");
}

#[test]
fn outside_a_runtime_appends_are_refused_not_panicking() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    assert!(!log.append(app_line("web.1", "no runtime")));
    assert_eq!(log.stats().dropped, 1);
}

#[test]
fn retention_that_keeps_nothing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = wharf_logs::LogStore::open(
        dir.path(),
        wharf_logs::Retention {
            segment_bytes: 1024,
            max_segments: 0,
        },
    )
    .err()
    .expect("refused");
    assert_eq!(
        err.to_string(),
        "log retention needs segment_bytes and max_segments of at least 1 (got 1024 and 0)"
    );
}
