//! Screening consensus gossip before relay: exactly which messages are relayed, held (not
//! relayed, nobody blamed) and refused (the sender blamed).

use arc_malachitebft_core_types::VoteType;
use chorus_protocol::keys::{Keypair, Signature};

use super::fixture::Fixture;
use crate::checkpoint::certificate::{CommitSig, PolkaCertificate};
use crate::checkpoint::messages::VoteMessage;
use crate::checkpoint::*;

fn started() -> (Fixture, Engine) {
    let f = Fixture::new(4);
    let (e, _) = f.engine(0);
    (f, e)
}

fn prevote(f: &Fixture, i: usize, height: u64) -> ConsensusMessage {
    let id = CheckpointId(chorus_protocol::ids::Hash32([9; 32]));
    f.vote(i, height, 0, VoteType::Prevote, Some(id))
}

fn tampered(m: ConsensusMessage) -> ConsensusMessage {
    let ConsensusMessage::Vote(mut v) = m else {
        panic!("not a vote")
    };
    v.signature.0[0] ^= 1;
    ConsensusMessage::Vote(v)
}

#[test]
fn a_validators_vote_of_the_current_height_is_relayed() {
    let (f, mut e) = started();
    assert_eq!(e.screen(&prevote(&f, 1, 1)), Screen::Relay);
    // One height ahead (a peer that decided before us) too.
    assert_eq!(e.screen(&prevote(&f, 2, 2)), Screen::Relay);
}

#[test]
fn a_bad_signature_is_refused() {
    let (f, mut e) = started();
    assert_eq!(
        e.screen(&tampered(prevote(&f, 1, 1))),
        Screen::Refuse(Offence::BadSignature)
    );
}

#[test]
fn a_vote_by_a_stranger_is_refused_at_a_reached_height_and_held_ahead() {
    let (f, mut e) = started();
    let stranger = Keypair::from_seed(&[99; 32]);
    let mut g = Fixture::new(4);
    g.keys[1] = stranger;
    assert_eq!(
        e.screen(&prevote(&g, 1, 1)),
        Screen::Refuse(Offence::NotAValidator)
    );
    // The set of height 2 may still change: not relayed, nobody blamed.
    assert_eq!(
        e.screen(&prevote(&g, 1, 2)),
        Screen::Hold("validator_set_may_change")
    );
    drop(f);
}

#[test]
fn a_proposal_by_a_validator_that_is_not_the_proposer_is_refused() {
    let (f, mut e) = started();
    let cp = f.checkpoint(1);
    let proposer = f.proposer(1, 0);
    let other = (proposer + 1) % 4;
    assert_eq!(e.screen(&f.proposal(proposer, 0, &cp)), Screen::Relay);
    assert_eq!(
        e.screen(&f.proposal(other, 0, &cp)),
        Screen::Refuse(Offence::NotAValidator)
    );
}

#[test]
fn heights_out_of_reach_are_held_not_blamed() {
    let (f, mut e) = started();
    assert_eq!(e.screen(&prevote(&f, 1, 5)), Screen::Hold("height_ahead"));
    // Even with a bad signature: this node cannot judge it, a peer far ahead might.
    assert_eq!(
        e.screen(&tampered(prevote(&f, 1, 5))),
        Screen::Hold("height_ahead")
    );
}

#[test]
fn catch_up_by_gossip_is_refused() {
    let (_, mut e) = started();
    assert_eq!(
        e.screen(&ConsensusMessage::CatchUpRequest { height: 1 }),
        Screen::Refuse(Offence::NotGossip)
    );
}

fn polka(f: &Fixture, signers: &[usize]) -> PolkaCertificate {
    let id = CheckpointId(chorus_protocol::ids::Hash32([9; 32]));
    let mut signatures: Vec<CommitSig> = signers
        .iter()
        .map(|&i| {
            let ConsensusMessage::Vote(VoteMessage { vote, signature }) =
                f.vote(i, 1, 0, VoteType::Prevote, Some(id))
            else {
                unreachable!()
            };
            CommitSig {
                validator: vote.validator.0,
                signature,
            }
        })
        .collect();
    signatures.sort_by_key(|s| s.validator);
    PolkaCertificate {
        height: 1,
        round: 0,
        value: id,
        signatures,
    }
}

#[test]
fn certificates_are_relayed_only_when_they_verify() {
    let (f, mut e) = started();
    let good = polka(&f, &[0, 1, 2]);
    assert_eq!(
        e.screen(&ConsensusMessage::PolkaCertificate(good.clone())),
        Screen::Relay
    );
    let mut forged = good.clone();
    forged.signatures[1].signature = Signature([1; 64]);
    assert_eq!(
        e.screen(&ConsensusMessage::PolkaCertificate(forged)),
        Screen::Refuse(Offence::BadCertificate)
    );
    // Too little power for the set of a height this node has reached (every honest node
    // knows that set): provably invalid.
    let thin = polka(&f, &[0]);
    assert_eq!(
        e.screen(&ConsensusMessage::PolkaCertificate(thin)),
        Screen::Refuse(Offence::BadCertificate)
    );
}
