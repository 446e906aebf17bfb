"""Lesson 06's checks: pass on the solutions, explain wrong kernels and weak tests, wait for unfinished ones."""

import mhc_course.kernels  # noqa: F401  (first: sets TRITON_INTERPRET=1 without CUDA before kernels are defined)
import torch
import triton
import triton.language as tl
from triton.runtime.jit import KernelInterface

from mhc_course import mhc_post_res
from mhc_course.exercises.l06_kernels import (
    BROKEN,
    check_post_res_kernel,
    check_post_res_test,
    check_unfused_forward_bytes,
    kernel_device,
    launch_post_res,
    post_res_inputs,
    solution_post_res_kernel,
    solution_post_res_test,
    solution_unfused_forward_bytes,
)
from mhc_course.kernel_harness import poisoned, relative_error


@triton.jit
def unfinished(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr):
    raise NotImplementedError


@triton.jit
def does_not_compile(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr):
    c = tl.arange(0, 3)  # not a power of two
    tl.store(out_ptr + c, tl.load(x_ptr + c))


@triton.jit
def loops(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr, TRANSPOSE: tl.constexpr,
          POST: tl.constexpr, TAIL: tl.constexpr):
    """A loop version of the kernel, with switchable mistakes."""
    t = tl.program_id(0)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = c < C if TAIL else c < (C // BC) * BC
    f = tl.load(f_ptr + t * C + c, mask=mask)
    for i in tl.static_range(N):
        acc = tl.load(post_ptr + t * N + i) * f if POST else f * 0.0
        for j in tl.static_range(N):
            r = tl.load(res_ptr + t * N * N + j * N + i) if TRANSPOSE else tl.load(res_ptr + t * N * N + i * N + j)
            acc += r * tl.load(x_ptr + t * N * C + j * C + c, mask=mask)
        tl.store(out_ptr + t * N * C + i * C + c, acc, mask=mask)


class flagged(KernelInterface):  # noqa: N801  (used like a kernel)
    """``loops`` with its mistake switches bound: the check launches kernel[grid](..., N=n, BC=block)."""

    def __init__(self, **flags):
        self.fn, self.flags = loops.fn, flags

    def __getitem__(self, grid):
        return lambda *args, **kwargs: loops[grid](*args, **kwargs, **self.flags)


def test_solutions_pass():
    assert check_post_res_kernel(solution_post_res_kernel).passed is True
    assert check_post_res_test(solution_post_res_test).passed is True
    assert check_unfused_forward_bytes(solution_unfused_forward_bytes).passed is True


def test_unfinished_is_not_attempted():
    fb = check_post_res_kernel(unfinished)
    assert fb.passed is None and "NotImplementedError" in fb.message

    def test(post_res):
        raise NotImplementedError

    assert check_post_res_test(test).passed is None
    assert check_unfused_forward_bytes(lambda n, C, eb: (_ for _ in ()).throw(NotImplementedError)).passed is None


def test_kernel_that_does_not_compile_is_reported():
    fb = check_post_res_kernel(does_not_compile)
    assert fb.passed is False and "failed to compile or run" in fb.message and "power of 2" in fb.message


def test_plain_function_is_rejected():
    fb = check_post_res_kernel(lambda *a: None)
    assert fb.passed is False and "@triton.jit" in fb.message


def test_wrong_kernels_get_specific_messages():
    assert check_post_res_kernel(flagged(TRANSPOSE=False, POST=True, TAIL=True)).passed is True  # loops work too
    fb = check_post_res_kernel(flagged(TRANSPOSE=True, POST=True, TAIL=True))
    assert fb.passed is False and "transposed" in fb.message
    fb = check_post_res_kernel(flagged(TRANSPOSE=False, POST=False, TAIL=True))
    assert fb.passed is False and "H_post[i]·f term is missing" in fb.message
    fb = check_post_res_kernel(flagged(TRANSPOSE=False, POST=True, TAIL=False))
    assert fb.passed is False and "Channels 32…39" in fb.message and "never written" in fb.message


def test_broken_kernels_are_really_broken():
    x, f, h_post, h_res = post_res_inputs(3, 4, 40)
    want = mhc_post_res(x, f, h_post, h_res)
    for name, impl in BROKEN.items():
        with poisoned():
            assert relative_error(impl(x, f, h_post, h_res), want) > 1e-3, name
    dev = kernel_device()
    got = launch_post_res(solution_post_res_kernel, x.to(dev), f.to(dev), h_post.to(dev), h_res.to(dev), block=8)
    assert relative_error(got, want) < 1e-6


def test_weak_tests_are_caught():
    def calls_nothing(post_res):
        pass

    fb = check_post_res_test(calls_nothing)
    assert fb.passed is False and "never called post_res" in fb.message

    def too_strict(post_res):
        x, f, h_post, h_res = post_res_inputs(4, 4, 40)
        exact = mhc_post_res(x.double(), f.double(), h_post.double(), h_res.double())
        assert torch.equal(post_res(x, f, h_post, h_res).double(), exact)  # float32 never equals float64 exactly

    fb = check_post_res_test(too_strict)
    assert fb.passed is False and "rejected the correct kernel" in fb.message and "tolerance" in fb.message

    def block_multiple(post_res):  # C a multiple of 16: the tail bugs go unnoticed
        x, f, h_post, h_res = post_res_inputs(4, 4, 32)
        with poisoned():
            assert relative_error(post_res(x, f, h_post, h_res), mhc_post_res(x, f, h_post, h_res)) < 1e-5

    fb = check_post_res_test(block_multiple)
    assert fb.passed is False and "unwritten tail" in fb.message

    def not_poisoned(post_res):
        x, f, h_post, h_res = post_res_inputs(4, 4, 40)
        assert relative_error(post_res(x, f, h_post, h_res), mhc_post_res(x, f, h_post, h_res)) < 1e-5

    fb = check_post_res_test(not_poisoned)
    assert fb.passed is False and "already holds the right values" in fb.message and "poisoned()" in fb.message

    def symmetric_res(post_res):  # a symmetric H_res cannot reveal a transpose
        x, f, h_post, _ = post_res_inputs(4, 4, 40)
        h_res = torch.full((4, 4, 4), 0.25)
        with poisoned():
            assert relative_error(post_res(x, f, h_post, h_res), mhc_post_res(x, f, h_post, h_res)) < 1e-5

    fb = check_post_res_test(symmetric_res)
    assert fb.passed is False and "transposed" in fb.message


def test_byte_count_wrong_answers():
    fb = check_unfused_forward_bytes(lambda n, C, eb: (3 * n + 2) * C * eb)
    assert fb.passed is False and "fused count" in fb.message
    fb = check_unfused_forward_bytes(lambda n, C, eb: (4 * n + 2) * C)
    assert fb.passed is False and "multiply by element_bytes" in fb.message
    fb = check_unfused_forward_bytes(lambda n, C, eb: (8 * n + 2) * C * eb)
    assert fb.passed is False and "(4n+2)" in fb.message
