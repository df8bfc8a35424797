//! The partition nemesis's pure half (spec section 5): which partition spec a
//! `start-partition` picks, and the grudge (who refuses whom) it applies.
//! Randomness is injected, so a seeded run picks the same partitions.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use serde_json::Value;

/// The partition shapes a `start-partition` chooses from, uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionSpec {
    /// One node isolated from all others, both ways.
    One,
    /// A shuffled split at floor((n-1)/3); a no-op for n <= 3.
    MinorityThird,
    /// A shuffled split at floor(n/2): smaller side first.
    Majority,
    /// Every node hears a majority (itself included), no two the same one.
    MajoritiesRing,
}

pub const PARTITION_SPECS: [PartitionSpec; 4] = [
    PartitionSpec::One,
    PartitionSpec::MinorityThird,
    PartitionSpec::Majority,
    PartitionSpec::MajoritiesRing,
];

impl PartitionSpec {
    /// The keyword name, as in the history's `start-partition` invocation.
    pub fn name(&self) -> &'static str {
        match self {
            PartitionSpec::One => "one",
            PartitionSpec::MinorityThird => "minority-third",
            PartitionSpec::Majority => "majority",
            PartitionSpec::MajoritiesRing => "majorities-ring",
        }
    }
}

/// Destination node -> the source nodes whose messages it drops.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Picks one of the four specs uniformly.
pub fn random_spec<R: Rng + ?Sized>(rng: &mut R) -> PartitionSpec {
    PARTITION_SPECS[rng.random_range(0..PARTITION_SPECS.len())]
}

/// Draws a fresh grudge of the given shape over `nodes`.
pub fn grudge<R: Rng + ?Sized>(spec: PartitionSpec, nodes: &[String], rng: &mut R) -> Grudge {
    let n = nodes.len();
    match spec {
        PartitionSpec::One => {
            if n == 0 {
                return Grudge::new();
            }
            let isolated = rng.random_range(0..n);
            let (alone, rest): (Vec<_>, Vec<_>) =
                nodes.iter().enumerate().partition(|(k, _)| *k == isolated);
            let strip = |v: Vec<(usize, &String)>| v.into_iter().map(|(_, s)| s.clone()).collect();
            complete_grudge(&[strip(alone), strip(rest)])
        }
        PartitionSpec::MinorityThird => shuffled_split(nodes, n.saturating_sub(1) / 3, rng),
        PartitionSpec::Majority => shuffled_split(nodes, n / 2, rng),
        PartitionSpec::MajoritiesRing if n <= 5 => majorities_ring_perfect(nodes, rng),
        PartitionSpec::MajoritiesRing => majorities_ring_stochastic(nodes, rng),
    }
}

/// The nemesis completion value for a start, as JSON:
/// `["isolated", {dest: [srcs...]}]`. history.edn writes it as
/// `[:isolated {"n3" #{"n0" "n1"}}]`.
pub fn isolated_value(grudge: &Grudge) -> Value {
    let map = grudge
        .iter()
        .map(|(dest, srcs)| {
            let srcs = srcs.iter().cloned().map(Value::String).collect();
            (dest.clone(), Value::Array(srcs))
        })
        .collect();
    Value::Array(vec![Value::String("isolated".into()), Value::Object(map)])
}

/// `floor(n/2) + 1`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn shuffled_split<R: Rng + ?Sized>(nodes: &[String], at: usize, rng: &mut R) -> Grudge {
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let (small, large) = shuffled.split_at(at.min(shuffled.len()));
    complete_grudge(&[small.to_vec(), large.to_vec()])
}

/// Every node refuses every node outside its own component. Every node is a
/// key, with an empty set when it refuses nobody.
fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (k, component) in components.iter().enumerate() {
        let outsiders: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, c)| c.iter().cloned())
            .collect();
        for node in component {
            grudge.insert(node.clone(), outsiders.clone());
        }
    }
    grudge
}

/// Grudge from "who each node hears": each node refuses the rest.
fn grudge_from_hearing(nodes: &[String], hears: &[BTreeSet<usize>]) -> Grudge {
    nodes
        .iter()
        .zip(hears)
        .map(|(node, heard)| {
            let refused = (0..nodes.len())
                .filter(|k| !heard.contains(k))
                .map(|k| nodes[k].clone())
                .collect();
            (node.clone(), refused)
        })
        .collect()
}

