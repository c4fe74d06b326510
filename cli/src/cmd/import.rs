//! `chorus config import-allora`: an allora-offchain-node `config.json` as a Chorus node
//! config.
//!
//! What maps (field names matched case-insensitively, as Go's `encoding/json` does):
//!
//! | Allora | Chorus |
//! |---|---|
//! | `worker[].topicId` | `[[worker]] topic` |
//! | `worker[].parameters.InferenceEndpoint` | `model = { kind = "http", url, params }` |
//! | `worker[].parameters.ForecastEndpoint` | `forecaster = { kind = "http", url, params }` |
//! | other `parameters` (`Token`, …) | `params` of both |
//! | `reputer[].topicId` | `[[reputer]] topic` |
//! | `reputer[].groundTruthParameters.GroundTruthEndpoint` (older: `parameters.SourceOfTruthEndpoint`) | `truth = { kind = "http", url, params }` |
//! | `reputer[].lossFunctionParameters.LossFunctionService` + `LossMethodOptions` | `loss = { url, options }` |
//!
//! Everything else gets a line saying why it does not map (the wallet, chain RPCs and gas: a
//! Chorus node signs with its own key and has no chain; `minStake`: stake with `chorus stake
//! add`; `loopSeconds`: roles follow the topic's windows; labeled (multi-label) endpoints).
//! The lines are written as comments at the top of the config and printed to stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chorus_node::config::{ReputerRole, WorkerRole};
use chorus_node::models::{ForecasterSpec, HttpSpec, LossServiceSpec, ModelSpec, TruthSpec};
use chorus_protocol::ids::TopicId;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::output::{BadInput, Output};

/// Adapter names of Allora's API adapter (older and newer).
const API_ADAPTERS: [&str; 2] = ["api-worker-reputer", "apiAdapter"];

/// Placeholders Chorus fills itself: a parameter with one of these names is dropped.
const BUILT_IN: [&str; 5] = [
    "TopicId",
    "BlockHeight",
    "Epoch",
    "EpochStartMs",
    "Timestamp",
];

/// The conversion: the roles and a line for everything that did not map.
#[derive(Debug, Default, PartialEq)]
pub struct Imported {
    /// `[[worker]]` entries.
    pub worker: Vec<WorkerRole>,
    /// `[[reputer]]` entries.
    pub reputer: Vec<ReputerRole>,
    /// One line per thing that did not map.
    pub not_mapped: Vec<String>,
}

/// A field of `obj` by name, ignoring case.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A string map (Allora's `parameters`); non-string values are noted and skipped.
fn strings(v: Option<&Value>, at: &str, notes: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in v.and_then(Value::as_object).into_iter().flatten() {
        match v {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            Value::Number(n) => {
                out.insert(k.clone(), n.to_string());
            }
            other => notes.push(format!("{at}.{k} = {other}: not a string; skipped")),
        }
    }
    out
}

/// Removes `name` (any case) from `params`.
fn take(params: &mut BTreeMap<String, String>, name: &str) -> Option<String> {
    let key = params
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))?
        .clone();
    params.remove(&key)
}

fn topic_of(entry: &Map<String, Value>, at: &str) -> Result<TopicId, String> {
    match field(entry, "topicId") {
        Some(Value::Number(n)) if n.is_u64() => Ok(TopicId(n.as_u64().unwrap_or_default())),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(TopicId)
            .map_err(|_| format!("{at}: topicId {s:?} is not an integer; entry skipped")),
        _ => Err(format!("{at}: no integer topicId; entry skipped")),
    }
}

/// Drops parameters that would shadow a built-in placeholder; notes the rest that do not map.
fn template_params(
    mut params: BTreeMap<String, String>,
    at: &str,
    notes: &mut Vec<String>,
) -> BTreeMap<String, String> {
    for name in BUILT_IN {
        if let Some(v) = take(&mut params, name) {
            notes.push(format!(
                "{at}.{name} = {v:?}: Chorus fills {{{name}}} itself; dropped"
            ));
        }
    }
    params
}

fn http(url: String, params: BTreeMap<String, String>) -> HttpSpec {
    HttpSpec {
        url,
        timeout_ms: 2000,
        max_body_bytes: 64 * 1024,
        params,
        ca_file: None,
    }
}

