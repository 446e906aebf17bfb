"""Loading the committed benchmark JSON: rows, lookups, metadata, and clear errors on bad files."""

import json

import pytest

from mhc_course.bench_results import DEFAULT_PATH, EAGER, OURS, RESIDUAL, load_bench

META = {"device": "GPU X", "date": "2026-01-02", "torch": "2.9", "triton": "3.5", "copy_bandwidth_gbs": 1000.0,
        "dtype": "bfloat16"}


def row(C, name, fwd, fb, pct=True):
    r = {"C": C, "T": 64, "n": 4, "row": name, "fwd_ms": fwd, "fwd_bwd_ms": fb}
    if pct:
        r.update(fwd_gbs=1.0, fwd_bwd_gbs=1.0, fwd_pct_copy=10.0 * fwd, fwd_bwd_pct_copy=10.0 * fb)
    return r


def write(tmp_path, meta=META, results=None):
    results = results if results is not None else [
        row(512, "residual add (x + f)", 0.1, 0.2), row(512, "eager reference", 3.0, 9.0),
        {"C": 512, "T": 64, "n": 4, "row": "Liger", "skipped": "not installed"},
        row(512, "ours (mhc_course.kernels)", 0.5, 1.5), row(512, "floor at copy bandwidth", 0.25, 0.5, pct=False),
        row(1024, "ours (mhc_course.kernels)", 0.9, 2.5),
    ]
    p = tmp_path / "bench.json"
    p.write_text(json.dumps({"meta": meta, "results": results}))
    return p


def test_committed_file_loads():
    bench = load_bench()
    assert bench.path == DEFAULT_PATH
    assert bench.widths() and all(isinstance(c, int) for c in bench.widths())
    for C in bench.widths():
        assert bench.find(C, OURS) is not None and bench.find(C, EAGER) is not None
        assert bench.floor(C) is not None and "fwd_pct_copy" not in bench.floor(C)
    assert bench.meta["device"] in bench.describe() and bench.meta["date"] in bench.describe()
    assert bench.bandwidth_gbs > 0


def test_lookups(tmp_path):
    bench = load_bench(write(tmp_path))
    assert bench.widths() == [512, 1024]
    assert [r["row"] for r in bench.measured(512)] == ["residual add (x + f)", "eager reference",
                                                       "ours (mhc_course.kernels)"]
    assert len(bench.measured()) == 4
    assert bench.find(512, RESIDUAL)["fwd_ms"] == 0.1
    assert bench.find(1024, OURS)["fwd_bwd_ms"] == 2.5
    assert bench.find(1024, EAGER) is None
    assert bench.floor(512)["fwd_ms"] == 0.25 and bench.floor(1024) is None
    assert bench.skipped()[0]["skipped"] == "not installed"
    text = bench.describe()
    assert "GPU X" in text and "2026-01-02" in text and "1000 GB/s" in text and "CUDA" not in text


def test_matmul_throughput_when_present(tmp_path):
    assert load_bench(write(tmp_path)).matmul_tflops() == {}
    meta = {**META, "matmul_tflops": {"bf16": 700.0, "tf32": 350.0}, "matmul_tflops_fp8": 1400}
    assert load_bench(write(tmp_path, meta)).matmul_tflops() == {"bf16": 700.0, "tf32": 350.0, "fp8": 1400.0}


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no benchmark results at"):
        load_bench(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"meta lacks \['copy_bandwidth_gbs'\]"):
        load_bench(write(tmp_path, {k: v for k, v in META.items() if k != "copy_bandwidth_gbs"}))
    with pytest.raises(ValueError, match=r"result 0 lacks \['row'\]"):
        load_bench(write(tmp_path, results=[{"C": 1, "T": 1, "n": 4, "fwd_ms": 1.0}]))
    with pytest.raises(ValueError, match="fwd_ms or skipped"):
        load_bench(write(tmp_path, results=[{"C": 1, "T": 1, "n": 4, "row": "x"}]))
    p = tmp_path / "list.json"
    p.write_text("[]")
    with pytest.raises(ValueError, match="must hold"):
        load_bench(p)
