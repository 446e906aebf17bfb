"""Lesson 06's exercises: a post+res kernel in Triton, a test that catches broken kernels, counting bytes.

Exercise 6.1: the learner writes the body of a ``@triton.jit`` kernel with the signature of
``solution_post_res_kernel``; ``check_post_res_kernel`` launches it (on the CPU through Triton's
interpreter) into NaN-poisoned outputs and compares with ``mhc_course.mhc_post_res``.

Exercise 6.2: the learner writes a test ``test(post_res)`` that raises when ``post_res``
(signature of ``mhc_course.mhc_post_res``, for x (T, n, C)) is wrong; ``check_post_res_test``
runs it on our kernel (it must pass) and on the deliberately broken kernels of ``BROKEN``
(each must be caught).

Exercise 6.3: activation bytes per token when coefficients, pre and post+res are three kernels.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

import torch
from torch import Tensor

from .. import kernels  # first: without CUDA it sets TRITON_INTERPRET=1, which Triton reads when it is imported
from ..kernel_harness import poisoned, relative_error
from ..mhc import mhc_post_res
from ..sinkhorn import sinkhorn_knopp
from .checking import Feedback, attempt, compare_tensors

# isort: split
import triton  # after mhc_course.kernels, see above
import triton.language as tl
from triton.runtime.jit import KernelInterface

BLOCK = 16  # channels per program in the broken kernels of exercise 6.2


def kernel_device() -> torch.device:
    """Where kernels run: the GPU, or the CPU when Triton interprets them."""
    interpreted = os.environ.get("TRITON_INTERPRET") == "1" or not torch.cuda.is_available()
    return torch.device("cpu" if interpreted else "cuda")


@triton.jit
def solution_post_res_kernel(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr):
    """Program (t, b): out[t, i, c] = Σ_j res[t, i, j]·x[t, j, c] + post[t, i]·f[t, c] for channels c of block b.

    x, out (T, N, C); f (T, C); post (T, N); res (T, N, N); all contiguous. N a power of two.
    """
    t = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = c < C  # the last block may stick out past C
    s = tl.arange(0, N)
    x = tl.load(x_ptr + t * N * C + s[:, None] * C + c[None, :], mask=mask[None, :], other=0.0).to(tl.float32)
    f = tl.load(f_ptr + t * C + c, mask=mask, other=0.0).to(tl.float32)
    h_res = tl.load(res_ptr + t * N * N + s[:, None] * N + s[None, :])  # (N, N): row i mixes into stream i
    h_post = tl.load(post_ptr + t * N + s)
    out = tl.sum(h_res[:, :, None] * x[None, :, :], axis=1) + h_post[:, None] * f[None, :]  # (N, BC)
    tl.store(out_ptr + t * N * C + s[:, None] * C + c[None, :], out.to(out_ptr.dtype.element_ty), mask=mask[None, :])


@triton.jit
def _post_res_variant(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr,
                      TRANSPOSE_RES: tl.constexpr, WITH_POST: tl.constexpr):
    """The solution kernel with two switchable bugs: H_res read transposed, H_post·f left out."""
    t = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = c < C
    s = tl.arange(0, N)
    x = tl.load(x_ptr + t * N * C + s[:, None] * C + c[None, :], mask=mask[None, :], other=0.0).to(tl.float32)
    if TRANSPOSE_RES:
        h_res = tl.load(res_ptr + t * N * N + s[None, :] * N + s[:, None])
    else:
        h_res = tl.load(res_ptr + t * N * N + s[:, None] * N + s[None, :])
    out = tl.sum(h_res[:, :, None] * x[None, :, :], axis=1)
    if WITH_POST:
        f = tl.load(f_ptr + t * C + c, mask=mask, other=0.0).to(tl.float32)
        out += tl.load(post_ptr + t * N + s)[:, None] * f[None, :]
    tl.store(out_ptr + t * N * C + s[:, None] * C + c[None, :], out.to(out_ptr.dtype.element_ty), mask=mask[None, :])


def launch_post_res(kernel: KernelInterface, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor, *,
                    block: int = BLOCK, cover_tail: bool = True, out: Tensor | None = None, **flags) -> Tensor:
    """Launch a post+res kernel over T × ⌈C / block⌉ programs (⌊C / block⌋ with ``cover_tail=False``).

    x (T, n, C), f (T, C), h_post (T, n), h_res (T, n, n) on the kernel's device; ``out``
    defaults to ``torch.empty_like(x)`` (NaN inside ``poisoned()``). Returns out (T, n, C).
    """
    if x.dim() != 3 or f.shape != (x.shape[0], x.shape[2]) or h_post.shape != x.shape[:2] \
            or h_res.shape != (*x.shape[:2], x.shape[1]):
        raise ValueError(f"need x (T, n, C), f (T, C), h_post (T, n), h_res (T, n, n); got x {tuple(x.shape)}, "
                         f"f {tuple(f.shape)}, h_post {tuple(h_post.shape)}, h_res {tuple(h_res.shape)}")
    T, n, C = x.shape
    x, f, h_post, h_res = (t.contiguous() for t in (x, f, h_post.float(), h_res.float()))
    out = torch.empty_like(x) if out is None else out
    programs = triton.cdiv(C, block) if cover_tail else C // block
    if programs > 0:
        kernel[(T, programs)](x, f, h_post, h_res, out, C, N=n, BC=block, **flags)
    return out


def _on_kernel_device(fn: Callable[..., Tensor]) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """Run ``fn`` on the kernel's device and return its result on the inputs' device."""

    def run(x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        dev = kernel_device()
        return fn(x.to(dev), f.to(dev), h_post.to(dev), h_res.to(dev)).to(x.device)

    return run


def _transposed(x, f, h_post, h_res):
    return launch_post_res(_post_res_variant, x, f, h_post, h_res, TRANSPOSE_RES=True, WITH_POST=True)


def _without_post(x, f, h_post, h_res):
    return launch_post_res(_post_res_variant, x, f, h_post, h_res, TRANSPOSE_RES=False, WITH_POST=False)


def _tail_unwritten(x, f, h_post, h_res):
    return launch_post_res(solution_post_res_kernel, x, f, h_post, h_res, cover_tail=False)


def _tail_unwritten_stale(x, f, h_post, h_res):
    """The tail bug where the buffer already holds the right values: what a caching allocator can hand
    back after a test computed (and freed) the reference output of the same shape. Poisoning defeats it."""
    out = torch.empty_like(x)
    if not torch.isnan(out).all():  # not poisoned: a recycled buffer that held the right answer
        out.copy_(mhc_post_res(x, f, h_post, h_res))
    return launch_post_res(solution_post_res_kernel, x, f, h_post, h_res, cover_tail=False, out=out)


BROKEN: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "wrong stream order (H_res read transposed)": _on_kernel_device(_transposed),
    "missing H_post·f term": _on_kernel_device(_without_post),
    f"unwritten tail (⌊C/{BLOCK}⌋ programs instead of ⌈C/{BLOCK}⌉)": _on_kernel_device(_tail_unwritten),
    "unwritten tail, in a buffer that already holds the right values": _on_kernel_device(_tail_unwritten_stale),
}
CORRECT = _on_kernel_device(kernels.mhc_post_res)


def post_res_inputs(T: int, n: int, C: int, generator: torch.Generator | None = None,
                    device: str | torch.device = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fresh float32 inputs (from torch's global generator unless one is given): x (T, n, C), f (T, C),
    H_post = 2σ(·) (T, n), H_res = Sinkhorn(·) (T, n, n)."""

    def rnd(*shape):
        return torch.randn(*shape, generator=generator)

    h_res = sinkhorn_knopp(2 * rnd(T, n, n), 3)  # rows exact, columns not: a transpose shows
    return tuple(t.to(device) for t in (rnd(T, n, C), rnd(T, C), 2 * torch.sigmoid(rnd(T, n)), h_res))


