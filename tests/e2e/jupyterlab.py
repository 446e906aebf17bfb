"""Drive a real JupyterLab in headless Chromium: start a server, open a notebook, run it, read it.

Used by test_jupyterlab.py. The browser is Debian's ``/usr/bin/chromium`` (tools/install_browser.sh
installs it), driven by Playwright's Python package through ``executable_path``: Playwright's own
browser downloads are never used. Nothing is fetched from the network: plotly and the widgets
render from JupyterLab's installed extensions.

The server runs on a free localhost port with a random token, in a private Jupyter config,
data, runtime and workspace directory, with autosave off so that running a lesson never writes
outputs into ``lessons/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 768}
WIDGET_ERRORS = ("model not found", "Error displaying widget", "Could not create a view")

# Timeouts sized for a slow 2-core CI machine; every wait polls a condition and returns as soon as it holds.
SERVER_START_S = 120
PAGE_LOAD_S = 120
RUN_ALL_S = 300
FIGURE_UPDATE_S = 60

# JupyterLab settings for the test server: never autosave (the lessons stay output-free), never
# fetch news or check for updates (no network).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class LabServer:
    """A running ``jupyter lab``: its base URL, token and REST API."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    log: Path

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {self.process.returncode}:\n{self.log_tail()}")
        try:
            return "started" in self.api("status")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def notebook_url(self, notebook: str) -> str:
        """The notebook in a workspace of its own, so no tab of an earlier run is restored."""
        workspace = "e2e-" + "".join(c if c.isalnum() else "-" for c in Path(notebook).stem)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def kernel_state(self, notebook: str) -> str | None:
        """Execution state of the kernel of ``notebook``'s session, None while it has none."""
        for session in self.api("sessions"):
            if session.get("path") == notebook and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def shut_down_sessions(self) -> None:
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _private_jupyter_dirs(base: Path) -> tuple[dict[str, str], Path, Path]:
    """Jupyter's and IPython's directories under ``base`` (environment variables), the lab settings
    directory holding LAB_SETTINGS, and an empty workspaces directory."""
    settings, workspaces = base / "settings", base / "workspaces"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
           "IPYTHONDIR": "ipython"}
    for d in [*env.values(), "workspaces"]:
        (base / d).mkdir()
    return {k: str(base / d) for k, d in env.items()}, settings, workspaces


