"""The command line: ``train`` runs and reports, bad arguments get clear errors, ``doctor`` still parses."""

import json

import pytest

from mhc_course import cli
from mhc_course.train import read_log

pytestmark = pytest.mark.usefixtures("one_thread")


def run(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_doctor_is_still_a_command():
    assert cli.build_parser().parse_args(["doctor"]).command == "doctor"


def test_train_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--profile", "ci", "--connection", "mhc", "--n", "2", "--device", "cpu", "--out", str(out),
            "--steps", "6", "--log-every", "3", "--no-progress"]
    code, stdout, err = run(base + ["--stop-at", "3"], capsys)
    assert code == 0, err
    assert "mhc n=2 (ci): step 3" in stdout and "log.jsonl" in stdout
    code, stdout, err = run(base + ["--resume"], capsys)
    assert code == 0, err
    assert [r["step"] for r in read_log(out)] == [3, 6]
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["n"] == 2 and config["train"]["steps"] == 6 and config["train"]["clip_grad"] is None


def test_options_reach_the_config(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_train(cfg, out, *, resume, progress):
        seen.update(cfg=cfg, out=out, resume=resume, progress=progress)
        return []

    monkeypatch.setattr("mhc_course.train.train", fake_train)
    code, _, err = run(["train", "--profile", "cpu", "--connection", "hc", "--out", str(tmp_path), "--clip-grad", "1.5",
                        "--depth", "13", "--width", "96", "--heads", "3", "--seq-len", "40", "--batch-size", "6",
                        "--lr", "0.01", "--seed", "5", "--data", "corpus.txt", "--resume"], capsys)
    assert code == 0, err
    cfg = seen["cfg"]
    assert (cfg.connection, cfg.clip_grad, cfg.depth, cfg.width, cfg.heads) == ("hc", 1.5, 13, 96, 3)
    assert (cfg.seq_len, cfg.batch_size, cfg.lr, cfg.seed, cfg.data) == (40, 6, 0.01, 5, "corpus.txt")
    assert seen["resume"] and seen["progress"]


@pytest.mark.parametrize("course, expected", [("ci", "ci"), ("default", "cpu"), ("gpu", "gpu")])
def test_profile_defaults_from_the_course_switch(monkeypatch, course, expected):
    monkeypatch.setenv("MHC_COURSE_PROFILE", course)
    assert cli.default_train_profile() == expected


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--steps", "0"], "--steps: must be >= 1"),
        (["--clip-grad", "-1"], "--clip-grad: must be a finite number > 0"),
        (["--lr", "fast"], "--lr: expected a number"),
        (["--connection", "dense"], "invalid choice: 'dense'"),
        (["--backend", "cuda"], "invalid choice: 'cuda'"),
    ],
)
def test_argument_errors(tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--profile", "ci", "--out", str(tmp_path / "x")] + extra)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_out_is_required(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--profile", "ci"])
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--width", "30", "--heads", "4"], "width must be divisible by heads"),
        (["--connection", "residual", "--n", "4"], "one stream"),
        (["--connection", "hc", "--backend", "triton"], "applies to connection='mhc' only"),
        (["--data", "/no/such/file.txt"], "'/no/such/file.txt' cannot be read"),
        (["--resume"], "nothing to resume"),
        (["--warmup", "50"], "warmup must lie in"),
    ],
)
def test_setting_errors(tmp_path, capsys, extra, words):
    code, _, err = run(["train", "--profile", "ci", "--device", "cpu", "--out", str(tmp_path / "x")] + extra, capsys)
    assert code == 2
    assert err.startswith("mhc-course train: error: ") and words in err


def test_bad_course_profile_is_reported(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MHC_COURSE_PROFILE", "huge")
    code, _, err = run(["train", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "MHC_COURSE_PROFILE must be one of" in err
