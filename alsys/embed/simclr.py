"""SimCLR (Chen et al. 2020) as the thesis trains it (Table A.2), with a nested-dimension mode.

- Backbone: CIFAR-style ResNet18 (3x3 stem, no max-pool; ResNet34 for CIFAR-100), or a small
  CNN for digits (`small_cnn_fc`, its 4x4 maps through a fully connected layer) and for folders
  of small images (`small_cnn32_fc`, the same with one more max-pool); each gives 512 features.
- Which tensor is the embedding (``SimCLRConfig.features``):
  - ``"backbone"`` (default): the backbone's features before the projection head, as the
    reference code takes them (``pre_lasts`` in the SCAN/TypiClust code) and as SimCLR
    prescribes ("we discard the projection head", thesis 2.3). The embedding at D is the first D
    backbone features; each trained D has its own projection head on that prefix.
  - ``"head"``: the D-dimensional projection-head output (one reading of thesis chapter 4,
    "SimCLR models trained with output dimension D"); it serves the contrastive task, and on
    digits it loses class structure the longer SimCLR trains.
- Loss: NT-Xent. ``mode="nested"`` (beyond the thesis, after Matryoshka representation
  learning) averages the loss over every D in ``dims``, so one training yields every dimension;
  ``mode="separate"`` trains one model per D.
- Optimiser: SGD with momentum, cosine schedule over the epochs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alsys.device import torch_device
from alsys.embed.augment import CIFAR_AUGMENT, DIGITS_AUGMENT, AugmentConfig, augment
from alsys.errors import InputError

BACKBONES = (
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet18",
    "small_cnn",
    "small_cnn_fc",
    "small_cnn32_fc",
)
FEATURES = ("backbone", "head")


@dataclass(frozen=True)
class SimCLRConfig:
    """Training hyperparameters; each preset below gives its source."""

    backbone: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4  # TypiClust/SCAN SimCLR config
    temperature: float = 0.1  # NT-Xent temperature, TypiClust/SCAN SimCLR config
    head_hidden: int = 512
    width: int | None = None  # the small CNNs' feature width (see make_backbone)
    # The embedding: backbone features before the projection head (reference code) or the head
    # output; see the module docstring.
    features: str = "backbone"
    projection_dim: int = 128  # output of each projection head in "backbone" mode (SimCLR)
    augment: AugmentConfig = CIFAR_AUGMENT
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)  # CIFAR-10 channel statistics
    std: tuple[float, ...] = (0.2023, 0.1994, 0.2010)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InputError("simclr.backbone", f"must be one of {', '.join(BACKBONES)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"simclr.{name}", "must be at least 1")
        if not self.lr > 0:
            raise InputError("simclr.lr", "must be > 0")
        if self.features not in FEATURES:
            raise InputError("simclr.features", f"must be one of {', '.join(FEATURES)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, SimCLRConfig] = {
    # Table A.2: ResNet18, 500 epochs, batch 512, SGD lr 0.4, cosine, momentum 0.9, no Nesterov.
    "cifar10": SimCLRConfig("resnet18_cifar", epochs=500, batch_size=512, lr=0.4),
    "cifar10_lt": SimCLRConfig("resnet18_cifar", epochs=500, batch_size=512, lr=0.4),
    # Table A.2 has no CIFAR-100 entry (a pretrained ResNet34 was used); same schedule here.
    "cifar100": SimCLRConfig(
        "resnet34_cifar",
        epochs=500,
        batch_size=512,
        lr=0.4,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
    # Table A.2: ResNet18, 500 epochs, batch 32, lr 0.025. 224 px images keep the ImageNet stem
    # (7x7 stride-2 conv and max-pool) and ImageNet channel statistics.
    "isic2019": SimCLRConfig(
        "resnet18",
        epochs=500,
        batch_size=32,
        lr=0.025,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
    # Digits (ours): a small CNN whose 4x4 maps feed a 512-D fully connected layer (the
    # reference's 512 features); the embedding is that layer, before the projection heads.
    "digits": SimCLRConfig(
        "small_cnn_fc",
        epochs=100,
        batch_size=256,
        lr=0.4,
        head_hidden=128,
        augment=DIGITS_AUGMENT,
        mean=(0.3,),
        std=(0.4,),
    ),
}
PRESETS["digits_lt"] = PRESETS["digits"]  # the same images, fewer of them
# A folder of your own small images (ours, `alsys select --images`, 32 px by default): the CIFAR
# ResNet18 needs ~50x the multiply-adds, so the small CNN with an early max-pool; CIFAR's
# augmentations and channel statistics (natural images). 30 epochs on 1,797 images at 32 px cost
# the CPU time of digits' 100 (about a minute on 2 cores); on digits as PNGs, 30 epochs reach
# 0.95 10-NN accuracy (15: 0.93).
PRESETS["imagefolder"] = SimCLRConfig(
    "small_cnn32_fc", epochs=30, batch_size=256, lr=0.4, head_hidden=128
)


def preset(dataset: str, epochs: int | None = None) -> SimCLRConfig:
    if dataset not in PRESETS:
        raise InputError("dataset", f"no SimCLR preset for {dataset}; have {', '.join(PRESETS)}")
    config = PRESETS[dataset]
    return config if epochs is None else replace(config, epochs=epochs)


class SmallCNN(nn.Module):
    """Three conv blocks for 8x8 single-channel digits.

    ``fc=None``: global average pooling, ``width`` features (128 by default). ``fc=F``: the last
    block's 4x4 maps are kept in place and a fully connected layer maps them to F features, so
    where a stroke lies still counts (an average over an 8x8 digit's positions discards it).
    ``early_pool``: a max-pool after the first block too, so 32 px images reach the last block
    at 8x8 (a training step takes less than half the time on a CPU).
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 128,
        fc: int | None = None,
        early_pool: bool = False,
    ) -> None:
        super().__init__()
        self.out_dim = fc or width

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        first = [block(in_channels, 32), *([nn.MaxPool2d(2)] if early_pool else [])]
        self.body = nn.Sequential(*first, block(32, 64), nn.MaxPool2d(2), block(64, width))
        self.fc: nn.Module | None = None
        if fc is not None:
            self.fc = nn.Sequential(
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
                nn.Linear(width * 16, fc, bias=False),
                nn.BatchNorm1d(fc),
                nn.ReLU(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.body(x)
        features: torch.Tensor = maps.mean(dim=(2, 3)) if self.fc is None else self.fc(maps)
        return features


def resnet(depth: int, cifar_stem: bool, in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet without its classifier; 512 features. The CIFAR stem is a 3x3
    stride-1 conv and no max-pool, for 32 px images."""
    from torchvision.models import resnet18, resnet34

    net = (resnet18 if depth == 18 else resnet34)()
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    module: nn.Module = net
    return module


def make_backbone(name: str, in_channels: int, width: int | None = None) -> tuple[nn.Module, int]:
    """The backbone and its feature width: ``width`` sets the small CNNs' (128 features for
    ``small_cnn``, 512 for ``small_cnn_fc`` and ``small_cnn32_fc``); ResNets give 512."""
    if name.startswith("small_cnn"):
        fc = (width or 512) if name.endswith("_fc") else None
        cnn = SmallCNN(in_channels, 128 if fc else width or 128, fc, name == "small_cnn32_fc")
        return cnn, cnn.out_dim
    depth = 34 if name == "resnet34_cifar" else 18
    return resnet(depth, cifar_stem=name.endswith("_cifar"), in_channels=in_channels), 512


def _projection_head(width: int, hidden: int, out: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out)
    )


class SimCLR(nn.Module):
    """Backbone plus projection head(s).

    ``forward`` returns the ``out_dim``-dimensional embedding used downstream: the first
    ``out_dim`` backbone features (``features="backbone"``) or the head output (``"head"``).
    ``projections`` returns what the loss compares, one tensor per trained D in ``dims``.
    """

    def __init__(
        self,
        config: SimCLRConfig,
        out_dim: int,
        in_channels: int,
        dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.dims = [int(d) for d in (dims or [out_dim])]
        self.out_dim = out_dim
        self.on_backbone = config.features == "backbone"
        self.backbone, width = make_backbone(config.backbone, in_channels, config.width)
        if self.on_backbone:
            if max(*self.dims, out_dim) > width:
                raise InputError(
                    "dims", f"{config.backbone} gives {width} features; cannot embed in {out_dim}"
                )
            heads = [
                _projection_head(d, config.head_hidden, config.projection_dim) for d in self.dims
            ]
        else:
            heads = [_projection_head(width, config.head_hidden, out_dim)]
        self.heads = nn.ModuleList(heads)

    def projections(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One (n, ·) projection per D in ``dims``: each prefix's own head on the backbone, or
        the prefixes of the one head's output."""
        h = self.backbone(x)
        if self.on_backbone:
            return [head(h[:, :d]) for head, d in zip(self.heads, self.dims, strict=True)]
        z = self.heads[0](h)
        return [z[:, :d] for d in self.dims]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x)
        return h[:, : self.out_dim] if self.on_backbone else self.heads[0](h)  # type: ignore[no-any-return]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of two views (n, D) each: cross-entropy of each view's positive among 2n - 1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def mean_nt_xent(
    p1: Sequence[torch.Tensor], p2: Sequence[torch.Tensor], temperature: float
) -> torch.Tensor:
    """Mean NT-Xent over pairs of projections, one pair per trained D (Matryoshka nesting)."""
    return torch.stack([nt_xent(a, b, temperature) for a, b in zip(p1, p2, strict=True)]).mean()


