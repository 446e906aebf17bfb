"""Measuring activation memory and time of layer stacks on any machine, CPU included.

Three instruments:

- ``SavedTensors``: the bytes autograd keeps for the backward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks``; tensors that share a storage (views, the same
  tensor saved by several ops) count once, and parameters are left out. This is the memory a
  forward pass leaves behind for its backward, the quantity the recomputation policy changes.
- ``PeakLiveBytes``: the largest number of bytes held at once by tensors created inside the
  block, followed op by op with a ``TorchDispatchMode`` (a storage is released when its last
  tensor dies). Over forward + backward it plays the part of ``torch.cuda.max_memory_allocated``
  on a machine without a GPU, and it sees the transient memory of the recomputation.
- ``cuda_peak_bytes`` (GPU only) and ``fastest_seconds`` (wall time).

``measure_stack`` applies them to a ``StackRun``: L layers built by ``make_stack`` under one of
the policies of ``mhc_course.memory_model``; ``sweep_group_sizes`` measures every policy and L_r.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from .memory_model import POLICIES, recompute_peak_elements, saved_elements
from .mhc import MHC
from .recompute import run_recomputed, run_stored
from .residual import Residual
from .stream_connection import StreamConnection


class SavedTensors:
    """Context manager counting the distinct storages autograd saves for backward inside it.

    Args:
        exclude: tensors whose storages are not activations (a model's parameters).

    After (or during) the block, ``nbytes`` is the total size of the saved storages that are
    still alive and ``count`` how many there are.
    """

    def __init__(self, exclude: Iterable[Tensor] = ()) -> None:
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self._seen: dict[int, tuple[weakref.ref, int]] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if storage.nbytes() and ptr not in self._exclude:
            known = self._seen.get(ptr)
            if known is None or known[0]() is None:  # a new storage (or a freed one's address reused)
                self._seen[ptr] = (weakref.ref(storage), storage.nbytes())
        # A detached alias: same storage and version counter, but no grad_fn. Handing back t itself would,
        # for an op that saves its own output (exp, sigmoid…), make a cycle output → node → output that
        # keeps the graph alive after it is dropped.
        return t.detach()

    def _alive(self) -> list[int]:
        return [size for ref, size in self._seen.values() if ref() is not None]

    @property
    def nbytes(self) -> int:
        return sum(self._alive())

    @property
    def count(self) -> int:
        return len(self._alive())

    def __enter__(self) -> SavedTensors:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class PeakLiveBytes(TorchDispatchMode):
    """Context manager following the bytes held by storages that ops create inside it.

    A storage counts from the op that creates it (an output sharing no storage with the op's
    inputs) until it is freed. ``live`` is the current total, ``peak`` the largest seen. Storages
    that existed before the block (parameters, inputs) are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: dict[int, weakref.ref] = {}

    def _release(self, key: int, size: int) -> None:
        self.live -= size
        self._tracked.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [t for t in _tensors(out) if t.untyped_storage().nbytes()]
        if not outputs:
            return out
        inputs = {id(t.untyped_storage()) for t in _tensors((args, tuple(kwargs.values())))}
        for t in outputs:
            storage = t.untyped_storage()
            key = id(storage)
            if key in inputs or key in self._tracked:
                continue
            size = storage.nbytes()
            self._tracked[key] = weakref.ref(storage, lambda _, k=key, s=size: self._release(k, s))
            self.live += size
            self.peak = max(self.peak, self.live)
        return out


def _tensors(obj: object) -> Iterator[Tensor]:
    """The tensors in an op's arguments or results: nested tuples and lists of tensors (faster than pytree)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device | str = "cuda") -> int:
    """Peak of ``torch.cuda.memory_allocated`` above its starting value while ``fn()`` runs (CUDA only)."""
    if not torch.cuda.is_available():
        raise ValueError("cuda_peak_bytes needs a CUDA device; torch.cuda.is_available() is False")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def fastest_seconds(fns: Sequence[Callable[[], object]], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of each ``fn()``, the fastest of ``repeats`` runs after ``warmup`` (CUDA synchronised).

    The functions take turns (fn₀, fn₁, …, then again), so that other work on the machine slows
    them alike, and the fastest run is the one least disturbed by it.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    best = [math.inf] * len(fns)
    for r in range(warmup + repeats):
        for i, fn in enumerate(fns):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r >= warmup:
                best[i] = min(best[i], time.perf_counter() - t0)
    return best


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore the previous setting.

    Timing small CPU workloads on one thread makes them far less sensitive to other work on the machine.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mlp_sublayer(C: int, hidden: int) -> nn.Module:
    """A stand-in for the MLP of a block: RMSNorm → Linear(C, hidden) → GELU → Linear(hidden, C)."""
    return nn.Sequential(nn.RMSNorm(C, eps=1e-6), nn.Linear(C, hidden), nn.GELU(), nn.Linear(hidden, C))


def sublayer_saved_elements(layer: nn.Module, C: int, *, tokens: int = 4, dtype: torch.dtype = torch.float32) -> int:
    """S: the elements per token a sublayer saves for its own backward (its input included), measured."""
    device = next(layer.parameters()).device
    h = torch.randn(tokens, C, dtype=dtype, device=device, requires_grad=True)
    with SavedTensors(exclude=layer.parameters()) as saved:
        out = layer(h)
    size = saved.nbytes / (tokens * h.element_size())
    del out
    return round(size)


def make_stack(policy: str, *, depth: int, n: int, C: int, hidden: int, seed: int = 0,
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
               ) -> tuple[list[StreamConnection], list[nn.Module]]:
    """L connections and L ``mlp_sublayer``s: ``Residual`` (n = 1) for "residual", ``MHC`` otherwise.

    The MHC parameters are moved away from their initialisation by N(0, 0.1²) noise (φ scaled
    by 1/sqrt(n·C)) so that the coefficients are not those of a fresh model.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if policy == "residual" and n != 1:
        raise ValueError(f"the residual policy has n = 1, got n={n}")
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        layers = [mlp_sublayer(C, hidden).to(dtype=dtype) for _ in range(depth)]
        conns = [] if policy == "residual" else [MHC(n, C, layer_index=i).to(dtype=dtype) for i in range(depth)]
        with torch.no_grad():
            for conn in conns:
                conn.phi.add_(0.1 * torch.randn_like(conn.phi) / (n * C) ** 0.5)
                conn.bias.add_(0.1 * torch.randn_like(conn.bias))
                conn.alpha.add_(0.1 * torch.randn_like(conn.alpha))
    layers = [layer.to(device) for layer in layers]
    if policy == "residual":
        return [Residual() for _ in range(depth)], layers
    conns = [conn.to(device) for conn in conns]
    return conns, layers


def run_stack(policy: str, conns: list[StreamConnection], layers: list[nn.Module], x: Tensor,
              group_size: int | None = None) -> Tensor:
    """Streams (..., n, C) through the stack: plain for "residual" and "stored", grouped for "recompute"."""
    if policy == "recompute":
        return run_recomputed(x, conns, layers, group_size)
    if policy == "stored":
        return run_stored(x, conns, layers)
    if policy == "residual":
        for conn, layer in zip(conns, layers, strict=True):
            x = conn(x, layer)
        return x
    raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")


def forward_saved_bytes(policy: str, conns: list[StreamConnection], layers: list[nn.Module], x: Tensor,
                        group_size: int | None = None) -> int:
    """Bytes of activations autograd keeps after one forward pass of the stack (parameters left out)."""
    params = [p for m in (*conns, *layers) for p in m.parameters()]
    with SavedTensors(exclude=params) as saved:
        y = run_stack(policy, conns, layers, x, group_size)
    nbytes = saved.nbytes
    del y  # frees the graph and what it saved
    return nbytes


@dataclass
class StackRun:
    """One stack under one policy, with its input x (tokens, n, C) and an upstream gradient w of the same shape."""

    policy: str
    group_size: int | None
    conns: list[StreamConnection]
    layers: list[nn.Module]
    x: Tensor
    w: Tensor

    @classmethod
    def build(cls, policy: str, *, depth: int, n: int, C: int, hidden: int, tokens: int,
              group_size: int | None = None, seed: int = 0, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> StackRun:
        conns, layers = make_stack(policy, depth=depth, n=n, C=C, hidden=hidden, seed=seed, dtype=dtype,
                                   device=device)
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        x = torch.randn(tokens, n, C, generator=gen, dtype=dtype, device=device).requires_grad_(True)
        w = torch.randn(tokens, n, C, generator=gen, dtype=dtype, device=device)
        return cls(policy, group_size, conns, layers, x, w)

    def step(self) -> None:
        """One forward and backward pass (gradients accumulate into the parameters' .grad)."""
        run_stack(self.policy, self.conns, self.layers, self.x, self.group_size).backward(self.w)

    def saved_bytes(self) -> int:
        return forward_saved_bytes(self.policy, self.conns, self.layers, self.x, self.group_size)


def measure_stack(run: StackRun, *, peak: bool = True) -> dict[str, object]:
    """Memory of one forward + backward pass of ``run``.

    Returns a dict: ``policy``, ``group_size``, ``tokens``, ``element_size``, ``saved_bytes`` (kept
    for the backward after the forward, activations only), ``peak_bytes`` (``PeakLiveBytes`` over
    forward + backward once every .grad exists; NaN if ``peak`` is False) and ``cuda_peak_bytes``
    (the same with ``torch.cuda.max_memory_allocated``; NaN off CUDA).
    """
    nan = float("nan")
    result = {"policy": run.policy, "group_size": run.group_size, "tokens": run.x.shape[0],
              "element_size": run.x.element_size(), "saved_bytes": run.saved_bytes(), "peak_bytes": nan,
              "cuda_peak_bytes": nan}
    if not peak:
        return result
    run.step()  # allocates every .grad, so the peaks below count activations, not gradient buffers
    with PeakLiveBytes() as tracker:
        run.step()
    result["peak_bytes"] = tracker.peak
    if run.x.device.type == "cuda":
        result["cuda_peak_bytes"] = cuda_peak_bytes(run.step, run.x.device)
    return result


def sweep_group_sizes(*, depth: int, n: int, C: int, hidden: int, tokens: int, group_sizes: Sequence[int],
                      repeats: int = 3, threads: int | None = 1, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> dict[str, object]:
    """Measure the residual stack (n = 1), the stored n-stream stack and the recomputed one at each L_r.

    Everything runs under ``torch_threads(threads)`` (None leaves the threads as they are). Every
    row holds ``measure_stack``'s result, ``seconds`` (forward + backward, the fastest of
    ``repeats`` interleaved runs), and the model's ``predicted_saved_bytes`` and, for recompute rows,
    ``predicted_peak_bytes`` (``memory_model``; one layer's working set not included).

    Returns:
        {"rows": [...], "sublayer": S (elements per token), "depth", "n", "C", "hidden", "tokens",
        "device": where it ran}.
    """
    layer = mlp_sublayer(C, hidden).to(device=device, dtype=dtype)
    sub = sublayer_saved_elements(layer, C, dtype=dtype)
    configs = [("residual", 1, None), ("stored", n, None)] + [("recompute", n, g) for g in group_sizes]
    runs = [StackRun.build(policy, depth=depth, n=streams, C=C, hidden=hidden, tokens=tokens, group_size=g,
                           dtype=dtype, device=device) for policy, streams, g in configs]
    with torch_threads(threads) if threads is not None else nullcontext():
        rows = [measure_stack(run) for run in runs]
        seconds = fastest_seconds([run.step for run in runs], repeats)
    for row, (policy, streams, g), sec in zip(rows, configs, seconds, strict=True):
        per_token = tokens * row["element_size"]
        row["seconds"] = sec
        row["predicted_saved_bytes"] = per_token * saved_elements(policy, depth=depth, n=streams, C=C, sublayer=sub,
                                                                  group_size=g)
        row["predicted_peak_bytes"] = float("nan") if g is None else per_token * recompute_peak_elements(
            depth=depth, n=streams, C=C, sublayer=sub, group_size=g)
    where = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "CPU"
    if threads is not None and torch.device(device).type == "cpu":
        where += f", timed on {threads} thread{'s' if threads > 1 else ''}"
    return {"rows": rows, "sublayer": sub, "depth": depth, "n": n, "C": C, "hidden": hidden, "tokens": tokens,
            "device": where}
