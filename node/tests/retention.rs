//! Retention: a node keeping 64 heights runs past them, prunes finalized windows, their
//! envelopes and old certificates in bounded passes (the metrics count what went), compacts
//! its file in the background while it runs, keeps what it needs, and restarts from the
//! pruned, compacted store and goes on. Archives: history exported from
//! a store imports back into one that pruned it; forged files are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chorus_crdt::checkpoint::DecidedCheckpoint;
use chorus_crdt::window::WindowKey;
use chorus_node::config::StoreSection;
use chorus_node::localnet::{LocalNet, LocalPlan};
use chorus_node::store::{archive, ops, prune};
use chorus_protocol::codec;

mod net_common;

/// Checkpoint period and epoch: short, so 100 heights pass in about 15 s.
const PERIOD_MS: u64 = 150;
const KEEP: u64 = 64;

fn plan(root: PathBuf) -> LocalPlan {
    let mut p = net_common::fast_plan("node-retention", 5, 1, PERIOD_MS, root);
    p.store = StoreSection {
        retention_heights: Some(KEEP),
        // Check every second, whatever the size (a store of this test stays far below the
        // 16 MiB default).
        compact_min_mb: 0,
        compact_check_secs: 1,
        ..StoreSection::default()
    };
    p
}

/// The value of a metric line `name` (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