def nested_nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, dims: Sequence[int], temperature: float
) -> torch.Tensor:
    """Mean NT-Xent over the prefixes z[:, :d]: the loss of the ``"head"`` features."""
    return mean_nt_xent([z1[:, :d] for d in dims], [z2[:, :d] for d in dims], temperature)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def _normalize(x: torch.Tensor, config: SimCLRConfig) -> torch.Tensor:
    mean = torch.tensor(config.mean[: x.shape[1]]).view(1, -1, 1, 1)
    std = torch.tensor(config.std[: x.shape[1]]).view(1, -1, 1, 1)
    return (x - mean) / std


def train_simclr(
    images: np.ndarray,
    config: SimCLRConfig,
    dims: Sequence[int],
    seed: int,
    nested: bool,
    show_progress: bool = True,
) -> tuple[SimCLR, list[float]]:
    """Trains one SimCLR model; returns it (in eval mode) and the mean loss of each epoch.

    Nested: the model embeds in max(dims) and the loss averages over every D in ``dims`` (see
    :class:`SimCLR`). Separate: ``dims`` holds one D. All randomness comes from ``seed``: weight
    initialisation (inside a forked RNG state, leaving torch's global RNG as it was), batches and
    augmentations.
    """
    from tqdm import tqdm

    dims = sorted(int(d) for d in dims)
    if not nested and len(dims) != 1:
        raise InputError("dims", "separate mode trains one dimension at a time")
    data = _to_tensor(images)
    n = data.shape[0]
    batch = min(config.batch_size, n)
    if batch < 2:
        raise InputError("images", "SimCLR needs at least two images")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SimCLR(config, dims[-1], data.shape[1], dims)
    device = torch_device()
    model.to(device)  # augmentations are drawn on the CPU, the network runs on ``device``
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history: list[float] = []
    bar = tqdm(
        range(config.epochs),
        desc=f"simclr {config.backbone} D={'/'.join(map(str, dims))} ({device.type})",
        file=sys.stderr,
        disable=not show_progress,
    )
    model.train()
    for _ in bar:
        order = torch.randperm(n, generator=gen)
        losses = []
        for start in range(0, n - batch + 1, batch):  # drop the last partial batch (BatchNorm)
            x = data[order[start : start + batch]]
            v1 = _normalize(augment(x, config.augment, gen), config).to(device)
            v2 = _normalize(augment(x, config.augment, gen), config).to(device)
            loss = mean_nt_xent(model.projections(v1), model.projections(v2), config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
        schedule.step()
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return model, history


@torch.no_grad()
def embed_images(
    model: SimCLR, images: np.ndarray, config: SimCLRConfig, batch: int = 1024
) -> np.ndarray:
    """(N, H, W, C) uint8 -> (N, D) float32 embeddings (``SimCLR.forward``), no augmentation."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, images.shape[0], batch):
        x = _normalize(_to_tensor(images[start : start + batch]), config).to(device)
        chunks.append(model(x).cpu().numpy().astype(np.float32))
    return np.concatenate(chunks)
