//! Command adapter against small `sh` scripts.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::time::{Duration, Instant};

use chorus_node::models::{
    CommandError, CommandModel, CommandOptions, EpochContext, TemplateError, ValueError,
};

fn sh(script: &str, timeout_ms: u64) -> CommandModel {
    CommandModel::new(
        "sh",
        &["-c".to_string(), script.to_string()],
        &CommandOptions {
            timeout: Duration::from_millis(timeout_ms),
            ..CommandOptions::default()
        },
    )
    .unwrap()
}

fn ctx() -> EpochContext {
    EpochContext::new(3, 17, "ETH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_first_line() {
    assert_eq!(sh("echo 0.25", 5000).infer(&ctx()).await.unwrap(), 0.25);
    assert_eq!(
        sh("printf '\\n  1.5  \\nignored\\n'", 5000)
            .infer(&ctx())
            .await
            .unwrap(),
        1.5
    );
    assert_eq!(
        sh("echo '{\"value\": \"2.5\"}'", 5000)
            .infer(&ctx())
            .await
            .unwrap(),
        2.5
    );
    // Lots of stderr is drained and does not block a successful run.
    assert_eq!(
        sh("head -c 300000 /dev/zero >&2; echo 7", 5000)
            .infer(&ctx())
            .await
            .unwrap(),
        7.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_topic_token_never_reaches_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // The program records that it ran, then answers.
    let m = CommandModel::new(
        "sh",
        &[
            "-c".into(),
            format!("touch '{}'; echo 1", marker.display()),
            "sh".into(),
            "{Token}".into(),
        ],
        &CommandOptions::default(),
    )
    .unwrap();
    for hostile in ["--help", "-rf", "../x", "a b", "x;id"] {
        let e = m
            .infer(&EpochContext::new(3, 17, hostile))
            .await
            .unwrap_err();
        assert!(
            matches!(e, CommandError::Template(TemplateError::UnsafeToken(_))),
            "{hostile}: {e}"
        );
        assert_eq!(e.reason(), "unsafe_token");
    }
    let e = m.infer(&EpochContext::new(3, 17, "")).await.unwrap_err();
    assert!(matches!(e, CommandError::Template(TemplateError::NoToken)));
    assert!(!marker.exists(), "the program ran with an unusable token");
    assert_eq!(m.infer(&ctx()).await.unwrap(), 1.0);
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_are_templated() {
    let m = CommandModel::new(
        "sh",
        &[
            "-c".into(),
            "echo \"$1$2.$3\"".into(),
            "sh".into(),
            "{TopicId}".into(),
            "{BlockHeight}".into(),
            "{Epoch}".into(),
        ],
        &CommandOptions::default(),
    )
    .unwrap();
    assert_eq!(m.args_for(&ctx()).unwrap()[3..], ["3", "17", "17"]);
    assert_eq!(m.infer(&ctx()).await.unwrap(), 317.17);
    let token = CommandModel::new("echo", &["{Token}".into()], &CommandOptions::default()).unwrap();
    assert!(
        token
            .infer(&ctx())
            .await
            .unwrap_err()
            .to_string()
            .contains("ETH")
    );
    assert!(matches!(
        CommandModel::new("echo", &["{Tokn}".into()], &CommandOptions::default()),
        Err(CommandError::Template(_))
    ));
    assert!(matches!(
        CommandModel::new(" ", &[], &CommandOptions::default()),
        Err(CommandError::EmptyProgram)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_typed() {
    let e = sh("echo NaN", 5000).infer(&ctx()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CommandError::Value {
                source: ValueError::NonFinite(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        sh("echo inf", 5000)
            .infer(&ctx())
            .await
            .unwrap_err()
            .reason(),
        "non_finite"
    );
    assert_eq!(
        sh("echo hello", 5000)
            .infer(&ctx())
            .await
            .unwrap_err()
            .reason(),
        "not_a_number"
    );
    assert_eq!(
        sh("true", 5000).infer(&ctx()).await.unwrap_err().reason(),
        "empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_zero_exit_carries_stderr() {
    match sh(
        "echo 1; echo '  boom: bad input' >&2; echo second >&2; exit 3",
        5000,
    )
    .infer(&ctx())
    .await
    .unwrap_err()
    {
        CommandError::Exit { status, stderr, .. } => {
            assert_eq!(status, "code 3");
            assert_eq!(stderr, "boom: bad input");
        }
        e => panic!("{e:?}"),
    }
    match sh("kill -9 $$", 5000).infer(&ctx()).await.unwrap_err() {
        CommandError::Exit { status, .. } => assert_eq!(status, "signal 9"),
        e => panic!("{e:?}"),
    }
    let e = CommandModel::new("/nonexistent/model-binary", &[], &CommandOptions::default())
        .unwrap()
        .infer(&ctx())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "spawn");
}

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still show up with state Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_child() {
    let dir = std::env::temp_dir().join(format!("chorus-models-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let start = Instant::now();
    let e = sh(&script, 300).infer(&ctx()).await.unwrap_err();
    assert!(matches!(e, CommandError::Timeout { .. }), "{e:?}");
    assert_eq!(e.reason(), "timeout");
    assert!(start.elapsed() < Duration::from_secs(5));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid), "child {pid} survived the timeout");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_stdout_is_cut_off() {
    let start = Instant::now();
    let e = sh("yes 1", 10_000).infer(&ctx()).await.unwrap_err();
    assert!(
        matches!(e, CommandError::StdoutTooLarge { limit: 65536, .. }),
        "{e:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let small = CommandModel::new(
        "sh",
        &["-c".into(), "echo 123456789".into()],
        &CommandOptions {
            max_stdout_bytes: 4,
            ..CommandOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        small.infer(&ctx()).await.unwrap_err().reason(),
        "stdout_too_large"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_from_stdout() {
    let f = sh("echo '{\"a\": 1.5, \"b\": [\"2\"]}'", 5000)
        .forecast(&ctx())
        .await
        .unwrap();
    assert_eq!((f["a"], f["b"]), (1.5, 2.0));
    assert!(
        sh("echo '{\"a\": \"x\"}'", 5000)
            .forecast(&ctx())
            .await
            .is_err()
    );
}