def _error_text(exc: BaseException, head: int = 200, tail: int = 400) -> str:
    """The error's type and message; a long one (Triton quotes the source first) keeps its start and its end."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= head + tail else f"{text[:head]} … {text[-tail:]}"


def _not_attempted(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, NotImplementedError) or "NotImplementedError" in str(exc)[:200]:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _unfinished_source(kernel: KernelInterface) -> bool:
    fn = getattr(kernel, "fn", None)
    try:
        return fn is not None and "raise NotImplementedError" in inspect.getsource(fn)
    except (OSError, TypeError):
        return False


def _unwritten_message(out: Tensor, C: int, block: int) -> str:
    nan = torch.isnan(out)
    if nan.all():
        return "Nothing was written: every output element is still NaN. Does your kernel tl.store into out_ptr?"
    full = C - C % block
    if C % block and nan[..., full:].all() and not nan[..., :full].any():
        return (f"Channels {full}…{C - 1} (the last, partial block of {block}) were never written: they are "
                "still NaN. Launch covers them; the loads and the store need a mask c < C, not a smaller range.")
    idx = tuple(int(i) for i in nan.nonzero()[0])
    return f"{int(nan.sum())} of {nan.numel()} output elements were never written (still NaN), e.g. index {idx}."


def _diagnose(got: Tensor, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> str | None:
    if torch.allclose(got, mhc_post_res(x, f, h_post, h_res.mT), rtol=1e-4, atol=1e-5):
        return "Your output equals Σ_j H_res[j, i]·x[j] + …: you read H_res transposed (row i, column j is at i·N + j)."
    if torch.allclose(got, h_res @ x, rtol=1e-4, atol=1e-5):
        return "Your output equals H_res·x alone: the H_post[i]·f term is missing."
    if torch.allclose(got, h_res @ x + f.unsqueeze(-2), rtol=1e-4, atol=1e-5):
        return "Your output adds f to every stream without the weight H_post[i]."
    return None


def check_post_res_kernel(kernel: KernelInterface) -> Feedback:
    """Exercise 6.1: launch the learner's kernel on fresh inputs into NaN-poisoned outputs."""
    name = "Exercise 6.1 (post+res kernel in Triton)"
    hint = ("One program owns token t = tl.program_id(0) and channels c = tl.program_id(1)·BC + tl.arange(0, BC); "
            "mask = c < C. Load x as an (N, BC) tile at x_ptr + t·N·C + s[:, None]·C + c[None, :] with "
            "s = tl.arange(0, N), H_res as (N, N) at res_ptr + t·N·N + s[:, None]·N + s[None, :], then "
            "out = tl.sum(H_res[:, :, None] * x[None, :, :], axis=1) + H_post[:, None] * f[None, :] and tl.store it "
            "with the same mask. (A tl.static_range loop over i and j works too.)")
    if not isinstance(kernel, KernelInterface):
        return Feedback(name, False, f"Expected a @triton.jit function, got {type(kernel).__name__}: "
                        "put @triton.jit on the line above `def`.", hint)
    if _unfinished_source(kernel):
        return Feedback(name, None, "Replace `raise NotImplementedError` with your kernel's body.", hint)
    dev = kernel_device()
    cases = ((6, 4, 40, 16), (3, 2, 20, 8))  # C not a multiple of the block: a partial last block
    for T, n, C, block in cases:
        x, f, h_post, h_res = post_res_inputs(T, n, C)
        try:
            with poisoned():
                got = launch_post_res(kernel, x.to(dev), f.to(dev), h_post.to(dev), h_res.to(dev), block=block)
        except Exception as exc:  # a kernel can fail to compile or to run: report it, never crash the lesson
            if _not_attempted(exc):
                return Feedback(name, None, "Replace `raise NotImplementedError` with your kernel's body.", hint)
            return Feedback(name, False, f"Your kernel failed to compile or run at T={T}, n={n}, C={C}, BC={block}: "
                            f"{_error_text(exc)}", hint)
        got = got.cpu()
        if torch.isnan(got).any():
            return Feedback(name, False, f"At T={T}, n={n}, C={C}, BC={block}: {_unwritten_message(got, C, block)}",
                            hint)
        want = mhc_post_res(x, f, h_post, h_res)
        fb = compare_tensors(name, got, want, hint=hint, rtol=1e-5, atol=1e-5, what=f"output at n={n}, C={C}")
        if not fb.passed:
            why = _diagnose(got, x, f, h_post, h_res)
            return Feedback(name, False, why or fb.message, hint) if why else fb
    return Feedback(name, True, "Every element written and equal to mhc_course.mhc_post_res for "
                    + " and ".join(f"T={T}, n={n}, C={C} in blocks of {b}" for T, n, C, b in cases) + ".")


