"""Run folders on disk: loading, series, summaries, log comparison, the committed GPU step times."""

import json
import math

import numpy as np
import pytest
import torch

from mhc_course.train import profile_config, train
from mhc_course.training_logs import (
    ABLATION_N,
    COMPARISON,
    GPU_RUNS_DIR,
    ablation_folder,
    compare_records,
    describe,
    first_step_below,
    layer_values,
    load_ablation,
    load_bench_model,
    load_run,
    load_runs,
    load_step_times,
    overhead,
    parse_wall_seconds,
    record_at,
    rerun_prefix,
    run_config,
    series,
    step_time_runs,
    summary,
)


def fake_run(path, records, connection="mhc", n=4, depth=2, steps=100, stdout=None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {"train": {"steps": steps}, "model": {"connection": connection, "n": n, "depth": depth},
              "parameters": 123, "torch": "x", "device": "cpu"}
    (path / "config.json").write_text(json.dumps(config))
    if stdout is not None:
        (path / "stdout.txt").write_text(stdout)
    return path


def fake_records(steps, layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in steps:
        own = (1 + torch.rand(layers, generator=g, dtype=torch.float64)).tolist()
        comp = np.cumprod(own).tolist()
        out.append({"step": s, "lr": 1e-3, "loss": float(3 + torch.rand((), generator=g)),
                    "val_loss": float(3 + torch.rand((), generator=g)), "grad_norm": float(torch.rand((), generator=g)),
                    "amax_fwd": comp[-1], "amax_bwd": comp[-1] * 1.1, "layer_amax_fwd": own, "layer_amax_bwd": own,
                    "composite_amax_fwd": comp, "composite_amax_bwd": [c * 1.1 for c in comp],
                    "tokens_per_s": float(torch.rand((), generator=g)), "peak_mem_mb": 1.0, "peak_mem_kind": "rss",
                    "elapsed_s": float(s)})
    return out


def test_parse_wall_seconds():
    assert parse_wall_seconds("done\nrc=0 wall_ms=334667\n") == pytest.approx(334.667)
    assert parse_wall_seconds("wall_s=12.5") == pytest.approx(12.5)
    assert parse_wall_seconds("no timing here") is None


def test_committed_comparison_runs_load():
    runs, missing = load_runs(COMPARISON)
    assert missing == [] and list(runs) == list(COMPARISON)
    for name, run in runs.items():
        assert run.connection == name and run.n == (1 if name == "residual" else 4)
        assert run.wall_s is not None and run.wall_s > 0
        steps, loss = series(run, "loss")
        assert np.all(np.diff(steps) > 0) and steps[-1] == run.steps and np.isfinite(loss).all()
        assert layer_values(run, "composite_amax_fwd").shape == (2 * run.config["model"]["depth"],)
        assert describe(run).startswith(run.label) and f"in {run.wall_s:.0f} s" in describe(run)


def test_hc_gain_grew_and_mhc_stayed_bounded():
    runs, _ = load_runs(("hc", "mhc"))
    assert summary(runs["hc"])["peak_amax_fwd"] > 100
    assert summary(runs["mhc"])["peak_amax_fwd"] == pytest.approx(1, abs=1e-5)


def test_series_layer_values_and_record_at(tmp_path):
    recs = fake_records([10, 20, 30], layers=4, seed=1)
    run = load_run(fake_run(tmp_path / "r", recs, depth=2, stdout="rc=0 wall_ms=2500"), "r")
    assert run.wall_s == pytest.approx(2.5) and run.logged_steps() == [10, 20, 30]
    steps, vals = series(run, "grad_norm")
    np.testing.assert_array_equal(steps, [10, 20, 30])
    np.testing.assert_allclose(vals, [r["grad_norm"] for r in recs])
    np.testing.assert_allclose(layer_values(run, "layer_amax_bwd", 20), recs[1]["layer_amax_bwd"])
    np.testing.assert_allclose(layer_values(run, "composite_amax_fwd"), recs[-1]["composite_amax_fwd"])
    vals_by_step = dict(zip([10, 20, 30], [r["loss"] for r in recs], strict=True))
    threshold = sorted(vals_by_step.values())[1] + 1e-9  # the two lowest losses lie below it
    assert first_step_below(run, "loss", threshold) == min(s for s, v in vals_by_step.items() if v < threshold)
    assert first_step_below(run, "loss", 0.0) is None
    with pytest.raises(ValueError, match="no record at step 25"):
        record_at(run, 25)
    with pytest.raises(ValueError, match="field must be one of"):
        series(run, "layer_amax_fwd")
    with pytest.raises(ValueError, match="field must be one of"):
        layer_values(run, "loss")


def test_summary_peaks_and_divergence(tmp_path):
    recs = fake_records([5, 10, 15], layers=6, seed=2)
    recs[1]["composite_amax_fwd"][2] = 1e6  # a peak inside the depth, not at the end
    run = load_run(fake_run(tmp_path / "a", recs))
    s = summary(run)
    assert s["peak_amax_fwd"] == 1e6 and s["final_val_loss"] == recs[-1]["val_loss"]
    assert s["best_val_loss"] == min(r["val_loss"] for r in recs) and s["diverged"] is False and s["wall_s"] is None
    recs[-1]["loss"] = float("nan")
    assert summary(load_run(fake_run(tmp_path / "b", recs)))["diverged"] is True


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no training log"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text("")
    with pytest.raises(ValueError, match="no records"):
        load_run(tmp_path / "empty")
    (tmp_path / "noconf").mkdir()
    (tmp_path / "noconf" / "log.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    with pytest.raises(ValueError, match="config.json"):
        load_run(tmp_path / "noconf")


def test_load_ablation_reports_missing(tmp_path):
    fake_run(tmp_path / "mhc", fake_records([1], 4))
    fake_run(tmp_path / "mhc-n2", fake_records([1], 4), n=2)
    runs, missing = load_ablation(root=tmp_path)
    assert sorted(runs) == [2, 4] and missing == [n for n in ABLATION_N if n not in (2, 4)]
    assert ablation_folder(4) == "mhc" and ablation_folder(8) == "mhc-n8"
    with pytest.raises(ValueError, match="n must be"):
        ablation_folder(0)


def test_compare_records():
    recs = fake_records([5, 10], layers=3, seed=3)
    same = json.loads(json.dumps(recs))
    for r in same:
        r["tokens_per_s"] *= 2  # timing fields are not compared
    out = compare_records(recs, same[:1])
    assert out["identical"] and out["max_abs_diff"] == 0 and out["steps"] == [5]
    moved = json.loads(json.dumps(recs))
    moved[1]["layer_amax_fwd"][1] += 1e-3
    out = compare_records(recs, moved)
    assert not out["identical"] and out["max_abs_diff"] == pytest.approx(1e-3)
    assert out["worst_field"] == "layer_amax_fwd"
    with pytest.raises(ValueError, match="no step 7"):
        compare_records(recs, [{**recs[0], "step": 7}])
    with pytest.raises(ValueError, match="no records"):
        compare_records(recs, [])


def test_rerun_prefix_reproduces_a_run(tmp_path, one_thread):
    cfg = profile_config("ci", connection="mhc", steps=10, log_every=5)
    train(cfg, tmp_path / "full", progress=False)
    run = load_run(tmp_path / "full")
    assert run_config(run).steps == 10 and run_config(run, stop_at=5).stop_at == 5
    out = rerun_prefix(run, 5, tmp_path / "again")
    assert out["identical"] and out["steps"] == [5] and out["seconds"] > 0
    with pytest.raises(ValueError, match="logged step"):
        rerun_prefix(run, 3, tmp_path / "other")


def test_committed_gpu_runs():
    """The H100 runs at the gpu profile: all six present, at the profile's sizes, with bf16 streams."""
    runs, missing = load_runs(COMPARISON, GPU_RUNS_DIR)
    ablation, missing_n = load_ablation(root=GPU_RUNS_DIR)
    assert not missing and not missing_n
    gpu = profile_config("gpu")
    for run in [*runs.values(), *ablation.values()]:
        assert run.config["model"]["depth"] == gpu.depth and run.config["model"]["stream_dtype"] == "bfloat16"
        assert run.records[-1]["step"] == gpu.steps and "H100" in run.config["device_name"]
    assert summary(runs["hc"])["peak_amax_fwd"] > 100 > summary(runs["mhc"])["peak_amax_bwd"]


def test_committed_step_times_and_bench_model():
    times = load_step_times()
    assert set(times) == {"residual", "hc", "mhc (triton)"}
    assert all(row["s_per_step"] > 0 for row in times.values())
    assert overhead(times["mhc (triton)"]["s_per_step"], times["residual"]["s_per_step"]) > 0
    bm = load_bench_model()
    assert "residual" in bm["rows"] and "mhc-triton" in bm["rows"] and bm["config"]["n"] == 4


def test_step_time_runs(tmp_path):
    f = tmp_path / "t.jsonl"
    rows = [("residual", {}, 1.0), ("mhc", {"backend": "triton"}, 2.0), ("mhc", {"backend": "triton", "n": 8}, 9.0),
            ("residual", {}, 1.5), ("hc", {}, 3.0)]
    f.write_text("".join(json.dumps({"conn": c, "over": o, "s_per_step": t}) + "\n" for c, o, t in rows))
    assert step_time_runs([f]) == [{"residual": 1.0, "mhc (triton)": 2.0}, {"residual": 1.5, "hc": 3.0}]
    f.write_text(json.dumps({"conn": "hc", "s_per_step": 1.0}) + "\n")
    with pytest.raises(ValueError, match="residual row"):
        step_time_runs([f])
    committed = step_time_runs()
    assert len(committed) == 6 and all({"residual", "mhc (triton)"} <= set(run) for run in committed)


def test_step_time_file_errors(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text(json.dumps({"conn": "residual"}) + "\n")
    with pytest.raises(ValueError, match="s_per_step"):
        load_step_times(bad)
    with pytest.raises(ValueError, match="no step-time file"):
        load_step_times(tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match="no bench_model"):
        load_bench_model(tmp_path / "none.json")


def test_overhead():
    t0 = float(torch.rand(()) + 0.1)
    assert overhead(1.067 * t0, t0) == pytest.approx(0.067)
    assert overhead(t0, t0) == 0 and math.isclose(overhead(0.5 * t0, t0), -0.5)
    with pytest.raises(ValueError, match="baseline_s"):
        overhead(1.0, 0.0)

