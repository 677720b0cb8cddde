use wharf_logs::{EventId, LogFilter, LogLine, Retention};

use crate::fixture::{app_line, ids, lines_until, next_line, texts, Fixture};

fn last(n: usize) -> LogFilter {
    LogFilter {
        lines: Some(n),
        ..LogFilter::default()
    }
}

#[tokio::test]
async fn follow_gets_the_tail_then_live_lines_in_order() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for i in 1..=10 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    let mut follow = log.follow(last(3), None).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_line(&mut follow).await);
    }
    assert_eq!(texts(&got), ["8", "9", "10"]);
    for i in 11..=15 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    let live = lines_until(&mut follow, "15").await;
    assert_eq!(ids(&live), [11, 12, 13, 14, 15]);
}

#[tokio::test]
async fn follow_with_no_tail_gets_only_new_lines() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    assert!(log.append(app_line("web.1", "old")));
    log.flush().await;
    let mut follow = log.follow(last(0), None).await.unwrap();
    assert!(log.append(app_line("web.1", "new")));
    let line = next_line(&mut follow).await;
    assert_eq!((line.id.get(), line.line.text.as_str()), (2, "new"));
}

#[tokio::test]
async fn follow_of_an_empty_log_waits_for_the_first_line() {
    let fx = Fixture::new();
    let log = fx.store.app("fresh");
    let mut follow = log.follow(LogFilter::default(), None).await.unwrap();
    assert!(log.append(app_line("web.1", "first")));
    assert_eq!(next_line(&mut follow).await.id, EventId::new(1));
}

#[tokio::test]
async fn follow_applies_source_and_process_filters_to_live_lines() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    let filter = LogFilter {
        lines: Some(0),
        source: Some("app".into()),
        process: Some("web".into()),
    };
    let mut follow = log.follow(filter, None).await.unwrap();
    let lines = [
        app_line("worker.1", "no: worker"),
        LogLine::event("web.1", "no: platform"),
        app_line("webby.1", "no: webby"),
        app_line("web.2", "yes: web.2"),
        app_line("web.1", "yes: web.1"),
    ];
    for line in lines {
        assert!(log.append(line));
    }
    let got = lines_until(&mut follow, "yes: web.1").await;
    assert_eq!(texts(&got), ["yes: web.2", "yes: web.1"]);
}

#[tokio::test]
async fn resuming_after_an_id_gets_exactly_the_lines_after_it() {
    let fx = Fixture::new();
    let log = fx.store.app("myapp");
    for i in 1..=20 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    let mut follow = log.follow(last(1), Some(EventId::new(12))).await.unwrap();
    let got = lines_until(&mut follow, "20").await;
    assert_eq!(ids(&got), (13..=20).collect::<Vec<_>>());
    assert!(log.append(app_line("web.1", "21")));
    assert_eq!(next_line(&mut follow).await.id, EventId::new(21));
}

#[tokio::test]
async fn resuming_across_a_rotation_loses_and_repeats_nothing() {
    let fx = Fixture::with(Retention {
        segment_bytes: 1024,
        max_segments: 1000,
    });
    let log = fx.store.app("myapp");
    for i in 1..=100 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    // A client read up to 37, disconnected, and comes back after many more lines and rotations.
    let mut first = log.follow(last(0), Some(EventId::new(0))).await.unwrap();
    let seen = lines_until(&mut first, "37").await;
    let resume_at = seen.last().unwrap().id;
    drop(first);
    let before = fx.segments("myapp").len();
    for i in 101..=300 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    assert!(fx.segments("myapp").len() > before, "rotated while away");
    let mut again = log.follow(last(0), Some(resume_at)).await.unwrap();
    let got = lines_until(&mut again, "300").await;
    assert_eq!(ids(&got), (38..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn resuming_after_pruned_lines_starts_at_the_oldest_retained() {
    let fx = Fixture::with(Retention {
        segment_bytes: 1024,
        max_segments: 2,
    });
    let log = fx.store.app("myapp");
    for i in 1..=200 {
        assert!(log.append(app_line("web.1", format!("{i}"))));
    }
    log.flush().await;
    let mut follow = log.follow(last(0), Some(EventId::new(3))).await.unwrap();
    let got = lines_until(&mut follow, "200").await;
    let got = ids(&got);
    assert!(got[0] > 4, "lines 4.. were pruned: {got:?}");
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_follower_keeps_up_through_rotations() {
    let fx = Fixture::with(Retention {
        segment_bytes: 4096,
        max_segments: 10_000,
    });
    let log = fx.store.app("myapp");
    let mut follow = log.follow(last(0), None).await.unwrap();
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 1..=5000 {
                while !log.append(app_line("web.1", format!("{i}"))) {
                    // The queue is full: wait for the writer instead of dropping in this test.
                    log.flush().await;
                }
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let got = lines_until(&mut follow, "5000").await;
    writer.await.unwrap();
    let app_lines: Vec<_> = got.iter().filter(|l| l.line.process == "web.1").collect();
    let numbers: Vec<u64> = app_lines
        .iter()
        .map(|l| l.line.text.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=5000).collect::<Vec<_>>());
    let all_ids = ids(&got);
    assert!(
        all_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps, no repeats"
    );
    assert!(fx.segments("myapp").len() > 10);
}