fn adapter_ok(entry: &Map<String, Value>, name: &str, at: &str, notes: &mut Vec<String>) -> bool {
    match field(entry, name).and_then(Value::as_str) {
        None => true,
        Some(a) if API_ADAPTERS.contains(&a) => true,
        Some(a) => {
            notes.push(format!(
                "{at}: {name} {a:?} is not Allora's API adapter ({}); entry skipped",
                API_ADAPTERS.join(", ")
            ));
            false
        }
    }
}

fn note_unknown(entry: &Map<String, Value>, known: &[&str], at: &str, notes: &mut Vec<String>) {
    for k in entry.keys() {
        if !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            notes.push(format!(
                "{at}.{k}: not used by Allora's API adapter; ignored"
            ));
        }
    }
}

fn worker(entry: &Map<String, Value>, at: &str, notes: &mut Vec<String>) -> Option<WorkerRole> {
    let topic = topic_of(entry, at).map_err(|e| notes.push(e)).ok()?;
    if !adapter_ok(entry, "inferenceEntrypointName", at, notes)
        || !adapter_ok(entry, "forecastEntrypointName", at, notes)
    {
        return None;
    }
    if let Some(s) = field(entry, "loopSeconds") {
        notes.push(format!(
            "{at}.loopSeconds = {s}: a Chorus worker acts once per epoch when the topic's \
             submission window opens (no polling loop)"
        ));
    }
    note_unknown(
        entry,
        &[
            "topicId",
            "inferenceEntrypointName",
            "forecastEntrypointName",
            "loopSeconds",
            "parameters",
        ],
        at,
        notes,
    );
    let at_params = format!("{at}.parameters");
    let mut params = strings(field(entry, "parameters"), &at_params, notes);
    let inference = take(&mut params, "InferenceEndpoint");
    let forecast = take(&mut params, "ForecastEndpoint");
    if let Some(l) = take(&mut params, "LabeledInferenceEndpoint") {
        notes.push(format!(
            "{at_params}.LabeledInferenceEndpoint = {l:?}: multi-label topics do not exist in \
             Chorus; dropped"
        ));
    }
    let params = template_params(params, &at_params, notes);
    if inference.is_none() && forecast.is_none() {
        notes.push(format!(
            "{at}: no InferenceEndpoint or ForecastEndpoint; entry skipped"
        ));
        return None;
    }
    Some(WorkerRole {
        topic,
        model: inference.map(|url| ModelSpec::Http(http(url, params.clone()))),
        forecaster: forecast.map(|url| ForecasterSpec::Http(http(url, params.clone()))),
        jitter_ms: 200,
        data: None,
        truth: None,
    })
}

fn reputer(entry: &Map<String, Value>, at: &str, notes: &mut Vec<String>) -> Option<ReputerRole> {
    let topic = topic_of(entry, at).map_err(|e| notes.push(e)).ok()?;
    for name in [
        "groundTruthEntrypointName",
        "lossFunctionEntrypointName",
        "reputerEntrypointName",
    ] {
        if !adapter_ok(entry, name, at, notes) {
            return None;
        }
    }
    if let Some(s) = field(entry, "minStake") {
        notes.push(format!(
            "{at}.minStake = {s}: stake with `chorus stake add {topic} <amount> --key …` \
             (amounts in base units of the network's token)"
        ));
    }
    if let Some(s) = field(entry, "loopSeconds") {
        notes.push(format!(
            "{at}.loopSeconds = {s}: a Chorus reputer acts when the reputer window opens"
        ));
    }
    note_unknown(
        entry,
        &[
            "topicId",
            "groundTruthEntrypointName",
            "lossFunctionEntrypointName",
            "reputerEntrypointName",
            "minStake",
            "loopSeconds",
            "groundTruthParameters",
            "lossFunctionParameters",
            "parameters",
        ],
        at,
        notes,
    );
    // Newer: groundTruthParameters.GroundTruthEndpoint; older: parameters.SourceOfTruthEndpoint.
    let (at_truth, raw) = match field(entry, "groundTruthParameters") {
        Some(v) => (format!("{at}.groundTruthParameters"), Some(v)),
        None => (format!("{at}.parameters"), field(entry, "parameters")),
    };
    let mut params = strings(raw, &at_truth, notes);
    let url = take(&mut params, "GroundTruthEndpoint")
        .or_else(|| take(&mut params, "SourceOfTruthEndpoint"));
    if let Some(l) = take(&mut params, "LabeledGroundTruthEndpoint") {
        notes.push(format!(
            "{at_truth}.LabeledGroundTruthEndpoint = {l:?}: multi-label topics do not exist in \
             Chorus; dropped"
        ));
    }
    let params = template_params(params, &at_truth, notes);
    let Some(url) = url else {
        notes.push(format!("{at}: no GroundTruthEndpoint; entry skipped"));
        return None;
    };
    let loss_params = field(entry, "lossFunctionParameters").and_then(Value::as_object);
    let at_loss = format!("{at}.lossFunctionParameters");
    let loss = loss_params.and_then(|lp| {
        if let Some(l) = field(lp, "LabeledLossFunctionService") {
            notes.push(format!(
                "{at_loss}.LabeledLossFunctionService = {l}: multi-label topics do not exist in \
                 Chorus; dropped"
            ));
        }
        let url = field(lp, "LossFunctionService")?.as_str()?.to_owned();
        let options = strings(field(lp, "LossMethodOptions"), &at_loss, notes);
        Some(LossServiceSpec {
            url,
            options,
            timeout_ms: 2000,
            ca_file: None,
        })
    });
    if loss.is_none() {
        notes.push(format!(
            "{at}: no LossFunctionService: the reputer uses the topic's built-in loss"
        ));
    }
    Some(ReputerRole {
        topic,
        truth: TruthSpec::Http(http(url, params)),
        loss,
    })
}

