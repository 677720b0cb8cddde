use std::fs;

use futures_util::StreamExt;
use wharf_logs::{LogFilter, LogLine};

use crate::fixture::{all_lines, app_line, ids, next_line, texts, Fixture};

#[tokio::test]
async fn lines_and_ids_survive_a_restart() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for i in 1..=10 {
        assert!(log.append(app_line("web.1", format!("before {i}"))));
    }
    drop(log);
    let fx = fx.restart().await;
    let log = fx.store.app("myapp");
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(ids(&read), (1..=10).collect::<Vec<_>>());
    assert!(log.append(app_line("web.1", "after")));
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(read.last().unwrap().id.get(), 11);
    assert_eq!(read.last().unwrap().line.text, "after");
}

#[tokio::test]
async fn a_torn_last_line_is_skipped_and_appending_continues_on_a_fresh_line() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for text in ["one", "two", "three"] {
        assert!(log.append(app_line("web.1", text)));
    }
    drop(log);
    let fx = fx.restart().await;
    // A crash mid-write: the last record is cut short.
    let segment = fx.app_dir("myapp").join("00000001.log");
    let bytes = fs::read(&segment).unwrap();
    fs::write(&segment, &bytes[..bytes.len() - 4]).unwrap();

    let log = fx.store.app("myapp");
    assert!(log.append(app_line("web.1", "four")));
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(texts(&read), ["one", "two", "four"]);
    assert_eq!(ids(&read), [1, 2, 3]);
    assert_eq!(log.stats().corrupt, 1);
    let on_disk = fs::read_to_string(&segment).unwrap();
    assert!(on_disk.ends_with("\tfour\n"), "{on_disk:?}");
}

#[tokio::test]
async fn corrupt_lines_are_skipped_not_fatal() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    assert!(log.append(app_line("web.1", "good one")));
    log.flush().await;
    let segment = fx.app_dir("myapp").join("00000001.log");
    let mut bytes = fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"this is not a record\n\xff\xfe\n\0\0\0\0\n");
    fs::write(&segment, &bytes).unwrap();
    fs::write(fx.app_dir("myapp").join("notes.txt"), "not a segment").unwrap();
    drop(log);

    let fx = fx.restart().await;
    let log = fx.store.app("myapp");
    assert!(log.append(app_line("web.1", "good two")));
    log.flush().await;
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(texts(&read), ["good one", "good two"]);
    assert_eq!(ids(&read), [1, 2]);
    assert_eq!(log.stats().corrupt, 3);
}

#[tokio::test]
async fn removing_an_app_deletes_its_log_and_ends_its_followers() {
    let fx = Fixture::new();
    let log = fx.store.app("doomed");
    assert!(log.append(app_line("web.1", "hello")));
    log.flush().await;
    let mut follow = log.follow(LogFilter::default(), None).await.unwrap();
    assert_eq!(next_line(&mut follow).await.line.text, "hello");

    fx.store.remove_app("doomed").await.unwrap();
    assert!(!fx.app_dir("doomed").exists());
    assert!(!log.append(app_line("web.1", "too late")));
    let end = tokio::time::timeout(crate::fixture::DEADLINE, follow.next()).await;
    assert!(end.expect("the follow ends before the deadline").is_none());

    let fresh = fx.store.app("doomed");
    assert!(fresh.append(LogLine::event("web.1", "reborn")));
    fresh.flush().await;
    let read = fresh.read(&all_lines()).await.unwrap();
    assert_eq!(ids(&read), [1]);
    assert_eq!(read[0].line.text, "reborn");
    // A client resuming with an id from the old log gets the new log from its tail.
    let mut resumed = fresh
        .follow(LogFilter::default(), Some(wharf_logs::EventId::new(5000)))
        .await
        .unwrap();
    assert_eq!(next_line(&mut resumed).await.line.text, "reborn");
    // Removing an app that has no log is fine.
    fx.store.remove_app("never-existed").await.unwrap();
}

#[tokio::test]
async fn shutdown_flushes_and_ends_followers() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    let mut follow = log.follow(LogFilter::default(), None).await.unwrap();
    assert!(log.append(app_line("web.1", "last words")));
    fx.store.shutdown().await;
    assert_eq!(next_line(&mut follow).await.line.text, "last words");
    let end = tokio::time::timeout(crate::fixture::DEADLINE, follow.next()).await;
    assert!(end.expect("the follow ends before the deadline").is_none());
    assert!(!log.append(app_line("web.1", "after shutdown")));
    assert!(!fx
        .store
        .app("other")
        .append(app_line("web.1", "after shutdown")));
}
