import subprocess
import sys

from packaging.requirements import Requirement

from mhc_course import doctor


def test_doctor_passes_on_this_machine():
    out = subprocess.run([sys.executable, "-m", "mhc_course", "doctor"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[OK] torch:" in out.stdout and "[INFO] triton mode:" in out.stdout
    assert out.stdout.strip().endswith("all checks passed")


def test_doctor_reports_every_requirement():
    names = {c.name for c in doctor.run_checks()}
    assert {r.name for r in doctor.requirements()} <= names
    assert {"torch", "triton", "jupyterlab", "nbval"} <= names


def test_doctor_fails_on_missing_or_old_package(monkeypatch, capsys):
    fake = [Requirement("torch>=2.4"), Requirement("surely-not-installed-pkg>=1.0"), Requirement("pytest>=999")]
    monkeypatch.setattr(doctor, "requirements", lambda: fake)
    assert doctor.main() == 1
    out = capsys.readouterr().out
    assert "[FAIL] surely-not-installed-pkg: not installed (needs >=1.0)" in out
    assert "[FAIL] pytest:" in out and "needs >=999" in out
    assert "2 check(s) failed: surely-not-installed-pkg, pytest" in out


def test_doctor_fails_when_the_interpreter_is_switched_off_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    mode = [c for c in doctor._device() if c.name == "triton mode"][0]
    assert mode.status == "FAIL" and "TRITON_INTERPRET='0'" in mode.detail
