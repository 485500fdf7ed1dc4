"""Device and precision choice for the torch backends (taggers, audio LMs, ASR).

The decisions take plain arguments so they are testable without torch or a GPU; the
`torch_*` wrappers feed them what the installed torch reports.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any

_LOGGER = logging.getLogger(__name__)


class DeviceError(ValueError):
    """The requested device cannot be used here; the message says why."""


def resolve_device(requested: str, *, cuda_available: bool, cuda_count: int = 1) -> str:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into a concrete device name."""
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not cuda_available:
            raise DeviceError(
                f"--device {requested} was asked for but this torch sees no CUDA device "
                "(is the CUDA build of torch installed and a GPU visible?)"
            )
        if ":" in requested:
            index_text = requested.split(":", 1)[1]
            if not index_text.isdigit() or int(index_text) >= cuda_count:
                raise DeviceError(
                    f"--device {requested}: there are {cuda_count} CUDA device(s) (cuda:0..)"
                )
        return requested
    raise DeviceError(f"--device must be auto, cpu or cuda[:N], not {requested!r}")


def pick_dtype_name(device: str, *, bf16_supported: bool) -> str:
    """Precision to try first: bf16 (or fp16 on GPUs without it) on CUDA, fp32 on CPU.

    CPUs run fp32 fastest in torch's kernels and some ops lack half-precision CPU kernels,
    so half precision is only tried on CUDA; the loaders fall back to fp32 when a model
    does not run in it.
    """
    if device.startswith("cuda"):
        return "bfloat16" if bf16_supported else "float16"
    return "float32"


def torch_device(requested: str) -> str:
    """`resolve_device` with what the installed torch reports."""
    import torch

    available = bool(torch.cuda.is_available())
    count = torch.cuda.device_count() if available else 0
    return resolve_device(requested, cuda_available=available, cuda_count=count)


def torch_dtype(device: str) -> Any:
    """`pick_dtype_name` as a torch dtype, with what the installed torch reports."""
    import torch

    bf16 = device.startswith("cuda") and bool(torch.cuda.is_bf16_supported())
    return getattr(torch, pick_dtype_name(device, bf16_supported=bf16))


def check_runs_or_float32(
    name: str,
    dtype: Any,
    probe: Callable[[], object],
    to_float32: Callable[[], None],
    error: Callable[[str], Exception],
) -> Any:
    """Prove a freshly loaded model runs; in half precision, fall back to float32 once.

    `probe` runs the model on something harmless and raises when it cannot (an op without a
    half-precision kernel, non-finite output); `to_float32` converts the model. Returns the
    dtype the model now runs in; raises `error(message)` when it runs in neither. The one
    loader rule for every torch backend, so taggers and audio LMs degrade the same way.
    """
    import torch

    try:
        probe()
        return dtype
    except Exception as err:
        if dtype == torch.float32:
            raise error(f"{name} does not run: {err}") from err
        _LOGGER.warning("%s does not run in %s (%s); using float32", name, dtype, err)
    to_float32()
    try:
        probe()
    except Exception as err:
        raise error(f"{name} does not run: {err}") from err
    return torch.float32
