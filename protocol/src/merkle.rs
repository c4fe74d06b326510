//! A Merkle tree for commitments a light client checks: RFC 6962 §2.1 (Certificate
//! Transparency's tree) with BLAKE3 in place of SHA-256.
//!
//! - leaf hash: `BLAKE3(0x00 ‖ leaf bytes)`
//! - interior node: `BLAKE3(0x01 ‖ left ‖ right)`
//! - the tree of `n > 1` leaves splits at `k`, the largest power of two `< n`: the left subtree
//!   holds leaves `0..k`, the right one `k..n` (so the tree is unbalanced on the right, never
//!   padded, and no odd leaf is duplicated);
//! - the root of no leaves is `BLAKE3("")`.
//!
//! An inclusion path lists the sibling hashes from the leaf up to the root; it is checked with
//! RFC 9162 §2.1.3.2's algorithm ([`root_from_path`]), which needs only the leaf's index and the
//! tree size. The 0x00/0x01 prefixes keep a leaf from ever being read as an interior node.

use crate::ids::Hash32;

/// The hash of one leaf's bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(bytes);
    Hash32(*h.finalize().as_bytes())
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x01]);
    h.update(&left.0);
    h.update(&right.0);
    Hash32(*h.finalize().as_bytes())
}

/// The root over leaf hashes (in leaf order).
pub fn root(leaves: &[Hash32]) -> Hash32 {
    match leaves {
        [] => Hash32(*blake3::hash(b"").as_bytes()),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion path of leaf `index`: sibling hashes from the bottom up. `None` when `index`
/// is out of range.
pub fn path(leaves: &[Hash32], index: usize) -> Option<Vec<Hash32>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    collect_path(leaves, index, &mut out);
    Some(out)
}

fn collect_path(leaves: &[Hash32], index: usize, out: &mut Vec<Hash32>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        collect_path(&leaves[..k], index, out);
        out.push(root(&leaves[k..]));
    } else {
        collect_path(&leaves[k..], index - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// The root that `leaf` at `index` of a tree of `size` leaves leads to along `path`, or `None`
/// when the path has the wrong length for that position (RFC 9162 §2.1.3.2). The caller
/// compares the result with the committed root.
pub fn root_from_path(leaf: Hash32, index: u64, size: u64, path: &[Hash32]) -> Option<Hash32> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| leaf_hash(&(i as u32).to_le_bytes()))
            .collect()
    }

    /// The tree's shape, written out by hand for small sizes (RFC 6962's figures).
    #[test]
    fn shape_follows_rfc_6962() {
        let l = leaves(7);
        let h = |a: Hash32, b: Hash32| node_hash(&a, &b);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), h(l[0], l[1]));
        assert_eq!(root(&l[..3]), h(h(l[0], l[1]), l[2]));
        let left = h(h(l[0], l[1]), h(l[2], l[3]));
        assert_eq!(root(&l[..4]), left);
        assert_eq!(root(&l[..5]), h(left, l[4]));
        assert_eq!(root(&l), h(left, h(h(l[4], l[5]), l[6])));
        assert_eq!(root(&[]), Hash32(*blake3::hash(b"").as_bytes()));
        assert_ne!(leaf_hash(b"x"), Hash32(*blake3::hash(b"x").as_bytes()));
    }

    #[test]
    fn every_path_of_every_size_verifies_and_no_other() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = path(&l, i).unwrap();
                assert_eq!(
                    root_from_path(l[i], i as u64, n as u64, &p),
                    Some(r),
                    "{n}/{i}"
                );
                // Another leaf, another index, another size, a changed or shortened path fail.
                let other = l[(i + 1) % n];
                if n > 1 {
                    assert_ne!(root_from_path(other, i as u64, n as u64, &p), Some(r));
                    assert_ne!(
                        root_from_path(l[i], ((i + 1) % n) as u64, n as u64, &p),
                        Some(r)
                    );
                    let mut bad = p.clone();
                    bad[0].0[0] ^= 1;
                    assert_ne!(root_from_path(l[i], i as u64, n as u64, &bad), Some(r));
                    assert_ne!(
                        root_from_path(l[i], i as u64, n as u64, &p[..p.len() - 1]),
                        Some(r)
                    );
                }
                let mut longer = p.clone();
                longer.push(r);
                assert_eq!(root_from_path(l[i], i as u64, n as u64, &longer), None);
                assert_ne!(
                    root_from_path(l[i], i as u64, n as u64 + 1, &p),
                    Some(root(&leaves(n + 1)))
                );
            }
            assert_eq!(path(&l, n), None);
            assert_eq!(root_from_path(l[0], n as u64, n as u64, &[]), None);
        }
    }
}
