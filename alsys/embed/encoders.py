"""Pretrained image encoders for ``alsys select --images DIR --encoder NAME``.

Each encoder is built by its own library and reads its weights from a local file: the one
named by ``--weights``, or the file its library would have downloaded, looked up in that
library's usual cache (torch hub's ``checkpoints`` folder, the Hugging Face hub cache).
Nothing is ever downloaded here: a missing file is a one-line error naming the file and where
to put it. Each encoder brings its own preprocessing (image size, resizing, normalisation)
from its library, and returns one feature vector per image:

| name | library, model | features |
|---|---|---|
| resnet50 | torchvision ResNet-50, IMAGENET1K_V2 | 2048, after global pooling |
| vit_b_16 | torchvision ViT-B/16, IMAGENET1K_V1 | 768, the class token |
| dinov2_vits14 | timm vit_small_patch14_dinov2.lvd142m, at 224 px | 384, the class token |
| dinov2_vitb14 | timm vit_base_patch14_dinov2.lvd142m, at 224 px | 768, the class token |
| openclip_vitb32 | OpenCLIP ViT-B-32, laion2b_s34b_b79k | 512, the image embedding |

DINOv2 runs at 224 px (16 x 16 patches of 14 px; timm resamples the position embedding of
the 518 px checkpoint when it loads it), about 5x cheaper than at 518 px.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alsys.errors import InputError, lookup

SIMCLR = "simclr"  # the in-house default (alsys.embed.folder), trained on the folder
DINOV2_SIZE = 224


@dataclass(frozen=True)
class Loaded:
    """A model ready to embed: ``features`` maps a batch (b, 3, S, S) to (b, d); ``transform``
    turns an upright RGB PIL image into the model's normalised (3, S, S) input."""

    features: Callable[[Any], Any]
    transform: Callable[[Any], Any]
    modules: Any  # the torch module, to move to a device and set to eval


@dataclass(frozen=True)
class Encoder:
    """A registered encoder: how to find its weights and how to build it around them."""

    name: str
    title: str
    image_size: int
    package: str  # its distribution, whose version is part of the store key
    cache_hint: Callable[[], tuple[Path | None, str]]  # (cached file or None, where to put it)
    build: Callable[[Path], Loaded]


def _torch_hub_checkpoint(url: str) -> Callable[[], tuple[Path | None, str]]:
    def find() -> tuple[Path | None, str]:
        import torch

        file = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        hint = f"put {file.name} (from {url}) in {file.parent}"
        return (file if file.is_file() else None), hint

    return find


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, resolved now (as huggingface_hub resolves it at import)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _hf_hub_file(repo: str, names: tuple[str, ...]) -> Callable[[], tuple[Path | None, str]]:
    def find() -> tuple[Path | None, str]:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub reads it: never download
        from huggingface_hub import try_to_load_from_cache

        cache = hf_hub_cache()
        for name in names:
            found = try_to_load_from_cache(repo, name, cache_dir=cache)
            if isinstance(found, str):
                return Path(found), ""
        hint = f"put {names[0]} of the Hugging Face repo {repo} in the hub cache {cache}"
        return None, f"{hint} (e.g. huggingface-cli download {repo} {names[0]})"

    return find


def _torchvision(arch: str, weights: str) -> Callable[[Path], Loaded]:
    def build(file: Path) -> Loaded:
        import torch
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None)
        state = _load_state(file, torch)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise InputError("--weights", f"{file} does not fit {arch}: {_first(error)}") from None
        if arch.startswith("resnet"):
            model.fc = torch.nn.Identity()  # the 2048 pooled features, not the classes
        else:
            model.heads = torch.nn.Identity()  # the class token, not the classes
        enum = torchvision.models.get_model_weights(arch)[weights]
        return Loaded(model, enum.transforms(), model)

    return build


