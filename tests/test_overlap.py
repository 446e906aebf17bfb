"""The high-priority post/res stream: the schematic's consistency, and the live measurement where CUDA exists."""

import pytest
import torch

from mhc_course.overlap import ORDERS, SCHEMATIC_ROWS, dualpipe_schematic, overlap_timings


def finish(segments, kind):
    return max(s.end for s in segments if s.kind == kind)


def test_schematic_rows_do_not_overlap_and_priority_helps():
    for high in (False, True):
        segments = dualpipe_schematic(high)
        assert {s.row for s in segments} <= set(SCHEMATIC_ROWS)
        for row in SCHEMATIC_ROWS:
            spans = sorted((s.start, s.end) for s in segments if s.row == row)
            assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)), row
        assert all(s.end > s.start for s in segments)
        post = next(s for s in segments if s.kind == "post_res")
        comm = next(s for s in segments if s.kind == "comm")
        mlp = next(s for s in segments if s.kind == "mlp")
        assert post.start >= mlp.end and comm.start >= post.end  # the send needs post/res, post/res needs the MLP
    low, high = dualpipe_schematic(False), dualpipe_schematic(True)
    assert finish(high, "post_res") < finish(low, "post_res")
    assert finish(high, "comm") < finish(low, "comm")
    assert next(s for s in high if s.kind == "post_res").row == "high-priority stream"


def test_overlap_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the live test below runs instead")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        overlap_timings()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_high_priority_post_res_finishes_first():
    t = overlap_timings(tokens=4096, C=1024, matmul_size=4096, matmuls=8, repeats=3)
    done = dict(zip(t["orders"], t["post_res_done"], strict=True))
    assert list(t["orders"]) == list(ORDERS)
    assert done[ORDERS[3]] < done[ORDERS[0]]  # high priority: not queued behind the matmuls
    assert done[ORDERS[1]] < done[ORDERS[0]]
