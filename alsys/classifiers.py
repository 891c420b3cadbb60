"""The classifiers a trial trains each round, with what the strategies need from them.

- SSL: a linear layer (optional dropout before it) on frozen, L2-normalised embeddings.
- FSL: a ResNet18 (or the digits CNN) from scratch on the labeled images, Table A.1, on the
  GPU when one is visible (``alsys.device``).
- SSL stays on the CPU: a linear layer on a few hundred labeled rows gains nothing from a GPU.

Both implement :class:`alsys.pool.Model`, what the loop needs of a model: ``fit`` on the
labeled rows (from scratch), ``predict_proba`` (n, C), ``mc_proba`` (T, n, C) with dropout
active, ``dropout_proba`` (T, n, C): the trained head on its input features under a dropout
rate the caller chooses (DropQuery), and ``features`` (the input embeddings in SSL, the
penultimate layer in FSL) for Coreset and BADGE. All randomness comes from the seed given to
``fit`` (or, for ``dropout_proba``, to the call). :func:`model_for` builds a trial's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alsys.config import FSLClassifierConfig, SSLClassifierConfig, TrialConfig
from alsys.device import torch_device
from alsys.embed.simclr import make_backbone

_BATCH = 1024  # inference batch


def model_for(config: TrialConfig, n_classes: int) -> SSLClassifier | FSLClassifier:
    """The model a trial trains each round: the SSL linear head or the FSL network."""
    if config.setting == "ssl":
        return SSLClassifier(config.ssl, n_classes)
    return FSLClassifier(config.fsl, config.dataset, n_classes)


def _floats(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor over ``x``; copies only read-only arrays (e.g. from Ray's object store)."""
    return torch.from_numpy(np.require(x, dtype=np.float32, requirements=["C", "W"]))


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class LinearHead(nn.Module):
    def __init__(self, dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.linear(self.dropout(x))
        return logits


def _mc_dropout(module: nn.Module, enabled: bool) -> None:
    """Dropout layers in train mode (stochastic), everything else (BatchNorm) in eval mode."""
    module.eval()
    if enabled:
        for layer in module.modules():
            if isinstance(layer, nn.Dropout):
                layer.train()


def _dropout_with_generator(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    if p <= 0:
        return x
    keep = (torch.rand(x.shape, generator=gen) >= p).to(x.dtype)
    return x * keep / (1 - p)


def head_under_dropout(
    linear: nn.Linear, features: torch.Tensor, rate: float, passes: int, gen: torch.Generator
) -> np.ndarray:
    """(passes, n, C) softmax(linear(dropout(features))): each pass zeroes every feature with
    probability ``rate`` and scales the rest by 1 / (1 - rate), as torch's Dropout (and the
    DropQuery authors' classifier) do."""
    out = [
        F.softmax(linear(_dropout_with_generator(features, rate, gen)), 1).cpu().numpy()
        for _ in range(passes)
    ]
    return np.stack(out).astype(np.float64)


class SSLClassifier:
    """Linear classifier on embeddings (n, d), full-batch SGD for ``config.steps`` steps."""

    def __init__(self, config: SSLClassifierConfig, n_classes: int) -> None:
        self.config = config
        self.n_classes = n_classes
        self.head: LinearHead | None = None
        self.gen = _seeded(0)

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> SSLClassifier:
        self.gen = _seeded(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = LinearHead(x.shape[1], self.n_classes, self.config.dropout)
        data = _floats(x)
        targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
        optimizer = torch.optim.SGD(
            head.parameters(),
            lr=self.config.lr,
            momentum=self.config.momentum,
            weight_decay=self.config.weight_decay,
        )
        head.train()
        for _ in range(self.config.steps):
            logits = head.linear(_dropout_with_generator(data, self.config.dropout, self.gen))
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        head.eval()
        self.head = head
        return self

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        assert self.head is not None, "fit first"
        logits = self.head.linear(_floats(x))
        return F.softmax(logits, dim=1).numpy().astype(np.float64)

    @torch.no_grad()
    def mc_proba(self, x: np.ndarray, passes: int) -> np.ndarray:
        assert self.head is not None, "fit first"
        return head_under_dropout(
            self.head.linear, _floats(x), self.config.dropout, passes, self.gen
        )

    @torch.no_grad()
    def dropout_proba(self, x: np.ndarray, rate: float, passes: int, seed: int) -> np.ndarray:
        assert self.head is not None, "fit first"
        return head_under_dropout(self.head.linear, _floats(x), rate, passes, _seeded(seed))

    def features(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)


@dataclass(frozen=True)
class FSLPreset:
    backbone: str
    epochs: int
    batch_size: int
    lr: float
    pad: int  # random-crop padding of the TypiClust train transform
    flip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


FSL_PRESETS = {
    # Table A.1: 200 epochs, batch min(100, |L|), lr 0.025; TypiClust: RandomCrop(32, 4) + flip.
    "cifar": FSLPreset(
        "resnet18_cifar", 200, 100, 0.025, 4, True, (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    ),
    # Table A.1: batch min(50, |L|), lr 0.0125; 224 px images keep the ImageNet stem.
    "isic2019": FSLPreset(
        "resnet18", 200, 50, 0.0125, 16, True, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ),
    # Digits (ours): the small CNN, 50 epochs; crops padded by 1 px, no flips (6 vs 9).
    "digits": FSLPreset("small_cnn", 50, 100, 0.025, 1, False, (0.3,), (0.4,)),
}
FSL_PRESETS["digits_lt"] = FSL_PRESETS["digits"]  # the same images, fewer of them


def fsl_preset(dataset: str, config: FSLClassifierConfig) -> FSLPreset:
    base = FSL_PRESETS[dataset if dataset in FSL_PRESETS else "cifar"]
    return replace(
        base,
        backbone=config.backbone or base.backbone,
        epochs=config.epochs or base.epochs,
        batch_size=config.batch_size or base.batch_size,
        lr=config.lr or base.lr,
    )


class FSLNet(nn.Module):
    def __init__(self, backbone: str, in_channels: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone, width = make_backbone(backbone, in_channels)
        self.head = LinearHead(width, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.backbone(x))
        return logits


class FSLClassifier:
    """A network trained from scratch on labeled images (N, H, W, C) uint8."""

    def __init__(self, config: FSLClassifierConfig, dataset: str, n_classes: int) -> None:
        self.config = config
        self.preset = fsl_preset(dataset, config)
        self.n_classes = n_classes
        self.net: FSLNet | None = None
        self.gen = _seeded(0)
        self.device = torch.device("cpu")

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        pixels = np.require(images, requirements=["C", "W"])  # object-store arrays are read-only
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.preset.mean[: x.shape[1]]).view(1, -1, 1, 1)
        std = torch.tensor(self.preset.std[: x.shape[1]]).view(1, -1, 1, 1)
        return (x - mean) / std

    def _train_transform(self, x: torch.Tensor) -> torch.Tensor:
        """RandomCrop with zero padding, and a horizontal flip where the preset allows it."""
        n, _, h, w = x.shape
        pad = self.preset.pad
        padded = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=self.gen)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=self.gen)
        out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
        if self.preset.flip:
            flip = torch.rand(n, generator=self.gen) < 0.5
            out[flip] = out[flip].flip(3)
        return out

    def fit(self, images: np.ndarray, y: np.ndarray, seed: int) -> FSLClassifier:
        self.gen = _seeded(seed)
        data = self._tensor(images)
        targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = FSLNet(self.preset.backbone, data.shape[1], self.n_classes, self.config.dropout)
        # Crops and flips are drawn on the CPU; the network runs on the GPU when one is visible.
        self.device = torch_device()
        net.to(self.device)
        optimizer = torch.optim.SGD(
            net.parameters(),
            lr=self.preset.lr,
            momentum=self.config.momentum,
            nesterov=self.config.nesterov,
            weight_decay=self.config.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.preset.epochs)
        batch = min(self.preset.batch_size, data.shape[0])
        net.train()
        for _ in range(self.preset.epochs):
            order = torch.randperm(data.shape[0], generator=self.gen)
            for start in range(0, data.shape[0], batch):
                idx = order[start : start + batch]
                if idx.shape[0] < 2:
                    continue  # BatchNorm needs two samples
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=self.gen)))
                    x = self._train_transform(data[idx]).to(self.device)
                    loss = F.cross_entropy(net(x), targets[idx].to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            schedule.step()
        net.eval()
        self.net = net
        return self

    @torch.no_grad()
    def _batched(self, images: np.ndarray, fn: str, passes: int = 1) -> np.ndarray:
        assert self.net is not None, "fit first"
        chunks = []
        for start in range(0, images.shape[0], _BATCH):
            x = self._tensor(images[start : start + _BATCH]).to(self.device)
            if fn == "features":
                chunks.append(self.net.backbone(x).cpu().numpy())
            elif fn == "proba":
                chunks.append(F.softmax(self.net(x), 1).cpu().numpy())
            else:
                feats = self.net.backbone(x)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=self.gen)))
                    _mc_dropout(self.net, True)
                    chunks.append(
                        np.stack(
                            [
                                F.softmax(self.net.head(feats), 1).cpu().numpy()
                                for _ in range(passes)
                            ]
                        )
                    )
                    _mc_dropout(self.net, False)
        axis = 1 if fn == "mc" else 0
        return np.concatenate(chunks, axis=axis)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return self._batched(images, "proba").astype(np.float64)

    def mc_proba(self, images: np.ndarray, passes: int) -> np.ndarray:
        return self._batched(images, "mc", passes).astype(np.float64)

    def features(self, images: np.ndarray) -> np.ndarray:
        return self._batched(images, "features").astype(np.float32)

    @torch.no_grad()
    def dropout_proba(self, images: np.ndarray, rate: float, passes: int, seed: int) -> np.ndarray:
        """The head on the penultimate features under dropout; masks drawn on the CPU."""
        assert self.net is not None, "fit first"
        features = torch.from_numpy(self.features(images))
        linear = self.net.head.linear.cpu()
        try:
            return head_under_dropout(linear, features, rate, passes, _seeded(seed))
        finally:
            self.net.head.linear.to(self.device)
