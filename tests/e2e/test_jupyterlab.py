"""The course in a real JupyterLab, in a real browser.

For each lesson: open it in JupyterLab (headless Chromium, 1366×768), Run All and wait for the
kernel to go idle. Then every code cell ran, no output shows stderr (a traceback or a warning),
no widget shows "model not found", and every figure of a widget output is the live widget view,
not the static plotly copy that ``mhc_course.viz.display.show`` puts in the same bundle. Then, in
every output that holds a slider and a figure, move the first slider with the keyboard: the
figure's data changes, and nothing lands in the log console (where a widget callback's traceback
goes). Screenshots go to test-artifacts/: the whole notebook after Run All and after the sliders
moved, and each widget as a 1366×768 laptop screen shows it; on a failure, the page as it was.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from .jupyterlab import LAPTOP, LabServer, Notebook

LESSONS_DIR = Path(__file__).resolve().parents[2] / "lessons"
LESSONS = ["00_start_here", "01_residual_connections", "04_sinkhorn_knopp"]


def _fingerprint(directory: Path, stem: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob(f"{stem}.*"))}


def _check_after_run_all(notebook: Notebook, name: str) -> list:
    """Everything that must hold once Run All is done; returns the outputs with a slider and a figure."""
    errors = notebook.errors()
    assert not errors, f"{name}: outputs show errors or warnings (stderr):\n" + "\n\n".join(errors)
    prompts = notebook.prompts()
    assert all(p.strip("[]: ").isdigit() for p in prompts), f"{name}: not every code cell ran: {prompts}"
    assert not notebook.widget_errors(), f"{name}: widgets failed: {notebook.widget_errors()}"
    outputs = notebook.widget_outputs()
    for output in outputs:
        assert output["plots_outside_widget_view"] == 0 and output["static_plotly_in_cell"] == 0, (
            f"{name}: a widget output also shows a figure outside the widget view (the static copy?): {output}"
        )
    interactive = notebook.interactive_outputs()
    assert interactive, f"{name}: no output holds both a slider and a plotly figure; widget outputs: {outputs}"
    return interactive


def check_notebook_in_browser(browser, server: LabServer, name: str, artifacts: Path) -> list[str]:
    """Run ``name`` (a notebook under the server's root) in JupyterLab and check it; return the sliders moved."""
    stem = Path(name).stem
    size = f"{LAPTOP['width']}x{LAPTOP['height']}"
    untouched = _fingerprint(server.root_dir, stem)
    page = browser.new_page()
    notebook = Notebook(page, server, name)
    moved: list[str] = []
    started, laps = time.monotonic(), []
    lap = lambda what: laps.append(f"{what} {time.monotonic() - started:.1f} s")  # noqa: E731
    try:
        notebook.open()
        lap("opened")
        notebook.run_all()
        lap("ran all")
        notebook.screenshot_full(artifacts / f"{stem}-1-after-run-all.png")
        interactive = _check_after_run_all(notebook, name)

        for number, output in enumerate(interactive, 1):
            notebook.scroll_to(output)
            before = notebook.figure_state(output)
            label, old, new = notebook.move_first_slider(output)
            changed = notebook.wait_for_figure_change(output, before)
            notebook.screenshot_output(output, artifacts / f"{stem}-3-widget-{number}-{size}.png")
            assert changed, f"{name}: moving slider {label!r} from {old} to {new} left its figure unchanged"
            moved.append(f"{label}: {old} → {new}")
            lap(f"figure {number} changed")
        notebook.wait_for_widgets()
        notebook.screenshot_full(artifacts / f"{stem}-2-after-slider.png")

        assert not notebook.widget_errors(), f"{name}: widgets failed: {notebook.widget_errors()}"
        errors = notebook.errors()
        assert not errors, f"{name}: outputs show errors or warnings after moving sliders:\n" + "\n\n".join(errors)
        logged = notebook.log_console_errors()
        assert not logged, f"{name}: widget callbacks raised or warned (log console):\n" + "\n\n".join(logged)
        lap("checked")
    except BaseException:
        page.screenshot(path=str(artifacts / f"{stem}-failed.png"))
        raise
    finally:
        print(f"{name}: " + ", ".join(laps))
        page.close()
        server.shut_down_sessions()
    assert _fingerprint(server.root_dir, stem) == untouched, f"running {name} in JupyterLab changed its files"
    return moved


def _lesson(stem: str):
    written = (LESSONS_DIR / f"{stem}.ipynb").exists()
    return pytest.param(stem, marks=pytest.mark.skipif(not written, reason="lesson not written yet"))


@pytest.mark.parametrize("stem", [_lesson(stem) for stem in LESSONS])
def test_lesson_in_jupyterlab(stem, browser, lab, artifacts):
    moved = check_notebook_in_browser(browser, lab, f"{stem}.ipynb", artifacts)
    print(f"{stem}: sliders moved, figures changed: {moved}")