def _load_state(file: Path, torch: Any) -> Any:
    """A state dict from a .safetensors or torch file (never unpickling code)."""
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file: the library's word, on one line
        raise InputError("--weights", f"cannot read {file} ({_first(error)})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _timm(name: str) -> Callable[[Path], Loaded]:
    def build(file: Path) -> Loaded:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import timm

        try:
            model = timm.create_model(
                name,
                pretrained=True,  # from the local file below only: the overlay sets the source
                pretrained_cfg_overlay={"file": str(file)},
                num_classes=0,
                img_size=DINOV2_SIZE,
            )
        except (RuntimeError, KeyError, ValueError, OSError) as error:
            raise InputError("--weights", f"{file} does not fit {name}: {_first(error)}") from None
        data: Any = importlib.import_module("timm.data")  # typed loosely by timm
        config = data.resolve_model_data_config(model)
        config["input_size"] = (3, DINOV2_SIZE, DINOV2_SIZE)  # the checkpoint's cfg says 518
        transform = data.create_transform(**config, is_training=False)
        return Loaded(model, transform, model)

    return build


def _open_clip(arch: str) -> Callable[[Path], Loaded]:
    def build(file: Path) -> Loaded:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import open_clip

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(file))
        except (RuntimeError, KeyError, ValueError, OSError) as error:
            raise InputError("--weights", f"{file} does not fit {arch}: {_first(error)}") from None
        return Loaded(model.encode_image, preprocess, model)

    return build


def _first(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


_RN50 = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
_VITB16 = "https://download.pytorch.org/models/vit_b_16-c867db91.pth"
_CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
ENCODERS: dict[str, Encoder] = {
    "resnet50": Encoder(
        "resnet50",
        "torchvision ResNet-50 (IMAGENET1K_V2)",
        224,
        "torchvision",
        _torch_hub_checkpoint(_RN50),
        _torchvision("resnet50", "IMAGENET1K_V2"),
    ),
    "vit_b_16": Encoder(
        "vit_b_16",
        "torchvision ViT-B/16 (IMAGENET1K_V1)",
        224,
        "torchvision",
        _torch_hub_checkpoint(_VITB16),
        _torchvision("vit_b_16", "IMAGENET1K_V1"),
    ),
    "dinov2_vits14": Encoder(
        "dinov2_vits14",
        "DINOv2 ViT-S/14 (timm vit_small_patch14_dinov2.lvd142m)",
        DINOV2_SIZE,
        "timm",
        _hf_hub_file("timm/vit_small_patch14_dinov2.lvd142m", _TIMM_FILES),
        _timm("vit_small_patch14_dinov2.lvd142m"),
    ),
    "dinov2_vitb14": Encoder(
        "dinov2_vitb14",
        "DINOv2 ViT-B/14 (timm vit_base_patch14_dinov2.lvd142m)",
        DINOV2_SIZE,
        "timm",
        _hf_hub_file("timm/vit_base_patch14_dinov2.lvd142m", _TIMM_FILES),
        _timm("vit_base_patch14_dinov2.lvd142m"),
    ),
    "openclip_vitb32": Encoder(
        "openclip_vitb32",
        "OpenCLIP ViT-B/32 (laion2b_s34b_b79k)",
        224,
        "open-clip-torch",
        _hf_hub_file(_CLIP_REPO, _CLIP_FILES),
        _open_clip("ViT-B-32"),
    ),
}
ENCODER_NAMES = (SIMCLR, *ENCODERS)


def get_encoder(name: str) -> Encoder:
    return lookup(ENCODERS, name, "--encoder")


def weights_file(encoder: Encoder, given: str | None) -> Path:
    """``--weights`` if given, else the file in the library's cache; a one-line error naming
    the file and where to put it when there is none."""
    if given is not None:
        file = Path(given).expanduser()
        if not file.is_file():
            raise InputError("--weights", f"no such file: {given}")
        return file.resolve()
    found, hint = encoder.cache_hint()
    if found is None:
        raise InputError(
            "--encoder",
            f"{encoder.name}: no weights here and nothing is downloaded: {hint}, "
            "or pass --weights FILE",
        )
    return found.resolve()


def weights_sha256(file: Path, cache_folder: Path) -> str:
    """The file's SHA-256, remembered by path, size and mtime (a 330 MB file takes a second)."""
    stat = file.stat()
    key = f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}"
    cache = cache_folder / "weights-sha256.json"
    try:
        known: dict[str, str] = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        from alsys.files import write_atomically

        with contextlib.suppress(OSError):  # a read-only store: hash again next time
            write_atomically(cache, json.dumps(known, indent=1))
    return known[key]
