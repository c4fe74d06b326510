//! Report tests on synthetic runs (in-module so they move with the tree into a
//! binary crate).

use std::collections::BTreeMap;
use std::time::Instant;

use super::{
    EpochRecord, ReportError, TopicRun, WorkerInfo, render_table, summarize, write_csv,
    write_report,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
}

/// A run where w_exact is always right, w_off is off by 0.1 and w_rare (declared
/// model "rare") submits only every other epoch, exactly; combined is off by 0.05.
fn synthetic(epochs: u64) -> TopicRun {
    let mut run = TopicRun {
        name: "EUR/USD 1h range".into(),
        target: "range".into(),
        workers: vec![
            WorkerInfo::new("w_off", "ar3-rls"),
            WorkerInfo::new("w_exact", "oracle"),
            WorkerInfo::new("w_rare", "rare"),
        ],
        token_decimals: 6,
        ..TopicRun::default()
    };
    for e in 1..=epochs {
        let truth = 1.0 + (e as f64) * 0.01;
        let mut r = EpochRecord::new(e, truth);
        r.time = Some(format!("2024-01-01T{:02}:00:00Z", e % 24));
        r.inferences.insert("w_off".into(), truth + 0.1);
        r.inferences.insert("w_exact".into(), truth);
        if e.is_multiple_of(2) {
            r.inferences.insert("w_rare".into(), truth);
        }
        r.combined = Some(truth + 0.05);
        r.naive = Some(truth - 0.05);
        r.weights.insert("w_off".into(), 0.25);
        r.weights.insert("w_exact".into(), 0.75);
        r.losses.insert("w_off".into(), -2.0);
        r.losses.insert("combined".into(), -2.6);
        r.rewards.insert("w_exact".into(), 1_500_000);
        r.rewards.insert("w_off".into(), 250_000);
        r.checkpoint_height = Some(e * 3);
        run.records.push(r);
    }
    run.score_ema.insert("w_exact".into(), 0.9);
    run
}

#[test]
fn exact_worker_has_zero_mse_and_is_best() {
    let s = summarize(&synthetic(20), 0).unwrap();
    let exact = s.workers.iter().find(|w| w.name == "w_exact").unwrap();
    assert_eq!(exact.mse, Some(0.0));
    assert!(exact.eligible_for_best);
    assert_eq!(s.best_worker.as_deref(), Some("w_exact"));
    assert_eq!(s.best_worker_mse, Some(0.0));
    // Best has MSE 0: the ratio is undefined, not infinite.
    assert_eq!(s.network_vs_best, None);
    assert_eq!(s.network_beats_best_share, Some(0.0));
    let off = s.workers.iter().find(|w| w.name == "w_off").unwrap();
    assert!(close(off.mse.unwrap(), 0.01));
    assert!(close(off.network_vs_worker.unwrap(), 0.25));
}

/// A forecaster has no inference: its forecast-implied inference makes its bundle count.
#[test]
fn a_forecaster_takes_part_through_its_forecast_implied_inference() {
    let mut run = synthetic(20);
    run.workers.push(WorkerInfo::new("f0", "ema-loss"));
    assert_eq!(summarize(&run, 0).unwrap().complete_epochs, 0);
    for r in run.records.iter_mut().take(12) {
        r.forecast_implied.insert("f0".into(), 1.0);
    }
    // w_rare is in every other epoch: 6 of the first 12 have both
    assert_eq!(summarize(&run, 0).unwrap().complete_epochs, 6);
}

#[test]
fn the_report_counts_complete_and_settled_epochs() {
    // w_rare is in every other epoch: 10 of 20 complete; epochs 1–5 paid no rewards.
    let mut run = synthetic(20);
    for r in run.records.iter_mut().take(5) {
        r.rewards.clear();
    }
    let s = summarize(&run, 0).unwrap();
    assert_eq!(
        (s.scored_epochs, s.complete_epochs, s.settled_epochs),
        (20, 10, 15)
    );
    assert!(
        render_table(&s).contains(
            "of 20 scored epochs: 10 with every worker's bundle finalized, 15 settled with rewards."
        ),
        "{}",
        render_table(&s)
    );
}

