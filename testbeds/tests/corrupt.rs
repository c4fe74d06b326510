//! `chorus-testbeds corrupt` at full size (4 validator processes; the newest WAL record,
//! certificate and ledger snapshot of one of them damaged in turn): each damaged start is
//! refused with the record named, the undamaged store catches up, nobody signed twice.

mod common;

#[test]
fn a_damaged_store_is_refused_and_the_undamaged_one_catches_up() {
    let s = common::run(&["corrupt"]);
    let checks = s["checks"].as_array().expect("checks");
    for table in ["wal", "certificates", "ledger"] {
        let name = format!("damaged {table} record refused");
        let c = checks
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no check {name:?}: {s}"));
        assert_eq!(c["pass"], true, "{s}");
    }
    assert!(
        s["metrics"]["heights_while_stopped"].as_u64().unwrap_or(0) >= 3,
        "{s}"
    );
}
