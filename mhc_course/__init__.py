"""mhc_course: the tested package behind the mHC course.

The functional contract (shared by the PyTorch reference and the Triton kernels):
``sinkhorn_knopp``, ``mhc_coefficients``, ``mhc_pre``, ``mhc_post_res``, ``amax_gain``,
``composite``. Modules: ``MHC``, ``HyperConnection``, ``Residual`` and ``make_connection``.
"""

from .connections import CONNECTIONS, make_connection
from .hyper_connections import HyperConnection
from .metrics import amax_gain, composite, composite_prefixes, gain_profile
from .mhc import MHC, mhc_coefficients, mhc_post_res, mhc_pre
from .profiles import pick, profile
from .residual import PostNormResidual, PreNormResidual, Residual
from .sinkhorn import sinkhorn_error, sinkhorn_knopp, sinkhorn_knopp_log
from .stream_connection import StreamConnection

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