#[test]
fn rare_worker_is_not_eligible_for_best() {
    // w_rare is exact in the epochs it submits (50%): same MSE as w_exact but not
    // eligible; remove w_exact and nobody exact is eligible.
    let mut run = synthetic(20);
    for r in &mut run.records {
        r.inferences.remove("w_exact");
    }
    let s = summarize(&run, 0).unwrap();
    let rare = s.workers.iter().find(|w| w.name == "w_rare").unwrap();
    assert_eq!(rare.mse, Some(0.0));
    assert_eq!(rare.submitted_epochs, 10);
    assert!(!rare.eligible_for_best);
    assert_eq!(s.best_worker.as_deref(), Some("w_off"));
    // w_exact is still in the roster (declared) but submitted nothing.
    let exact = s.workers.iter().find(|w| w.name == "w_exact").unwrap();
    assert_eq!((exact.mse, exact.submitted_epochs), (None, 0));
    assert!(render_table(&s).contains("w_rare*"));
}

#[test]
fn ninety_percent_rule_is_inclusive() {
    let mut run = synthetic(10);
    run.records[0].inferences.remove("w_off"); // 9 of 10: eligible
    for r in &mut run.records {
        r.inferences.remove("w_exact");
    }
    assert_eq!(
        summarize(&run, 0).unwrap().best_worker.as_deref(),
        Some("w_off")
    );
    run.records[1].inferences.remove("w_off"); // 8 of 10: not eligible
    assert_eq!(summarize(&run, 0).unwrap().best_worker, None);
}

#[test]
fn three_epoch_network_mse_by_hand() {
    let mut run = TopicRun {
        name: "t".into(),
        target: "close".into(),
        workers: vec![WorkerInfo::new("a", "m"), WorkerInfo::new("b", "m")],
        ..TopicRun::default()
    };
    // truth, combined, naive, a, b
    let rows = [
        (1.0, 1.5, 0.0, 1.0, 3.0),
        (2.0, 1.0, 2.0, 2.5, 2.0),
        (4.0, 4.0, 3.0, 3.0, 4.0),
    ];
    for (i, (t, c, n, a, b)) in rows.into_iter().enumerate() {
        let mut r = EpochRecord::new(i as u64 + 10, t);
        r.combined = Some(c);
        r.naive = Some(n);
        r.inferences = BTreeMap::from([("a".into(), a), ("b".into(), b)]);
        run.records.push(r);
    }
    let s = summarize(&run, 0).unwrap();
    // combined errors 0.5, -1, 0 -> (0.25 + 1 + 0) / 3
    assert!(close(s.network_mse.unwrap(), 1.25 / 3.0));
    // naive errors -1, 0, -1 -> 2/3
    assert!(close(s.naive_mse.unwrap(), 2.0 / 3.0));
    // average 2.0, 2.25, 3.5 -> errors 1, 0.25, -0.5 -> (1 + 0.0625 + 0.25) / 3
    assert!(close(s.average_mse.unwrap(), 1.3125 / 3.0));
    // a: 0, 0.5, -1 -> 1.25/3; b: 2, 0, 0 -> 4/3
    assert!(close(s.workers[0].mse.unwrap(), 1.25 / 3.0));
    assert!(close(s.workers[1].mse.unwrap(), 4.0 / 3.0));
    assert_eq!(s.best_worker.as_deref(), Some("a"));
    assert!(close(s.network_vs_best.unwrap(), 1.0));
    // network vs a per epoch: 0.25>0, 1>0.25, 0<1 -> wins 1 of 3
    assert!(close(s.network_beats_best_share.unwrap(), 1.0 / 3.0));
    assert!(close(s.network_vs_average.unwrap(), 1.25 / 1.3125));
    assert!(close(s.network_vs_naive.unwrap(), 1.25 / 2.0));
    assert_eq!(s.scored_epochs, 3);
}

