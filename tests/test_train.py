"""The trainer: schedule, weight decay groups, determinism, resume, interruption, the log's fields."""

import math
import pathlib

import pytest
import torch

from mhc_course import train as train_module
from mhc_course.checkpoint import load, save_atomic
from mhc_course.data import load_text_data
from mhc_course.distributed import setup
from mhc_course.train import (
    TrainConfig,
    _Run,
    deterministic_fields,
    lr_factor,
    param_groups,
    profile_config,
    read_log,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


REQUIRED = {"step", "lr", "loss", "val_loss", "grad_norm", "amax_fwd", "amax_bwd", "layer_amax_fwd",
            "layer_amax_bwd", "composite_amax_fwd", "composite_amax_bwd", "tokens_per_s", "peak_mem_mb",
            "peak_mem_kind", "elapsed_s"}


def ci(**kw) -> TrainConfig:
    return profile_config("ci", device="cpu", **kw)


def same_logs(a: list[dict], b: list[dict]) -> bool:
    return [deterministic_fields(r) for r in a] == [deterministic_fields(r) for r in b]


def test_lr_schedule():
    warmup, steps, floor = 10, 100, 0.1
    f = [lr_factor(s, warmup, steps, floor) for s in range(steps)]
    assert f[:warmup] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    assert f[warmup] == pytest.approx(1.0) and f[-1] == pytest.approx(floor)
    assert all(a >= b for a, b in zip(f[warmup:], f[warmup + 1 :], strict=False))
    mid = warmup + (steps - 1 - warmup) // 2
    assert f[mid] == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * 44 / 89)))


def test_param_groups_leave_connections_undecayed():
    run = _Run(ci(connection="hc"), pathlib.Path("unused"), setup("cpu"), load_text_data())
    decay, rest = param_groups(run.model, 0.1)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) | ids(rest["params"]) == ids(run.model.parameters())
    assert not ids(decay["params"]) & ids(rest["params"])
    assert ids(run.model.connection_parameters()) <= ids(rest["params"])
    assert id(run.model.blocks[0].attn.body.qkv.weight) in ids(decay["params"])
    assert id(run.model.blocks[0].attn.norm.weight) in ids(rest["params"])
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0


def test_log_records_and_gains(tmp_path):
    cfg = ci(connection="mhc")
    records = train(cfg, tmp_path / "mhc", progress=False)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert records == read_log(tmp_path / "mhc")
    layers = 2 * cfg.depth
    for r in records:
        assert REQUIRED <= set(r)
        assert all(len(r[k]) == layers for k in ("layer_amax_fwd", "layer_amax_bwd", "composite_amax_fwd"))
        assert math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]) and r["grad_norm"] > 0
        assert r["amax_fwd"] == r["composite_amax_fwd"][-1] and r["amax_bwd"] == r["composite_amax_bwd"][-1]
        # mHC's H_res are row-stochastic, and so are their products: forward gain 1 at every depth
        assert r["composite_amax_fwd"] == pytest.approx([1.0] * layers, abs=1e-5)
        assert r["tokens_per_s"] > 0 and r["peak_mem_mb"] > 0
    assert records[-1]["loss"] < records[0]["loss"]
    assert (tmp_path / "mhc" / "config.json").is_file() and (tmp_path / "mhc" / "checkpoint.pt").is_file()


def test_gains_are_the_composite_of_the_recorded_maps():
    run = _Run(ci(connection="hc", depth=3), pathlib.Path("unused"), setup("cpu"), load_text_data())
    with torch.no_grad():  # move HC's static mixing away from the identity so products matter
        for c in run.model.connections():
            c.A_r.add_(0.2 * torch.randn(4, 4, generator=torch.Generator().manual_seed(9)))
    run.train_step(record=True)
    maps = [m.double() for m in run.model.h_res_maps()]
    gains = run.gains()
    product = maps[0]
    for m in maps[1:]:
        product = m @ product
    row = product.abs().sum(-1).amax(-1).mean().item()
    col = product.abs().sum(-2).amax(-1).mean().item()
    assert gains["amax_fwd"] == pytest.approx(row, rel=1e-9) and gains["amax_bwd"] == pytest.approx(col, rel=1e-9)
    assert gains["layer_amax_fwd"][1] == pytest.approx(maps[1].abs().sum(-1).amax(-1).mean().item(), rel=1e-9)
    assert gains["amax_fwd"] > 1.05  # the perturbed mixing compounds over six connections


