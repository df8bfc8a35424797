//! Property tests of `digest::Digest` against adversarial input: seqs at and
//! near 0, 2^40 and u64::MAX, and digests whose public `have`/`extra` fields
//! were set directly the way a hostile gossip message sets them (extras at,
//! below or next to `have`, empty extra sets, `have` of u64::MAX). Nothing
//! may panic, in debug or release; within 1..=2^40 the digest must agree with
//! a plain set; merging must be commutative and idempotent.

use broadcast_actors::digest::Digest;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The largest seq the issue-11 plan allows on the wire.
const MAX_SEQ: u64 = 1 << 40;

/// Origins, including an empty one.
const ORIGINS: [&str; 3] = ["n0@1764681234567", "n1@1764681234999", ""];

/// Seqs a well-behaved peer may send: small, and near the largest allowed.
fn sane_seq() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![1u64..48, (MAX_SEQ - 6)..=MAX_SEQ]
}

/// Seqs a hostile peer may send as well: 0, just past 2^40, 2^63 and the
/// top of u64.
fn any_seq() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        3 => sane_seq(),
        1 => Just(0u64),
        1 => (MAX_SEQ + 1)..=(MAX_SEQ + 3),
        1 => Just(1u64 << 63),
        2 => (u64::MAX - 3)..=u64::MAX,
    ]
}

fn origin() -> impl Strategy<Value = usize> {
    0..ORIGINS.len()
}

/// A digest as its public fields can be set from the wire: any `have`,
/// extras anywhere (empty sets too) and extras placed at, below and next to
/// `have` (offsets -1..=2, where they exist).
fn raw_digest(seq: impl Strategy<Value = u64> + Clone) -> impl Strategy<Value = Digest> {
    let have = proptest::collection::btree_map(origin(), seq.clone(), 0..3);
    let extra =
        proptest::collection::btree_map(origin(), proptest::collection::btree_set(seq, 0..5), 0..3);
    let near_have = proptest::collection::vec((origin(), -1i64..=2), 0..4);
    (have, extra, near_have).prop_map(|(have, extra, near_have)| {
        let mut d = Digest::default();
        for (o, high) in have {
            d.have.insert(ORIGINS[o].to_string(), high);
        }
        for (o, seqs) in extra {
            d.extra.insert(ORIGINS[o].to_string(), seqs);
        }
        for (o, offset) in near_have {
            let high = d.high_water(ORIGINS[o]);
            if let Some(seq) = high.checked_add_signed(offset) {
                d.extra
                    .entry(ORIGINS[o].to_string())
                    .or_default()
                    .insert(seq);
            }
        }
        d
    })
}

/// What a digest's fields say it holds (seq 0 is never an item).
fn model_covers(d: &Digest, origin: &str, seq: u64) -> bool {
    seq >= 1
        && (d.have.get(origin).is_some_and(|&high| seq <= high)
            || d.extra.get(origin).is_some_and(|s| s.contains(&seq)))
}

/// Seqs worth asking about: every seq the digests name, its neighbours, and
/// the edges of the ranges.
fn probes(digests: &[&Digest]) -> BTreeSet<u64> {
    let mut named = BTreeSet::from([0, 1, 2, MAX_SEQ, MAX_SEQ + 1, u64::MAX - 1, u64::MAX]);
    for d in digests {
        named.extend(d.have.values().copied());
        named.extend(d.extra.values().flatten().copied());
    }
    named
        .iter()
        .flat_map(|&s| [s.checked_sub(1), Some(s), s.checked_add(1)])
        .flatten()
        .collect()
}

/// What `d` covers among the probes, per origin.
fn coverage(d: &Digest, probes: &BTreeSet<u64>) -> BTreeSet<(usize, u64)> {
    (0..ORIGINS.len())
        .flat_map(|o| probes.iter().map(move |&s| (o, s)))
        .filter(|&(o, s)| s >= 1 && d.covers(ORIGINS[o], s))
        .collect()
}

/// The invariant the `extra` field documents: per origin never empty, and
/// every seq above `have + 1`.
fn assert_normalised(d: &Digest) -> Result<(), TestCaseError> {
    for (origin, seqs) in &d.extra {
        prop_assert!(!seqs.is_empty(), "empty extra set for {origin:?}: {d:?}");
        let high = d.high_water(origin);
        let lowest = *seqs.iter().next().unwrap();
        prop_assert!(
            lowest > high && high.checked_add(1) != Some(lowest),
            "extra {lowest} at or next to have {high} for {origin:?}: {d:?}"
        );
    }
    Ok(())
}

