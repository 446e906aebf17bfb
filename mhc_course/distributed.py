"""Data parallelism for the trainer: one process per device under ``torchrun``, or a single process.

``torchrun --nproc_per_node=N`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``setup`` joins the
process group (gloo on CPU, NCCL on CUDA) and picks this process's device. Every rank draws
the same global batch and keeps its own slice of rows, DDP averages the gradients, so N
processes take the same steps as one process with the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank, world size and the device it trains on."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def rows(self, global_batch: int) -> slice:
        """This rank's rows of a global batch; the batch must split evenly."""
        if global_batch % self.world:
            raise ValueError(f"batch_size={global_batch} must be divisible by the number of processes ({self.world})")
        per = global_batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def mean(self, t: Tensor) -> Tensor:
        """The average of ``t`` over ranks (``t`` itself in a single process)."""
        if not self.active:
            return t
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value is not None else None


def setup(device: str = "auto") -> Dist:
    """Join the process group if launched by torchrun, and choose the device.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use --device cpu")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local = _env_int("LOCAL_RANK") or 0
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(local)
        where = torch.device("cuda", local)
    else:
        where = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=where if use_cuda else None)
    return Dist(rank=rank, world=world, device=where)


def teardown(d: Dist) -> None:
    """Leave the process group (a no-op in a single process)."""
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
