//! CSV loading: accepted layouts and typed errors with line numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "models_common/mod.rs"]
mod common;

use chorus_node::models::{Bars, BarsError, Target};

#[test]
fn loads_the_shipped_file() {
    let bars = common::eurusd();
    assert_eq!(bars.len(), 5000);
    assert!(bars.has_high_low());
    let b0 = bars.get(0).unwrap();
    assert_eq!(b0.time.as_deref(), Some("2017-04-19 09:00:00"));
    assert_eq!(
        (b0.open, b0.high, b0.low, b0.close),
        (1.0716, 1.0722, 1.07083, 1.07219)
    );
    let b1 = bars.get(1).unwrap();
    assert_eq!(bars.truth(Target::Close, 0), Some(b1.close));
    assert_eq!(bars.truth(Target::Range, 0), Some((b1.high / b1.low).ln()));
    assert_eq!(
        bars.truth(Target::Return, 0),
        Some((b1.close / b0.close).ln())
    );
    assert_eq!(bars.truth(Target::Close, 4999), None);
    let truths = bars.truths(Target::Range);
    assert_eq!(truths.len(), 5000);
    assert!(truths[..4999].iter().all(Option::is_some));
}

#[test]
fn header_is_case_insensitive_and_order_free() {
    let text = "\u{feff}Volume,CLOSE,Low,High,Date,Open\n10,1.5,1.4,1.6,2020-01-02,1.45\n\n11,1.55,1.5,1.6,2020-01-03,1.5\n";
    let bars = Bars::from_csv_str(text).unwrap();
    assert_eq!(bars.len(), 2);
    let b = bars.get(1).unwrap();
    assert_eq!((b.open, b.high, b.low, b.close), (1.5, 1.6, 1.5, 1.55));
    assert_eq!(b.time.as_deref(), Some("2020-01-03"));
    // Whitespace around fields is trimmed.
    let bars = Bars::from_csv_str(" time , close \n 2020-01-01 10:00 , 2.0 \n").unwrap();
    assert_eq!(bars.get(0).unwrap().close, 2.0);
    assert_eq!(
        bars.get(0).unwrap().time.as_deref(),
        Some("2020-01-01 10:00")
    );
}

#[test]
fn close_only_series_works_except_for_range() {
    let bars = Bars::from_csv_str("close\n1.0\n1.2\n0.9\n").unwrap();
    assert!(!bars.has_high_low());
    let b = bars.get(1).unwrap();
    assert_eq!((b.open, b.high, b.low), (1.0, 1.2, 1.0));
    assert!(bars.check_target(Target::Close).is_ok());
    assert!(bars.check_target(Target::Return).is_ok());
    assert!(matches!(
        bars.check_target(Target::Range),
        Err(BarsError::TargetUnavailable {
            target: Target::Range
        })
    ));
}

fn err(text: &str) -> BarsError {
    Bars::from_csv_str(text).unwrap_err()
}

#[test]
fn malformed_files_give_typed_errors_with_line_numbers() {
    assert!(matches!(err(""), BarsError::NoHeader));
    assert!(matches!(
        err("time,open,high,low\n1,2,3,4\n"),
        BarsError::MissingColumn {
            column: "close",
            ..
        }
    ));
    assert!(matches!(
        err("close,Close\n1,2\n"),
        BarsError::DuplicateColumn { .. }
    ));
    assert!(matches!(err("close\n"), BarsError::Empty));

    match err("time,close\n2020-01-01,1.0\n2020-01-02,abc\n") {
        BarsError::Field {
            line: 3,
            column: "close",
            reason,
        } => assert!(reason.contains("abc")),
        other => panic!("{other:?}"),
    }
    match err("close\n1\n2\nNaN\n") {
        BarsError::Field {
            line: 4, reason, ..
        } => assert!(reason.contains("finite")),
        other => panic!("{other:?}"),
    }
    match err("close\n1\n-2\n") {
        BarsError::Field {
            line: 3, reason, ..
        } => assert!(reason.contains("positive")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        err("close,high\n1,2\n"),
        BarsError::MissingColumn { column: "low", .. }
    ));
    match err("close,high,low\n1,,0.5\n") {
        BarsError::Field {
            line: 2,
            column: "high",
            reason,
        } => assert!(reason.contains("empty")),
        other => panic!("{other:?}"),
    }
    match err("open,high,low,close\n1,2,0.5,1\n1,0.5,2,1\n") {
        BarsError::Inconsistent { line: 3, reason } => assert!(reason.contains("below")),
        other => panic!("{other:?}"),
    }
    match err("open,high,low,close\n1,2,0.5,1\n1,2,0.5\n") {
        BarsError::Csv { line: 3, reason } => {
            assert!(reason.contains("expected 4 fields, found 3"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // An unterminated quote is read leniently by the csv crate; it must simply not panic.
    let _ = Bars::from_csv_str("close\n\"1.0\n");
    let _ = Bars::from_csv_str("close\n\"1.0\n2\"x,3\n");
    match Bars::from_csv_reader(&b"close\n1.0\n\xff\xfe\n"[..]).unwrap_err() {
        BarsError::Csv { line: 3, reason } => assert!(reason.contains("UTF-8"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match Bars::load_csv("/nonexistent/bars.csv").unwrap_err() {
        e @ BarsError::Io { .. } => assert!(e.to_string().contains("/nonexistent/bars.csv")),
        other => panic!("{other:?}"),
    }
    // Messages are human-readable.
    assert_eq!(
        err("time,close\n2020-01-01,1.0\n2020-01-02,abc\n").to_string(),
        "CSV line 3, column `close`: not a number: \"abc\""
    );
}
