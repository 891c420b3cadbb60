"""Diagonal-Gaussian building blocks of the hierarchical VAE (alsys.embed.hvae)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2 * math.pi)


def _gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of log N(z; mu, sd^2)."""
    return (-0.5 * (_LOG_2PI + ((z - mu) / sd) ** 2) - torch.log(sd)).sum(-1)


def _gaussian_kl(mu_q: torch.Tensor, sd_q: torch.Tensor, mu_p: torch.Tensor, sd_p: torch.Tensor):  # type: ignore[no-untyped-def]
    """KL(N(mu_q, sd_q^2) || N(mu_p, sd_p^2)) summed over the last axis."""
    ratio = (sd_q / sd_p) ** 2
    return 0.5 * (ratio + ((mu_q - mu_p) / sd_p) ** 2 - 1 - torch.log(ratio)).sum(-1)


class _Gaussian(nn.Module):
    """A linear map to (mu, sd) of a diagonal Gaussian."""

    def __init__(self, n_in: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = self.linear(h).chunk(2, dim=-1)
        return mu, F.softplus(raw) + 1e-3


def _mlp(n_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU())
