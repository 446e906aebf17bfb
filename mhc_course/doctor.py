"""``mhc-course doctor``: is this machine ready for the course? Paste its output in bug reports.

Each check prints ``[OK]`` or ``[FAIL]`` with what it found; ``[INFO]`` lines describe the
machine (versions, device, Triton mode). The command exits non-zero if any check fails.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import Version


@dataclass(frozen=True)
class Check:
    status: str  # "OK", "FAIL" or "INFO"
    name: str
    detail: str

    def line(self) -> str:
        return f"[{self.status}] {self.name}: {self.detail}"


def requirements() -> list[Requirement]:
    """The installed course's own dependencies (pyproject.toml), for this platform."""
    try:
        reqs = [Requirement(r) for r in metadata.requires("mhc-course") or []]
    except metadata.PackageNotFoundError:
        return []
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def _package(req: Requirement) -> Check:
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return Check("FAIL", req.name, f"not installed (needs {req.specifier or 'any version'})")
    if version not in req.specifier and Version(version).base_version not in req.specifier:
        return Check("FAIL", req.name, f"{version} installed, needs {req.specifier}")
    return Check("OK", req.name, version)


def _device() -> list[Check]:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        cap = ".".join(map(str, torch.cuda.get_device_capability(0)))
        return [
            Check("INFO", "device", f"CUDA {torch.version.cuda}, {name} (compute capability {cap})"),
            Check("INFO", "triton mode", "GPU: kernels compile for this device"),
        ]
    mode = os.environ.get("TRITON_INTERPRET", "")
    cpu = Check("INFO", "device", f"CPU only ({os.cpu_count()} cores); lessons show committed GPU results")
    if mode != "1":
        why = f"no CUDA and TRITON_INTERPRET={mode!r}: the kernels cannot run; unset it"
        return [cpu, Check("FAIL", "triton mode", why)]
    return [cpu, Check("INFO", "triton mode", "interpreter, fp32 only (TRITON_INTERPRET=1)")]


def _kernels() -> Check:
    """Run the fused connection once on a tiny input and compare with the reference."""
    import torch

    from . import kernels
    from .mhc import mhc_coefficients, mhc_post_res, mhc_pre

    g = torch.Generator().manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(16, 4, 32, generator=g).to(dev)
    phi, bias = (torch.randn(128, 24, generator=g) / 12).to(dev), torch.randn(24, generator=g).to(dev)
    alpha = torch.full((3,), 0.5, device=dev)
    try:
        got, _ = kernels.mhc_connection(x, phi, bias, alpha, torch.tanh)
    except Exception as exc:  # a broken Triton install fails in many ways; report any of them
        return Check("FAIL", "kernels", f"{type(exc).__name__}: {exc}")
    hp, hq, hr = mhc_coefficients(x, phi, bias, alpha)
    want = mhc_post_res(x, torch.tanh(mhc_pre(x, hp)), hq, hr)
    err = ((got - want).norm() / want.norm()).item()
    if not err < 1e-4:
        return Check("FAIL", "kernels", f"fused connection differs from the reference by {err:.1e}")
    return Check("OK", "kernels", f"fused connection matches the reference on {dev} (relative error {err:.1e})")


def _imports() -> Check:
    names = ["torch", "numpy", "plotly", "ipywidgets", "anywidget"] + (["triton"] if sys.platform == "linux" else [])
    for name in names:
        try:
            __import__(name)
        except Exception as exc:  # a broken install can fail in many ways; report any of them
            return Check("FAIL", "imports", f"import {name} failed: {type(exc).__name__}: {exc}")
    return Check("OK", "imports", ", ".join(names))


def _reference_math() -> Check:
    import torch

    from .sinkhorn import sinkhorn_error, sinkhorn_knopp

    g = torch.Generator().manual_seed(0)
    m = sinkhorn_knopp(torch.randn(8, 4, 4, generator=g, dtype=torch.float64), iters=50)
    row, col = sinkhorn_error(m)
    err = max(row.max().item(), col.max().item())
    if err > 1e-9:
        return Check("FAIL", "reference math", f"Sinkhorn–Knopp left an error of {err:.1e}")
    return Check("OK", "reference math", f"Sinkhorn–Knopp doubly stochastic to {err:.1e}")


def _widgets() -> Check:
    try:
        import plotly.graph_objects as go

        go.FigureWidget()
    except Exception as exc:
        return Check("FAIL", "widgets", f"plotly FigureWidget unavailable: {type(exc).__name__}: {exc}")
    return Check("OK", "widgets", "plotly FigureWidget and ipywidgets load")


def run_checks() -> list[Check]:
    """Every check, in the order the report prints them."""
    checks = [Check("INFO", "python", f"{sys.version.split()[0]} on {platform.platform()}")]
    ok_py = sys.version_info >= (3, 10)
    checks.append(Check("OK" if ok_py else "FAIL", "python version", ">= 3.10" if ok_py else "3.10 or newer needed"))
    reqs = requirements()
    if not reqs:
        checks.append(Check("FAIL", "mhc-course", "not installed as a package: run `make setup` or `pip install -e .`"))
    checks += [_package(r) for r in reqs]
    checks.append(_imports())
    if checks[-1].status == "OK":
        checks += _device()
        checks.append(_reference_math())
        if sys.platform == "linux" and checks[-2].status != "FAIL":
            checks.append(_kernels())
        checks.append(_widgets())
    from .profiles import profile

    checks.append(Check("INFO", "profile", f"MHC_COURSE_PROFILE={profile()}"))
    return checks


def report(checks: list[Check]) -> str:
    """The printed report: one line a check, then a summary line."""
    failed = [c for c in checks if c.status == "FAIL"]
    tail = "all checks passed" if not failed else f"{len(failed)} check(s) failed: " + ", ".join(c.name for c in failed)
    return "\n".join([c.line() for c in checks] + [tail])


def main() -> int:
    checks = run_checks()
    print(report(checks))
    return 1 if any(c.status == "FAIL" for c in checks) else 0