/// Converts the text of an allora-offchain-node `config.json`.
pub fn convert(text: &str) -> Result<Imported, BadInput> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| BadInput(format!("not an Allora config.json (JSON: {e})")))?;
    let Value::Object(top) = json else {
        return Err(BadInput(
            "not an Allora config.json (not a JSON object)".into(),
        ));
    };
    let mut out = Imported::default();
    for (k, v) in &top {
        match k.to_ascii_lowercase().as_str() {
            "wallet" => {
                let keys: Vec<&str> = v
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                out.not_mapped.push(format!(
                    "wallet ({}): no Chorus equivalent: a Chorus node signs with its own key \
                     ([node] key, `chorus key new`) and has no chain RPC, gas or fees to set",
                    keys.join(", ")
                ));
            }
            "worker" => {
                for (i, e) in v.as_array().into_iter().flatten().enumerate() {
                    let at = format!("worker[{i}]");
                    match e.as_object() {
                        Some(e) => out.worker.extend(worker(e, &at, &mut out.not_mapped)),
                        None => out.not_mapped.push(format!("{at}: not an object; skipped")),
                    }
                }
            }
            "reputer" => {
                for (i, e) in v.as_array().into_iter().flatten().enumerate() {
                    let at = format!("reputer[{i}]");
                    match e.as_object() {
                        Some(e) => out.reputer.extend(reputer(e, &at, &mut out.not_mapped)),
                        None => out.not_mapped.push(format!("{at}: not an object; skipped")),
                    }
                }
            }
            _ => out
                .not_mapped
                .push(format!("{k}: unknown section; ignored")),
        }
    }
    if out.worker.is_empty() && out.reputer.is_empty() {
        return Err(BadInput(format!(
            "no worker or reputer entry could be converted:\n  - {}",
            out.not_mapped.join("\n  - ")
        )));
    }
    Ok(out)
}

#[derive(Serialize)]
struct Roles<'a> {
    // An empty list would render as `reputer = []` under the `[network]` table above it.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    worker: &'a [WorkerRole],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    reputer: &'a [ReputerRole],
}