/// Shuffled ring; the middle member of each window of `majority(n)`
/// consecutive members hears exactly that window.
fn majorities_ring_perfect<R: Rng + ?Sized>(nodes: &[String], rng: &mut R) -> Grudge {
    let n = nodes.len();
    let m = majority(n);
    let mut ring: Vec<usize> = (0..n).collect();
    ring.shuffle(rng);
    let mut hears = vec![BTreeSet::new(); n];
    for start in 0..n {
        let window: BTreeSet<usize> = (0..m).map(|k| ring[(start + k) % n]).collect();
        hears[ring[(start + m / 2) % n]] = window;
    }
    grudge_from_hearing(nodes, &hears)
}

/// Repeatedly links a lowest-degree node to a lowest-degree node it is not
/// yet linked to (ties at random), until every node hears a majority.
fn majorities_ring_stochastic<R: Rng + ?Sized>(nodes: &[String], rng: &mut R) -> Grudge {
    let n = nodes.len();
    let m = majority(n);
    let mut hears: Vec<BTreeSet<usize>> = (0..n).map(|k| BTreeSet::from([k])).collect();
    while let Some(a) = pick_lowest_degree(&hears, 0..n, rng) {
        if hears[a].len() >= m {
            break;
        }
        let strangers = (0..n).filter(|k| !hears[a].contains(k));
        let Some(b) = pick_lowest_degree(&hears, strangers, rng) else {
            break;
        };
        hears[a].insert(b);
        hears[b].insert(a);
    }
    grudge_from_hearing(nodes, &hears)
}

