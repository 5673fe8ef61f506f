"""Criss-cross attention: the functional op, its dispatch, and the CCNet module.

``criss_cross_attention(q, k, v, impl="auto")`` is the single entry point. With
``auto`` it runs the fused Triton kernel for CUDA tensors when Triton is
importable, and otherwise the memory-lean PyTorch op (``lean.py``: keeps no
attention tensor for backward). ``impl="reference"|"lean"|"triton"`` (the
function's argument, or the :class:`CrissCrossAttention` module's) forces one;
``reference`` is the plain autograd version the others are tested against. A
forced ``triton`` that cannot run is an error, never a silent fallback.

``SEGATTN_CCA_IMPL=reference|lean|triton`` is the user's override for code that
does not pass ``impl`` (``impl=None``, every model's default): it picks the
implementation of a whole run without touching a config.
"""
import os

import torch
from torch import nn

from ..errors import ConfigError, RunError
from .lean import criss_cross_attention_lean, criss_cross_block_inference
from .reference import criss_cross_attention_reference

IMPLS = ("auto", "reference", "lean", "triton")
ENV_VAR = "SEGATTN_CCA_IMPL"


def triton_available() -> bool:
    """True when the Triton kernels of this package can be imported."""
    try:
        from . import triton_kernels  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_can_run(t: torch.Tensor) -> bool:
    # The interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors.
    return t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


def select_impl(q: torch.Tensor, impl: str = None) -> str:
    """Name of the implementation ``criss_cross_attention(q, ..., impl=impl)`` runs.

    ``impl=None`` takes ``SEGATTN_CCA_IMPL`` (default ``auto``).
    """
    if impl is None:
        source = ENV_VAR
        impl = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    else:
        source = "impl"
    if impl not in IMPLS:
        raise ConfigError(f"{source}={impl!r} is not one of {', '.join(IMPLS)}")
    if torch.onnx.is_in_onnx_export():
        # ONNX export traces the reference: matmul, where, softmax and concat, all standard ONNX operators
        return "reference"
    if impl in ("reference", "lean"):
        return impl
    if impl == "triton":
        if not triton_available():
            raise RunError(f"{source}=triton but triton is not importable; install triton or ask for another impl")
        if not _triton_can_run(q):
            raise RunError(
                f"{source}=triton but the inputs are on {q.device}; the Triton kernel needs CUDA tensors "
                "(or TRITON_INTERPRET=1 for CPU testing)"
            )
        from .triton_kernels import check_supported

        check_supported(q)
        return "triton"
    if q.is_cuda and triton_available():
        from .triton_kernels import supported

        if supported(q):
            return "triton"
    return "lean"


def _check_shapes(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4:
        raise ValueError(f"criss_cross_attention expects q, k (B, Cq, H, W) of equal shape and v (B, C, H, W); "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if v.shape[0] != q.shape[0] or v.shape[2:] != q.shape[2:]:
        raise ValueError(f"v {tuple(v.shape)} must share batch and spatial size with q {tuple(q.shape)}")


def criss_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: str = None) -> torch.Tensor:
    """Criss-cross attention of ``q, k (B, Cq, H, W)`` over ``v (B, C, H, W)``.

    Each pixel attends to its row and column (H + W - 1 positions, itself once)
    under one softmax of q.k energies. No gamma or residual: see
    :class:`CrissCrossAttention` for the CCNet module. ``impl``: ``auto``,
    ``reference``, ``lean`` or ``triton``; None takes ``SEGATTN_CCA_IMPL``.
    """
    _check_shapes(q, k, v)
    impl = select_impl(q, impl)
    if impl == "triton":
        from .triton_kernels import criss_cross_attention_triton

        return criss_cross_attention_triton(q, k, v)
    if impl == "lean":
        return criss_cross_attention_lean(q, k, v)
    return criss_cross_attention_reference(q, k, v)


class CrissCrossAttention(nn.Module):
    """CCNet criss-cross attention module (Huang et al., ICCV 2019, Fig. 3).

    ``x (B, C, H, W) -> gamma * CCA(q(x), k(x), v(x)) + x`` with q, k 1x1
    convolutions to ``C // 8`` channels, v a 1x1 convolution to C, and gamma a
    learnt scalar initialised to 0 so the module starts as the identity.
    Without autograd, on the lean path, the value projection is computed one
    channel chunk at a time (:func:`criss_cross_block_inference`), so inference
    holds no full-size copy of v. ``impl`` is passed to
    :func:`criss_cross_attention` (None: ``SEGATTN_CCA_IMPL``, else ``auto``).
    """

    def __init__(self, in_channels: int, reduction: int = 8, impl: str = None):
        super().__init__()
        self.impl = impl
        qk = max(1, in_channels // reduction)
        self.query_conv = nn.Conv2d(in_channels, qk, 1)
        self.key_conv = nn.Conv2d(in_channels, qk, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def qkv(self, x: torch.Tensor):
        return self.query_conv(x), self.key_conv(x), self.value_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the dispatch judges q's shape (q/k channels), so ask it about a q-shaped view of x
        if not torch.is_grad_enabled() and select_impl(x[:, :self.query_conv.out_channels], self.impl) == "lean":
            return criss_cross_block_inference(x, self.query_conv, self.key_conv, self.value_conv, self.gamma)
        q, k, v = self.qkv(x)
        return self.gamma * criss_cross_attention(q, k, v, self.impl) + x


def set_impl(module: nn.Module, impl: str) -> nn.Module:
    """Every :class:`CrissCrossAttention` inside ``module`` runs ``impl`` from now on; returns ``module``."""
    if impl is not None and impl not in IMPLS:
        raise ConfigError(f"impl={impl!r} is not one of {', '.join(IMPLS)}")
    for m in module.modules():
        if isinstance(m, CrissCrossAttention):
            m.impl = impl
    return module
