"""Seeded random weights for each pretrained encoder, saved in its library's own format: what
the encoder tests and benchmarks/encoders.py load through alsys's real loading code (no
weights can be downloaded here; the time of a forward pass does not depend on their values)."""

from __future__ import annotations

from pathlib import Path


def random_weights(name: str, folder: Path, seed: int = 0) -> Path:
    """The encoder's architecture with seeded random weights, saved as its library saves it
    (torchvision and OpenCLIP: a torch state dict; timm: safetensors at the 518 px of the
    DINOv2 checkpoints, so loading resamples the position embedding as for the real ones)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if name in ("resnet50", "vit_b_16"):
            import torchvision

            file = folder / f"{name}-random.pth"
            torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), file)
        elif name.startswith("dinov2"):
            import timm
            from safetensors.torch import save_file

            arch = {"dinov2_vits14": "vit_small_patch14_dinov2"}.get(
                name, "vit_base_patch14_dinov2"
            )
            file = folder / "model.safetensors"
            save_file(timm.create_model(arch, pretrained=False).state_dict(), str(file))
        else:
            import open_clip

            file = folder / "open_clip_pytorch_model.bin"
            torch.save(open_clip.create_model("ViT-B-32").state_dict(), file)
    return file
