"""Memory instruments (saved bytes, peak live bytes, timing) and the memory model they are checked against."""

import math

import pytest
import torch

from mhc_course.memory import (
    PeakLiveBytes,
    SavedTensors,
    StackRun,
    fastest_seconds,
    make_stack,
    measure_stack,
    mlp_sublayer,
    run_stack,
    sublayer_saved_elements,
    sweep_group_sizes,
    torch_threads,
)
from mhc_course.memory_model import (
    continuous_optimum,
    group_sizes,
    paper_elements,
    recompute_peak_elements,
    reference_coefficient_elements,
    saved_elements,
)

SMALL = {"depth": 5, "n": 4, "C": 8, "hidden": 16, "tokens": 6}


def test_saved_tensors_counts_each_storage_once_and_skips_excluded():
    x = torch.randn(10, 7, requires_grad=True)
    w = torch.randn(7, 3, requires_grad=True)
    with SavedTensors(exclude=[w]) as saved:
        a = x.sin()  # saves x
        b = x[:5].cos()  # saves a view of x: same storage
        y = (a @ w).exp()  # saves a (10×7) and w (excluded); exp saves its output (10×3)
    assert saved.count == 3
    assert saved.nbytes == (70 + 70 + 30) * 4
    del a, b, y
    assert saved.nbytes == 70 * 4  # the graph is gone; x itself is still alive


def test_saved_tensors_counts_nothing_without_grad():
    x = torch.randn(4, 5, requires_grad=True)
    with SavedTensors() as saved, torch.no_grad():
        x.exp()
    assert saved.nbytes == 0
    with SavedTensors() as saved:
        y = torch.nn.functional.gelu(x.double())
    assert saved.nbytes == 20 * 8
    del y


def test_peak_live_bytes_follows_allocations_and_frees():
    base = torch.randn(1000)
    with PeakLiveBytes() as tracker:
        a = torch.empty(2000)  # 8000 bytes
        view = base[:10]  # a view of a storage from before: not counted
        base.mul_(2)  # in place: not counted
        b = a + 1  # 8000 more: peak 16000
        del a
        c = torch.empty(1000)  # 4000: live 12000
        assert tracker.live == 12000
    assert tracker.peak == 16000
    del b
    assert tracker.live == 4000
    del c, view


def test_peak_live_bytes_sees_the_backward_pass():
    x = torch.randn(256, 64, requires_grad=True)
    with PeakLiveBytes() as tracker:
        y = torch.tanh(x @ x.T)  # (256, 256) kept for tanh's backward
        y.sum().backward()
    assert tracker.peak >= 2 * 256 * 256 * 4  # the output and its gradient coexist in the backward


@pytest.mark.parametrize("policy,n,group", [("residual", 1, None), ("stored", 4, None), ("stored", 2, None),
                                            ("recompute", 4, 1), ("recompute", 4, 2), ("recompute", 3, 5)])
def test_saved_bytes_match_the_model_exactly(policy, n, group):
    sizes = {**SMALL, "n": n}
    run = StackRun.build(policy, group_size=group, **sizes)
    sub = sublayer_saved_elements(mlp_sublayer(SMALL["C"], SMALL["hidden"]), SMALL["C"])
    want = saved_elements(policy, depth=SMALL["depth"], n=n, C=SMALL["C"], sublayer=sub, group_size=group)
    assert run.saved_bytes() == want * SMALL["tokens"] * 4


def test_reference_coefficient_count_for_other_iteration_counts():
    """The Sinkhorn part of the model scales with t_max as stated: (2t+3)n² + (2t+5)n + 2."""
    n, C, tokens = 3, 5, 4
    for iters in (1, 7):
        conns, layers = make_stack("stored", depth=1, n=n, C=C, hidden=8)
        conns[0].iters = iters
        x = torch.randn(tokens, n, C, requires_grad=True)
        params = [*conns[0].parameters(), *layers[0].parameters()]
        with SavedTensors(exclude=params) as saved:
            y = run_stack("stored", conns, layers, x)
        sub = sublayer_saved_elements(layers[0], C)
        assert saved.nbytes == tokens * 4 * (2 * n * C + C + sub + reference_coefficient_elements(n, iters))
        del y
    assert reference_coefficient_elements(4, 20) == 43 * 16 + 45 * 4 + 2


def test_measured_peak_is_the_model_plus_a_constant():
    """Over L_r, measured peak − modelled peak is the same: the model gets every L_r-dependent term."""
    sizes = {"depth": 7, "n": 4, "C": 16, "hidden": 32, "tokens": 3}  # few tokens: parameter-sized buffers show
    sub = sublayer_saved_elements(mlp_sublayer(16, 32), 16)
    gaps = []
    for g in range(1, 8):
        row = measure_stack(StackRun.build("recompute", group_size=g, **sizes))
        model = recompute_peak_elements(depth=7, n=4, C=16, sublayer=sub, group_size=g) * 3 * 4
        gaps.append(row["peak_bytes"] - model)
        assert row["peak_bytes"] > row["saved_bytes"]
    assert max(gaps) == min(gaps) and gaps[0] > 0, gaps


