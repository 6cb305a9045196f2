"""Near-duplicate pairs: hashing against brute force, and planted copies across labels."""

import numpy as np

from imgsearch.compare.near_duplicates import find_pairs, partners
from imgsearch.compare.synthetic import clustered


def planted(n: int, copies: int, seed: int = 0, noise: float = 0.02):
    vectors, codes = clustered(n, 64, 8, seed=seed)
    rng = np.random.default_rng(seed + 1)
    src = rng.choice(n, copies, replace=False)
    dup = vectors[src] + rng.normal(scale=noise, size=(copies, 64)).astype(np.float32)
    dup /= np.linalg.norm(dup, axis=1, keepdims=True)
    vectors = np.vstack([vectors, dup])
    codes = np.concatenate([codes, (codes[src] + 1) % 8])  # each copy filed under another label
    return vectors, codes, {(int(s), n + i) for i, s in enumerate(src)}


def brute(vectors, t):
    s = vectors @ vectors.T
    i, j = np.nonzero(np.triu(s >= t, 1))
    return set(zip(i.tolist(), j.tolist()))


def test_exact_pairs_equal_brute_force():
    vectors, _, _ = planted(800, 40)
    p = find_pairs(vectors, 0.96)
    assert p.method == "every pair" and p.complete
    assert set(zip(p.a.tolist(), p.b.tolist())) == brute(vectors, 0.96)
    assert np.all(np.diff(p.score) <= 1e-7)  # best first


def test_hashing_finds_the_brute_force_pairs_and_invents_none():
    vectors, codes, truth = planted(3000, 150, seed=2, noise=0.03)
    want = brute(vectors, 0.96)
    p = find_pairs(vectors, 0.96, exact_max=0)  # force the hashing path
    got = set(zip(p.a.tolist(), p.b.tolist()))
    assert got <= want and p.complete
    assert len(got) >= 0.99 * len(want)
    assert len(truth & got) >= 0.9 * len(truth)
    cross = sum(codes[a] != codes[b] for a, b in got)
    assert cross >= 0.9 * len(truth)
    near = partners(p, np.array([a for a, _ in sorted(truth)]))
    assert all(b in near[a] for a, b in truth if (a, b) in got)


def test_a_degenerate_space_says_it_was_sampled():
    rng = np.random.default_rng(0)
    v = np.ones((6000, 16), np.float32) + rng.normal(scale=1e-3, size=(6000, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    p = find_pairs(v, 0.96, exact_max=0)
    assert not p.complete and p.notes and len(p.a) > 0