@contextmanager
def lab_server(root_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """Start ``jupyter lab`` headless on ``root_dir``, wait until it answers, and always stop it."""
    root_dir = Path(root_dir).resolve()
    base = Path(tempfile.mkdtemp(prefix="mhc-e2e-lab-"))
    private_env, settings, workspaces = _private_jupyter_dirs(base)
    token, port = secrets.token_hex(24), free_port()
    env = {**os.environ, **(extra_env or {}), **private_env}
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=root_dir)
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, process, log)
    try:
        wait_until(server.answers, SERVER_START_S, "jupyter lab to answer on /api/status", poll_s=0.5)
        yield server
    finally:
        if process.poll() is None:
            try:
                server.shut_down_sessions()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def chromium(playwright) -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh user-data-dir, as a Playwright browser context."""
    user_data = tempfile.mkdtemp(prefix="mhc-e2e-chromium-")
    context = playwright.chromium.launch_persistent_context(
        user_data, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=LAPTOP
    )
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(user_data, ignore_errors=True)


# --- reading the page --------------------------------------------------------------------------

_PROMPTS_JS = """() => Array.from(
  document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt'), e => e.textContent.trim())"""

_INDICATOR_STATUS_JS = """() => {
  const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return s === null ? null : s.dataset.status;
}"""

_RUN_ALL_DONE_JS = """() => {
  const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'), e => e.textContent);
  const s = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return prompts.some(p => /\\[\\d+\\]/.test(p)) && !prompts.some(p => p.includes('*'))
      && s !== null && s.dataset.status === 'idle';
}"""

# Every widget output of the notebook: its text, whether it is still loading, its sliders and
# labels, how many plotly divs it holds (drawn or not, and outside any widget view), and how many
# outputs of its cell JupyterLab's own plotly renderer drew (.jp-RenderedPlotly: a static copy).
_WIDGET_OUTPUTS_JS = """() => {
  const outputs = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output'))
    .filter(o => o.querySelector('.jupyter-widgets') || o.classList.contains('jupyter-widgets')
                 || o.textContent.includes('Loading widget...'));
  return outputs.map(o => {
    const plots = Array.from(o.querySelectorAll('.js-plotly-plot'));
    const area = o.closest('.jp-OutputArea');
    return {
      text: o.textContent.slice(0, 300),
      loading: o.textContent.includes('Loading widget...'),
      sliders: o.querySelectorAll('.widget-slider .noUi-handle').length,
      labels: Array.from(o.querySelectorAll('.widget-label'), l => l.textContent),
      plots: plots.length,
      drawn: plots.filter(p => p.querySelector('.main-svg')).length,
      plots_outside_widget_view: plots.filter(p => !p.parentElement.closest('.jupyter-widgets')).length,
      static_plotly_in_cell: area ? area.querySelectorAll('.jp-RenderedPlotly').length : 0,
    };
  });
}"""

# The text of every output of the notebook. textContent, not innerText: JupyterLab skips the
# rendering of cells out of view (content-visibility), and innerText is empty for those.
_OUTPUT_TEXTS_JS = """() => Array.from(
  document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output'), o => o.textContent)"""

# Outputs under a selector that JupyterLab shows on red: stderr, so tracebacks and warnings alike
# (say jupyter_client's "Message serialization failed" when a widget sends NaN to the browser).
_STDERR_JS = """scope => Array.from(
  document.querySelectorAll(scope + ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'),
  o => o.textContent.slice(0, 1500))"""

# The state of every plotly figure inside one output element: the traces' data and the layout
# the user set (typed arrays as lists), without plotly's private keys and the ranges and sizes
# that plotly writes back on any relayout, so only a change made by the kernel counts.
_FIGURE_STATE_JS = """o => JSON.stringify(Array.from(o.querySelectorAll('.js-plotly-plot'), gd => {
  const skip = new Set(['range', 'autorange', 'width', 'height']);
  const replacer = (k, v) =>
    (k.startsWith('_') || skip.has(k)) ? undefined : (ArrayBuffer.isView(v) ? Array.from(v) : v);
  try { return JSON.stringify({data: gd.data, layout: gd.layout}, replacer); } catch (e) { return String(e); }
}))"""

_CONTENT_HEIGHT_JS = """() => {
  const outer = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
  return outer ? window.innerHeight - outer.clientHeight + outer.scrollHeight : document.body.scrollHeight;
}"""


_SCROLL_TOP_JS = """() => new Promise(resolve => {
  const outer = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
  if (outer) outer.scrollTop = 0;
  requestAnimationFrame(() => requestAnimationFrame(resolve));
})"""

_SCROLL_TO_JS = """o => new Promise(resolve => {
  (o.closest('.jp-Cell') || o).scrollIntoView({block: 'start'});
  requestAnimationFrame(() => requestAnimationFrame(resolve));
})"""


class Notebook:
    """One notebook open in JupyterLab in a Playwright page."""

    def __init__(self, page, server: LabServer, name: str) -> None:
        self.page, self.server, self.name = page, server, name

    def open(self) -> None:
        self.page.goto(self.server.notebook_url(self.name), timeout=PAGE_LOAD_S * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=PAGE_LOAD_S * 1000)
        wait_until(lambda: self.server.kernel_state(self.name) == "idle", PAGE_LOAD_S, f"{self.name}'s kernel to start")
        wait_until(lambda: self.page.evaluate(_INDICATOR_STATUS_JS) == "idle", PAGE_LOAD_S, "the notebook to show idle")

    def run_all(self) -> None:
        """Run → Run All Cells, then wait until every cell ran (or stopped) and widgets are drawn."""
        self.page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        self.page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:
            self.page.wait_for_function(_RUN_ALL_DONE_JS, timeout=RUN_ALL_S * 1000, polling=250)
        except Exception as error:  # Playwright's TimeoutError: say where the run stands
            indicator = self.page.evaluate(_INDICATOR_STATUS_JS)
            raise TimeoutError(
                f"Run All of {self.name} not done after {RUN_ALL_S} s: prompts {self.prompts()}, "
                f"execution indicator {indicator!r}, kernel {self.server.kernel_state(self.name)!r}"
            ) from error
        wait_until(lambda: self.server.kernel_state(self.name) == "idle", RUN_ALL_S, f"{self.name}'s kernel to go idle")
        self.wait_for_widgets()

    def wait_for_widgets(self) -> None:
        """Wait until every widget output has loaded and drawn its figures, and the render is stable."""
        previous: list[Any] | None = None

        def settled() -> bool:
            nonlocal previous
            outputs = self.widget_outputs()
            done = all(not o["loading"] and o["drawn"] == o["plots"] for o in outputs)
            stable, previous = done and outputs == previous, outputs
            return stable

        wait_until(settled, FIGURE_UPDATE_S, f"{self.name}'s widgets to render", poll_s=0.5)

    def prompts(self) -> list[str]:
        return self.page.evaluate(_PROMPTS_JS)

    def errors(self) -> list[str]:
        """Tracebacks and warnings shown in the notebook's outputs."""
        return self.page.evaluate(_STDERR_JS, ".jp-NotebookPanel")

    def log_console_errors(self) -> list[str]:
        """Tracebacks and warnings in JupyterLab's log console (View → Show Log Console), where the
        output of a widget callback lands."""
        self.page.click(".lm-MenuBar-itemLabel:text-is('View')")
        self.page.click(".lm-Menu-itemLabel:text-is('Show Log Console')")
        self.page.wait_for_selector(".jp-LogConsolePanel", timeout=PAGE_LOAD_S * 1000)
        return self.page.evaluate(_STDERR_JS, ".jp-LogConsolePanel")

    def widget_errors(self) -> list[str]:
        """Outputs where the widget manager failed ("Error displaying widget: model not found", ...)."""
        texts = self.page.evaluate(_OUTPUT_TEXTS_JS)
        return [t[:300] for t in texts if any(e in t for e in WIDGET_ERRORS)]

    def widget_outputs(self) -> list[dict[str, Any]]:
        return self.page.evaluate(_WIDGET_OUTPUTS_JS)

    def interactive_outputs(self):
        """Locators of the widget outputs that hold both a slider and a plotly figure."""
        outputs = self.page.locator(".jp-OutputArea-output:has(.widget-slider .noUi-handle):has(.js-plotly-plot)")
        return [outputs.nth(i) for i in range(outputs.count())]

    def scroll_to(self, output) -> None:
        """Scroll ``output``'s cell to the top of the notebook, as a learner does before using a widget."""
        output.evaluate(_SCROLL_TO_JS)

    def figure_state(self, output) -> str:
        return output.evaluate(_FIGURE_STATE_JS)

    def move_first_slider(self, output) -> tuple[str, str, str]:
        """Press arrow keys on the output's first slider handle; return (label, value before, value after)."""
        handle = output.locator(".widget-slider .noUi-handle").first
        label = output.locator(".widget-slider").first.locator(".widget-label").text_content() or ""
        before = handle.get_attribute("aria-valuetext")
        at_max = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
        handle.focus()
        for _ in range(3):
            handle.press("ArrowLeft" if at_max else "ArrowRight")
        moved = lambda: handle.get_attribute("aria-valuetext") != before  # noqa: E731
        wait_until(moved, FIGURE_UPDATE_S, f"slider {label!r} to move")
        return label, before, handle.get_attribute("aria-valuetext")

    def wait_for_figure_change(self, output, before: str) -> bool:
        """True once the figures in ``output`` differ from ``before``; False after the timeout."""
        try:
            wait_until(lambda: self.figure_state(output) != before, FIGURE_UPDATE_S, "the figure to change")
        except TimeoutError:
            return False
        return True

    def screenshot_full(self, path: Path) -> None:
        """The whole notebook in one image: the viewport, 1366 px wide, made as tall as the notebook."""
        height = min(int(self.page.evaluate(_CONTENT_HEIGHT_JS)) + 20, 30000)
        self.page.set_viewport_size({"width": LAPTOP["width"], "height": max(height, LAPTOP["height"])})
        try:
            self.page.evaluate(_SCROLL_TOP_JS)
            self.page.mouse.move(0, 0)
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(LAPTOP)

    def screenshot_output(self, output, path: Path) -> None:
        """What a learner sees at 1366×768 with ``output``'s cell at the top of the notebook."""
        self.scroll_to(output)
        self.page.mouse.move(0, 0)
        self.page.screenshot(path=str(path))
