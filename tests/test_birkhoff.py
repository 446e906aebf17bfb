import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_course import sinkhorn_error, sinkhorn_knopp
from mhc_course.birkhoff import (
    all_permutations,
    bvn_decomposition,
    bvn_reconstruct,
    distance_from_uniform,
    find_permutation_in_support,
    is_doubly_stochastic,
    marcus_ree_bound,
    max_weight_permutation,
    permutation_matrix,
    random_convex_permutations,
    random_doubly_stochastic,
    random_permutations,
)


def gen(seed=None):
    return torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ())))


def test_permutation_matrix_convention():
    perm = torch.tensor([2, 0, 3, 1])
    p = permutation_matrix(perm)
    x = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(p @ x, x[perm])  # stream i receives stream perm[i]
    assert p[0, 2] == 1 and p.sum() == 4
    batched = permutation_matrix(random_permutations(6, 5, generator=gen()))
    assert batched.shape == (6, 5, 5)
    assert is_doubly_stochastic(batched, tol=0).all()


@pytest.mark.parametrize(
    "bad", [torch.tensor([0, 0, 1]), torch.tensor([0.0, 1.0]), torch.tensor([1, 2, 3]), torch.tensor([True, False])]
)
def test_permutation_matrix_rejects_non_permutations(bad):
    with pytest.raises(ValueError, match="perms must"):
        permutation_matrix(bad)


def test_all_permutations():
    for n in range(1, 6):
        perms = all_permutations(n)
        assert perms.shape == (math.factorial(n), n)
        assert len({tuple(p) for p in perms.tolist()}) == math.factorial(n)
        assert perms.tolist() == sorted(perms.tolist())
    with pytest.raises(ValueError, match="n must be an int in 1..8"):
        all_permutations(9)


def test_max_weight_permutation_finds_planted_assignment():
    g = gen()
    for _ in range(10):
        sigma = random_permutations(1, 6, generator=g)[0]
        scores = 0.1 * torch.randn(6, 6, generator=g, dtype=torch.float64) + 5 * permutation_matrix(sigma)
        assert torch.equal(max_weight_permutation(scores), sigma)
    scores = torch.randn(5, 5, generator=g, dtype=torch.float64)
    best = max_weight_permutation(scores)
    value = lambda p: scores[torch.arange(5), p].sum()  # noqa: E731
    assert all(value(best) >= value(p) for p in random_permutations(200, 5, generator=g))


def test_random_generators_are_doubly_stochastic():
    g = gen()
    mix = random_convex_permutations(50, 5, 7, generator=g)
    assert mix.shape == (50, 5, 5) and (mix >= 0).all()
    assert max(e.max().item() for e in sinkhorn_error(mix)) < 1e-14
    perms = random_convex_permutations(20, 4, 1, generator=g)
    assert ((perms == 0) | (perms == 1)).all()  # one term: permutation matrices
    ds = random_doubly_stochastic(30, 6, generator=g, logit_scale=2.0)
    assert ds.shape == (30, 6, 6) and (ds > 0).all()
    assert max(e.max().item() for e in sinkhorn_error(ds)) <= 1e-13
    assert random_doubly_stochastic(2, 3, dtype=torch.float32).dtype == torch.float32


def test_is_doubly_stochastic_cases():
    tol = 1e-9
    ds = random_convex_permutations(1, 4, 5, generator=gen())[0]
    signed = torch.full((2, 2), 0.5, dtype=torch.float64) + torch.tensor([[0.7, -0.7], [-0.7, 0.7]])
    row_only = torch.softmax(torch.randn(4, 4, dtype=torch.float64), dim=-1)
    batch = torch.stack([ds, row_only, row_only.T, ds + 10 * tol * torch.eye(4, dtype=torch.float64)])
    assert is_doubly_stochastic(batch, tol).tolist() == [True, False, False, False]
    assert not is_doubly_stochastic(signed, tol)
    assert is_doubly_stochastic(ds + 0.1 * tol * torch.eye(4, dtype=torch.float64), tol)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 7), depth=st.integers(1, 6), seed=st.integers(0, 2**30))
def test_distance_from_uniform_is_sigma2_and_contracts(n, depth, seed):
    ms = random_doubly_stochastic(depth, n, generator=gen(seed))
    sigma2 = torch.linalg.svdvals(ms)[:, 1]
    torch.testing.assert_close(distance_from_uniform(ms), sigma2, rtol=1e-10, atol=1e-12)
    prod = torch.linalg.multi_dot(list(ms)) if depth > 1 else ms[0]
    assert distance_from_uniform(prod) <= torch.prod(sigma2) + 1e-12