#[test]
fn warmup_excludes_epochs() {
    let mut run = synthetic(10);
    // Huge errors in the first 4 epochs only.
    for r in run.records.iter_mut().take(4) {
        r.combined = Some(r.truth + 100.0);
        r.inferences.insert("w_exact".into(), r.truth + 100.0);
    }
    let all = summarize(&run, 0).unwrap();
    let warm = summarize(&run, 4).unwrap();
    assert!(all.network_mse.unwrap() > 1000.0);
    assert!(close(warm.network_mse.unwrap(), 0.0025));
    assert_eq!(warm.scored_epochs, 6);
    assert_eq!(warm.warmup_epochs, 4);
    assert_eq!(warm.best_worker_mse, Some(0.0));
    // Warm-up counts by epoch number from the first recorded epoch, even if records
    // are unsorted or some warm-up epochs are missing.
    run.records.remove(2);
    run.records.reverse();
    let warm = summarize(&run, 4).unwrap();
    assert_eq!(warm.scored_epochs, 6);
    assert!(close(warm.network_mse.unwrap(), 0.0025));
    // Rewards include the warm-up.
    let exact = warm.workers.iter().find(|w| w.name == "w_exact").unwrap();
    assert_eq!(exact.rewards, 9 * 1_500_000);
    // A warm-up longer than the run leaves nothing to score.
    let none = summarize(&run, 1000).unwrap();
    assert_eq!(
        (none.scored_epochs, none.network_mse, none.best_worker),
        (0, None, None)
    );
    let table = render_table(&summarize(&run, 4).unwrap());
    assert!(
        table.starts_with(
            "EUR/USD 1h range (target: range): 6 scored epochs after a warm-up of 4 epochs\n"
        ),
        "{table}"
    );
}

#[test]
fn comparisons_use_common_epochs_only() {
    let mut run = synthetic(10);
    // The network is missing where it would have been very bad; w_off answers
    // everywhere. network_mse only covers epochs 6..=10 and so does the comparison.
    for r in run.records.iter_mut().take(5) {
        r.combined = None;
    }
    for r in &mut run.records {
        r.inferences.remove("w_exact");
        r.inferences.remove("w_rare");
    }
    // w_off is much worse in epochs 1..=5 than later.
    for r in run.records.iter_mut().take(5) {
        r.inferences.insert("w_off".into(), r.truth + 10.0);
    }
    let s = summarize(&run, 0).unwrap();
    assert_eq!(s.best_worker.as_deref(), Some("w_off"));
    assert_eq!(s.network_epochs, 5);
    assert_eq!(s.network_vs_best_epochs, 5);
    // On the common epochs: 0.05^2 / 0.1^2.
    assert!(close(s.network_vs_best.unwrap(), 0.25));
    assert!(close(s.network_beats_best_share.unwrap(), 1.0));
}

#[test]
fn json_has_exactly_the_expected_keys() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &[synthetic(30)], 5).unwrap();
    let text = std::fs::read_to_string(&files.summary_json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let topic = &v.as_array().unwrap()[0];
    let keys: Vec<&str> = topic
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let required = [
        "name",
        "target",
        "network_mse",
        "naive_mse",
        "average_mse",
        "best_worker",
        "best_worker_mse",
        "workers",
    ];
    let extras = [
        "warmup_epochs",
        "scored_epochs",
        "unscorable_epochs",
        "network_epochs",
        "naive_epochs",
        "average_epochs",
        "complete_epochs",
        "settled_epochs",
        "network_vs_best",
        "network_vs_best_epochs",
        "network_beats_best_share",
        "network_vs_average",
        "network_vs_naive",
        "best_mix_mse",
        "best_mix_weights",
        "best_mix_epochs",
        "best_mix_vs_best",
        "network_vs_best_mix",
        "total_rewards",
        "token_decimals",
    ];
    let mut expected: Vec<&str> = required.iter().chain(&extras).copied().collect();
    expected.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, expected);

    let worker = &topic["workers"][0];
    let mut wkeys: Vec<&str> = worker
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    wkeys.sort_unstable();
    assert_eq!(
        wkeys,
        [
            "eligible_for_best",
            "model",
            "mse",
            "name",
            "network_vs_worker",
            "one_out_contribution",
            "reward_share",
            "rewards",
            "score_ema",
            "submitted_epochs"
        ]
    );
    assert_eq!(topic["name"], "EUR/USD 1h range");
    assert_eq!(topic["best_worker"], "w_exact");
    assert_eq!(topic["warmup_epochs"], 5);
    assert_eq!(worker["name"], "w_off");
    assert_eq!(worker["model"], "ar3-rls");
    assert_eq!(worker["rewards"], "7500000"); // a string of base units
    assert_eq!(topic["total_rewards"], (30u128 * 1_750_000).to_string());
    // Never-computed values are null, not missing.
    let rare_none = summarize(&TopicRun::default(), 0).unwrap();
    let v = serde_json::to_value(&rare_none).unwrap();
    assert!(v["network_mse"].is_null() && v["best_worker"].is_null());
    // It parses back.
    let back: Vec<super::TopicSummary> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, files.summaries);
}

