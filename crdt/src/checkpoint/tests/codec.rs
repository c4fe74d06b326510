//! The wire codec: round trips, a pinned vector, and garbage that must never panic.

use arc_malachitebft_core_types::VoteType;
use chorus_protocol::codec::{self, DecodeError};

use super::fixture::*;
use crate::checkpoint::certificate::{
    CommitSig, PolkaCertificate, RoundCertificate, RoundCertificateKind, RoundSig,
};
use crate::checkpoint::context::VoteKind;
use crate::checkpoint::limits::MAX_MESSAGE_SIZE;
use crate::checkpoint::sim::Rng;
use crate::checkpoint::wal::{WalEntry, WalTimeout};
use crate::checkpoint::*;

fn samples(f: &Fixture) -> Vec<ConsensusMessage> {
    let cp = f.checkpoint(1);
    let sig = |i: usize| match f.vote(i, 1, 0, VoteType::Precommit, Some(cp.id())) {
        ConsensusMessage::Vote(v) => v.signature,
        _ => unreachable!(),
    };
    let mut sigs: Vec<CommitSig> = (0..3)
        .map(|i| CommitSig {
            validator: f.keys[i].public(),
            signature: sig(i),
        })
        .collect();
    sigs.sort_by_key(|s| s.validator);
    vec![
        f.proposal(0, 0, &cp),
        f.vote(1, 1, 0, VoteType::Prevote, None),
        f.vote(1, 1, 2, VoteType::Precommit, Some(cp.id())),
        ConsensusMessage::PolkaCertificate(PolkaCertificate {
            height: 1,
            round: 0,
            value: cp.id(),
            signatures: sigs.clone(),
        }),
        ConsensusMessage::RoundCertificate(RoundCertificate {
            height: 1,
            round: 0,
            kind: RoundCertificateKind::Precommit,
            signatures: sigs
                .iter()
                .map(|s| RoundSig {
                    kind: VoteKind::Precommit,
                    value: Some(cp.id()),
                    validator: s.validator,
                    signature: s.signature,
                })
                .collect(),
        }),
        ConsensusMessage::CatchUpRequest { height: 9 },
        ConsensusMessage::CatchUpResponse(DecidedCheckpoint {
            checkpoint: cp.clone(),
            certificate: CommitCertificate {
                height: 1,
                round: 0,
                value: cp.id(),
                signatures: sigs,
            },
        }),
    ]
}

#[test]
fn every_message_round_trips() {
    let f = Fixture::new(4);
    for m in samples(&f) {
        let bytes = m.to_bytes();
        assert_eq!(ConsensusMessage::decode(&bytes).unwrap(), m);
    }
}

#[test]
fn the_vote_encoding_is_pinned() {
    let f = Fixture::new(4);
    let ConsensusMessage::Vote(v) = f.vote(1, 1, 0, VoteType::Prevote, None) else {
        unreachable!()
    };
    let bytes = ConsensusMessage::Vote(v.clone()).to_bytes();
    // variant 1, height 1, round Some(0), prevote, nil, 32-byte key, 64-byte signature.
    let mut expected = vec![1u8, 1, 1, 0, 0, 0];
    expected.extend_from_slice(f.keys[1].public().as_bytes());
    expected.extend_from_slice(v.signature.as_bytes());
    assert_eq!(bytes, expected);
    // And the signed bytes: length-prefixed domain, network id, then the vote body.
    let sign_bytes = signing::vote_sign_bytes(&f.config.network, &v.vote);
    assert_eq!(
        &sign_bytes[..8],
        &(signing::VOTE_DOMAIN.len() as u64).to_le_bytes()
    );
    assert_eq!(
        &sign_bytes[8 + signing::VOTE_DOMAIN.len()..][..32],
        &f.config.network.0
    );
    assert_eq!(
        &sign_bytes[8 + signing::VOTE_DOMAIN.len() + 32..],
        &expected[1..6 + 32]
    );
}