def has_perfect_matching(support):
    n = support.shape[0]
    return any(all(support[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), density=st.floats(0.2, 0.9), seed=st.integers(0, 2**30))
def test_matching_agrees_with_brute_force(n, density, seed):
    support = torch.rand(n, n, generator=gen(seed)) < density
    perm = find_permutation_in_support(support)
    assert (perm is not None) == has_perfect_matching(support)
    if perm is not None:
        assert sorted(perm.tolist()) == list(range(n))
        assert support[torch.arange(n), perm].all()


def test_matching_rejects_bad_support():
    with pytest.raises(ValueError, match=r"support must be a bool tensor \(n, n\), got \(3, 4\)"):
        find_permutation_in_support(torch.ones(3, 4, dtype=torch.bool))


def assert_valid_decomposition(m, dec):
    n = m.shape[-1]
    assert (dec.weights > 0).all()
    assert abs(dec.weights.sum().item() - 1) < 1e-12
    assert (dec.reconstruct() - m).abs().max() < 1e-12
    assert is_doubly_stochastic(dec.matrices(), tol=0).all()
    assert len(dec) <= n * n - n + 1  # each step zeroes at least one entry, the last step n of them


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), scale=st.floats(0.1, 2.0), seed=st.integers(0, 2**30))
def test_bvn_on_fresh_full_support_matrices(n, scale, seed):
    m = random_doubly_stochastic(1, n, logit_scale=scale, generator=gen(seed))[0]
    assert_valid_decomposition(m, bvn_decomposition(m))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 7), terms=st.integers(1, 8), seed=st.integers(0, 2**30))
def test_bvn_on_fresh_sparse_matrices(n, terms, seed):
    m = random_convex_permutations(1, n, terms, generator=gen(seed))[0]
    dec = bvn_decomposition(m)
    assert_valid_decomposition(m, dec)
    assert len(dec) <= terms or len(dec) <= n * n - n + 1


def test_bvn_of_a_permutation_and_of_n1():
    perm = torch.tensor([3, 1, 0, 2])
    dec = bvn_decomposition(permutation_matrix(perm))
    assert len(dec) == 1 and torch.equal(dec.perms[0], perm) and dec.weights.item() == 1.0
    dec1 = bvn_decomposition(torch.ones(1, 1, dtype=torch.float64))
    assert len(dec1) == 1 and dec1.weights.item() == 1.0


def test_bvn_uniform_matrix_uses_n_terms():
    n = 5
    dec = bvn_decomposition(torch.full((n, n), 1 / n, dtype=torch.float64))
    assert len(dec) == n  # n disjoint permutations of weight 1/n cover J/n
    torch.testing.assert_close(dec.weights, torch.full((n,), 1 / n, dtype=torch.float64))


def test_bvn_rejects_bad_input():
    with pytest.raises(ValueError, match="must be doubly stochastic"):
        bvn_decomposition(torch.softmax(torch.randn(4, 4, dtype=torch.float64), dim=-1))
    with pytest.raises(ValueError, match=r"one \(n, n\) matrix, got shape \(2, 3, 3\)"):
        bvn_decomposition(torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ValueError, match=r"m must be \(\.\.\., n, n\), got shape \(3, 4\)"):
        bvn_decomposition(torch.ones(3, 4))


def test_bvn_tolerance_follows_the_input():
    """20 Sinkhorn iterations leave column errors far above the default tol; a looser tol decomposes them."""
    candidates = sinkhorn_knopp(1.2 * torch.randn(64, 4, 4, generator=gen(), dtype=torch.float64), 20)
    col = sinkhorn_error(candidates)[1]
    picked = ((col > 1e-11) & (col < 1e-8)).nonzero()
    assert len(picked), "no draw with a column error in (1e-11, 1e-8)"
    m = candidates[picked[0, 0]]
    with pytest.raises(ValueError, match="must be doubly stochastic"):
        bvn_decomposition(m)
    dec = bvn_decomposition(m, tol=1e-8)
    assert (dec.reconstruct() - m).abs().max() < 1e-7 and abs(dec.weights.sum().item() - 1) < 1e-7


def test_bvn_reconstruct_bad_shapes():
    with pytest.raises(ValueError, match=r"same k, got \(3,\) and \(2, 4\)"):
        bvn_reconstruct(torch.ones(3), random_permutations(2, 4))


def test_marcus_ree_bound():
    assert [marcus_ree_bound(n) for n in (1, 2, 3, 4)] == [1, 2, 5, 10]
