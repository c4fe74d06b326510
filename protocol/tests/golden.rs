//! Golden byte vectors: fail if the encoding of any wire type changes.
//!
//! The expected encodings live in `tests/golden/encodings.txt` as `name blake3-of-bytes length
//! first-64-hex`. To accept an intentional change, run with `CHORUS_BLESS=1` and review the diff:
//! changing an encoding changes message ids, window roots and the network id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chorus_protocol::codec::{self, Wire};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::Hash32;

fn line<T: Wire>(name: &str, value: &T) -> String {
    let bytes = codec::encode(value);
    let head: String = hex::encode(&bytes[..bytes.len().min(32)]);
    format!("{name} {} {} {head}", Hash32::of(&bytes), bytes.len())
}

fn current() -> String {
    let mut lines = vec![];
    for (name, payload) in common::sample_payloads() {
        lines.push(line(&format!("payload/{name}"), &payload));
        let env = Envelope::seal(&common::key(1), &common::network(), &payload);
        lines.push(line(&format!("envelope/{name}"), &env));
    }
    let genesis: Genesis =
        Genesis::from_toml_str(include_str!("golden/genesis.toml")).expect("golden genesis parses");
    lines.push(line("genesis", &genesis));
    lines.push(format!("network_id {}", genesis.network_id()));
    lines.join("\n") + "\n"
}

#[test]
fn encodings_are_unchanged() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/encodings.txt");
    let now = current();
    if std::env::var_os("CHORUS_BLESS").is_some() {
        std::fs::write(path, &now).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap();
    for (e, n) in expected.lines().zip(now.lines()) {
        assert_eq!(e, n, "wire encoding changed (see tests/golden.rs to bless)");
    }
    assert_eq!(expected.lines().count(), now.lines().count());
}
