//! Config specs: TOML shapes, defaults, rejection of unknown fields, building runnables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "models_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chorus_node::models::{
    BuiltinModel, BuiltinSpec, CommandSpec, EpochContext, Forecaster, ForecasterSpec, HttpSpec,
    Inferer, Model, ModelError, ModelSpec, SpecError, Target, TruthSource, TruthSpec,
    build_forecaster, build_model, build_truth, default_set, squared_error,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    worker: Vec<ModelSpec>,
    forecaster: Vec<ForecasterSpec>,
    truth: TruthSpec,
}

const CONFIG: &str = r#"
[[worker]]
kind = "builtin"
target = "range"
model = "sma"
n = 5

[[worker]]
kind = "builtin"
target = "range"
model = "noisy"
sigma = 0.5
seed = 42

[[worker]]
kind = "builtin"
target = "close"
model = "last"

[[worker]]
kind = "builtin"
target = "range"
model = "ema"
alpha = 1

[[worker]]
kind = "http"
url = "http://127.0.0.1:8000/inference/{Token}?epoch={Epoch}"
timeout_ms = 1500

[[worker]]
kind = "http"
url = "http://127.0.0.1:8000/{Model}/{TopicId}"
params = { Model = "v2" }

[[worker]]
kind = "command"
program = "my-model"
args = ["--topic", "{TopicId}", "--height", "{BlockHeight}"]
timeout_ms = 500

[[forecaster]]
kind = "ema"

[[forecaster]]
kind = "regime_ema"
alpha = 0.05

[[forecaster]]
kind = "http"
url = "http://127.0.0.1:8000/forecast/{TopicId}/{BlockHeight}"

[truth]
kind = "csv"
path = "../data/eurusd_1h.csv"
target = "range"
"#;

