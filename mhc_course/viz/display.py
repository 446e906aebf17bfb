"""Show an interactive widget that also leaves a static figure behind when run headless.

``show(controls, figure)`` displays one output whose MIME bundle carries both the widget view
(JupyterLab renders the live controls and figure) and the plotly figure's JSON (what a
headless run such as nbval, or a viewer without a widget manager, keeps and renders).

A saved notebook keeps the widget view's reference but not the live widget, so on reopening
JupyterLab would show "model not found" where the figure was. ``strip_live_views`` is a
Jupyter server pre-save hook (``make lab`` installs it) that drops the widget view from any
output that also carries the static figure, so a reopened lesson shows the figure instead.
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


class _LiveWithStatic:
    def __init__(self, widget, figure: go.FigureWidget | go.Figure) -> None:
        self.widget, self.figure = widget, figure

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        static = json.loads(pio.to_json(go.Figure(self.figure), validate=False))
        bundle[PLOTLY_MIME] = {"data": static.get("data", []), "layout": static.get("layout", {}), "config": {}}
        title = self.figure.layout.title.text or "figure"
        bundle.setdefault("text/plain", f"<interactive figure: {title}>")
        return bundle


def show(widget, figure: go.FigureWidget | go.Figure) -> None:
    """Display ``widget`` (usually a VBox holding controls and ``figure``) with a static copy."""
    display(_LiveWithStatic(widget, figure))


def strip_live_views(model: dict, **kwargs) -> None:
    """Jupyter ContentsManager pre-save hook: keep only the static figure of live outputs."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    for cell in model["content"].get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW_MIME in data and PLOTLY_MIME in data:
                del data[WIDGET_VIEW_MIME]