async fn wait_height(net: &LocalNet, at_least: u64, within: Duration) -> u64 {
    let t0 = Instant::now();
    loop {
        let h = net.handle(0).unwrap().status().await.unwrap().height;
        if h >= at_least {
            return h;
        }
        assert!(
            t0.elapsed() < within,
            "height {h} < {at_least} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_prunes_history_older_than_its_retention_and_restarts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::start(plan(dir.path().to_path_buf()))
        .await
        .unwrap();
    let height = wait_height(&net, KEEP + 40, Duration::from_secs(90)).await;
    let text = net.handle(0).unwrap().metrics().encode();
    let windows = metric(&text, "chorus_store_pruned_total{kind=\"windows\"}");
    let envelopes = metric(&text, "chorus_store_pruned_total{kind=\"envelopes\"}");
    let certificates = metric(&text, "chorus_store_pruned_total{kind=\"certificates\"}");
    assert!(
        windows > 0 && envelopes > 0 && certificates > 0,
        "{windows} {envelopes} {certificates}"
    );
    let compactions = metric(&text, "chorus_store_compactions_total");
    let given_back = metric(&text, "chorus_store_compacted_bytes_total");
    let seconds = metric(&text, "chorus_store_compaction_seconds_count");
    assert!(
        compactions >= 1 && given_back > 0 && seconds == compactions,
        "{compactions} compactions gave back {given_back} bytes ({seconds} timed)"
    );
    // The file's size, not its envelopes' bytes (which it holds with indexes and more).
    let file = metric(&text, "chorus_store_size_bytes");
    let envelope_bytes = metric(&text, "chorus_store_envelope_bytes");
    assert!(
        file > envelope_bytes && envelope_bytes > 0,
        "{file} {envelope_bytes}"
    );
    net.stop_node(0).await;
    let db = dir.path().join("node-0").join("node.redb");
    let network = net.genesis.network_id();
    let (stats, oldest, windows_left) = {
        let db = ops::open(&db, &network).unwrap();
        let stats = ops::stats(&db).unwrap();
        let oldest = ops::certificates_from(&db, 0).unwrap()[0].0;
        let windows_left = prune::window_keys_page(&db, None, 100_000).unwrap().len() as u64;
        (stats, oldest, windows_left)
    };
    println!(
        "height {height}: pruned {windows} windows, {envelopes} envelopes, {certificates} \
         certificates; left {windows_left} windows, {} envelopes, certificates {oldest}..={height}; \
         {compactions} compactions gave back {given_back} bytes",
        stats.envelopes
    );
    // Certificates below the cutoff of the last pass are gone, the recent ones all there.
    assert!(oldest > 1, "certificate 1 was kept");
    assert!(
        oldest + KEEP + 16 >= height,
        "oldest certificate {oldest} at height {height}"
    );
    assert_eq!(
        stats.certificates,
        height - oldest + 1,
        "a gap in the kept certificates"
    );
    // Three windows per height (ledger, workers, reputers): what is left is the retention's
    // worth and the passes' slack, not the whole run.
    assert!(
        windows_left <= 3 * (KEEP + 24),
        "{windows_left} windows left at height {height}"
    );
    // The pruned store starts, and the node goes on.
    net.start_node(0).await.unwrap();
    wait_height(&net, height + 5, Duration::from_secs(30)).await;
    net.shutdown().await;
}

/// Every record of an archive file, decoded (for tampering).
fn records(bytes: &[u8]) -> (Vec<u8>, Vec<archive::Record>) {
    let mut r = bytes;
    let mut next = || {
        let len = u32::from_le_bytes(r[..4].try_into().unwrap()) as usize;
        let rec = r[4..4 + len].to_vec();
        r = &r[4 + len..];
        rec
    };
    let header = next();
    let mut out = vec![];
    loop {
        let rec: archive::Record = codec::decode(&next()).unwrap();
        let end = matches!(rec, archive::Record::End { .. });
        out.push(rec);
        if end {
            return (header, out);
        }
    }
}

fn file_of(header: &[u8], records: &[archive::Record]) -> Vec<u8> {
    let mut out = vec![];
    for bytes in std::iter::once(header.to_vec()).chain(records.iter().map(codec::encode)) {
        out.extend((bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

/// History exported from one store is imported into a copy that pruned it: the same
/// certificates, head lists and certified envelopes come back. Files that are not the node's
/// history (another network, a forged signature, a wrong head list, a cut file, heights past
/// its tip) are refused; envelopes the head lists do not name are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_exported_before_pruning_imports_back_and_forged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan(dir.path().to_path_buf());
    p.store = StoreSection {
        archive: true,
        ..StoreSection::default()
    };
    let mut net = LocalNet::start(p).await.unwrap();
    let height = wait_height(&net, 30, Duration::from_secs(60)).await;
    net.stop_node(0).await;
    let network = net.genesis.network_id();
    let a_path = dir.path().join("node-0").join("node.redb");
    let b_path = dir.path().join("b.redb");
    std::fs::copy(&a_path, &b_path).unwrap();
    let a = ops::open(&a_path, &network).unwrap();
    let b = ops::open(&b_path, &network).unwrap();

    let mut file = vec![];
    let exported = archive::export(&a, &network, 1, height, &mut file).unwrap();
    assert_eq!(exported.heights, height);
    assert!(
        exported.windows > 0 && exported.envelopes > 0,
        "{exported:?}"
    );

    // B forgets heights 1..=20.
    let keys = ops::window_keys(&b).unwrap();
    let old: Vec<WindowKey> = (1..=20)
        .flat_map(|h| {
            let d: DecidedCheckpoint =
                codec::decode(&ops::certificate(&b, h).unwrap().unwrap()).unwrap();
            d.checkpoint.windows.into_iter().map(|w| w.window)
        })
        .filter_map(|id| keys.iter().find(|k| k.id() == id).copied())
        .collect();
    let pruned = prune::prune(&b, &old, 21).unwrap();
    assert_eq!(pruned.certificates, 20);

    let imported = archive::import(&b, &network, &mut file.as_slice()).unwrap();
    println!("exported {exported:?}; pruned {pruned:?}; imported {imported:?}");
    assert_eq!((imported.heights, imported.skipped), (height, height - 20));
    assert_eq!(imported.windows, exported.windows);
    for h in 1..=height {
        assert_eq!(
            ops::certificate(&b, h).unwrap(),
            ops::certificate(&a, h).unwrap()
        );
        let d: DecidedCheckpoint =
            codec::decode(&ops::certificate(&a, h).unwrap().unwrap()).unwrap();
        for w in d.checkpoint.windows.iter().filter(|w| w.entries > 0) {
            let list = ops::heads(&b, &w.window).unwrap().unwrap();
            assert!(w.is_list(&list), "height {h}");
            let mut back = ops::window_envelopes(&b, &w.window).unwrap();
            back.sort();
            let mut orig = ops::window_envelopes(&a, &w.window).unwrap();
            orig.sort();
            // B kept heights 21.. whole; what came back of 1..=20 is the certified envelopes.
            assert!(back.iter().all(|e| orig.contains(e)), "height {h}");
            assert!(
                back.len() as u32 >= w.entries,
                "height {h}: {} < {}",
                back.len(),
                w.entries
            );
        }
    }

    // Hostile or broken files.
    let (header, recs) = records(&file);
    let refuse = |bytes: Vec<u8>, why: &str| {
        let e = archive::import(&b, &network, &mut bytes.as_slice()).unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
    };
    refuse(file[..file.len() - 3].to_vec(), "truncated");
    let other = archive::Header {
        network: chorus_protocol::ids::Hash32([9; 32]),
        ..codec::decode(&header).unwrap()
    };
    refuse(
        file_of(&codec::encode(&other), &recs),
        "an archive of network",
    );
    let mut forged = recs.clone();
    if let archive::Record::Decided(bytes) = &mut forged[0] {
        let mut d: DecidedCheckpoint = codec::decode(bytes).unwrap();
        d.certificate.signatures[0].signature.0[3] ^= 1;
        *bytes = codec::encode(&d);
    }
    refuse(file_of(&header, &forged), "height 1");
    let mut wrong = recs.clone();
    let i = wrong
        .iter()
        .position(|r| matches!(r, archive::Record::Heads { .. }))
        .unwrap();
    if let archive::Record::Heads { heads, .. } = &mut wrong[i] {
        heads.pop();
    }
    refuse(file_of(&header, &wrong), "head list");
    // An envelope the head list does not name is left out, the rest goes in.
    let mut extra = recs.clone();
    let i = extra
        .iter()
        .position(|r| matches!(r, archive::Record::Window { .. }))
        .unwrap();
    let archive::Record::Window { envelopes, .. } = &mut extra[i] else {
        unreachable!()
    };
    let stranger = envelopes[0].iter().map(|b| b ^ 0x55).collect::<Vec<u8>>();
    envelopes.push(stranger.clone());
    let again = archive::import(&b, &network, &mut file_of(&header, &extra).as_slice()).unwrap();
    assert_eq!(again.envelopes, imported.envelopes);
    assert_eq!(
        ops::envelope(&b, &chorus_protocol::ids::Hash32::of(&stranger)).unwrap(),
        None
    );
    // Heights past this node's own tip: it cannot know their validator sets.
    let c = ops::open(&dir.path().join("c.redb"), &network).unwrap();
    let e = archive::import(&c, &network, &mut file.as_slice()).unwrap_err();
    assert!(
        e.to_string().contains("beyond this node's own chain"),
        "{e}"
    );
    net.shutdown().await;
}