#[test]
fn toml_config_parses_with_defaults() {
    let cfg: Config = toml::from_str(CONFIG).unwrap();
    assert_eq!(
        cfg.worker[0],
        ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: BuiltinModel::Sma { n: 5 }
        })
    );
    assert_eq!(
        cfg.worker[1],
        ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: BuiltinModel::Noisy {
                sigma: 0.5,
                seed: 42
            }
        })
    );
    // An integer where a float is expected is fine in TOML.
    assert_eq!(
        cfg.worker[3],
        ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: BuiltinModel::Ema { alpha: 1.0 }
        })
    );
    match &cfg.worker[4] {
        ModelSpec::Http(HttpSpec {
            url,
            timeout_ms,
            max_body_bytes,
            params,
            ca_file,
        }) => {
            assert!(url.ends_with("{Token}?epoch={Epoch}"));
            assert_eq!((*timeout_ms, *max_body_bytes), (1500, 65536));
            assert!(params.is_empty());
            assert!(ca_file.is_none());
        }
        other => panic!("{other:?}"),
    }
    match &cfg.worker[6] {
        ModelSpec::Command(CommandSpec {
            program,
            args,
            timeout_ms,
            max_stdout_bytes,
            ..
        }) => {
            assert_eq!(program, "my-model");
            assert_eq!(args.len(), 4);
            assert_eq!((*timeout_ms, *max_stdout_bytes), (500, 65536));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cfg.forecaster[1],
        ForecasterSpec::RegimeEma {
            alpha: 0.05,
            loss_floor: 2.5e-11,
            sd_window: 20,
            median_window: 200
        }
    );
    assert_eq!(
        cfg.truth,
        TruthSpec::Csv {
            path: "../data/eurusd_1h.csv".into(),
            target: Target::Range
        }
    );
    // Every spec builds (the HTTP ones need no server to be built).
    for w in &cfg.worker {
        build_model(w).unwrap();
    }
    for f in &cfg.forecaster {
        build_forecaster(f).unwrap();
    }
    let mut truth = cfg.truth.clone();
    truth.resolve_paths(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let TruthSource::Replay(r) = build_truth(&truth).unwrap() else {
        panic!("csv is a replay")
    };
    assert_eq!(r.bars().len(), 5000);
}

fn model_err(toml_text: &str) -> String {
    toml::from_str::<ModelSpec>(toml_text)
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_or_misplaced_fields_are_rejected() {
    assert!(
        model_err("kind = \"builtin\"\ntarget = \"range\"\nmodel = \"sma\"\nnn = 3\n")
            .contains("nn")
    );
    assert!(
        model_err("kind = \"builtin\"\ntarget = \"range\"\nmodel = \"sma\"\nalpha = 0.3\n")
            .contains("alpha")
    );
    assert!(
        model_err("kind = \"builtin\"\ntarget = \"range\"\nmodel = \"smaa\"\n").contains("smaa")
    );
    assert!(model_err("kind = \"builtin\"\nmodel = \"sma\"\n").contains("target"));
    assert!(
        model_err("kind = \"builtin\"\ntarget = \"price\"\nmodel = \"last\"\n").contains("price")
    );
    assert!(
        model_err("kind = \"http\"\nurl = \"http://127.0.0.1/\"\ntimout_ms = 5\n")
            .contains("timout_ms")
    );
    assert!(model_err("kind = \"grpc\"\n").contains("grpc"));
    assert!(model_err("kind = \"command\"\n").contains("program"));
    assert!(
        toml::from_str::<TruthSpec>(
            "kind = \"csv\"\npath = \"x.csv\"\ntarget = \"range\"\nextra = 1\n"
        )
        .is_err()
    );
}

#[test]
fn invalid_specs_fail_to_build() {
    let spec = |t: &str| toml::from_str::<ModelSpec>(t).unwrap();
    assert!(matches!(
        build_model(&spec(
            "kind = \"builtin\"\ntarget = \"close\"\nmodel = \"volatility\"\n"
        )),
        Err(SpecError::Model(_))
    ));
    assert!(matches!(
        build_model(&spec(
            "kind = \"builtin\"\ntarget = \"close\"\nmodel = \"ema\"\nalpha = 1.5\n"
        )),
        Err(SpecError::Model(_))
    ));
    assert!(matches!(
        build_model(&spec("kind = \"http\"\nurl = \"ftp://127.0.0.1/x\"\n")),
        Err(SpecError::Http(_))
    ));
    assert!(matches!(
        build_model(&spec(
            "kind = \"http\"\nurl = \"http://{Token}.example.invalid/x\"\n"
        )),
        Err(SpecError::Http(_))
    ));
    assert!(matches!(
        build_model(&spec(
            "kind = \"http\"\nurl = \"http://127.0.0.1/{Nope}\"\n"
        )),
        Err(SpecError::Http(_))
    ));
    assert!(matches!(
        build_model(&spec(
            "kind = \"command\"\nprogram = \"x\"\nargs = [\"{Nope}\"]\n"
        )),
        Err(SpecError::Command(_))
    ));
    let bad_forecaster = toml::from_str::<ForecasterSpec>("kind = \"ema\"\nalpha = 0\n").unwrap();
    assert!(matches!(
        build_forecaster(&bad_forecaster),
        Err(SpecError::Forecaster(_))
    ));
    let missing = TruthSpec::Csv {
        path: "/nonexistent.csv".into(),
        target: Target::Close,
    };
    assert!(matches!(build_truth(&missing), Err(SpecError::Bars(_))));
}

#[test]
fn specs_round_trip_through_json_and_toml() {
    let mut specs: Vec<ModelSpec> = Target::ALL
        .into_iter()
        .flat_map(|t| {
            default_set(t)
                .into_iter()
                .map(move |(_, model)| ModelSpec::Builtin(BuiltinSpec { target: t, model }))
        })
        .collect();
    specs.push(ModelSpec::Http(HttpSpec {
        url: "http://127.0.0.1:1/{Epoch}".into(),
        timeout_ms: 10,
        max_body_bytes: 100,
        params: BTreeMap::from([("A".to_string(), "b".to_string())]),
        ca_file: None,
    }));
    specs.push(ModelSpec::Command(CommandSpec {
        program: "p".into(),
        args: vec!["{Token}".into()],
        timeout_ms: 10,
        max_stdout_bytes: 100,
        params: BTreeMap::new(),
    }));
    for spec in specs {
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            serde_json::from_str::<ModelSpec>(&json).unwrap(),
            spec,
            "{json}"
        );
        let toml_text = toml::to_string(&spec).unwrap();
        assert_eq!(
            toml::from_str::<ModelSpec>(&toml_text).unwrap(),
            spec,
            "{toml_text}"
        );
    }
    let json = serde_json::to_string(&ModelSpec::Builtin(BuiltinSpec {
        target: Target::Range,
        model: BuiltinModel::Sma { n: 5 },
    }))
    .unwrap();
    assert_eq!(
        json,
        r#"{"kind":"builtin","target":"range","model":"sma","n":5}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnable_builtin_inferer_and_synthetic_truth() {
    let truth = build_truth(&TruthSpec::Builtin {
        target: Target::Return,
        seed: 5,
        bars: 300,
        sigma: 1e-3,
        start_price: 1.2,
    })
    .unwrap();
    let replay = truth.replay().unwrap().clone();
    let mut inferer = build_model(&ModelSpec::Builtin(BuiltinSpec {
        target: Target::Return,
        model: BuiltinModel::Ar { p: 2 },
    }))
    .unwrap();
    let mut forecaster = build_forecaster(&ForecasterSpec::RegimeEma {
        alpha: 0.1,
        loss_floor: 1e-12,
        sd_window: 20,
        median_window: 200,
    })
    .unwrap();
    let names = vec!["ar2".to_string()];
    let mut not_ready = 0;
    let mut forecasts = 0;
    for epoch in 0..299u64 {
        let bar = replay.bar(epoch).unwrap();
        inferer.observe(bar);
        forecaster.observe_bar(bar);
        let ctx = EpochContext::new(1, epoch, "SYN");
        let f = forecaster.forecast(&ctx, &names).await.unwrap();
        forecasts += f.len();
        let value = match inferer.infer(&ctx).await {
            Ok(v) => v,
            Err(ModelError::NotReady) => {
                not_ready += 1;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(value.is_finite());
        let t = truth.truth(&ctx).await.unwrap().unwrap();
        forecaster.observe_truth(
            epoch,
            t,
            &BTreeMap::from([(names[0].clone(), value)]),
            squared_error,
        );
    }
    // AR(2) needs 4p + 3 = 11 return values, i.e. 12 bars.
    assert_eq!(not_ready, 11);
    assert!(forecasts > 250);
    assert_eq!(
        truth
            .truth(&EpochContext::new(1, 299, "SYN"))
            .await
            .unwrap(),
        None,
        "no bar 300"
    );
    assert!(matches!(forecaster, Forecaster::Regime { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnable_external_inferer_errors_are_typed() {
    // Nothing listens on this port: connect error, not a panic and not a value.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = build_model(&ModelSpec::Http(HttpSpec {
        url: format!("http://127.0.0.1:{port}/x"),
        timeout_ms: 1000,
        max_body_bytes: 1024,
        params: BTreeMap::new(),
        ca_file: None,
    }))
    .unwrap();
    let e = m.infer(&EpochContext::default()).await.unwrap_err();
    assert_eq!(e.reason(), "connect");
    #[cfg(unix)]
    {
        let m = build_model(&ModelSpec::Command(CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "sleep 5".into()],
            timeout_ms: 100,
            max_stdout_bytes: 1024,
            params: BTreeMap::new(),
        }))
        .unwrap();
        let start = std::time::Instant::now();
        let e = m.infer(&EpochContext::default()).await.unwrap_err();
        assert_eq!(e.reason(), "timeout");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
    // A built-in model before any bar is simply not ready.
    let mut b = build_model(&ModelSpec::Builtin(BuiltinSpec {
        target: Target::Range,
        model: BuiltinModel::Last,
    }))
    .unwrap();
    assert!(matches!(
        b.infer(&EpochContext::default()).await,
        Err(ModelError::NotReady)
    ));
    let bars = common::eurusd();
    b.observe(bars.get(0).unwrap());
    let Inferer::Builtin(inner) = &b else {
        panic!()
    };
    assert_eq!(
        b.infer(&EpochContext::default()).await.unwrap(),
        inner.predict().unwrap()
    );
}

/// The node's config loader deserializes from a `toml::Value` (after environment overrides),
/// with specs as inline tables inside role tables.
#[test]
fn inline_tables_through_toml_value() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Worker {
        topic: u64,
        model: Option<ModelSpec>,
        forecaster: Option<ForecasterSpec>,
    }
    #[derive(Debug, Deserialize)]
    struct Doc {
        worker: Vec<Worker>,
    }
    let text = r#"
[[worker]]
topic = 1
model = { kind = "builtin", target = "range", model = "ema", alpha = 0.1 }
forecaster = { kind = "regime_ema" }

[[worker]]
topic = 2
model = { kind = "command", program = "m", args = ["{Epoch}"] }
"#;
    let value: toml::Value = toml::from_str(text).unwrap();
    let doc: Doc = value.try_into().unwrap();
    assert_eq!(doc.worker[0].topic, 1);
    assert_eq!(
        doc.worker[0].model,
        Some(ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: BuiltinModel::Ema { alpha: 0.1 }
        }))
    );
    assert!(matches!(
        doc.worker[0].forecaster,
        Some(ForecasterSpec::RegimeEma { .. })
    ));
    assert!(matches!(
        doc.worker[1].model,
        Some(ModelSpec::Command { .. })
    ));
    let bad: toml::Value =
        toml::from_str("kind = \"builtin\"\ntarget = \"range\"\nmodel = \"ema\"\nalhpa = 0.1\n")
            .unwrap();
    assert!(
        bad.try_into::<ModelSpec>()
            .unwrap_err()
            .to_string()
            .contains("alhpa")
    );
}
