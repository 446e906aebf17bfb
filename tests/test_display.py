"""The live-plus-static display and its pre-save hook; exercise feedback rendering."""

import base64

import numpy as np

from mhc_course.exercises.checking import Feedback
from mhc_course.viz.compounding import compounding_figure
from mhc_course.viz.display import PLOTLY_MIME, WIDGET_VIEW_MIME, _LiveWithStatic, strip_live_views


def test_bundle_carries_widget_view_and_static_figure():
    fig = compounding_figure(8, 1.1)
    bundle = _LiveWithStatic(fig, fig)._repr_mimebundle_()
    assert WIDGET_VIEW_MIME in bundle and PLOTLY_MIME in bundle
    y = bundle[PLOTLY_MIME]["data"][0]["y"]  # plotly's typed-array encoding: base64 of the raw values
    decoded = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    np.testing.assert_array_equal(decoded, np.asarray(fig.data[0].y))


def test_pre_save_hook_keeps_only_the_static_copy_of_live_outputs():
    live = {"data": {WIDGET_VIEW_MIME: {"model_id": "x"}, PLOTLY_MIME: {"data": []}, "text/plain": "fig"}}
    plain_widget = {"data": {WIDGET_VIEW_MIME: {"model_id": "y"}, "text/plain": "slider"}}
    model = {"type": "notebook", "content": {"cells": [
        {"cell_type": "code", "outputs": [live, plain_widget]},
        {"cell_type": "markdown", "source": "text"},
    ]}}
    strip_live_views(model)
    assert set(live["data"]) == {PLOTLY_MIME, "text/plain"}
    assert WIDGET_VIEW_MIME in plain_widget["data"]  # nothing static to fall back on: left alone
    strip_live_views({"type": "file", "content": "abc"})  # other files pass through untouched


def test_feedback_html_renders_code_and_escapes():
    html = Feedback("Ex", False, "Use `torch.prod`, not <loops>.", "see `math.log`")._repr_html_()
    assert "<code>torch.prod</code>" in html and "&lt;loops&gt;" in html and "<code>math.log</code>" in html
    assert "`" not in html
