"""Project hygiene: dependencies in step, lessons paired and output-free, CI calls the README."""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jupytext
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))


def test_environment_yml_mirrors_pyproject():
    installed = sorted(str(Requirement(r)) for r in metadata.requires("mhc-course"))
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    listed = sorted(str(Requirement(m.strip())) for m in re.findall(r"^\s+- (.+)$", pip_section, flags=re.M))
    assert listed == installed, "environment.yml's pip list and pyproject.toml's dependencies differ"


def test_ci_runs_the_readme_test_command():
    lines = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    command = lines[-1].strip()
    assert command == "make test"
    assert f"\n{command}\n" in (ROOT / "README.md").read_text()


def test_kernels_are_not_a_top_level_package():
    """PyPI has another `kernels` package (transformers imports it when present): ours is mhc_course.kernels."""
    probe = "import importlib.util as u, mhc_course.kernels; print(u.find_spec('kernels') is None)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT / "lessons")
    assert out.stdout.strip() == "True", out.stderr


def test_every_lesson_has_an_entry_in_the_course_map():
    from mhc_course.course import LESSONS as MAP

    stems = [p.stem for p in LESSONS]
    assert stems, "no lessons found"
    assert set(stems) <= {lesson.stem for lesson in MAP}


@pytest.mark.parametrize("py", LESSONS, ids=lambda p: p.stem)
def test_lesson_pair_in_sync_and_without_outputs(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{py.name} has no paired {ipynb.name}: run `jupytext --sync {py}`"
    raw = json.loads(ipynb.read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{ipynb.name} stores outputs: clear them (jupytext --sync writes none)"
            )
    from_py, from_nb = jupytext.read(py), jupytext.read(ipynb)
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(from_py) == cells(from_nb), f"{py.name} and {ipynb.name} differ: run `jupytext --sync {py}`"