fn pick_lowest_degree<R: Rng + ?Sized>(
    hears: &[BTreeSet<usize>],
    candidates: impl Iterator<Item = usize>,
    rng: &mut R,
) -> Option<usize> {
    let candidates: Vec<usize> = candidates.collect();
    let lowest = candidates.iter().map(|&k| hears[k].len()).min()?;
    let tied: Vec<usize> = candidates
        .into_iter()
        .filter(|&k| hears[k].len() == lowest)
        .collect();
    Some(tied[rng.random_range(0..tied.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|k| format!("n{k}")).collect()
    }

    fn is_symmetric(g: &Grudge) -> bool {
        g.iter().all(|(dest, srcs)| {
            srcs.iter()
                .all(|s| g.get(s).is_some_and(|x| x.contains(dest)))
        })
    }

    /// Who `node` hears: everyone it does not refuse, itself included.
    fn heard(g: &Grudge, nodes: &[String], node: &str) -> BTreeSet<String> {
        let refused = g.get(node).cloned().unwrap_or_default();
        nodes
            .iter()
            .filter(|x| !refused.contains(*x))
            .cloned()
            .collect()
    }

    /// Side sizes of a symmetric two-way split: nodes that refuse nobody
    /// mean a no-op.
    fn split_sizes(g: &Grudge, nodes: &[String]) -> (usize, usize) {
        let first = &nodes[0];
        let same = heard(g, nodes, first).len();
        let (small, large) = (nodes.len() - same, same);
        (small.min(large), small.max(large))
    }

    #[test]
    fn names() {
        let names: Vec<_> = PARTITION_SPECS.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["one", "minority-third", "majority", "majorities-ring"]
        );
    }

    #[test]
    fn random_spec_covers_all_four() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            seen.insert(random_spec(&mut rng).name());
        }
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn one_isolates_one_node() {
        let mut rng = StdRng::seed_from_u64(2);
        for n in [5, 25] {
            let nodes = ids(n);
            for _ in 0..20 {
                let g = grudge(PartitionSpec::One, &nodes, &mut rng);
                assert!(is_symmetric(&g));
                assert_eq!(g.len(), n);
                let isolated: Vec<_> = g.iter().filter(|(_, s)| s.len() == n - 1).collect();
                assert_eq!(isolated.len(), 1);
                let x = isolated[0].0;
                for (dest, srcs) in &g {
                    if dest != x {
                        assert_eq!(srcs, &BTreeSet::from([x.clone()]));
                    }
                }
            }
        }
    }

    #[test]
    fn majority_and_minority_third_split_sizes() {
        let mut rng = StdRng::seed_from_u64(3);
        for (n, majority_small, third_small) in [(5, 2, 1), (25, 12, 8), (4, 2, 1), (7, 3, 2)] {
            let nodes = ids(n);
            let g = grudge(PartitionSpec::Majority, &nodes, &mut rng);
            assert!(is_symmetric(&g));
            assert_eq!(
                split_sizes(&g, &nodes),
                (majority_small, n - majority_small)
            );
            let g = grudge(PartitionSpec::MinorityThird, &nodes, &mut rng);
            assert!(is_symmetric(&g));
            assert_eq!(split_sizes(&g, &nodes), (third_small, n - third_small));
        }
    }

    #[test]
    fn splits_are_shuffled() {
        let mut rng = StdRng::seed_from_u64(4);
        let nodes = ids(25);
        let minorities: BTreeSet<_> = (0..10)
            .map(|_| {
                let g = grudge(PartitionSpec::Majority, &nodes, &mut rng);
                g.values().map(|s| s.len()).min().unwrap_or(0)
            })
            .collect();
        let sides: BTreeSet<_> = (0..10)
            .map(|_| {
                let g = grudge(PartitionSpec::Majority, &nodes, &mut rng);
                heard(&g, &nodes, "n0")
            })
            .collect();
        assert_eq!(minorities, BTreeSet::from([12]));
        assert!(sides.len() > 1, "the same split every time");
    }

    #[test]
    fn minority_third_is_a_no_op_for_three_or_fewer() {
        let mut rng = StdRng::seed_from_u64(5);
        for n in 1..=3 {
            let g = grudge(PartitionSpec::MinorityThird, &ids(n), &mut rng);
            assert_eq!(g.len(), n);
            assert!(g.values().all(BTreeSet::is_empty));
        }
    }

    #[test]
    fn majorities_ring_every_node_hears_a_majority() {
        let mut rng = StdRng::seed_from_u64(6);
        for n in [3, 4, 5, 6, 7, 10, 25] {
            let nodes = ids(n);
            for _ in 0..20 {
                let g = grudge(PartitionSpec::MajoritiesRing, &nodes, &mut rng);
                for node in &nodes {
                    let h = heard(&g, &nodes, node);
                    assert!(h.contains(node), "n={n}: {node} refuses itself");
                    assert!(h.len() >= majority(n), "n={n}: {node} hears {h:?}");
                }
                if n >= 4 {
                    assert!(is_symmetric(&g), "n={n}: {g:?}");
                }
            }
        }
    }

    #[test]
    fn majorities_ring_perfect_for_five() {
        let mut rng = StdRng::seed_from_u64(7);
        let nodes = ids(5);
        for _ in 0..20 {
            let g = grudge(PartitionSpec::MajoritiesRing, &nodes, &mut rng);
            // Each node hears exactly itself and two ring neighbours, and the
            // "hears" relation forms a single 5-cycle: distinct majorities.
            let majorities: BTreeSet<_> = nodes.iter().map(|x| heard(&g, &nodes, x)).collect();
            assert_eq!(majorities.len(), 5);
            assert!(majorities.iter().all(|h| h.len() == 3));
            let mut at = "n0".to_string();
            let mut previous = String::new();
            for _ in 0..5 {
                let next = heard(&g, &nodes, &at)
                    .into_iter()
                    .find(|x| *x != at && *x != previous)
                    .unwrap();
                previous = std::mem::replace(&mut at, next);
            }
            assert_eq!(at, "n0", "not a single ring: {g:?}");
        }
    }

    #[test]
    fn majorities_ring_stochastic_varies() {
        let mut rng = StdRng::seed_from_u64(8);
        let nodes = ids(25);
        let mut shapes = BTreeSet::new();
        for _ in 0..10 {
            let g = grudge(PartitionSpec::MajoritiesRing, &nodes, &mut rng);
            let degrees: Vec<usize> = nodes.iter().map(|x| heard(&g, &nodes, x).len()).collect();
            // Linking always raises a lowest node by one, so the lowest
            // degree stops at exactly a majority, and nobody hears everyone.
            assert_eq!(degrees.iter().min(), Some(&13), "{degrees:?}");
            assert!(degrees.iter().all(|&d| d < 25), "{degrees:?}");
            shapes.insert(format!("{g:?}"));
        }
        assert!(shapes.len() > 1);
    }

    #[test]
    fn majorities_ring_no_op_for_two_or_fewer() {
        let mut rng = StdRng::seed_from_u64(9);
        for n in 1..=2 {
            let g = grudge(PartitionSpec::MajoritiesRing, &ids(n), &mut rng);
            assert!(g.values().all(BTreeSet::is_empty));
        }
    }

    #[test]
    fn same_seed_same_grudge() {
        let nodes = ids(25);
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let spec = random_spec(&mut rng);
            grudge(spec, &nodes, &mut rng)
        };
        assert_eq!(draw(11), draw(11));
    }

    #[test]
    fn isolated_value_shape() {
        let g = Grudge::from([("n0".to_string(), BTreeSet::from(["n1".to_string()]))]);
        assert_eq!(
            isolated_value(&g).to_string(),
            r#"["isolated",{"n0":["n1"]}]"#
        );
    }
}
