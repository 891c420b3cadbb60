"""SimCLR augmentations as batched tensor operations driven by an explicit ``torch.Generator``.

They follow the TypiClust/SCAN SimCLR transforms for CIFAR: RandomResizedCrop (scale 0.2-1),
horizontal flip, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with p=0.8, and
grayscale with p=0.2. Batching them keeps 2-core CPU training fast and makes every draw come
from the generator, never from a global RNG. Digits (8x8, one channel) get their own recipe:
milder crops, no flip (a mirrored digit is another symbol), brightness/contrast only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    crop: bool = True
    crop_scale: tuple[float, float] = (0.2, 1.0)  # TypiClust SimCLR RandomResizedCrop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    # Random affine (off for CIFAR): rotation in degrees, scale range, translation as a fraction
    # of the image side; the uncovered border is black (a digit's background).
    rotate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2


CIFAR_AUGMENT = AugmentConfig()
# Digits: small images whose identity changes under flips or heavy crops.
DIGITS_AUGMENT = AugmentConfig(
    crop=False,
    flip=False,
    rotate=10.0,
    scale=(0.9, 1.1),
    translate=0.125,  # one pixel of eight
    saturation=0.0,
    hue=0.0,
    grayscale_p=0.0,
)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def random_resized_crop(
    images: torch.Tensor, config: AugmentConfig, gen: torch.Generator
) -> torch.Tensor:
    """Crops a random area and aspect ratio, resized back to the input size (bilinear), and
    mirrors half the images when ``config.flip``; without ``config.crop`` it only mirrors."""
    n = images.shape[0]
    width = height = torch.ones(n)
    if config.crop:
        area = _uniform(n, *config.crop_scale, gen)
        low, high = math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1])
        ratio = torch.exp(_uniform(n, low, high, gen))
        width = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
        height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (2 * torch.rand(n, generator=gen) - 1) * (1 - width)
    centre_y = (2 * torch.rand(n, generator=gen) - 1) * (1 - height)
    sign = torch.ones(n)
    if config.flip:
        sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * sign
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def random_affine(
    images: torch.Tensor, config: AugmentConfig, gen: torch.Generator
) -> torch.Tensor:
    """Rotates, scales and shifts each image by its own random amounts (bilinear, zero border)."""
    n = images.shape[0]
    angle = _uniform(n, -config.rotate, config.rotate, gen) * (math.pi / 180)
    scale = _uniform(n, *config.scale, gen)
    shift = _uniform(2 * n, -config.translate, config.translate, gen).view(n, 2) * 2  # [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, shift[:, 0]
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, shift[:, 1]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _rotate_hue(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Hue shift as a rotation of the chroma plane in YIQ space (angle in radians, per image)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(angle.shape[0], 3, 3)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    matrix = from_yiq @ rotation @ to_yiq  # (n, 3, 3)
    return torch.einsum("nij,njhw->nihw", matrix, images)


def color_jitter(images: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    n = images.shape[0]
    apply = (torch.rand(n, generator=gen) < config.jitter_p).view(n, 1, 1, 1)
    out = images
    if config.brightness:
        factor = _uniform(n, 1 - config.brightness, 1 + config.brightness, gen).view(n, 1, 1, 1)
        out = out * factor
    if config.contrast:
        factor = _uniform(n, 1 - config.contrast, 1 + config.contrast, gen).view(n, 1, 1, 1)
        mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * factor + mean
    if config.saturation and images.shape[1] == 3:
        factor = _uniform(n, 1 - config.saturation, 1 + config.saturation, gen).view(n, 1, 1, 1)
        gray = _gray(out)
        out = (out - gray) * factor + gray
    if config.hue and images.shape[1] == 3:
        out = _rotate_hue(out, _uniform(n, -config.hue, config.hue, gen) * 2 * math.pi)
    out = out.clamp(0, 1)
    return torch.where(apply, out, images)


def random_grayscale(images: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    if images.shape[1] == 1 or p <= 0:
        return images
    n = images.shape[0]
    apply = (torch.rand(n, generator=gen) < p).view(n, 1, 1, 1)
    return torch.where(apply, _gray(images).expand_as(images), images)


def augment(images: torch.Tensor, config: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR view of a batch (n, C, H, W) in [0, 1]; same shape, values in [0, 1]."""
    out = random_resized_crop(images, config, gen) if config.crop or config.flip else images
    if config.rotate or config.translate or config.scale != (1.0, 1.0):
        out = random_affine(out, config, gen)
    out = color_jitter(out, config, gen)
    out = random_grayscale(out, config.grayscale_p, gen)
    return out.clamp(0, 1)