def test_runs_are_deterministic(tmp_path):
    a = train(ci(connection="hc"), tmp_path / "a", progress=False)
    b = train(ci(connection="hc"), tmp_path / "b", progress=False)
    c = train(ci(connection="hc", seed=1), tmp_path / "c", progress=False)
    assert same_logs(a, b)
    assert a[-1]["loss"] != c[-1]["loss"]


def test_resume_continues_the_same_curve(tmp_path):
    whole = train(ci(connection="mhc"), tmp_path / "whole", progress=False)
    first = train(ci(connection="mhc", stop_at=10), tmp_path / "split", progress=False)
    assert [r["step"] for r in first] == [5, 10]
    second = train(ci(connection="mhc"), tmp_path / "split", resume=True, progress=False)
    assert same_logs(whole, second)
    a, b = load(tmp_path / "whole" / "checkpoint.pt"), load(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_interrupted_run_loses_only_the_steps_since_its_checkpoint(tmp_path, monkeypatch):
    cfg = ci(connection="hc", log_every=2, ckpt_every=5)
    whole = train(cfg, tmp_path / "whole", progress=False)
    original = _Run.train_step

    def crash_at_13(self, record):
        if self.step == 12:
            raise KeyboardInterrupt("simulated kill")
        return original(self, record)

    monkeypatch.setattr(_Run, "train_step", crash_at_13)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    assert load(tmp_path / "cut" / "checkpoint.pt")["step"] == 10
    assert read_log(tmp_path / "cut")[-1]["step"] == 12  # logged past the checkpoint: resume rewrites it
    monkeypatch.setattr(_Run, "train_step", original)
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    assert same_logs(whole, resumed)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_atomic({"step": 1, "w": torch.ones(3)}, path)

    def torn_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_run_errors(tmp_path):
    train(ci(connection="residual", stop_at=5), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(ci(connection="residual"), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="lr: 0.003 -> 0.001"):
        train(ci(connection="residual", lr=1e-3), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(ci(), tmp_path / "empty", resume=True, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        train(ci(), tmp_path / "junk", resume=True, progress=False)
    with pytest.raises(ValueError, match="cannot be read"):
        train(ci(data=str(tmp_path / "missing.txt")), tmp_path / "nodata", progress=False)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("too little text\n")
    with pytest.raises(ValueError, match="fewer than seq_len"):
        train(ci(data=str(tiny)), tmp_path / "tinyrun", progress=False)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(steps=0), "steps must be an int >= 1"),
        (dict(warmup=20), r"warmup must lie in \[0, steps=20\)"),
        (dict(clip_grad=0.0), "clip_grad must be > 0"),
        (dict(stop_at=21), "stop_at"),
        (dict(dtype="fp8"), "dtype must be one of"),
        (dict(width=33), "divisible by heads"),
        (dict(connection="hc", backend="triton"), "applies to connection='mhc' only"),
    ],
)
def test_config_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ci(**kwargs)


def test_profiles():
    with pytest.raises(ValueError, match="profile must be one of"):
        profile_config("huge")
    with pytest.raises(ValueError, match="unknown TrainConfig"):
        profile_config("ci", layers=3)
    assert profile_config("cpu", steps=30).warmup == 3  # a shortened run keeps a short warmup
    cpu, gpu = profile_config("cpu"), profile_config("gpu")
    assert cpu.depth >= 12 and gpu.depth >= 24 and cpu.clip_grad is None and gpu.clip_grad is None
    assert train_module.PROFILE_SETTINGS["ci"]["steps"] <= 50


def test_a_diverging_run_stops(tmp_path, capsys):
    records = train(ci(connection="hc", lr=1000.0), tmp_path / "boom", progress=False)
    assert len(records) == 1 and math.isnan(records[0]["loss"])
    assert "diverged" in capsys.readouterr().err
