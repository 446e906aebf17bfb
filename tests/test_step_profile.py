"""Reading a profiled model step: kernel groups, our kernels' bytes, the copy-bandwidth projection."""

import json
import random

import pytest

from mhc_course.io_model import kernel_pass_steps
from mhc_course.step_profile import (
    GROUPS,
    KERNEL_PASSES,
    at_copy_bandwidth,
    bandwidth_for,
    connection_bytes,
    group_of,
    group_times,
    load_step_profile,
)


def test_group_of_names_seen_in_h100_profiles():
    assert group_of("coefficients_bwd_channel_kernel") == "our connection kernels"
    assert group_of("post_res_fwd_kernel") == "our connection kernels"
    assert group_of("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NTT") == "matrix products"
    assert group_of("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7") == "attention"
    assert group_of("void at::native::GammaBetaBackwardCUDAKernelTemplate<c10::BFloat16, float>") == "norms"
    assert group_of("void at::native::vectorized_elementwise_kernel<8, at::native::GeluCUDAKernelImpl>") == "other"
    assert group_of("Memset (Device)") == "other"


def _kernels(connections: int, df_passes: int) -> dict[str, dict[str, float]]:
    rng = random.Random(connections * 7 + df_passes)
    calls = {name: connections for name in KERNEL_PASSES} | {"post_res_bwd_kernel": df_passes}
    return {name: {"ms": rng.uniform(0.5, 4.0), "calls": c} for name, c in calls.items() if c} | {
        "nvjet_gemm": {"ms": 20.0, "calls": 40}, "Memset (Device)": {"ms": 0.1, "calls": 100}}


def test_group_times_sum_every_kernel_once():
    kernels = _kernels(16, 1)
    groups = group_times(kernels)
    assert set(groups) == {g for g, _ in GROUPS}
    assert sum(groups.values()) == pytest.approx(sum(k["ms"] for k in kernels.values()))
    assert groups["matrix products"] == 20.0


@pytest.mark.parametrize("n, C, connections, df_passes", [(4, 2048, 16, 1), (2, 512, 6, 2), (1, 64, 3, 3)])
def test_connection_bytes_by_hand(n, C, connections, df_passes):
    tokens = 8192
    got = connection_bytes(_kernels(connections, df_passes), n, C, tokens)
    unit = tokens * C * 2  # one C-wide bf16 tensor over every token
    assert got["coefficients_fwd_kernel"] == connections * (2 * n + 1) * unit
    assert got["post_res_fwd_kernel"] == connections * (2 * n + 1) * unit
    assert got["coefficients_bwd_token_kernel"] == connections * (2 * n + 2) * unit
    assert got["post_res_bwd_kernel"] == df_passes * (n + 1) * unit
    # a channel pass reads g, x, dh and writes dx, plus the previous dF where it was handed over
    assert got["coefficients_bwd_channel_kernel"] == (connections * (3 * n + 1) + connections - df_passes) * unit
    # the whole step: every connection's passes, chained where the dF pass is gone
    per = {chained: sum(s.act_read + s.act_write for s in kernel_pass_steps(n, C, chained)) // C
           for chained in (False, True)}
    assert sum(got.values()) == (df_passes * per[False] + (connections - df_passes) * per[True]) * unit


def test_connection_bytes_rejects_what_it_cannot_count():
    kernels = _kernels(4, 1)
    with pytest.raises(ValueError, match="pre_fwd_kernel"):
        connection_bytes(kernels | {"pre_fwd_kernel": {"ms": 1.0, "calls": 4}}, 4, 64, 32)
    with pytest.raises(ValueError, match="tokens must be an int"):
        connection_bytes(kernels, 4, 64, 0)
    with pytest.raises(ValueError, match="C must be an int"):
        connection_bytes(kernels, 4, 0, 32)
    kernels["post_res_bwd_kernel"]["calls"] = 5
    with pytest.raises(ValueError, match="more dF passes"):
        connection_bytes(kernels, 4, 64, 32)


