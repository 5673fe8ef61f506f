"""Which device a run uses, which autocast dtype it trains in, and which memory format it runs in."""
import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but torch sees no CUDA device; use train.device=cpu")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device):
    """``train.amp`` -> the autocast dtype, or None for float32.

    fp16 runs on CUDA only (with a GradScaler); bf16 anywhere; ``auto`` is fp16 on
    CUDA, bf16 on a CPU with native bf16 arithmetic (AVX512-BF16 / AMX, where
    where oneDNN's bf16 convolutions are faster), float32 on other CPUs.
    """
    if amp == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    if amp == "fp16":
        return torch.float16 if device.type == "cuda" else None
    return torch.bfloat16 if amp == "bf16" else None


def memory_format(channels_last: bool) -> torch.memory_format:
    """``train.channels_last`` / ``eval.channels_last`` -> the model's memory format.

    Channels-last (NHWC) convolutions are oneDNN's and cuDNN's fast path
    (``benchmarks/mmseg_models.py`` measures both formats), and the criss-cross
    op then reads its inputs without a transposing copy.
    """
    return torch.channels_last if channels_last else torch.contiguous_format
