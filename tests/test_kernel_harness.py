"""The kernel harness: relative error, NaN poisoning, and comparisons that catch broken candidates."""

import math
from types import SimpleNamespace

import pytest
import torch

import mhc_course as ref
from mhc_course.kernel_harness import OPS, compare_op, harness_table, op_inputs, poisoned, relative_error, tolerance

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_relative_error():
    want = torch.randn(5, 7)
    assert relative_error(want.clone(), want) == 0.0
    assert math.isclose(relative_error(2 * want, want), 1.0, rel_tol=1e-12)
    bad = want.clone()
    bad[0, 0] = float("nan")
    assert relative_error(bad, want) == math.inf
    with pytest.raises(ValueError, match=r"one shape, got \(5, 6\) and \(5, 7\)"):
        relative_error(want[:, :6], want)


def test_poisoned_fills_nan_and_restores():
    empty = torch.empty
    with poisoned():
        assert torch.isnan(torch.empty(3, 4)).all() and torch.isnan(torch.empty_like(torch.ones(2))).all()
        assert torch.empty(3, dtype=torch.int64).dtype == torch.int64  # integers are left alone
    assert torch.empty is empty
    with pytest.raises(RuntimeError), poisoned():
        raise RuntimeError("inside")
    assert torch.empty is empty


def test_tolerance_and_inputs():
    assert tolerance(torch.float32) < tolerance(torch.bfloat16)
    with pytest.raises(ValueError, match="dtype must be one of"):
        tolerance(torch.int32)
    with pytest.raises(ValueError, match="op must be one of"):
        op_inputs("mhc_nothing", 2, 4, 8, torch.float32, "cpu", torch.Generator())
    x, f, h_post, h_res = op_inputs("mhc_post_res", 3, 4, 8, torch.float32, "cpu", torch.Generator().manual_seed(1))
    assert x.shape == (3, 4, 8) and f.shape == (3, 8) and h_post.shape == (3, 4) and h_res.shape == (3, 4, 4)
    assert not torch.allclose(h_res, h_res.mT)  # not symmetric: a transpose shows
    torch.testing.assert_close(h_res.sum(-1), torch.ones(3, 4))


@pytest.mark.parametrize("op", list(OPS))
def test_kernels_pass_in_the_interpreter(op):
    row = compare_op(op, 6, 4, 24, device=DEVICE)
    assert row.ok, harness_table([row])
    assert set(row.errors) == {"out", *(f"d{name}" for name in OPS[op])}


def _broken(**overrides):
    base = {name: getattr(ref, name) for name in ("mhc_pre", "mhc_post_res", "mhc_coefficients")}
    return SimpleNamespace(**{**base, **overrides})


def test_catches_a_missing_term_and_unwritten_elements():
    def no_post(x, f, h_post, h_res):
        return h_res @ x

    row = compare_op("mhc_post_res", 4, 4, 8, candidate=_broken(mhc_post_res=no_post))
    assert not row.ok and row.errors["out"] > 1e-2 and math.isinf(row.errors["df"])  # f got no gradient

    def unwritten_tail(x, f, h_post, h_res):
        out = torch.empty_like(x)
        out[..., :-1] = ref.mhc_post_res(x, f, h_post, h_res)[..., :-1]
        return out

    row = compare_op("mhc_post_res", 4, 4, 8, candidate=_broken(mhc_post_res=unwritten_tail))
    assert math.isinf(row.errors["out"]) and not row.ok
    assert "FAIL" in harness_table([row])


def test_reference_against_itself_is_exact_enough():
    row = compare_op("mhc_coefficients", 3, 2, 5, candidate=_broken())
    assert row.ok and row.worst < 1e-6
