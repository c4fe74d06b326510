//! `chorus-testbeds longrange`, short (two networks of 4 validator processes from one genesis,
//! a 10 s unbonding period): on the real chain a successor bonds and the genesis validators
//! unbond and get their stake back; a newcomer trusting the real chain's checkpoint refuses the
//! fork they signed and follows the real chain; one trusting nothing refuses the old genesis.

mod common;

#[test]
fn a_second_history_signed_by_the_genesis_validators_is_refused() {
    let s = common::run(&["longrange", "--heights", "12", "--unbonding-secs", "10"]);
    let checks = s["checks"].as_array().expect("checks");
    for name in [
        "the fork made its own history",
        "the successor bonded on the real chain",
        "the genesis validators unbonded on the real chain",
        "two histories from one genesis",
        "their stake was released before they signed the fork",
        "a newcomer trusting the real chain refuses the fork",
        "without a trusted checkpoint an old genesis is refused",
        "a newcomer trusting the real chain joins it",
        "the newcomer follows the real chain",
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?}: {s}"));
        assert_eq!(c["pass"], true, "{s}");
    }
}
