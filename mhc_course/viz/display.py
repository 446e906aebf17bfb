"""Show an interactive widget that also leaves a static figure behind when run headless.

``show(controls, figure)`` displays one output whose MIME bundle carries both the widget view
(JupyterLab renders the live controls and figure) and the plotly figure's JSON (what a
headless run such as nbval, or a viewer without a widget manager, keeps and renders).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display

PLOTLY_MIME = "application/vnd.plotly.v1+json"


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