#[test]
fn csv_round_trips() {
    let mut run = synthetic(12);
    // Awkward names and times need quoting.
    run.workers.push(WorkerInfo::new("we,ird \"one\"", "m"));
    run.records[3].time = Some("a, \"quoted\"\ntime".into());
    run.records[3]
        .inferences
        .insert("we,ird \"one\"".into(), 0.1 + 0.2);
    run.records[4].time = None;
    run.records[4].combined = None;
    run.records[5].losses.insert("forecaster-1".into(), -3.25);
    run.records[6].rewards.insert("w_rare".into(), u128::MAX);

    let mut buf = Vec::new();
    write_csv(&mut buf, &run, 3).unwrap();
    let mut rd = csv::ReaderBuilder::new().from_reader(buf.as_slice());
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let names = ["w_off", "w_exact", "w_rare", "we,ird \"one\""];
    let mut expected = vec!["epoch".to_string(), "time".into(), "truth".into()];
    expected.extend(names.iter().map(|w| format!("inference_{w}")));
    expected.extend(["combined", "naive", "average"].map(String::from));
    expected.extend(names.iter().map(|w| format!("weight_{w}")));
    expected.extend(names.iter().map(|w| format!("loss_{w}")));
    expected.extend(["loss_forecaster-1", "loss_combined", "loss_naive"].map(String::from));
    expected.extend(names.iter().map(|w| format!("reward_{w}")));
    expected.extend(["checkpoint_height", "scored"].map(String::from));
    assert_eq!(header, expected);

    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12);
    for (row, rec) in rows.iter().zip(&run.records) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("epoch")].parse::<u64>().unwrap(), rec.epoch);
        assert_eq!(&row[col("time")], rec.time.as_deref().unwrap_or(""));
        // Floats round-trip bit for bit.
        assert_eq!(row[col("truth")].parse::<f64>().unwrap(), rec.truth);
        for w in names {
            let cell = &row[col(&format!("inference_{w}"))];
            assert_eq!(
                (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap()),
                rec.inferences.get(w).copied()
            );
            let cell = &row[col(&format!("reward_{w}"))];
            assert_eq!(
                (!cell.is_empty()).then(|| cell.parse::<u128>().unwrap()),
                rec.rewards.get(w).copied()
            );
        }
        let cell = &row[col("combined")];
        assert_eq!(
            (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap()),
            rec.combined
        );
        assert_eq!(
            row[col("average")].parse::<f64>().unwrap(),
            rec.average().unwrap()
        );
        assert_eq!(
            row[col("checkpoint_height")].parse::<u64>().unwrap(),
            rec.checkpoint_height.unwrap()
        );
        assert_eq!(&row[col("scored")], if rec.epoch > 3 { "1" } else { "0" });
        assert_eq!(&row[col("weight_w_rare")], "");
        assert_eq!(row[col("loss_combined")].parse::<f64>().unwrap(), -2.6);
    }
    assert_eq!(&rows[5][col("loss_forecaster-1")], "-3.25");
    assert_eq!(
        &rows[3][col("inference_we,ird \"one\"")],
        "0.30000000000000004"
    );
}

