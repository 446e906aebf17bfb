"""mhc_course: the tested package behind the mHC course.

The functional contract (shared by the PyTorch reference and the Triton kernels):
``sinkhorn_knopp``, ``mhc_coefficients``, ``mhc_pre``, ``mhc_post_res``, ``amax_gain``,
``composite``. Modules: ``MHC``, ``HyperConnection``, ``Residual`` and ``make_connection``.
"""

import os

import torch

# Without CUDA the Triton kernels run in Triton's interpreter, which must be switched on before
# triton itself is imported (its built-ins are defined at import time). Importing mhc_course
# first is enough.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from .connections import CONNECTIONS, make_connection  # noqa: E402
from .hyper_connections import HyperConnection  # noqa: E402
from .metrics import amax_gain, composite, composite_prefixes, gain_profile  # noqa: E402
from .mhc import MHC, mhc_coefficients, mhc_post_res, mhc_pre  # noqa: E402
from .profiles import pick, profile  # noqa: E402
from .residual import PostNormResidual, PreNormResidual, Residual  # noqa: E402
from .sinkhorn import sinkhorn_error, sinkhorn_knopp, sinkhorn_knopp_log  # noqa: E402
from .stream_connection import StreamConnection  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CONNECTIONS",
    "HyperConnection",
    "MHC",
    "PostNormResidual",
    "PreNormResidual",
    "Residual",
    "StreamConnection",
    "amax_gain",
    "composite",
    "composite_prefixes",
    "gain_profile",
    "make_connection",
    "mhc_coefficients",
    "mhc_post_res",
    "mhc_pre",
    "pick",
    "profile",
    "sinkhorn_error",
    "sinkhorn_knopp",
    "sinkhorn_knopp_log",
]
