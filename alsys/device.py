"""Where torch work runs: ``$ALSYS_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) when set, else the
first visible CUDA GPU, else the CPU.

Under Ray a task or trial that was given a GPU (a fraction of one too) sees it through
``CUDA_VISIBLE_DEVICES``; one given none sees no GPU, so it runs on the CPU. Random draws
(batch order, augmentations, crops) always come from CPU ``torch.Generator``s, so a seed picks
the same batches on either device; CPU and GPU arithmetic still differ in the last bits.

On a GPU, cuDNN and cuBLAS are put in their deterministic modes, so the same seed on the same
machine trains the same weights and picks the same selections (set ``ALSYS_DETERMINISTIC=0``
to trade that for speed).
"""

from __future__ import annotations

import os

import torch

from alsys.errors import InputError


def torch_device() -> torch.device:
    wanted = os.environ.get("ALSYS_DEVICE", "").strip()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError as error:
            problem = f"{wanted!r} is not a torch device ({error})"
            raise InputError("ALSYS_DEVICE", problem) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("ALSYS_DEVICE", f"{wanted!r} asked for, but no CUDA GPU is visible")
        _deterministic(device)
        return device
    if not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda")
    _deterministic(device)
    return device


def _deterministic(device: torch.device) -> None:
    if device.type != "cuda" or os.environ.get("ALSYS_DETERMINISTIC", "1") == "0":
        return
    # cuBLAS reads this when its first handle is made, i.e. before the first GPU matmul.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
