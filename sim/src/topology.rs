//! Maelstrom's topology builders (spec 2.3): the neighbour map every node
//! receives in its `topology` message.

use std::collections::BTreeMap;

/// Node id -> neighbour ids, in Maelstrom's neighbour order.
pub type Topology = BTreeMap<String, Vec<String>>;

/// The names `--topology` accepts (`tree` is `tree2`).
pub const TOPOLOGY_NAMES: &[&str] = &["grid", "line", "total", "tree", "tree2", "tree3", "tree4"];

/// Builds the named topology over `nodes` (in `:nodes` order). The error is a
/// one-line reason, for an unknown name.
pub fn build(name: &str, nodes: &[String]) -> Result<Topology, String> {
    let neighbours_by_index: Vec<Vec<usize>> = match name {
        "grid" => grid(nodes.len()),
        "line" if nodes.len() < 2 => return Ok(Topology::new()),
        "line" => line(nodes.len()),
        "total" => total(nodes.len()),
        "tree" | "tree2" => tree(nodes.len(), 2),
        "tree3" => tree(nodes.len(), 3),
        "tree4" => tree(nodes.len(), 4),
        other => {
            return Err(format!(
                "unknown topology {other:?}; expected one of {}",
                TOPOLOGY_NAMES.join(", ")
            ))
        }
    };
    Ok(nodes
        .iter()
        .zip(neighbours_by_index)
        .map(|(node, neighbours)| {
            let ids = neighbours.into_iter().map(|k| nodes[k].clone()).collect();
            (node.clone(), ids)
        })
        .collect())
}

fn grid(n: usize) -> Vec<Vec<usize>> {
    let side = ceil_sqrt(n);
    (0..n)
        .map(|k| {
            let (row, col) = (k / side, k % side);
            let below = Some(k + side).filter(|&b| b < n);
            let above = row.checked_sub(1).map(|r| r * side + col);
            let right = Some(k + 1).filter(|&r| col + 1 < side && r < n);
            let left = col.checked_sub(1).map(|c| row * side + c);
            [below, above, right, left].into_iter().flatten().collect()
        })
        .collect()
}

fn ceil_sqrt(n: usize) -> usize {
    let mut side = 0;
    while side * side < n {
        side += 1;
    }
    side
}

fn line(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|k| {
            let previous = k.checked_sub(1);
            let next = Some(k + 1).filter(|&x| x < n);
            [previous, next].into_iter().flatten().collect()
        })
        .collect()
}

fn total(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|k| (0..n).filter(|&o| o != k).collect())
        .collect()
}

fn tree(n: usize, branching: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|k| {
            let parent = (k > 0).then(|| (k - 1) / branching);
            let children = (branching * k + 1..=branching * k + branching).filter(|&c| c < n);
            parent.into_iter().chain(children).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|k| format!("n{k}")).collect()
    }

    fn show(t: &Topology) -> String {
        t.iter()
            .map(|(k, v)| format!("{k}:[{}]", v.join(",")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            show(&build("grid", &ids(5)).unwrap()),
            "n0:[n3,n1] n1:[n4,n2,n0] n2:[n1] n3:[n0,n4] n4:[n1,n3]"
        );
        assert_eq!(
            show(&build("tree", &ids(7)).unwrap()),
            "n0:[n1,n2] n1:[n0,n3,n4] n2:[n0,n5,n6] n3:[n1] n4:[n1] n5:[n2] n6:[n2]"
        );
        let grid25 = build("grid", &ids(25)).unwrap();
        assert_eq!(grid25["n6"], ["n11", "n1", "n7", "n5"]);
        assert_eq!(grid25["n24"], ["n19", "n23"]);
        assert!(build("line", &ids(1)).unwrap().is_empty());
        assert_eq!(show(&build("total", &ids(1)).unwrap()), "n0:[]");
    }

    #[test]
    fn every_topology_is_symmetric() {
        for name in TOPOLOGY_NAMES {
            for n in [1, 2, 3, 4, 9, 10, 26] {
                let t = build(name, &ids(n)).unwrap();
                for (node, neighbours) in &t {
                    for other in neighbours {
                        assert!(t[other].contains(node), "{name} n={n}: {node}-{other}");
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_name_is_rejected() {
        let err = build("ring", &ids(3)).unwrap_err();
        assert!(err.contains("ring") && !err.contains('\n'), "{err}");
    }
}
