//! The node-facing commands of the `chorus` binary against a fake node (the real REST API over
//! a canned actor, `chorus_node::api::fake`) on 127.0.0.1: output, exit codes, and the signed
//! envelopes the write commands submit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chorus_node::actor::{InferenceEvent, Query};
use chorus_node::api::fake::{self, FAKE_NETWORK, FAKE_NEXT_NONCE, FAKE_TOKEN, FakeNode};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keyfile::write_key_file;
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{
    BondChange, FundTopic, Payload, Registration, Role, SetOwner, StakeChange, Transfer,
};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(20);

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chorus"));
    c.args(args)
        .env_remove("CHORUS_NODE")
        .env_remove("CHORUS_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn chorus(args: &[&str]) -> Output {
    tokio::time::timeout(TIMEOUT, command(args).output())
        .await
        .expect("chorus timed out")
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The fake node's canned answer as the JSON document the API serves.
fn canned(q: &Query) -> serde_json::Value {
    serde_json::to_value(fake::canned(q).unwrap()).unwrap()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Exit code `code` and exactly one error line.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn key_file(dir: &Path, seed: u8) -> (PathBuf, Keypair) {
    let kp = Keypair::from_seed(&[seed; 32]);
    let path = dir.join(format!("k{seed}.key"));
    write_key_file(&path, &kp).unwrap();
    (path, kp)
}

fn opened(bytes: &[u8]) -> (Envelope, Payload) {
    let env = Envelope::from_bytes(bytes).unwrap();
    let payload = env
        .open(&FAKE_NETWORK)
        .expect("verifies for the node's network id");
    (env, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_text_and_json() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let out = chorus(&["--json", "status", "--node", url]).await;
    assert_eq!(json(&out), canned(&Query::Status));

    let out = chorus(&["status", "--node", url]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("chorus-fake"), "{text}");
    assert!(text.contains(&fake::fake_address().to_hex()), "{text}");
    assert!(text.contains("worker_bundle"), "{text}");

    // The node URL from the environment.
    let out = command(&["--json", "status"])
        .env("CHORUS_NODE", url)
        .output()
        .await
        .unwrap();
    assert_eq!(json(&out)["network"], "chorus-fake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_list_and_show() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let out = chorus(&["--json", "topic", "list", "--node", url]).await;
    assert_eq!(json(&out), canned(&Query::Topics));
    let out = chorus(&["topic", "list", "--node", url]).await;
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("id  "), "{text}");
    assert!(lines[1].starts_with("1   EUR/USD 1h range"), "{text}");

    let out = chorus(&["--json", "topic", "show", "1", "--node", url]).await;
    assert_eq!(json(&out)["name"], "EUR/USD 1h range");
    let out = chorus(&["topic", "show", "2", "--node", url]).await;
    assert_fails(&out, 1, "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_get_latest_or_one_epoch() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let out = chorus(&["--json", "infer", "get", "1", "--node", url]).await;
    let latest = json(&out);
    assert_eq!(latest["epoch"], fake::FAKE_LATEST_EPOCH);
    assert_eq!(latest["combined_value"], 0.0012);
    let out = chorus(&["--json", "infer", "get", "1", "--epoch", "7", "--node", url]).await;
    assert_eq!(json(&out)["epoch"], 7);

    let out = chorus(&["infer", "get", "1", "--node", url]).await;
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("combined value"), "{text}");
    assert!(text.contains("finalized at checkpoint 41"), "{text}");
    assert!(text.contains(&fake::fake_address().to_hex()), "{text}");

    assert_fails(
        &chorus(&["infer", "get", "1", "--epoch", "99", "--node", url]).await,
        1,
        "404",
    );
    assert_fails(
        &chorus(&["--json", "infer", "get", "2", "--node", url]).await,
        1,
        "\"error\"",
    );
    // Bad input never reaches the node.
    let out = chorus(&["infer", "get", "x", "--node", url]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// `examples/proof/` (the shipped example proof and its genesis).
fn example(name: &str) -> String {
    format!("{}/../examples/proof/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_proof_fetches_and_verify_checks_offline() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proof.json");
    let f = file.to_str().unwrap();
    let out = chorus(&[
        "infer", "proof", "1", "--epoch", "8", "--out", f, "--node", url,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("wrote the proof of topic 1, epoch 8"));
    let genesis = example("genesis.toml");
    let out = chorus(&["infer", "verify", f, "--genesis", &genesis]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verified: topic 1, epoch 8"), "{text}");
    // The README shows exactly this output.
    let readme =
        std::fs::read_to_string(format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        readme.contains(text.trim_end()),
        "README's example output is stale:\n{text}"
    );
    assert!(
        text.contains("500000 of 600000 voting power (83.3%)"),
        "{text}"
    );
    assert!(text.contains("validator changes  1 followed"), "{text}");
    // The expected verdict shipped beside the example.
    let out = chorus(&[
        "--json",
        "infer",
        "verify",
        &example("proof.json"),
        "--genesis",
        &genesis,
    ])
    .await;
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(example("verdict.json")).unwrap()).unwrap();
    assert_eq!(json(&out), expected);
    // To stdout, and trusting the proved checkpoint itself.
    let out = chorus(&["infer", "proof", "1", "--node", url]).await;
    let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = expected["checkpoint_id"].as_str().unwrap();
    let trusted = format!("3:{id}");
    let out = chorus(&["infer", "verify", f, "--trusted-checkpoint", &trusted]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("the trusted checkpoint itself"));

    // A tampered value: exit 1, one line saying why.
    let mut bad = proof.clone();
    bad["path"][0] = Value::String("00".repeat(32));
    std::fs::write(&file, serde_json::to_string(&bad).unwrap()).unwrap();
    assert_fails(
        &chorus(&["infer", "verify", f, "--genesis", &genesis]).await,
        1,
        "does NOT verify",
    );
    // The wrong trusted checkpoint.
    std::fs::write(&file, serde_json::to_string(&proof).unwrap()).unwrap();
    let wrong = format!("3:{}", "11".repeat(32));
    assert_fails(
        &chorus(&["infer", "verify", f, "--trusted-checkpoint", &wrong]).await,
        1,
        "trusted checkpoint",
    );
    // Malformed files and arguments: exit 2.
    std::fs::write(&file, "{\"format\": 1}").unwrap();
    assert_fails(
        &chorus(&["infer", "verify", f, "--genesis", &genesis]).await,
        2,
        "not a proof document",
    );
    let mut bad = proof.clone();
    bad["bundle"] = Value::String("zz".into());
    std::fs::write(&file, serde_json::to_string(&bad).unwrap()).unwrap();
    assert_fails(
        &chorus(&["infer", "verify", f, "--genesis", &genesis]).await,
        2,
        "malformed proof",
    );
    let out = chorus(&["infer", "verify", f]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = chorus(&["infer", "verify", f, "--trusted-checkpoint", "3"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_fails(
        &chorus(&[
            "infer",
            "verify",
            "/nonexistent/proof.json",
            "--genesis",
            &genesis,
        ])
        .await,
        2,
        "reading",
    );
    // An epoch the node has no proof for: 404, exit 1.
    assert_fails(
        &chorus(&["infer", "proof", "1", "--epoch", "9", "--node", url]).await,
        1,
        "404",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_signs_for_the_network_with_the_next_nonce() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let dir = tempfile::tempdir().unwrap();
    let (key, kp) = key_file(dir.path(), 1);
    let key = key.to_str().unwrap();
    let to = Keypair::from_seed(&[2; 32]).public();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{FAKE_TOKEN}\n")).unwrap();
    let to_hex = to.to_hex();

    // No token, or a wrong one: bad input (2), nothing submitted.
    let base = ["transfer", &to_hex, "1_000", "--key", key, "--node", url];
    assert_fails(&chorus(&base).await, 2, "admin token");
    let out = chorus(&[&base[..], &["--token", "wrong"]].concat()).await;
    assert_fails(&out, 2, "401");
    // Bad amounts and addresses: 2.
    for (amount, addr) in [
        ("0", to_hex.as_str()),
        ("-5", &to_hex),
        ("1.5", &to_hex),
        ("7", "zz"),
    ] {
        let out = chorus(&[
            "transfer", addr, amount, "--key", key, "--node", url, "--token", "t",
        ])
        .await;
        assert_eq!(out.status.code(), Some(2), "{amount} {addr}");
    }
    assert!(node.submitted().is_empty());

    // Token from a file; nonce from the node.
    let out = chorus(
        &[
            &base[..],
            &["--token-file", token_file.to_str().unwrap(), "--json"],
        ]
        .concat(),
    )
    .await;
    let answer = json(&out);
    assert_eq!(answer["accepted"], true);
    assert_eq!(answer["kind"], "transfer");
    assert_eq!(answer["nonce"], FAKE_NEXT_NONCE);
    let submitted = node.submitted();
    assert_eq!(submitted.len(), 1);
    let (env, payload) = opened(&submitted[0]);
    assert_eq!(env.signer, kp.public());
    assert_eq!(answer["id"], env.id().to_hex());
    assert_eq!(
        payload,
        Payload::Transfer(Transfer {
            nonce: FAKE_NEXT_NONCE,
            to,
            amount: Amount(1_000),
        })
    );
    assert!(env.open(&chorus_protocol::ids::Hash32([8; 32])).is_err());

    // Token from the environment; explicit nonce; text output.
    let out = command(&[&base[..], &["--nonce", "9"]].concat())
        .env("CHORUS_ADMIN_TOKEN", FAKE_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("transfer "), "{}", stdout(&out));
    assert!(stdout(&out).contains("accepted"), "{}", stdout(&out));
    let (_, payload) = opened(&node.submitted()[1]);
    assert_eq!(
        payload,
        Payload::Transfer(Transfer {
            nonce: 9,
            to,
            amount: Amount(1_000),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_command_submits_its_message() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let dir = tempfile::tempdir().unwrap();
    let (key, kp) = key_file(dir.path(), 3);
    let me = kp.public();
    let delegate = Keypair::from_seed(&[4; 32]).public();
    let spec = dir.path().join("topic.toml");
    std::fs::write(&spec, fake::FAKE_TOPIC_SPEC).unwrap();
    let key = key.to_str().unwrap();
    let spec = spec.to_str().unwrap();
    let delegate_hex = delegate.to_hex();
    let me_hex = me.to_hex();
    let n = FAKE_NEXT_NONCE;
    let cases: Vec<(Vec<&str>, Payload)> = vec![
        (
            vec!["topic", "fund", "1", "500"],
            Payload::FundTopic(FundTopic {
                nonce: n,
                topic: TopicId(1),
                amount: Amount(500),
            }),
        ),
        (
            vec!["stake", "add", "1", "50000"],
            Payload::Stake(StakeChange {
                nonce: n,
                topic: TopicId(1),
                reputer: me,
                amount: Amount(50_000),
            }),
        ),
        (
            vec!["stake", "remove", "1", "7", "--reputer", &delegate_hex],
            Payload::Unstake(StakeChange {
                nonce: n,
                topic: TopicId(1),
                reputer: delegate,
                amount: Amount(7),
            }),
        ),
        (
            vec!["set-owner", &delegate_hex],
            Payload::SetOwner(SetOwner {
                nonce: n,
                actor: me,
                owner: delegate,
            }),
        ),
        (
            vec!["set-owner", &me_hex, "--actor", &delegate_hex],
            Payload::SetOwner(SetOwner {
                nonce: n,
                actor: delegate,
                owner: me,
            }),
        ),
        (
            vec!["unregister", "1", "worker"],
            Payload::Unregister(Registration {
                nonce: n,
                topic: TopicId(1),
                role: Role::Worker,
            }),
        ),
        (
            vec!["bond", "100"],
            Payload::Bond(BondChange {
                nonce: n,
                amount: Amount(100),
            }),
        ),
        (
            vec!["unbond", "100"],
            Payload::Unbond(BondChange {
                nonce: n,
                amount: Amount(100),
            }),
        ),
        (
            vec!["register", "1", "reputer"],
            Payload::Register(Registration {
                nonce: n,
                topic: TopicId(1),
                role: Role::Reputer,
            }),
        ),
    ];
    for (i, (args, expected)) in cases.iter().enumerate() {
        let all = [
            &args[..],
            &["--key", key, "--node", url, "--token", FAKE_TOKEN],
        ]
        .concat();
        let out = chorus(&all).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let (env, payload) = opened(&node.submitted()[i]);
        assert_eq!(env.signer, me);
        assert_eq!(&payload, expected, "{args:?}");
    }

    let out = chorus(&[
        "--json", "topic", "create", "--spec", spec, "--key", key, "--node", url, "--token",
        FAKE_TOKEN,
    ])
    .await;
    let answer = json(&out);
    assert_eq!(answer["topic"], TopicId::derived(&me, n).0);
    let (_, payload) = opened(node.submitted().last().unwrap());
    let Payload::CreateTopic(create) = payload else {
        panic!("{payload:?}")
    };
    assert_eq!(create.spec, fake::fake_topic_spec().unwrap());
    assert_eq!(create.nonce, n);
    assert_eq!(create.fee, Amount(75_000));

    // A spec that is out of range never reaches the node.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(spec)
            .unwrap()
            .replace("p_norm = 3.0", "p_norm = 1.0"),
    )
    .unwrap();
    let before = node.submitted().len();
    let out = chorus(&[
        "topic",
        "create",
        "--spec",
        bad.to_str().unwrap(),
        "--key",
        key,
        "--node",
        url,
        "--token",
        FAKE_TOKEN,
    ])
    .await;
    assert_fails(&out, 2, "p_norm");
    assert_eq!(node.submitted().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_leaderboard_balance_rewards() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let out = chorus(&["--json", "scores", "1", "--node", url]).await;
    assert_eq!(json(&out), canned(&Query::Scores(TopicId(1))));
    let out = chorus(&["leaderboard", "1", "--node", url]).await;
    let text = stdout(&out);
    assert!(text.lines().nth(1).unwrap().starts_with("1     "), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");

    let me = fake::fake_address();
    // No address, no key: the node's own account.
    let out = chorus(&["--json", "balance", "--node", url]).await;
    assert_eq!(json(&out)["address"], me.to_hex());
    let other = Keypair::from_seed(&[5; 32]).public().to_hex();
    let out = chorus(&["rewards", &other, "--node", url]).await;
    assert!(stdout(&out).contains("rewards  12"), "{}", stdout(&out));
    let dir = tempfile::tempdir().unwrap();
    let (key, kp) = key_file(dir.path(), 6);
    let out = chorus(&[
        "--json",
        "rewards",
        "--key",
        key.to_str().unwrap(),
        "--node",
        url,
    ])
    .await;
    assert_eq!(json(&out)["address"], kp.public().to_hex());
}

async fn watch(node: &FakeNode, args: &[&str]) -> Output {
    // A previous watch's stream may still count as a subscriber until the server notices it
    // closed: events published then would reach nobody.
    assert!(
        node.wait_for_no_subscribers(TIMEOUT).await,
        "an earlier stream never closed"
    );
    let child = command(args).spawn().unwrap();
    assert!(
        node.wait_for_subscribers(1, TIMEOUT).await,
        "chorus never subscribed"
    );
    let event = |topic, epoch, finalized| InferenceEvent {
        topic: TopicId(topic),
        epoch,
        combined_value: 0.0012,
        naive_value: None,
        finalized,
        checkpoint_height: finalized.then_some(42),
        time_ms: 1_700_000_000_000,
    };
    node.publish(event(2, 40, false));
    node.publish(event(1, 41, false));
    node.publish(event(1, 41, true));
    node.publish(event(1, 42, false));
    tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("watch did not stop after --count")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_watch_prints_each_inference_and_stops_at_count() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let out = watch(
        &node,
        &["topic", "watch", "1", "--count", "2", "--node", url],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "epoch 41  combined 0.0012  local  checkpoint -\n\
         epoch 41  combined 0.0012  finalized  checkpoint 42\n"
    );

    let out = watch(
        &node,
        &[
            "--json", "topic", "watch", "1", "--count", "2", "--node", url,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["finalized"], false);
    assert_eq!(lines[1]["checkpoint_height"], 42);

    // Unknown topic: 404 before streaming.
    assert_fails(
        &chorus(&["topic", "watch", "2", "--node", url]).await,
        1,
        "404",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stops_with_an_error_when_the_node_goes_away() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url().to_owned();
    let mut child = command(&["topic", "watch", "1", "--node", &url])
        .spawn()
        .unwrap();
    assert!(node.wait_for_subscribers(1, TIMEOUT).await);
    node.publish(InferenceEvent {
        topic: TopicId(1),
        epoch: 5,
        combined_value: 1.0,
        naive_value: None,
        finalized: false,
        checkpoint_height: None,
        time_ms: 0,
    });
    // The first line arrives while the stream is open.
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some("epoch 5  combined 1.0  local  checkpoint -")
    );
    node.shutdown().await.unwrap();
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_fails(&out, 1, "ended the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_exit_code_1() {
    let mut node = FakeNode::start().await.unwrap();
    node.stop_actor().await;
    assert_fails(&chorus(&["status", "--node", node.url()]).await, 1, "503");
    assert_fails(
        &chorus(&["status", "--node", "http://127.0.0.1:1"]).await,
        1,
        "cannot reach the node",
    );
    assert_fails(
        &chorus(&["status", "--node", "https://127.0.0.1:1"]).await,
        2,
        "plain http only",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_history_as_table_json_and_csv() {
    let node = FakeNode::start().await.unwrap();
    let url = node.url();
    let who = fake::fake_address().to_hex();
    // The fake settled epochs 0..=40, one inferer line each, paying 10.
    let all = json(&chorus(&["--json", "rewards", &who, "--history", "--node", url]).await);
    assert_eq!(all.as_array().unwrap().len(), 41);
    let some = json(
        &chorus(&[
            "--json",
            "rewards",
            &who,
            "--history",
            "--topic",
            "1",
            "--from",
            "10",
            "--to",
            "12",
            "--node",
            url,
        ])
        .await,
    );
    let epochs: Vec<u64> = some
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, vec![10, 11, 12]);
    let text = chorus(&["rewards", &who, "--history", "--from", "39", "--node", url]).await;
    assert!(
        stdout(&text).contains("2 line(s), 20 paid"),
        "{}",
        stdout(&text)
    );
    let csv = chorus(&[
        "rewards",
        &who,
        "--history",
        "--to",
        "1",
        "--csv",
        "--node",
        url,
    ])
    .await;
    let lines: Vec<String> = stdout(&csv).lines().map(str::to_owned).collect();
    assert_eq!(
        lines[0],
        "topic,epoch,role,score,ema_score,weight,fraction,payout,height"
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with("1,0,inferer,"), "{}", lines[1]);
    // A reversed range is the caller's fault.
    assert_fails(
        &chorus(&[
            "rewards",
            &who,
            "--history",
            "--from",
            "5",
            "--to",
            "4",
            "--node",
            url,
        ])
        .await,
        2,
        "after",
    );
    // --topic without --history is refused by the parser.
    let o = chorus(&["rewards", &who, "--topic", "1", "--node", url]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--history"), "{}", stderr(&o));
}