/// `line` with every control character (a newline would end a TOML comment and start live
/// configuration) written as `\u{..}`.
fn sanitized(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The Chorus config text: a `[node]` section to fill in, the roles, and the lines that did
/// not map as comments.
pub fn render(imported: &Imported) -> anyhow::Result<String> {
    let mut text = String::from(
        "# Converted from an allora-offchain-node config.json by `chorus config import-allora`.\n",
    );
    if !imported.not_mapped.is_empty() {
        text.push_str("#\n# Not mapped:\n");
        for line in &imported.not_mapped {
            text.push_str(&format!("# - {}\n", sanitized(line)));
        }
    }
    text.push_str(
        "\n[node]\n\
         data_dir = \"data\"\n\
         key = \"node.key\"                 # chorus key new --out node.key\n\
         genesis = \"genesis.toml\"         # the network's genesis, from its operators\n\
         \n[network]\n\
         listen = [\"/ip4/0.0.0.0/tcp/4001\"]\n\
         bootstrap = []                   # a peer of the network: \"/ip4/…/tcp/…/p2p/12D3KooW…\"\n\n",
    );
    text.push_str(&toml::to_string(&Roles {
        worker: &imported.worker,
        reputer: &imported.reputer,
    })?);
    Ok(text)
}

/// `chorus config import-allora FILE [--out FILE]`.
pub fn run(file: &Path, out_file: Option<&PathBuf>, out: &Output) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
    let imported = convert(&text)?;
    let config = render(&imported)?;
    for line in &imported.not_mapped {
        eprintln!("not mapped: {}", sanitized(line));
    }
    let summary = serde_json::json!({
        "workers": imported.worker.len(),
        "reputers": imported.reputer.len(),
        "not_mapped": imported.not_mapped,
    });
    match out_file {
        Some(path) => {
            if path.exists() {
                return Err(BadInput(format!("{} already exists", path.display())).into());
            }
            std::fs::write(path, &config)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            let text = format!(
                "wrote {} ({} worker(s), {} reputer(s), {} line(s) not mapped); fill in [node] \
                 and [network], then `chorus config validate {}`",
                path.display(),
                imported.worker.len(),
                imported.reputer.len(),
                imported.not_mapped.len(),
                path.display()
            );
            out.print(&text, &summary)
        }
        None if out.json => out.print(
            "",
            &serde_json::json!({ "config": config, "summary": summary }),
        ),
        None => crate::output::line(config.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chorus_node::config::Config;

    use super::*;

    /// The newer format (allora-offchain-node's README and docs, v0.x dev branch).
    const NEWER: &str = r#"{
      "wallet": {"addressKeyName": "test", "addressRestoreMnemonic": "", "alloraHomeDir": "",
                 "gas": "auto", "gasAdjustment": 1.5, "nodeRpcs": ["http://localhost:26657"],
                 "maxRetries": 5, "retryDelay": 3, "submitTx": true},
      "worker": [{"topicId": 1, "inferenceEntrypointName": "apiAdapter",
                  "forecastEntrypointName": "apiAdapter", "loopSeconds": 5,
                  "parameters": {"InferenceEndpoint": "http://source:8000/inference/{Token}",
                                 "ForecastEndpoint": "http://source:8000/forecasts/{TopicId}/{BlockHeight}",
                                 "Token": "ETH"}}],
      "reputer": [{"topicId": 1, "groundTruthEntrypointName": "apiAdapter",
                   "lossFunctionEntrypointName": "apiAdapter", "minStake": 100000000,
                   "groundTruthParameters": {"GroundTruthEndpoint": "http://localhost:8888/gt/{Token}/{BlockHeight}",
                                             "LabeledGroundTruthEndpoint": "http://localhost:8888/lgt/{Token}/{BlockHeight}",
                                             "Token": "ETHUSD"},
                   "lossFunctionParameters": {"LossFunctionService": "http://localhost:5000",
                                              "LossMethodOptions": {"loss_method": "sqe"}}}]
    }"#;

    /// The older format (allora-offchain-node's early config.example.json).
    const OLDER: &str = r#"{
      "wallet": {"addressKeyName": "test", "nodeRpc": "http://localhost:26657", "submitTx": false},
      "worker": [{"topicId": 1, "inferenceEntrypointName": "api-worker-reputer", "loopSeconds": 5,
                  "parameters": {"InferenceEndpoint": "http://source:8000/inference/{Token}", "Token": "ETH"}}],
      "reputer": [{"topicId": 1, "reputerEntrypointName": "api-worker-reputer", "loopSeconds": 30,
                   "minStake": 100000,
                   "parameters": {"SourceOfTruthEndpoint": "http://source:8888/truth/{Token}/{BlockHeight}",
                                  "Token": "ethereum"}}]
    }"#;

    fn with_token(token: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("Token".to_string(), token.to_string())])
    }

    #[test]
    fn the_newer_format_maps_and_says_what_does_not() {
        let i = convert(NEWER).unwrap();
        assert_eq!(i.worker.len(), 1);
        let w = &i.worker[0];
        assert_eq!(w.topic, TopicId(1));
        assert_eq!(
            w.model,
            Some(ModelSpec::Http(http(
                "http://source:8000/inference/{Token}".into(),
                with_token("ETH")
            )))
        );
        assert_eq!(
            w.forecaster,
            Some(ForecasterSpec::Http(http(
                "http://source:8000/forecasts/{TopicId}/{BlockHeight}".into(),
                with_token("ETH")
            )))
        );
        let r = &i.reputer[0];
        assert_eq!(
            r.truth,
            TruthSpec::Http(http(
                "http://localhost:8888/gt/{Token}/{BlockHeight}".into(),
                with_token("ETHUSD")
            ))
        );
        let loss = r.loss.as_ref().unwrap();
        assert_eq!(loss.url, "http://localhost:5000");
        assert_eq!(loss.options["loss_method"], "sqe");
        let notes = i.not_mapped.join("\n");
        for needle in [
            "wallet (",
            "loopSeconds",
            "minStake",
            "LabeledGroundTruthEndpoint",
        ] {
            assert!(notes.contains(needle), "{needle} in {notes}");
        }
        assert_eq!(i.not_mapped.len(), 4, "{notes}");
        // The output is a config `node run` reads, roles and all.
        let cfg = Config::parse(&render(&i).unwrap(), std::iter::empty()).unwrap();
        assert_eq!(cfg.worker, i.worker);
        assert_eq!(cfg.reputer, i.reputer);
        cfg.validate_values().unwrap();
    }

    #[test]
    fn the_older_format_maps_too() {
        let i = convert(OLDER).unwrap();
        assert_eq!(i.worker.len(), 1);
        assert!(i.worker[0].forecaster.is_none());
        let r = &i.reputer[0];
        assert_eq!(
            r.truth,
            TruthSpec::Http(http(
                "http://source:8888/truth/{Token}/{BlockHeight}".into(),
                with_token("ethereum")
            ))
        );
        assert!(r.loss.is_none());
        assert!(
            i.not_mapped.iter().any(|l| l.contains("built-in loss")),
            "{:?}",
            i.not_mapped
        );
    }

    /// A key that carries a newline cannot end a comment and add live configuration.
    #[test]
    fn hostile_keys_cannot_inject_configuration() {
        let hostile = r#"{"worker": [{"topicId": 1,
            "parameters": {"InferenceEndpoint": "http://x/"},
            "x\n[[worker]]\ntopic = 9\nmodel = { kind = \"command\", program = \"sh\" }\n": 1}],
            "y\n[api]\nlisten = \"0.0.0.0:1\"": {}}"#;
        let i = convert(hostile).unwrap();
        let text = render(&i).unwrap();
        let cfg = Config::parse(&text, std::iter::empty()).unwrap();
        assert_eq!(cfg.worker.len(), 1, "{text}");
        assert_eq!(cfg.worker[0].topic, TopicId(1));
        assert_eq!(cfg.api, Config::default().api, "{text}");
        assert!(text.contains("\\u{a}"), "{text}");
    }

    #[test]
    fn what_cannot_be_used_is_refused_or_noted() {
        assert!(convert("not json").is_err());
        assert!(convert("[1]").is_err());
        // An unknown adapter, a missing topic, a built-in placeholder as a parameter.
        let i = convert(
            r#"{"worker": [
                 {"topicId": 1, "inferenceEntrypointName": "custom", "parameters": {"InferenceEndpoint": "http://x/"}},
                 {"parameters": {"InferenceEndpoint": "http://x/"}},
                 {"TOPICID": "2", "Parameters": {"inferenceendpoint": "http://x/{BlockHeight}", "BlockHeight": "7"}}
               ]}"#,
        )
        .unwrap();
        assert_eq!(i.worker.len(), 1);
        assert_eq!(i.worker[0].topic, TopicId(2));
        let notes = i.not_mapped.join("\n");
        for needle in [
            "\"custom\"",
            "no integer topicId",
            "fills {BlockHeight} itself",
        ] {
            assert!(notes.contains(needle), "{needle} in {notes}");
        }
        assert!(convert(r#"{"wallet": {}}"#).is_err());
    }
}