/// A minimal XML well-formedness check: balanced, properly nested tags, quoted
/// attributes, no stray `<` or `&` in text.
fn assert_well_formed(xml: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml.trim_start();
    if let Some(r) = rest.strip_prefix("<?xml") {
        rest = &r[r.find("?>").unwrap() + 2..];
    }
    let mut root_seen = false;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if stack.is_empty() {
            assert!(text.trim().is_empty(), "text outside the root: {text:?}");
        }
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..text[i..].find(';').map(|j| i + j + 1).unwrap()];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&ent),
                "bad entity {ent}"
            );
        }
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").unwrap() + 3..];
            continue;
        }
        // Find the end of the tag, skipping quoted attribute values.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '<') => panic!("'<' inside a tag"),
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("unterminated tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched close"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        assert!(!name.is_empty(), "empty tag name");
        if stack.is_empty() {
            assert!(!root_seen, "two root elements");
            root_seen = true;
        }
        // Attributes: name="value" pairs.
        let attrs = tag[name.len()..].trim_end_matches('/');
        let mut a = attrs.trim();
        while !a.is_empty() {
            let eq = a.find('=').expect("attribute without value");
            let q = a[eq + 1..].chars().next().unwrap();
            assert!(q == '"' || q == '\'', "unquoted attribute in {tag}");
            let close = a[eq + 2..].find(q).unwrap();
            assert!(!a[eq + 2..eq + 2 + close].contains('<'));
            a = a[eq + 2 + close + 1..].trim_start();
        }
        if !self_closing {
            stack.push(name);
        }
    }
    assert!(rest.trim().is_empty(), "trailing text");
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(root_seen);
}

#[test]
fn svgs_are_written_and_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = synthetic(60);
    run.name = "A <b> & \"c\"".into();
    run.workers[0].name = "w<&>".into();
    for r in &mut run.records {
        let v = r.inferences.remove("w_off").unwrap();
        r.inferences.insert("w<&>".into(), v);
    }
    let files = write_report(dir.path(), &[synthetic(60), run, TopicRun::default()], 6).unwrap();
    assert_eq!(files.topics.len(), 3);
    assert_eq!(files.topics[0].slug, "eurusd-1h-range");
    assert_eq!(files.topics[2].slug, "topic");
    for t in &files.topics {
        for p in [&t.cumulative_error_svg, &t.weights_svg] {
            let svg = std::fs::read_to_string(p).unwrap();
            assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{p:?}");
            assert!(svg.contains("<path") || svg.contains("<polyline"), "{p:?}");
            assert_well_formed(&svg);
        }
    }
    let cum = std::fs::read_to_string(&files.topics[0].cumulative_error_svg).unwrap();
    // One polyline per worker with data, plus average, naive and combined; the
    // combined line is drawn last and thick.
    assert_eq!(cum.matches("<polyline").count(), 6);
    let last = cum.rfind("<polyline").unwrap();
    assert!(cum[last..].contains(r##"stroke="#000000" stroke-width="3.5""##));
    assert!(cum.contains("w_rare (rare) (missed 27)"));
    let weights = std::fs::read_to_string(&files.topics[0].weights_svg).unwrap();
    assert!(weights.contains("trailing 24-epoch rolling mean"));
    assert!(weights.contains("end of warm-up"));
    let empty = std::fs::read_to_string(&files.topics[2].weights_svg).unwrap();
    assert!(empty.contains("no weights recorded"));
}

#[test]
fn report_directory_lists_all_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let mut second = synthetic(10);
    second.name = "EUR/USD 1h range".into(); // same slug
    let files = write_report(&out, &[synthetic(10), second], 2).unwrap();
    assert_eq!(files.topics[1].slug, "eurusd-1h-range-2");
    let paths = files.paths();
    assert_eq!(paths.len(), 3 + 2 * 3);
    for p in &paths {
        assert!(p.is_file(), "{p:?}");
        assert!(p.starts_with(&out));
    }
    let readme = std::fs::read_to_string(&files.readme).unwrap();
    for t in &files.topics {
        for p in [&t.csv, &t.cumulative_error_svg, &t.weights_svg] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(readme.contains(name), "README misses {name}");
        }
    }
    assert!(readme.contains("first 2 epochs"));
    let txt = std::fs::read_to_string(&files.summary_txt).unwrap();
    assert_eq!(txt, files.tables());
}

