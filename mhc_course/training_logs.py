"""Training runs on disk: load a run folder, take series of its log, summarise it, compare two logs.

A run folder is what ``mhc_course.train`` writes (``log.jsonl`` and ``config.json``), plus, for
the committed runs under ``benchmarks/results/training/``, ``stdout.txt``: the command's last
output line and ``rc=… wall_ms=…`` (or ``wall_s=…``), its wall time. The log's fields are
described in ``mhc_course.train``; scalar fields (``loss``, ``val_loss``, ``grad_norm``,
``amax_fwd``, …) give series over steps, list fields (``layer_amax_fwd``,
``composite_amax_fwd``, …) give one value per connection (layer) at each logged step.

The committed H100 measurements are read here too: the trainer's seconds per step at the gpu
profile (``training/gpu_step_times_h100.jsonl``) and ``benchmarks/bench_model.py``'s run at the
issue's configuration (``benchmarks/results/bench_model_h100.json``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .train import CONFIG_NAME, TrainConfig, deterministic_fields, read_log, train

RESULTS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "training"
CPU_RUNS_DIR = RESULTS_DIR / "cpu"
GPU_RUNS_DIR = RESULTS_DIR / "gpu"
STEP_TIMES_PATH = RESULTS_DIR / "gpu_step_times_h100.jsonl"
STEP_TIMES_EARLIER_PATH = RESULTS_DIR / "gpu_step_times_h100_earlier.jsonl"  # the same script's earlier runs
BENCH_MODEL_PATH = RESULTS_DIR.parent / "bench_model_h100.json"
COMPARISON = ("residual", "hc", "mhc")  # the three committed runs of each profile (n = 4 for hc and mhc)
ABLATION_N = (1, 2, 4, 8)  # mHC over n; n = 4 is the "mhc" folder
SCALAR_FIELDS = ("lr", "loss", "val_loss", "grad_norm", "amax_fwd", "amax_bwd", "tokens_per_s", "elapsed_s")
LAYER_FIELDS = ("layer_amax_fwd", "layer_amax_bwd", "composite_amax_fwd", "composite_amax_bwd")
STDOUT_NAME = "stdout.txt"
_WALL = re.compile(r"wall_(ms|s)=([0-9.]+)")


@dataclass(frozen=True)
class TrainingRun:
    """One run: its name, folder, ``config.json`` (a dict), log records and wall time (s, or None)."""

    name: str
    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    wall_s: float | None

    @property
    def connection(self) -> str:
        return self.config["model"]["connection"]

    @property
    def n(self) -> int:
        return int(self.config["model"]["n"])

    @property
    def steps(self) -> int:
        """Steps the run was configured for (its last record may come earlier if it stopped)."""
        return int(self.config["train"]["steps"])

    @property
    def label(self) -> str:
        return "residual" if self.connection == "residual" else f"{self.connection} n={self.n}"

    def logged_steps(self) -> list[int]:
        return [int(r["step"]) for r in self.records]


def parse_wall_seconds(text: str) -> float | None:
    """The wall time in seconds from a ``stdout.txt`` (``wall_ms=…`` or ``wall_s=…``), or None."""
    found = _WALL.findall(text)
    if not found:
        return None
    unit, value = found[-1]
    return float(value) / (1000 if unit == "ms" else 1)


def load_run(path: str | Path, name: str | None = None) -> TrainingRun:
    """Read a run folder: ``log.jsonl`` (via ``train.read_log``), ``config.json``, and ``stdout.txt`` if present.

    Raises ValueError when the folder has no log or config, or an empty log.
    """
    path = Path(path)
    records = read_log(path)
    if not records:
        raise ValueError(f"the training log in {str(path)!r} holds no records")
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(f"no {CONFIG_NAME} in {str(path)!r}")
    config = json.loads(config_path.read_text())
    stdout = path / STDOUT_NAME
    wall = parse_wall_seconds(stdout.read_text()) if stdout.is_file() else None
    return TrainingRun(name or path.name, path, config, records, wall)


def ablation_folder(n: int) -> str:
    """The committed folder name of the mHC run with n streams (n = 4 is the comparison's "mhc")."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return "mhc" if n == 4 else f"mhc-n{n}"


def load_runs(names: Iterable[str], root: str | Path = CPU_RUNS_DIR) -> tuple[dict[str, TrainingRun], list[str]]:
    """Load ``root/name`` for each name; returns (the runs found, the names whose folder is missing or unreadable)."""
    runs, missing = {}, []
    for name in names:
        try:
            runs[name] = load_run(Path(root) / name, name)
        except ValueError:
            missing.append(name)
    return runs, missing


def load_ablation(ns: Sequence[int] = ABLATION_N, root: str | Path = CPU_RUNS_DIR
                  ) -> tuple[dict[int, TrainingRun], list[int]]:
    """The mHC runs over n: ({n: run} for those present, [n whose run is missing])."""
    found, missing = load_runs([ablation_folder(n) for n in ns], root)
    runs = {n: found[ablation_folder(n)] for n in ns if ablation_folder(n) in found}
    return runs, [n for n in ns if n not in runs]


def _check_field(run: TrainingRun, field: str, kinds: Sequence[str]) -> None:
    if field not in kinds:
        raise ValueError(f"field must be one of {tuple(kinds)}, got {field!r}")
    if field not in run.records[0]:
        raise ValueError(f"run {run.name!r} has no field {field!r} in its log")


def series(run: TrainingRun, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps (R,), values (R,)) of a scalar log field over the run's R records (float64)."""
    _check_field(run, field, SCALAR_FIELDS)
    steps = np.array([r["step"] for r in run.records], dtype=np.int64)
    return steps, np.array([float(r[field]) for r in run.records], dtype=np.float64)


def first_step_below(run: TrainingRun, field: str, threshold: float) -> int | None:
    """The first logged step at which a scalar field is below ``threshold`` (None if it never is)."""
    steps, values = series(run, field)
    below = steps[values < threshold]
    return int(below[0]) if below.size else None


def record_at(run: TrainingRun, step: int) -> dict[str, Any]:
    """The record logged at ``step`` (ValueError naming the logged steps if there is none)."""
    for r in run.records:
        if r["step"] == step:
            return r
    raise ValueError(f"run {run.name!r} has no record at step {step}; logged steps: {run.logged_steps()}")


def layer_values(run: TrainingRun, field: str, step: int | None = None) -> np.ndarray:
    """A per-connection log field at ``step`` (default: the last record): shape (2·depth,), layer order."""
    _check_field(run, field, LAYER_FIELDS)
    rec = run.records[-1] if step is None else record_at(run, step)
    return np.array(rec[field], dtype=np.float64)


def summary(run: TrainingRun) -> dict[str, Any]:
    """What a run ended with and the largest gains it reached.

    ``peak_amax_fwd``/``bwd`` are maxima over every logged step and every depth (the composite up
    to each layer); ``final_*`` come from the last record. ``diverged`` is True when a loss is not finite.
    """
    last = run.records[-1]
    peak_f = max(max(r["composite_amax_fwd"]) for r in run.records)
    peak_b = max(max(r["composite_amax_bwd"]) for r in run.records)
    return {
        "name": run.name, "label": run.label, "connection": run.connection, "n": run.n,
        "parameters": run.config.get("parameters"), "last_step": int(last["step"]), "steps": run.steps,
        "final_loss": float(last["loss"]), "final_val_loss": float(last["val_loss"]),
        "best_val_loss": min(float(r["val_loss"]) for r in run.records),
        "final_amax_fwd": float(last["amax_fwd"]), "final_amax_bwd": float(last["amax_bwd"]),
        "peak_amax_fwd": float(peak_f), "peak_amax_bwd": float(peak_b),
        "diverged": any(not math.isfinite(float(r["loss"])) for r in run.records),
        "wall_s": run.wall_s, "torch": run.config.get("torch"),
    }


def ranked(runs: Iterable[TrainingRun], baseline: TrainingRun) -> list[tuple[TrainingRun, dict[str, Any], float]]:
    """(run, its ``summary``, its final validation loss minus ``baseline``'s) for each run, lowest loss first."""
    base = summary(baseline)["final_val_loss"]
    rows = sorted(((run, summary(run)) for run in runs), key=lambda rs: rs[1]["final_val_loss"])
    return [(run, s, s["final_val_loss"] - base) for run, s in rows]


def describe(run: TrainingRun) -> str:
    """One line: parameters, steps, wall time, torch and device, final losses, final and largest composite gains."""
    s = summary(run)
    wall = f" in {s['wall_s']:.0f} s" if s["wall_s"] is not None else ""
    return (f"{s['label']}: {s['parameters']:,} parameters, {s['last_step']} steps{wall} (torch {s['torch']}, "
            f"{run.config.get('device')}); final loss {s['final_loss']:.3f}, validation {s['final_val_loss']:.3f}; "
            f"composite gain at the end fwd {s['final_amax_fwd']:.4g} bwd {s['final_amax_bwd']:.4g}, "
            f"largest {s['peak_amax_fwd']:.4g} / {s['peak_amax_bwd']:.4g}")


def _flatten(value: Any) -> list[float]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [float(value)]


def compare_records(reference: Sequence[dict[str, Any]], rerun: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Compare a rerun's log with the reference log over the rerun's steps, timing fields left out.

    Returns ``steps`` (compared), ``identical`` (every value equal, bit for bit), ``max_abs_diff``
    and ``max_rel_diff`` over all values, and ``worst_field`` (where the largest relative difference is).
    Raises ValueError when the rerun logged a step the reference lacks, or the fields differ.
    """
    if not rerun:
        raise ValueError("rerun holds no records to compare")
    ref_by_step = {r["step"]: deterministic_fields(r) for r in reference}
    max_abs, max_rel, worst, identical = 0.0, 0.0, None, True
    for rec in rerun:
        new = deterministic_fields(rec)
        if new["step"] not in ref_by_step:
            raise ValueError(f"the reference log has no step {new['step']}; it has {sorted(ref_by_step)}")
        old = ref_by_step[new["step"]]
        if set(old) != set(new):
            raise ValueError(f"the logs' fields differ at step {new['step']}: {sorted(set(old) ^ set(new))}")
        for key in sorted(new):
            a, b = np.array(_flatten(old[key])), np.array(_flatten(new[key]))
            if a.shape != b.shape:
                raise ValueError(f"field {key!r} has {a.size} values in the reference and {b.size} in the rerun")
            identical &= bool(np.array_equal(a, b))
            diff = np.abs(a - b)
            rel = diff / np.maximum(np.abs(a), np.finfo(np.float64).tiny)
            if diff.max() > max_abs:
                max_abs = float(diff.max())
            if rel.max() > max_rel:
                max_rel, worst = float(rel.max()), key
    return {"steps": [int(r["step"]) for r in rerun], "identical": identical, "max_abs_diff": max_abs,
            "max_rel_diff": max_rel, "worst_field": worst}


def step_time_label(row: dict[str, Any]) -> str:
    """A readable name for a row of ``gpu_step_times_h100.jsonl``: residual, hc, mhc (torch) or mhc (triton)."""
    if row["conn"] != "mhc":
        return row["conn"]
    return f"mhc ({row.get('over', {}).get('backend', 'torch')})"


def _step_time_rows(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no step-time file at {str(path)!r}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if "conn" not in row or "s_per_step" not in row:
            raise ValueError(f"row {i} of {str(path)!r} lacks 'conn' or 's_per_step': {sorted(row)}")
    return rows


def load_step_times(path: str | Path = STEP_TIMES_PATH) -> dict[str, dict[str, Any]]:
    """The committed seconds per optimizer step at the gpu profile, by ``step_time_label``.

    Each row keeps the file's fields: ``s_per_step``, ``tok_per_s``, ``peak_gib``, ``params``, ….
    """
    return {step_time_label(r): r for r in _step_time_rows(path)}


def step_time_runs(paths: Sequence[str | Path] = (STEP_TIMES_EARLIER_PATH, STEP_TIMES_PATH)) -> list[dict[str, float]]:
    """Every run of the step-time script in ``paths``, in order: one {label: seconds per step} per
    run. A run starts at each residual row; rows with a changed n (``over["n"]``) are left out."""
    runs: list[dict[str, float]] = []
    for path in paths:
        for row in _step_time_rows(path):
            if row["conn"] == "residual":
                runs.append({})
            if not runs:
                raise ValueError(f"{str(path)!r} does not start a run with a residual row")
            if "n" not in row.get("over", {}):
                runs[-1][step_time_label(row)] = row["s_per_step"]
    return runs


def load_bench_model(path: str | Path = BENCH_MODEL_PATH) -> dict[str, Any]:
    """``benchmarks/bench_model.py``'s JSON: ``environment``, ``config`` and ``rows`` (by row name)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no bench_model result at {str(path)!r}")
    data = json.loads(path.read_text())
    for key in ("environment", "config", "rows"):
        if key not in data:
            raise ValueError(f"{str(path)!r} lacks {key!r}")
    return {**data, "rows": {r["row"]: r for r in data["rows"]}}


def overhead(time_s: float, baseline_s: float) -> float:
    """Relative extra time of ``time_s`` over ``baseline_s``: (t − t₀)/t₀ (0.067 is 6.7%)."""
    if not baseline_s > 0:
        raise ValueError(f"baseline_s must be > 0, got {baseline_s!r}")
    return (time_s - baseline_s) / baseline_s


def run_config(run: TrainingRun, **overrides: Any) -> TrainConfig:
    """The run's ``TrainConfig`` as saved in its ``config.json``, with ``overrides`` (e.g. ``stop_at=50``)."""
    fields = {**run.config["train"], **overrides}
    return TrainConfig(**fields)


def rerun_prefix(run: TrainingRun, stop_at: int, out: str | Path) -> dict[str, Any]:
    """Train the run's configuration again up to ``stop_at`` into ``out`` (a new folder) and compare
    its log with the committed one (``compare_records``); adds ``seconds`` (wall time of the rerun)."""
    if stop_at not in run.logged_steps():
        raise ValueError(f"stop_at must be a logged step of run {run.name!r} so the records can be compared, "
                         f"got {stop_at}; logged steps: {run.logged_steps()}")
    start = time.perf_counter()
    records = train(run_config(run, stop_at=stop_at), out, progress=False)
    result = compare_records(run.records, records)
    return {**result, "seconds": time.perf_counter() - start}
