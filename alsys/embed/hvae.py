"""A ladder-style hierarchical VAE (thesis chapter 3): its latents, ELBO and LLR^{>k} scores.

Three stochastic layers, z0 (lowest, nearest the data) to z2 (top), all Gaussian.

- Inference: a bottom-up deterministic path d0 = f0(x), d1 = f1(d0), d2 = f2(d1), then a
  top-down pass. q(z2|x) comes from d2. For j = 1, 0: t_j = g_j(z_{j+1}) gives the prior
  p(z_j|z_{j+1}), and [d_j, t_j] the posterior q(z_j|x, z_{j+1}) (the top-down inference of
  Sønderby et al. 2016 and Kingma et al. 2016, as in the HVAE of Havtorn et al. 2021).
- Generation: p(z2) = N(0, I), p(z_j|z_{j+1}), p(x|z0).
- Likelihood: Bernoulli over pixel intensities in [0, 1] for images (as the usual MNIST-style
  VAEs do; not a normalised density for grey levels, which shifts every score by the same
  kind of constant); a Gaussian with a learned per-feature scale for embedding vectors
  ("e-z_i": the HVAE on SimCLR embeddings), standardised on the train split.
- Training: Adam; the KL weight warms up linearly from 0 to 1 over ``warmup_epochs``, and each
  layer's KL is held at no less than ``free_bits`` nats per latent dimension (Kingma et al.
  2016), so a top layer cannot collapse silently. The KL of every layer is recorded per epoch
  (``kl`` in the store entry, and on the progress bar), so a collapse is visible.

LLR^{>k}(x) = ELBO(x) - L^{>k}(x) (thesis eq. 3.1-3.2). ``k`` counts layers from the bottom, as
in Havtorn et al. (whose layers are z1..z3): L^{>k} draws the k lowest layers z0..z_{k-1} from
the prior p(z_j|z_{j+1}) and the others from the posterior. L^{>0} is the ELBO, so LLR^{>0} = 0;
LLR^{>2} keeps only z2 from the posterior. Every bound uses the same noise draws (common random
numbers), so their differences carry less Monte Carlo noise. Two estimators over S importance
samples: ``"mean"`` (default) is the expectation eq. 3.2 writes, the mean log-weight;
``"iw"`` is the importance-weighted log-mean-exp that Havtorn et al.'s code reports.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alsys.device import torch_device
from alsys.embed.gaussian import _Gaussian, _gaussian_kl, _gaussian_log_density, _mlp
from alsys.errors import InputError
from alsys.spaces import LAYERS, Space, parse_space

INPUTS = ("images", "embeddings")
ESTIMATORS = ("mean", "iw")


@dataclass(frozen=True)
class HVAEConfig:
    """Architecture and training; :func:`hvae_preset` gives each dataset's values."""

    input: str = "images"
    latent_dims: tuple[int, int, int] = (32, 16, 8)  # z0, z1, z2
    width: int = 256  # deterministic units per layer
    channels: int = 32  # convolution channels (images)
    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: int = 20  # KL weight 0 -> 1 (Sønderby et al. 2016)
    free_bits: float = 0.1  # nats per latent dimension and layer (Kingma et al. 2016)
    importance_samples: int = 16  # S for the ELBO and L^{>k}
    estimator: str = "mean"  # "mean": eq. 3.2; "iw": log-mean-exp (Havtorn et al.'s code)
    simclr_dim: int = 512  # the SimCLR embedding an "embeddings" HVAE reads (thesis: 512)

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise InputError("hvae.input", f"must be one of {', '.join(INPUTS)}: {self.input!r}")
        if self.estimator not in ESTIMATORS:
            raise InputError("hvae.estimator", f"must be mean or iw, got {self.estimator!r}")
        dims = tuple(self.latent_dims)
        if len(dims) != LAYERS or any(int(d) < 1 for d in dims):
            raise InputError("hvae.latent_dims", f"needs 3 positive sizes (z0, z1, z2): {dims}")
        object.__setattr__(self, "latent_dims", tuple(int(d) for d in dims))
        for name in ("width", "channels", "epochs", "batch_size", "importance_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"hvae.{name}", f"must be an integer >= 1, got {value!r}")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int):
            raise InputError("hvae.warmup_epochs", f"must be an integer, got {self.warmup_epochs}")
        if self.warmup_epochs < 0:
            raise InputError("hvae.warmup_epochs", "must be >= 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError("hvae.lr", f"must be > 0, got {self.lr}")
        if not (self.free_bits >= 0 and math.isfinite(self.free_bits)):
            raise InputError("hvae.free_bits", f"must be >= 0, got {self.free_bits}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["latent_dims"] = list(self.latent_dims)
        return out


def hvae_preset(dataset: str, input: str, epochs: int | None = None) -> HVAEConfig:
    """Per dataset: digits trains in seconds on a CPU; CIFAR and ISIC want a GPU."""
    small = dataset in ("digits", "digits_lt", "embeddings")
    config = HVAEConfig(
        input=input,
        epochs=60 if small else 100,  # digits: 60 epochs, ~20 s on 2 CPU cores
        warmup_epochs=20,
        channels=32 if small else 64,
    )
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise InputError("hvae_epochs", f"must be an integer >= 1, got {epochs!r}")
        config = replace(config, epochs=epochs, warmup_epochs=min(config.warmup_epochs, epochs))
    return config


class LadderVAE(nn.Module):
    """The network; ``input_shape`` is (C, H, W) for images or (d,) for vectors."""

    def __init__(self, config: HVAEConfig, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(int(s) for s in input_shape)
        width, dims = config.width, config.latent_dims
        if config.input == "images":
            channels, height, breadth = self.input_shape
            c = config.channels
            down: list[nn.Module] = [nn.Conv2d(channels, c, 3, padding=1), nn.SiLU()]
            size = (height, breadth)
            while max(size) > 8 and min(size) % 2 == 0:  # halve down to about 8x8
                down += [nn.Conv2d(c, c, 4, stride=2, padding=1), nn.SiLU()]
                size = (size[0] // 2, size[1] // 2)
            self.inner = (c, *size)
            flat = c * size[0] * size[1]
            self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, width), nn.SiLU())
            up: list[nn.Module] = []
            for _ in range(len(down) // 2 - 1):
                up += [nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.SiLU()]
            up.append(nn.Conv2d(c, channels, 3, padding=1))
            self.decoder_head = nn.Sequential(nn.Linear(width, flat), nn.SiLU())
            self.decoder_conv = nn.Sequential(*up)
        else:
            (features,) = self.input_shape
            self.encoder = _mlp(features, width)
            self.decoder_head = nn.Sequential(nn.Linear(width, features))
            self.log_scale = nn.Parameter(torch.zeros(features))
        self.up = nn.ModuleList([_mlp(width, width), _mlp(width, width)])  # d0 -> d1 -> d2
        self.q_top = _Gaussian(width, dims[2])
        self.top_down = nn.ModuleList([_mlp(dims[j + 1], width) for j in range(LAYERS - 1)])
        self.prior = nn.ModuleList([_Gaussian(width, dims[j]) for j in range(LAYERS - 1)])
        self.posterior = nn.ModuleList([_Gaussian(2 * width, dims[j]) for j in range(LAYERS - 1)])
        self.decoder_in = _mlp(dims[0], width)

    def log_likelihood(self, x: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
        """(batch,) log p(x | z0)."""
        h = self.decoder_head(self.decoder_in(z0))
        if self.config.input == "images":
            logits = self.decoder_conv(h.view(-1, *self.inner))
            if logits.shape[-2:] != x.shape[-2:]:
                logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear")
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
            return -bce.flatten(1).sum(-1)
        return _gaussian_log_density(x, h, torch.exp(self.log_scale).clamp_min(1e-3))

    def bounds(
        self, x: torch.Tensor, eps: Sequence[torch.Tensor] | None, k: int = 0
    ) -> dict[str, Any]:
        """One pass. ``eps`` (one (batch, d_j) noise tensor per layer) samples; ``None`` takes
        every posterior mean. Layers below ``k`` are drawn from the prior (L^{>k}).

        Returns ``log_weight`` (batch,): log p(x|z) + sum over j >= k of
        [log p(z_j|z_{j+1}) - log q(z_j|x, z_{j+1})]; ``log_px``; ``kl`` (analytic KL per layer,
        (batch,)
        each); ``mu``, ``sd``, ``z`` per layer (posterior parameters and the values used).
        """
        d = [self.encoder(x)]
        for block in self.up:
            d.append(block(d[-1]))
        mu: list[torch.Tensor] = [torch.empty(0)] * LAYERS
        sd: list[torch.Tensor] = [torch.empty(0)] * LAYERS
        z: list[torch.Tensor] = [torch.empty(0)] * LAYERS
        kl: list[torch.Tensor] = [torch.empty(0)] * LAYERS
        log_weight = torch.zeros(x.shape[0], device=x.device)
        for j in reversed(range(LAYERS)):
            if j == LAYERS - 1:
                m, s = self.q_top(d[j])
                pm, ps = torch.zeros_like(m), torch.ones_like(s)
            else:
                t = self.top_down[j](z[j + 1])
                pm, ps = self.prior[j](t)
                m, s = self.posterior[j](torch.cat([d[j], t], dim=-1))
            if j < k:
                assert eps is not None, "prior layers need noise"
                z[j] = pm + ps * eps[j]
            else:
                z[j] = m if eps is None else m + s * eps[j]
                log_weight = log_weight + _gaussian_log_density(z[j], pm, ps)
                log_weight = log_weight - _gaussian_log_density(z[j], m, s)
            mu[j], sd[j], kl[j] = m, s, _gaussian_kl(m, s, pm, ps)
        log_px = self.log_likelihood(x, z[0])
        return {
            "log_weight": log_weight + log_px,
            "log_px": log_px,
            "kl": kl,
            "mu": mu,
            "sd": sd,
            "z": z,
        }

    def noise(self, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
        device = next(self.parameters()).device
        dims = self.config.latent_dims
        return [torch.randn(batch, d, generator=generator).to(device) for d in dims]


@dataclass(frozen=True)
class _Inputs:
    """Inputs as the network reads them, and how they were scaled."""

    x: torch.Tensor
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None


def prepare_inputs(
    data: np.ndarray, kind: str, stats: tuple[np.ndarray, np.ndarray] | None = None
) -> _Inputs:
    """Images (N, H, W, C) uint8 -> (N, C, H, W) in [0, 1]; vectors -> standardised by
    ``stats`` (the train split's mean and std; computed here when not given)."""
    if kind == "images":
        if data.ndim != 4:
            raise InputError("images", f"must be (N, H, W, C), got shape {data.shape}")
        x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).float() / 255.0
        return _Inputs(x.contiguous())
    if data.ndim != 2:
        raise InputError("embeddings", f"must be (N, d), got shape {data.shape}")
    values = np.asarray(data, dtype=np.float32)
    if not np.isfinite(values).all():
        raise InputError("embeddings", "contain NaN or infinite values")
    if stats is None:
        stats = (values.mean(axis=0), values.std(axis=0) + 1e-6)
    shift, scale = stats
    return _Inputs(torch.from_numpy((values - shift) / scale), shift, scale)


def train_hvae(
    x_train: torch.Tensor, config: HVAEConfig, seed: int, show_progress: bool = True
) -> tuple[LadderVAE, dict[str, np.ndarray]]:
    """Trains the HVAE; returns it (eval mode) and per-epoch ``loss`` (-ELBO per point, with
    the warm-up weight and free bits), ``elbo`` (plain) and ``kl`` ((epochs, 3) nats, z0..z2).
    All randomness comes from ``seed``: initialisation (in a forked RNG), batches, noise."""
    from tqdm import tqdm

    n = x_train.shape[0]
    if n < 2:
        raise InputError("train", "the HVAE needs at least two training points")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LadderVAE(config, x_train.shape[1:])
    device = torch_device()
    model.to(device)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    batch = min(config.batch_size, n)
    floors = torch.tensor([config.free_bits * d for d in config.latent_dims], device=device)
    history: dict[str, list[Any]] = {"loss": [], "elbo": [], "kl": []}
    bar = tqdm(
        range(config.epochs),
        desc=f"hvae {config.input} z={'/'.join(map(str, config.latent_dims))} ({device.type})",
        file=sys.stderr,
        disable=not show_progress,
    )
    model.train()
    for epoch in bar:
        beta = min(1.0, (epoch + 1) / config.warmup_epochs) if config.warmup_epochs else 1.0
        order = torch.randperm(n, generator=gen)
        sums = np.zeros(2 + LAYERS)
        for start in range(0, n, batch):
            index = order[start : start + batch]
            x = x_train[index].to(device)
            out = model.bounds(x, model.noise(x.shape[0], gen))
            kl = torch.stack([layer.mean() for layer in out["kl"]])  # (3,) batch means
            recon = out["log_px"].mean()  # with the analytic KL below: the usual ELBO
            loss = -(recon - beta * torch.maximum(kl, floors).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            weight = x.shape[0]
            elbo = float((recon - kl.sum()).detach())
            sums += weight * np.array([float(loss.detach()), elbo, *kl.detach().cpu().tolist()])
        sums /= n
        history["loss"].append(sums[0])
        history["elbo"].append(sums[1])
        history["kl"].append(sums[2:])
        bar.set_postfix(elbo=f"{sums[1]:.1f}", kl="/".join(f"{v:.1f}" for v in sums[2:]))
    model.eval()
    return model, {name: np.asarray(values) for name, values in history.items()}


@torch.no_grad()
def hvae_outputs(
    model: LadderVAE,
    x: torch.Tensor,
    seed: int,
    samples: int | None = None,
    estimator: str | None = None,
    ks: Sequence[int] = (1, 2),
    batch: int = 512,
) -> dict[str, np.ndarray]:
    """Per point: ``mu_z{j}``/``sd_z{j}`` (posterior parameters on the mean path, where every
    layer takes its posterior mean), ``rp_z{j}`` (one reparameterised ancestral sample,
    z_j = mu_j + sd_j * eps), ``elbo``, and ``llr{k}`` = ELBO - L^{>k} for each k in ``ks``.

    The noise comes from ``seed`` in fixed blocks of ``batch`` points, so equal seeds give
    equal samples and scores.
    """
    samples = samples or model.config.importance_samples
    estimator = estimator or model.config.estimator
    if estimator not in ESTIMATORS:
        raise InputError("estimator", f"must be mean or iw, got {estimator!r}")
    if any(not 0 <= k <= LAYERS for k in ks):
        raise InputError("k", f"LLR^{{>k}} needs 0 <= k <= {LAYERS}, got {list(ks)}")
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[np.ndarray]] = {}

    def keep(name: str, value: torch.Tensor) -> None:
        out.setdefault(name, []).append(value.detach().cpu().numpy().astype(np.float32))

    def reduce(weights: torch.Tensor) -> torch.Tensor:  # (S, batch) -> (batch,)
        if estimator == "mean":
            return weights.mean(0)
        return torch.logsumexp(weights, 0) - math.log(weights.shape[0])

    for start in range(0, x.shape[0], batch):
        xb = x[start : start + batch].to(device)
        size = xb.shape[0]
        mean_pass = model.bounds(xb, None)
        sample_pass = model.bounds(xb, model.noise(size, gen))
        for j in range(LAYERS):
            keep(f"mu_z{j}", mean_pass["mu"][j])
            keep(f"sd_z{j}", mean_pass["sd"][j])
            keep(f"rp_z{j}", sample_pass["z"][j])
        weights: dict[int, list[torch.Tensor]] = {k: [] for k in (0, *ks)}
        for _ in range(samples):
            eps = model.noise(size, gen)  # shared by every bound: common random numbers
            for k in weights:
                weights[k].append(model.bounds(xb, eps, k)["log_weight"])
        elbo = reduce(torch.stack(weights[0]))
        keep("elbo", elbo)
        for k in ks:
            keep(f"llr{k}", elbo - reduce(torch.stack(weights[k])))
    return {name: np.concatenate(parts) for name, parts in out.items()}


__all__ = [
    "ESTIMATORS",
    "HVAEConfig",
    "LadderVAE",
    "Space",
    "hvae_outputs",
    "hvae_preset",
    "parse_space",
    "prepare_inputs",
    "train_hvae",
]
