"""The committed GPU benchmark of one mHC connection (benchmarks/bench_connection.py's JSON), as rows.

The file holds ``{"meta": {device, torch, triton, cuda, date, copy_bandwidth_gbs, ...},
"results": [...]}``; each result row has ``C``, ``T``, ``n``, ``row`` (the implementation) and
either the timings (``fwd_ms``, ``fwd_bwd_ms``, and for measured rows ``fwd_gbs``,
``fwd_bwd_gbs``, ``fwd_pct_copy``, ``fwd_bwd_pct_copy``) or ``skipped`` (why the row is absent).
The row without a bandwidth share is the floor: the minimal bytes at the measured copy bandwidth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "bench_connection_h100.json"
META_KEYS = ("device", "date", "torch", "triton", "copy_bandwidth_gbs")
ROW_KEYS = ("C", "T", "n", "row")
OURS, EAGER, RESIDUAL = "ours", "eager reference", "residual add"  # name prefixes of the rows used by lessons


@dataclass(frozen=True)
class BenchResults:
    """Benchmark metadata and result rows (dicts, as in the file)."""

    meta: dict
    rows: list[dict]
    path: Path

    def widths(self) -> list[int]:
        """The widths C that were benchmarked, ascending."""
        return sorted({r["C"] for r in self.rows})

    def measured(self, C: int | None = None) -> list[dict]:
        """Rows that ran (not skipped, not the floor), optionally at one width, in file order."""
        return [r for r in self.rows if "fwd_pct_copy" in r and (C is None or r["C"] == C)]

    def skipped(self) -> list[dict]:
        return [r for r in self.rows if "skipped" in r]

    def floor(self, C: int) -> dict | None:
        """The floor row at width C: timed but without a bandwidth share."""
        return next((r for r in self.rows if r["C"] == C and "fwd_ms" in r and "fwd_pct_copy" not in r), None)

    def find(self, C: int, prefix: str) -> dict | None:
        """The measured row at width C whose name starts with ``prefix`` (e.g. ``OURS``)."""
        return next((r for r in self.measured(C) if r["row"].startswith(prefix)), None)

    @property
    def bandwidth_gbs(self) -> float:
        """Copy bandwidth (read + write) measured in the benchmark's run."""
        return float(self.meta["copy_bandwidth_gbs"])

    def matmul_tflops(self) -> dict[str, float]:
        """Matrix throughput measured in the run, if the meta holds any: keys ``matmul_tflops*``
        (a number, or a dict by dtype) → ``{label: TFLOP/s}``; empty when none was measured."""
        out: dict[str, float] = {}
        for key, value in self.meta.items():
            if not key.startswith("matmul_tflops"):
                continue
            label = key.removeprefix("matmul_tflops").strip("_")
            items = value.items() if isinstance(value, dict) else [(label, value)]
            out.update({(label or "matmul"): float(v) for label, v in items})
        return out

    def describe(self) -> str:
        """One line: device, versions, date, copy bandwidth, dtype."""
        m = self.meta
        parts = [m["device"], f"torch {m['torch']}", f"Triton {m['triton']}"]
        if m.get("cuda"):
            parts.append(f"CUDA {m['cuda']}")
        parts += [f"run on {m['date']}", f"copy bandwidth {self.bandwidth_gbs:.0f} GB/s (measured in the same run)"]
        if m.get("dtype"):
            parts.append(f"activations in {m['dtype']}")
        return "; ".join(parts)


def load_bench(path: str | Path | None = None) -> BenchResults:
    """Read and check a benchmark JSON (default: the committed H100 file)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise ValueError(f"no benchmark results at {path}: run benchmarks/bench_connection.py on a GPU")
    data = json.loads(path.read_text())
    if not (isinstance(data, dict) and isinstance(data.get("meta"), dict) and isinstance(data.get("results"), list)):
        raise ValueError(f"{path} must hold {{'meta': {{...}}, 'results': [...]}}")
    missing = [k for k in META_KEYS if k not in data["meta"]]
    if missing:
        raise ValueError(f"{path}: meta lacks {missing} (has {sorted(data['meta'])})")
    for i, row in enumerate(data["results"]):
        lacking = [k for k in ROW_KEYS if k not in row]
        if lacking or not ("skipped" in row or "fwd_ms" in row):
            raise ValueError(f"{path}: result {i} lacks {lacking or ['fwd_ms or skipped']} (has {sorted(row)})")
    return BenchResults(data["meta"], data["results"], path)