#[test]
fn duplicate_epochs_fail_loudly() {
    let mut run = synthetic(5);
    run.records.push(EpochRecord::new(3, 1.0));
    let dir = tempfile::tempdir().unwrap();
    let err = write_report(dir.path(), &[run], 0).unwrap_err();
    assert!(matches!(err, ReportError::DuplicateEpoch { epoch: 3, .. }));
    assert!(err.to_string().contains("epoch 3"));
}

#[test]
fn unwritable_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = write_report(&file.join("sub"), &[synthetic(3)], 0).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err}");
}

#[test]
fn table_layout() {
    let mut run = synthetic(50);
    run.score_ema.insert("w_off".into(), -0.012345);
    let s = summarize(&run, 10).unwrap();
    let table = render_table(&s);
    println!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("40 scored epochs after a warm-up of 10 epochs"));
    assert!(lines[1].trim_start().starts_with("name"));
    // Workers sorted by MSE: w_exact (0), w_rare (0, not eligible), w_off.
    let order: Vec<&str> = lines[2..5]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["w_exact", "w_rare*", "w_off"]);
    assert!(lines[2].contains("0.000e0"));
    assert!(lines[2].contains("75.0000")); // 50 x 1.5 tokens
    assert!(lines[4].contains("1.000e-2"));
    assert!(lines[4].contains("-0.01235"));
    assert!(lines[5].trim_start().starts_with("---"));
    assert!(lines[6].starts_with("  network  combined"));
    assert!(lines[7].starts_with("  network  naive"));
    assert!(lines[8].starts_with("  average  equal-weight"));
    // Columns line up: every row's MSE cell ends where the header's does.
    let end = lines[1].find("MSE").unwrap() + 3;
    for l in lines[2..5].iter().chain(&lines[6..9]) {
        assert!(!l[end - 1..end].trim().is_empty(), "{l}");
        assert!(l[end..end + 1].trim().is_empty(), "{l}");
    }
}

#[test]
fn big_report_covers_every_epoch() {
    // The time it takes is printed, never asserted: these machines are shared and noisy.
    let workers = 10;
    let epochs = 5000u64;
    let mut run = TopicRun {
        name: "EUR/USD 1h close".into(),
        target: "close".into(),
        workers: (0..workers)
            .map(|i| WorkerInfo::new(format!("w{i}"), format!("model-{i}")))
            .collect(),
        token_decimals: 18,
        ..TopicRun::default()
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    for e in 0..epochs {
        let truth = 1.08 + 0.01 * (e as f64 / 300.0).sin() + 0.001 * rnd();
        let mut r = EpochRecord::new(e, truth);
        r.time = Some(format!("t{e}"));
        let mut total = 0.0;
        for i in 0..workers {
            if (e + i as u64).is_multiple_of(97) {
                continue; // an occasional skip
            }
            let name = format!("w{i}");
            let v = truth + 0.0005 * (i as f64 + 1.0) * rnd();
            r.inferences.insert(name.clone(), v);
            let w = 1.0 / (i as f64 + 1.0) + 0.2 * rnd().abs();
            total += w;
            r.weights.insert(name.clone(), w);
            r.losses
                .insert(name.clone(), ((v - truth).powi(2) + 1e-12).log10());
            r.rewards.insert(name, 10u128.pow(17) * (i as u128 + 1));
        }
        for w in r.weights.values_mut() {
            *w /= total;
        }
        let c: f64 = r.inferences.iter().map(|(k, v)| v * r.weights[k]).sum();
        r.combined = Some(c);
        r.naive = r.average();
        r.losses
            .insert("combined".into(), ((c - truth).powi(2)).log10());
        r.checkpoint_height = Some(e * 2);
        run.records.push(r);
    }
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let files = write_report(dir.path(), std::slice::from_ref(&run), 24).unwrap();
    let took = start.elapsed();
    let bytes: u64 = files
        .paths()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "report of {epochs} epochs x {workers} workers: {:.1} ms, {} files, {} KiB",
        took.as_secs_f64() * 1e3,
        files.paths().len(),
        bytes / 1024
    );
    println!("{}", files.tables());
    let s = &files.summaries[0];
    assert_eq!(s.scored_epochs, epochs - 24);
    assert_eq!(s.best_worker.as_deref(), Some("w0"));
    assert_eq!(files.paths().len(), 6);
}

