use wharf_logs::Retention;

use crate::fixture::{all_lines, app_line, ids, read_everything, Fixture};

const SMALL: Retention = Retention {
    segment_bytes: 2048,
    max_segments: 3,
};

#[tokio::test]
async fn segments_rotate_and_old_lines_disappear() {
    let fx = Fixture::with(SMALL);
    let log = fx.store.app("myapp");
    for i in 1..=500 {
        assert!(log.append(app_line("web.1", format!("line {i}"))));
    }
    log.flush().await;

    let segments = fx.segments("myapp");
    assert_eq!(segments.len(), 3, "{segments:?}");
    for segment in &segments {
        let len = std::fs::metadata(segment).unwrap().len();
        assert!(
            len <= SMALL.segment_bytes,
            "{} has {len} bytes",
            segment.display()
        );
    }
    assert!(!fx.app_dir("myapp").join("00000001.log").exists());

    let read = log.read(&all_lines()).await.unwrap();
    let got = ids(&read);
    assert!(got.len() < 500);
    assert!(got[0] > 1, "the oldest lines are gone");
    assert_eq!(*got.last().unwrap(), 500);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    assert_eq!(read.last().unwrap().line.text, "line 500");
}

#[tokio::test]
async fn ids_stay_monotonic_across_rotations_and_reopening() {
    let fx = Fixture::with(SMALL);
    let log = fx.store.app("myapp");
    for i in 1..=200 {
        assert!(log.append(app_line("web.1", format!("line {i}"))));
    }
    drop(log);
    let fx = fx.restart().await;
    let log = fx.store.app("myapp");
    for i in 201..=400 {
        assert!(log.append(app_line("web.1", format!("line {i}"))));
    }
    let lines = read_everything(&log).await;
    let got = ids(&lines);
    assert_eq!(*got.last().unwrap(), 400);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    for line in &lines {
        assert_eq!(line.line.text, format!("line {}", line.id));
    }
}

#[tokio::test]
async fn a_line_longer_than_a_segment_gets_a_segment_of_its_own() {
    let fx = Fixture::with(Retention {
        segment_bytes: 100,
        max_segments: 10,
    });
    let log = fx.store.app("myapp");
    let long = "x".repeat(1000);
    assert!(log.append(app_line("web.1", "short")));
    assert!(log.append(app_line("web.1", long.clone())));
    assert!(log.append(app_line("web.1", "after")));
    log.flush().await;
    assert_eq!(fx.segments("myapp").len(), 3);
    let read = log.read(&all_lines()).await.unwrap();
    assert_eq!(read[1].line.text, long);
    assert_eq!(read[2].line.text, "after");
}