def test_measure_stack_without_peak_and_rows():
    row = measure_stack(StackRun.build("recompute", group_size=2, **SMALL), peak=False)
    assert math.isnan(row["peak_bytes"]) and math.isnan(row["cuda_peak_bytes"])
    assert row["policy"] == "recompute" and row["group_size"] == 2 and row["tokens"] == 6 and row["element_size"] == 4


def test_sweep_rows_and_predictions():
    sweep = sweep_group_sizes(group_sizes=[1, 5], repeats=1, **SMALL)
    policies = [(r["policy"], r["group_size"]) for r in sweep["rows"]]
    assert policies == [("residual", None), ("stored", None), ("recompute", 1), ("recompute", 5)]
    for row in sweep["rows"]:
        assert row["saved_bytes"] == row["predicted_saved_bytes"], row
        assert row["seconds"] > 0 and row["peak_bytes"] > 0
    assert sweep["device"].startswith("CPU") and sweep["sublayer"] == sublayer_saved_elements(mlp_sublayer(8, 16), 8)
    kept = {r["group_size"]: r["saved_bytes"] for r in sweep["rows"] if r["policy"] == "recompute"}
    assert kept[1] - kept[5] == 4 * 4 * 8 * 6 * 4  # four fewer group inputs x_l0 of n·C, 6 tokens, fp32


def test_make_stack_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, _ = make_stack("stored", depth=2, n=4, C=8, hidden=8, seed=3)
    b, _ = make_stack("stored", depth=2, n=4, C=8, hidden=8, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(a[1].phi, b[1].phi, rtol=0, atol=0)
    with pytest.raises(ValueError, match="residual policy has n = 1"):
        make_stack("residual", depth=2, n=4, C=8, hidden=8)
    with pytest.raises(ValueError, match="policy must be one of"):
        make_stack("checkpoint", depth=2, n=4, C=8, hidden=8)
    with pytest.raises(ValueError, match="policy must be one of"):
        run_stack("checkpoint", a, [], torch.randn(2, 4, 8))


def test_fastest_seconds_and_threads():
    calls = []
    times = fastest_seconds([lambda: calls.append("a"), lambda: calls.append("b")], repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and len(times) == 2 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        fastest_seconds([lambda: None], repeats=0)
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        with torch_threads(0):
            pass


def test_model_values_and_validation():
    assert group_sizes(7, 3) == [3, 3, 1] and group_sizes(6, 3) == [3, 3]
    assert saved_elements("recompute", depth=12, n=4, C=10, sublayer=3, group_size=5) == 3 * 40 + 12 * 13
    assert saved_elements("residual", depth=3, n=1, C=10, sublayer=7) == 21
    assert paper_elements(depth=12, n=4, C=10, group_size=3) == 4 * 40 + 6 * 10 * 3
    assert continuous_optimum(4, 30, 6) == pytest.approx(math.sqrt(20))
    assert continuous_optimum(4, 30, 4) == pytest.approx(math.sqrt(30))
    # the paper's count is smallest next to its own optimum
    best = min(range(1, 31), key=lambda g: paper_elements(depth=30, n=4, C=1, group_size=g))
    assert abs(best - math.sqrt(20)) < 1
    # with one group the peak is everything kept plus the L − 1 recomputed streams
    assert recompute_peak_elements(depth=4, n=2, C=3, sublayer=5, group_size=4) == 6 + 4 * 8 + 3 * 6
    with pytest.raises(ValueError, match="group_size is required"):
        saved_elements("recompute", depth=3, n=4, C=2, sublayer=0)
    with pytest.raises(ValueError, match="residual policy has n = 1"):
        saved_elements("residual", depth=3, n=4, C=2, sublayer=0)
    with pytest.raises(ValueError, match="policy must be one of"):
        saved_elements("offload", depth=3, n=4, C=2, sublayer=0)
    with pytest.raises(ValueError, match="sublayer must be an int >= 0"):
        saved_elements("stored", depth=3, n=4, C=2, sublayer=-1)
    with pytest.raises(ValueError, match="group_size must be <= depth"):
        group_sizes(3, 4)
    with pytest.raises(ValueError, match="recomputed_per_layer must be > 0"):
        continuous_optimum(4, 8, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_agrees_with_the_dispatch_tracker():
    row = measure_stack(StackRun.build("recompute", group_size=2, device="cuda", depth=6, n=4, C=256, hidden=512,
                                       tokens=512))
    assert row["cuda_peak_bytes"] == pytest.approx(row["peak_bytes"], rel=0.05)