#[test]
fn non_finite_values_count_as_missing() {
    let mut run = synthetic(10);
    run.records[4].truth = f64::NAN; // epoch 5: not scored
    run.records[6]
        .inferences
        .insert("w_exact".into(), f64::INFINITY); // a skip
    run.records[7].combined = Some(f64::NAN);
    let s = summarize(&run, 2).unwrap();
    assert_eq!(s.scored_epochs, 7);
    assert_eq!(s.unscorable_epochs, 1);
    assert_eq!(s.network_epochs, 6);
    assert!(close(s.network_mse.unwrap(), 0.0025));
    let exact = s.workers.iter().find(|w| w.name == "w_exact").unwrap();
    assert_eq!((exact.mse, exact.submitted_epochs), (Some(0.0), 6));
    assert!(render_table(&s).contains("(1 more not scored: truth not finite)"));
    // The CSV still shows what was recorded, and marks epoch 5 unscored.
    let mut buf = Vec::new();
    write_csv(&mut buf, &run, 2).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let row5 = text.lines().nth(5).unwrap();
    assert!(row5.starts_with("5,") && row5.ends_with(",0"), "{row5}");
    assert!(row5.contains(",NaN,"));
}

#[test]
fn runs_round_trip_through_json() {
    // The devnet may save runs and re-render the report later.
    let mut run = synthetic(4);
    run.records[0].rewards.insert("w_off".into(), u128::MAX);
    let text = serde_json::to_string(&run).unwrap();
    let back: TopicRun = serde_json::from_str(&text).unwrap();
    assert_eq!(back, run);
}

#[test]
fn one_bad_worker_does_not_flatten_the_error_plot() {
    let mut run = synthetic(40);
    run.workers.push(WorkerInfo::new("w_bad", "noise"));
    for r in &mut run.records {
        r.inferences.insert("w_bad".into(), r.truth + 50.0);
    }
    let svg = super::cumulative_error_svg(&run, 0).unwrap();
    assert!(svg.contains("w_bad (noise) (off scale)"));
    assert!(!svg.contains("w_off (ar3-rls) (off scale)"));
    assert!(svg.contains(r#"clip-path="url(#plot-area)""#));
    assert_well_formed(&svg);
}

/// Each worker's one-out contribution and reward share, and the hindsight mix, are exact.
#[test]
fn one_out_contribution_reward_share_and_the_hindsight_mix() {
    let mut run = synthetic(20);
    for r in &mut run.records {
        // without w_exact the network is off by 0.1 instead of 0.05: MSE × 4
        r.one_out.insert("w_exact".into(), r.truth + 0.1);
        r.one_out.insert("w_off".into(), r.truth - 0.05);
    }
    let s = summarize(&run, 0).unwrap();
    let w = |n: &str| s.workers.iter().find(|w| w.name == n).unwrap().clone();
    assert!((w("w_exact").one_out_contribution.unwrap() - 3.0).abs() < 1e-9);
    assert!(w("w_off").one_out_contribution.unwrap().abs() < 1e-9);
    assert_eq!(w("w_rare").one_out_contribution, None);
    assert!((w("w_exact").reward_share.unwrap() - 1_500_000.0 / 1_750_000.0).abs() < 1e-12);
    assert_eq!(w("w_rare").reward_share, Some(0.0));
    let table = render_table(&s);
    assert!(
        table.contains("+300.0%") && table.contains("85.7%"),
        "{table}"
    );
    // the mix is over the 10 epochs with every inferer (w_rare: even epochs); an exact worker
    // is in it, so the mix is exact
    assert_eq!(s.best_mix_epochs, 10);
    assert!(s.best_mix_mse.unwrap() < 1e-20, "{:?}", s.best_mix_mse);
    let total: f64 = s.best_mix_weights.values().sum();
    assert!((total - 1.0).abs() < 1e-12);
}