def solution_post_res_test(post_res: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> None:
    """Raise AssertionError unless ``post_res`` matches the reference on fresh inputs, every element written."""
    for T, n, C in ((5, 4, 40), (3, 2, 7)):  # C not a multiple of a power-of-two block; C below the block
        x, f, h_post, h_res = post_res_inputs(T, n, C)
        want = mhc_post_res(x, f, h_post, h_res)
        with poisoned():  # unwritten outputs stay NaN
            got = post_res(x, f, h_post, h_res)
        err = relative_error(got, want)
        assert err < 1e-5, f"relative error {err:.2e} at T={T}, n={n}, C={C}"


def check_post_res_test(test: Callable[[Callable], None]) -> Feedback:
    """Exercise 6.2: the learner's test must pass our kernel and fail every kernel of ``BROKEN``."""
    name = "Exercise 6.2 (a test that catches broken kernels)"
    hint = ("Draw fresh random x (T, n, C), f, H_post, H_res (not symmetric: e.g. sinkhorn_knopp of random logits "
            "with few iterations), compare post_res(...) with mhc_course.mhc_post_res by relative error (fp32: "
            "1e-5), pick C that is not a multiple of 16, and call post_res inside poisoned() so that unwritten "
            "elements are NaN.")
    calls = 0

    def counted(impl):
        def run(*args):
            nonlocal calls
            calls += 1
            return impl(*args)
        return run

    _, fb = attempt(name, test, counted(CORRECT), hint=hint)
    if fb is not None:
        if fb.passed is None:
            return fb
        error = fb.message.removeprefix("Your code raised ").rstrip(": ")
        return Feedback(name, False, f"Your test rejected the correct kernel (mhc_course.kernels.mhc_post_res): "
                        f"{error}. Compare with a tolerance: float32 kernels differ from the reference by rounding.",
                        hint)
    if calls == 0:
        return Feedback(name, False, "Your test never called post_res: it cannot tell a broken kernel from ours.", hint)
    for what, broken in BROKEN.items():
        try:
            test(broken)
        except Exception:  # the test raised: it caught this kernel (AssertionError or otherwise)
            continue
        advice = " Call post_res inside poisoned()." if "already holds" in what else ""
        return Feedback(name, False, f"Your test passed a broken kernel: {what}.{advice}", hint)
    return Feedback(name, True, f"Your test passes our kernel and catches all {len(BROKEN)} broken ones: "
                    + "; ".join(BROKEN) + ".")


def solution_unfused_forward_bytes(n: int, C: int, element_bytes: int) -> int:
    """Activation bytes per token with three forward kernels: coefficients, pre, post+res (sublayer not counted)."""
    coefficients = n * C  # read x
    pre = n * C + C  # read x again, write h
    post_res = (n + 1) * C + n * C  # read x and f, write x_next
    return (coefficients + pre + post_res) * element_bytes


def check_unfused_forward_bytes(fn: Callable[[int, int, int], int]) -> Feedback:
    """Exercise 6.3: activation bytes per token when pre is a kernel of its own."""
    name = "Exercise 6.3 (bytes of an unfused pre)"
    hint = ("List each kernel's activation reads and writes per token: coefficients read x (n·C); pre reads x "
            "(n·C) and writes h (C); post+res reads x and f ((n+1)·C) and writes x_next (n·C). Multiply by the "
            "bytes per element.")
    for n, C, eb in ((4, 2048, 2), (1, 7, 4), (8, 96, 2), (2, 4096, 4)):
        got, fb = attempt(name, fn, n, C, eb, hint=hint)
        if fb:
            return fb
        want = solution_unfused_forward_bytes(n, C, eb)
        if got == want:
            continue
        if got == (3 * n + 2) * C * eb:
            why = "that is the fused count (3n+2)·C: with pre as its own kernel, x is read once more."
        elif got == (4 * n + 2) * C:
            why = "right count of elements; multiply by element_bytes."
        else:
            why = f"expected {want} = (4n+2)·C·{eb}."
        return Feedback(name, False, f"For n={n}, C={C}, {eb} bytes per element you gave {got!r}; {why}", hint)
    return Feedback(name, True, "(4n+2)·C·bytes: fusing pre into the coefficient kernel saves one read of x (n·C).")