def test_at_copy_bandwidth_by_hand():
    n, C, tokens, copy = 4, 2048, 8192, 3000.0
    kernels = _kernels(16, 1)
    moved = connection_bytes(kernels, n, C, tokens)
    share = dict(zip(moved, (0.5, 0.7, 0.9, 1.25, 0.6), strict=True))  # of copy bandwidth; one kernel beats it
    for name, nbytes in moved.items():
        kernels[name]["ms"] = nbytes / (share[name] * copy * 1e9) * 1e3
    ours = sum(kernels[name]["ms"] for name in moved)
    residual, mhc = 40.0, 40.0 + ours + 0.5
    s = at_copy_bandwidth(residual, mhc, kernels, copy, n, C, tokens)
    assert s["overhead"] == pytest.approx(mhc / residual - 1)
    assert s["tbps_all"] == pytest.approx(sum(moved.values()) / (ours * 1e-3) / 1e12)
    for k in s["connection_kernels"]:
        assert k["tbps"] == pytest.approx(share[k["kernel"]] * copy / 1e3)
        assert k["ms_at_copy"] == pytest.approx(moved[k["kernel"]] / (copy * 1e9) * 1e3)
    saved = sum(kernels[name]["ms"] * (1 - share[name]) for name in moved if share[name] < 1)
    assert s["mhc_step_ms_if_at_copy"] == pytest.approx(mhc - saved)  # the faster kernel is not made slower
    assert s["overhead_if_at_copy"] == pytest.approx((mhc - saved) / residual - 1)
    with pytest.raises(ValueError, match="copy_gbs"):
        at_copy_bandwidth(residual, mhc, kernels, 0.0, n, C, tokens)


def test_bandwidth_for_inverts_the_step():
    n, C, tokens = 4, 512, 4096
    kernels = _kernels(8, 2)
    moved = sum(connection_bytes(kernels, n, C, tokens).values())
    ours = sum(kernels[name]["ms"] for name in KERNEL_PASSES if name in kernels)
    residual, mhc = 30.0, 30.0 + ours + 2.0  # the rest of mHC's step costs 2 ms over residual's
    assert bandwidth_for(mhc / residual - 1, residual, mhc, kernels, n, C, tokens) == pytest.approx(
        moved / (ours * 1e-3) / 1e9)  # the overhead measured needs the bandwidth reached
    half = bandwidth_for((2.0 + ours / 2) / residual, residual, mhc, kernels, n, C, tokens)
    assert half == pytest.approx(2 * moved / (ours * 1e-3) / 1e9)
    assert bandwidth_for(1.0 / residual, residual, mhc, kernels, n, C, tokens) == float("inf")


def test_load_step_profile_errors(tmp_path):
    with pytest.raises(ValueError, match="no profile_step result"):
        load_step_profile(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"device": "x", "config": "y", "sizes": {}, "copy_gbs": 1.0, "runs": [{"rows": {}}]}))
    with pytest.raises(ValueError, match="lacks the row 'residual'"):
        load_step_profile(bad)


def test_committed_profile_recomputes():
    data = load_step_profile()
    sizes = data["sizes"]
    for run in data["runs"]:
        rows = run["rows"]
        for r in rows.values():
            assert r["groups"] == pytest.approx(group_times(r["kernels"]))
        res, mhc = rows["residual"], rows["mhc-triton"]
        again = at_copy_bandwidth(res["step_ms"], mhc["step_ms"], mhc["kernels"], data["copy_gbs"], sizes["n"],
                                  sizes["C"], sizes["tokens"])
        for key in ("overhead", "overhead_if_at_copy", "tbps_all"):
            assert again[key] == pytest.approx(run["summary"][key])
        assert run["summary"]["overhead_if_at_copy"] < run["summary"]["overhead"]
