"""Data parallelism: two CPU processes under torchrun (gloo) take the same steps as one process.

What must match for that to hold: the initialisation (every rank seeds torch with the same seed
before building the model), the data order (every rank draws the same global batch from the
same seeded generator and keeps its own rows), no dropout, and equal shares of the batch (so
DDP's average of the ranks' mean gradients is the mean gradient of the whole batch).
"""

import os
import subprocess
import sys

import pytest
import torch

from mhc_course.distributed import Dist
from mhc_course.train import profile_config, read_log, train

FIELDS = ("loss", "val_loss", "grad_norm", "amax_fwd", "amax_bwd")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MHC_COURSE_PROFILE": "ci"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "mhc_course", "train", "--connection", "hc", "--profile", "ci", "--device", "cpu",
           "--out", str(tmp_path / "ddp"), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ddp = read_log(tmp_path / "ddp")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(profile_config("ci", connection="hc", device="cpu"), tmp_path / "single", progress=False)
    finally:
        torch.set_num_threads(before)

    assert [r["step"] for r in ddp] == [r["step"] for r in single]
    for a, b in zip(ddp, single, strict=True):
        for key in FIELDS:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
        assert a["layer_amax_bwd"] == pytest.approx(b["layer_amax_bwd"], rel=1e-5)
    # rank 0 alone wrote the log and the checkpoint
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["checkpoint.pt", "config.json", "log.jsonl"]
    assert '"world_size": 2' in (tmp_path / "ddp" / "config.json").read_text()


def test_ranks_take_equal_shares_of_the_global_batch():
    shares = [Dist(rank=r, world=4, device=torch.device("cpu")).rows(12) for r in range(4)]
    assert [(s.start, s.stop) for s in shares] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    with pytest.raises(ValueError, match=r"batch_size=7 must be divisible by the number of processes \(2\)"):
        Dist(rank=0, world=2, device=torch.device("cpu")).rows(7)
