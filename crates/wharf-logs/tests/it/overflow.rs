use std::collections::HashMap;

use wharf_logs::{events, LogFilter, Retention, Source, StoredLine};

use crate::fixture::{app_line, lines_until, read_everything, Fixture};

/// The overflow notices among `lines`, as counts.
fn notices(lines: &[StoredLine]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l.line.source == Source::Wharf && l.line.process == events::LOG_PROCESS)
        .map(|l| events::parse_dropped(&l.line.text).expect("an overflow notice"))
        .collect()
}

#[tokio::test]
async fn a_full_queue_drops_lines_and_the_next_line_reports_them() {
    // One thread: the writer can't run while this test appends without yielding.
    let fx = Fixture::with_queue(Retention::default(), 16);
    let log = fx.store.app("flood");
    let mut follow = log
        .follow(
            LogFilter {
                lines: Some(0),
                ..LogFilter::default()
            },
            None,
        )
        .await
        .unwrap();
    let accepted = (0..20)
        .filter(|i| log.append(app_line("web.1", format!("{i}"))))
        .count();
    assert_eq!(accepted, 16);
    assert_eq!(log.stats().dropped, 4);
    // Wait until the writer has drained the queue, then the next line fits.
    lines_until(&mut follow, "15").await;
    assert!(log.append(app_line("web.1", "after the flood")));
    let got = lines_until(&mut follow, "after the flood").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].line.source, Source::Wharf);
    assert_eq!(got[0].line.process, "wharf");
    assert_eq!(got[0].line.text, "Log overflow: 4 lines dropped");
    assert!(got[0]
        .line
        .heroku_format()
        .ends_with(" wharf[wharf]: Log overflow: 4 lines dropped"));
    assert_eq!(got[1].id.get(), got[0].id.get() + 1);
}

#[tokio::test]
async fn flush_reports_lines_dropped_at_the_end_of_a_flood() {
    let fx = Fixture::with_queue(Retention::default(), 8);
    let log = fx.store.app("flood");
    let accepted = (0..100)
        .filter(|i| log.append(app_line("web.1", format!("{i}"))))
        .count();
    assert_eq!(accepted, 8);
    log.flush().await;
    let lines = read_everything(&log).await;
    assert_eq!(lines.len(), 9);
    assert_eq!(notices(&lines), [92]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_000_lines_is_read_back_in_order_or_reported_dropped() {
    const BURST: u64 = 100_000;
    let fx = Fixture::new();
    let log = fx.store.app("burst");
    let mut follow = log
        .follow(
            LogFilter {
                lines: Some(0),
                ..LogFilter::default()
            },
            None,
        )
        .await
        .unwrap();
    let follower = tokio::spawn(async move { lines_until(&mut follow, "end").await });

    let mut accepted = 0u64;
    let mut dropped = 0u64;
    for i in 0..BURST {
        if log.append(app_line("web.1", format!("{i}"))) {
            accepted += 1;
        } else {
            dropped += 1;
        }
    }
    assert_eq!(accepted + dropped, BURST);
    log.flush().await;
    assert!(log.append(app_line("web.1", "end")));
    let got = follower.await.unwrap();

    let numbers: Vec<u64> = got
        .iter()
        .filter(|l| l.line.source == Source::App && l.line.text != "end")
        .map(|l| l.line.text.parse().unwrap())
        .collect();
    assert_eq!(
        numbers.len() as u64,
        accepted,
        "every accepted line is read back"
    );
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    let reported: u64 = notices(&got).iter().sum();
    assert_eq!(reported, dropped, "every dropped line is reported");
    let ids: Vec<u64> = got.iter().map(|l| l.id.get()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps, no repeats"
    );
    assert_eq!(log.stats().accepted, accepted + 1);
    assert_eq!(log.stats().dropped, dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_keeps_its_order_with_concurrent_appenders() {
    const PER_PROCESS: u64 = 3000;
    let fx = Fixture::new();
    let log = fx.store.app("busy");
    let tasks: Vec<_> = (1..=4)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move {
                let process = format!("web.{n}");
                let mut accepted = 0;
                for i in 0..PER_PROCESS {
                    if log.append(app_line(&process, format!("{i}"))) {
                        accepted += 1;
                    }
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    let lines = read_everything(&log).await;
    let mut by_process: HashMap<&str, Vec<u64>> = HashMap::new();
    for line in lines.iter().filter(|l| l.line.source == Source::App) {
        by_process
            .entry(&line.line.process)
            .or_default()
            .push(line.line.text.parse().unwrap());
    }
    assert_eq!(by_process.len(), 4);
    for (process, numbers) in &by_process {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{process} out of order"
        );
    }
    let read: u64 = by_process.values().map(|v| v.len() as u64).sum();
    assert_eq!(read, accepted);
    let reported: u64 = notices(&lines).iter().sum();
    assert_eq!(reported + accepted, 4 * PER_PROCESS);
}
