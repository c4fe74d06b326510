//! A damaged store stops the start with the file and the record named, never a silent drop:
//! one flipped bit in a WAL record (the double-sign guard is rebuilt from it), in a stored
//! certificate, and in the ledger snapshot, one at a time. The untouched store then starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};
use chorus_crdt::checkpoint::WalRecord;
use chorus_crdt::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
use chorus_crdt::checkpoint::messages::VoteMessage;
use chorus_crdt::checkpoint::signing::sign_vote;
use chorus_crdt::checkpoint::wal::WalEntry;
use chorus_crdt::replica::ReplicaConfig;
use chorus_node::localnet::{LocalNet, LocalPlan, node_key};
use chorus_node::store::schema::{CERTIFICATES, LEDGER, WAL};
use chorus_protocol::ids::{Amount, NetworkId};
use chorus_protocol::params::ModuleParams;
use redb::ReadableTable;

const SEED: u64 = 11;

/// Damages one record of the store file.
type Damage<'a> = dyn Fn(&Path) + 'a;

fn plan(root: PathBuf) -> LocalPlan {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    LocalPlan {
        name: "node-corrupt".into(),
        seed: SEED,
        nodes: 1,
        validators: vec![0],
        topics: vec![],
        params: ModuleParams {
            checkpoint_period_ms: 300,
            min_epoch_length_ms: 100,
            max_clock_skew_ms: 50,
            emission_per_period: Amount(1_000),
            min_topic_weight: 0.0,
            ..ModuleParams::default()
        },
        genesis_time_ms: now + 500,
        data_root: root,
        memory: false,
        replica: ReplicaConfig {
            validator: true,
            ..ReplicaConfig::default()
        },
        tick: Duration::from_millis(50),
        store_cache_bytes: chorus_node::store::ops::DEFAULT_CACHE_BYTES,
        store: Default::default(),
        decimals: 0,
        line: false,
    }
}

/// The error and all its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Flip the last bit of the newest record of `table` (u64-keyed).
fn flip_last(path: &Path, table: redb::TableDefinition<u64, &[u8]>) {
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(table).unwrap();
        let (k, mut v) = {
            let (k, v) = t.last().unwrap().expect("a record to damage");
            (k.value(), v.value().to_vec())
        };
        *v.last_mut().unwrap() ^= 1;
        t.insert(k, v.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

/// Append a WAL record of this node's own prevote for `height`, one bit of its signature
/// flipped (it still decodes).
fn append_damaged_vote(path: &Path, network: &NetworkId, height: u64) {
    let key = node_key(SEED, 0);
    let vote = Vote {
        height: CheckpointHeight(height),
        round: Round::new(0),
        kind: VoteType::Prevote,
        value: NilOrVal::Nil,
        validator: ValidatorAddress(key.public()),
    };
    let mut signature = sign_vote(&key, network, &vote);
    signature.0[10] ^= 4;
    let record = WalRecord {
        height,
        entry: WalEntry::Vote(VoteMessage { vote, signature }),
    };
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(WAL).unwrap();
        let next = t.last().unwrap().map_or(0, |(k, _)| k.value() + 1);
        t.insert(next, record.to_bytes().as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::start(plan(dir.path().to_path_buf()))
        .await
        .unwrap();
    let t0 = Instant::now();
    let height = loop {
        let h = net.handle(0).unwrap().status().await.unwrap().height;
        if h >= 3 {
            break h;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no 3 heights in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    net.stop_node(0).await;
    let network = net.genesis.network_id();
    let db = dir.path().join("node-0").join("node.redb");
    let original = std::fs::read(&db).unwrap();
    let damages: [(&str, &Damage<'_>); 3] = [
        ("wal", &|p| append_damaged_vote(p, &network, height + 1)),
        ("certificates", &|p| flip_last(p, CERTIFICATES)),
        ("ledger", &|p| flip_last(p, LEDGER)),
    ];
    for (table, damage) in damages {
        std::fs::write(&db, &original).unwrap();
        damage(&db);
        let err = net
            .start_node(0)
            .await
            .err()
            .unwrap_or_else(|| panic!("started with a damaged {table} record"));
        let msg = chain(&err);
        assert!(msg.contains(&format!("corrupt record in {table}")), "{msg}");
        assert!(msg.contains("node.redb"), "{msg}");
        assert!(msg.contains("refuses to start"), "{msg}");
    }
    // The same store undamaged starts and goes on.
    std::fs::write(&db, &original).unwrap();
    net.start_node(0).await.unwrap();
    let t0 = Instant::now();
    while net.handle(0).unwrap().status().await.unwrap().height <= height {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no progress after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.shutdown().await;
}