#[test]
fn structural_rules_are_enforced_at_decode() {
    let f = Fixture::new(4);
    // A proposal whose checkpoint claims another height.
    let mut cp = f.checkpoint(1);
    cp.height = 2;
    let mut m = f.proposal(0, 0, &f.checkpoint(1));
    if let ConsensusMessage::Proposal(p) = &mut m {
        p.proposal.value = cp.into();
    }
    assert!(matches!(
        ConsensusMessage::decode(&m.to_bytes()),
        Err(MessageError::Shape(ShapeError::HeightMismatch { .. }))
    ));
    // Height 0, rounds beyond the cap, unsorted certificates.
    assert!(
        ConsensusMessage::decode(&ConsensusMessage::CatchUpRequest { height: 0 }.to_bytes())
            .is_err()
    );
    let mut v = f.vote(1, 1, 0, VoteType::Prevote, None);
    if let ConsensusMessage::Vote(v) = &mut v {
        v.vote.round = arc_malachitebft_core_types::Round::new(u32::MAX);
    }
    assert_eq!(
        ConsensusMessage::decode(&v.to_bytes()),
        Err(MessageError::Shape(ShapeError::RoundOutOfRange))
    );
    let mut polka = samples(&f).remove(3);
    if let ConsensusMessage::PolkaCertificate(c) = &mut polka {
        c.signatures.reverse();
    }
    assert_eq!(
        ConsensusMessage::decode(&polka.to_bytes()),
        Err(MessageError::Shape(ShapeError::SignaturesNotSorted))
    );
}

#[test]
fn oversize_and_huge_claims_are_refused_without_allocating() {
    let big = vec![0u8; MAX_MESSAGE_SIZE + 1];
    assert!(matches!(
        ConsensusMessage::decode(&big),
        Err(MessageError::Decode(DecodeError::TooLarge { .. }))
    ));
    // CatchUpResponse whose window list claims 2^60 entries.
    let mut bytes = vec![5u8, 1];
    bytes.extend_from_slice(&[0u8; 32]);
    bytes.push(253);
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(ConsensusMessage::decode(&bytes).is_err());
}

/// Random bytes and mutations of valid messages: decoding returns, never panics, and what it
/// accepts is canonical (re-encodes to the same bytes).
#[test]
fn garbage_never_panics() {
    let f = Fixture::new(4);
    let valid: Vec<Vec<u8>> = samples(&f).iter().map(ConsensusMessage::to_bytes).collect();
    let mut rng = Rng::new(0xfeed);
    let mut accepted = 0;
    for i in 0..30_000u32 {
        let bytes: Vec<u8> = if i % 3 == 0 {
            let len = rng.range(0, 400) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut b = valid[rng.range(0, valid.len() as u64 - 1) as usize].clone();
            match rng.range(0, 3) {
                0 => {
                    let at = rng.range(0, b.len() as u64 - 1) as usize;
                    b[at] ^= 1 << rng.range(0, 7);
                }
                1 => b.truncate(rng.range(0, b.len() as u64) as usize),
                2 => b.push(rng.next_u64() as u8),
                _ => {
                    let at = rng.range(0, b.len() as u64 - 1) as usize;
                    b[at] = rng.next_u64() as u8;
                }
            }
            b
        };
        if let Ok(m) = ConsensusMessage::decode(&bytes) {
            accepted += 1;
            assert_eq!(m.to_bytes(), bytes);
        }
        let _ = codec::decode::<WalRecord>(&bytes);
        let _ = codec::decode::<DecidedCheckpoint>(&bytes);
    }
    // Flipping a signature byte still decodes (signatures are checked later).
    assert!(accepted > 0);
}

#[test]
fn wal_records_round_trip() {
    let f = Fixture::new(4);
    let cp = f.checkpoint(1);
    let records = vec![
        WalRecord {
            height: 1,
            entry: WalEntry::Timeout {
                round: Some(3),
                kind: WalTimeout::Precommit,
            },
        },
        WalRecord {
            height: 1,
            entry: WalEntry::ProposedValue {
                round: Some(0),
                valid_round: None,
                proposer: f.keys[0].public(),
                value: cp.into(),
                valid: false,
                from_sync: true,
            },
        },
    ];
    for r in records {
        let back = WalRecord::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(back, r);
        // And through Malachite's input type.
        let again = WalRecord::from_input(1, &r.to_input()).unwrap();
        assert_eq!(again, r);
    }
}