fn merged(a: &Digest, b: &Digest) -> Digest {
    let mut m = a.clone();
    m.merge(b);
    m
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        // Tests may only touch their own file; a failure prints its input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Inserting into an empty digest: `insert` reports exactly the new
    /// items, `covers` and `high_water` agree with a set, and the digest
    /// stays normalised. Seqs beyond 2^40 may be refused, but never
    /// reported new twice.
    #[test]
    fn inserts_agree_with_a_plain_set(
        ops in proptest::collection::vec((origin(), any_seq()), 0..60),
    ) {
        let mut d = Digest::default();
        let mut model: BTreeSet<(usize, u64)> = BTreeSet::new();
        for &(o, seq) in &ops {
            let new = d.insert(ORIGINS[o], seq);
            if seq == 0 {
                prop_assert!(!new, "seq 0 is no item");
            } else if seq <= MAX_SEQ {
                prop_assert_eq!(new, model.insert((o, seq)), "insert({:?}, {})", ORIGINS[o], seq);
            } else {
                prop_assert!(
                    !new || model.insert((o, seq)),
                    "({:?}, {}) new twice",
                    ORIGINS[o],
                    seq
                );
            }
            if new {
                prop_assert!(d.covers(ORIGINS[o], seq));
            }
        }
        assert_normalised(&d)?;
        for (o, origin) in ORIGINS.iter().enumerate() {
            for &seq in probes(&[&d]).iter().filter(|&&s| (1..=MAX_SEQ).contains(&s)) {
                prop_assert_eq!(
                    d.covers(origin, seq),
                    model.contains(&(o, seq)),
                    "covers({:?}, {})",
                    origin,
                    seq
                );
            }
            let mut high = 0u64;
            while model.contains(&(o, high + 1)) {
                high += 1;
            }
            prop_assert_eq!(d.high_water(origin), high, "high_water({:?})", origin);
        }
    }

    /// Inserting into a digest whose fields came from the wire: `insert`
    /// never panics (`have` of u64::MAX next to extras included) and reports
    /// new exactly the seqs in 1..=2^40 the fields did not cover.
    #[test]
    fn inserts_into_a_raw_digest_never_panic_and_report_new_items(
        start in raw_digest(any_seq()),
        ops in proptest::collection::vec((origin(), any_seq()), 0..30),
    ) {
        let mut d = start.clone();
        let mut added: BTreeSet<(usize, u64)> = BTreeSet::new();
        for &(o, seq) in &ops {
            let was = model_covers(&start, ORIGINS[o], seq) || added.contains(&(o, seq));
            let new = d.insert(ORIGINS[o], seq);
            if (1..=MAX_SEQ).contains(&seq) {
                prop_assert_eq!(new, !was, "insert({:?}, {}) into {:?}", ORIGINS[o], seq, start);
            } else {
                prop_assert!(!new || !was, "insert({:?}, {}) new but held", ORIGINS[o], seq);
            }
            if new {
                added.insert((o, seq));
                prop_assert!(d.covers(ORIGINS[o], seq));
            }
        }
    }

    /// Merging digests whose fields hold only seqs in 0..=2^40, however
    /// unnormalised: the result covers exactly the union and is normalised.
    #[test]
    fn merge_of_in_range_digests_covers_exactly_the_union(
        a in raw_digest(prop_oneof![Just(0u64), sane_seq()]),
        b in raw_digest(prop_oneof![Just(0u64), sane_seq()]),
    ) {
        let m = merged(&a, &b);
        assert_normalised(&m)?;
        let probes = probes(&[&a, &b]);
        for origin in ORIGINS {
            for &seq in probes.iter().filter(|&&s| (1..=MAX_SEQ).contains(&s)) {
                let want = model_covers(&a, origin, seq) || model_covers(&b, origin, seq);
                prop_assert_eq!(
                    m.covers(origin, seq),
                    want,
                    "covers({:?}, {}) of {:?}",
                    origin,
                    seq,
                    m
                );
            }
        }
    }

    /// Merging hostile digests (have or extras of u64::MAX, 0, past 2^40)
    /// never panics, is commutative and idempotent in what it covers, and
    /// leaves a normalised digest.
    #[test]
    fn merge_of_hostile_digests_never_panics_and_is_commutative_and_idempotent(
        a in raw_digest(any_seq()),
        b in raw_digest(any_seq()),
    ) {
        let ab = merged(&a, &b);
        let ba = merged(&b, &a);
        assert_normalised(&ab)?;
        assert_normalised(&ba)?;
        let probes = probes(&[&a, &b]);
        prop_assert_eq!(
            coverage(&ab, &probes),
            coverage(&ba, &probes),
            "a∪b vs b∪a: {:?} {:?}",
            ab,
            ba
        );
        let abb = merged(&ab, &b);
        prop_assert_eq!(coverage(&abb, &probes), coverage(&ab, &probes), "(a∪b)∪b vs a∪b");
        let abab = merged(&ab, &ab);
        prop_assert_eq!(
            coverage(&abab, &probes),
            coverage(&ab, &probes),
            "(a∪b)∪(a∪b) vs a∪b"
        );
    }
}

/// The overflow the properties look for, as one plain case: a peer's `have`
/// of u64::MAX merged into a digest that holds an extra for that origin.
#[test]
fn merging_a_have_of_u64_max_over_an_extra_does_not_overflow() {
    let mut mine = Digest::default();
    assert!(mine.insert("n1@1", 5));
    let peer = Digest {
        have: BTreeMap::from([("n1@1".to_string(), u64::MAX)]),
        ..Digest::default()
    };
    mine.merge(&peer);
    assert!(
        mine.covers("n1@1", 5),
        "a merge keeps what was held: {mine:?}"
    );
    let high = mine.high_water("n1@1");
    assert!(
        mine.extra.get("n1@1").is_none_or(|seqs| seqs
            .iter()
            .all(|&s| s > high && Some(s) != high.checked_add(1))),
        "extras only above have + 1: {mine:?}"
    );
}
