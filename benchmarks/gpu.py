"""CPU vs GPU on one machine, side by side: SimCLR training and FSL classifier training.

- SimCLR: ``--images`` synthetic CIFAR-shaped images (32x32x3) with the CIFAR preset
  (ResNet18, batch 512), ``--epochs`` epochs, nested over all 7 dimensions.
- FSL: the digits CNN preset trained from scratch on 100 labeled digits (50 epochs), and a
  CIFAR ResNet18 on ``--fsl-images`` synthetic labeled images (``--fsl-epochs`` epochs).

Each measurement is repeated ``--repeats`` times; the median is printed with the GPU/CPU
ratio. Augmentation draws stay on the CPU generator on both devices, so both train on the same
batches; the table also reports how far the final losses / predictions of the two devices are
apart. Needs a visible CUDA GPU (``ALSYS_DEVICE`` picks the device per measurement).

    python benchmarks/gpu.py [--images 4096 --epochs 2 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def timed(device: str, repeats: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    os.environ["ALSYS_DEVICE"] = device
    times, out = [], None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    from alsys.classifiers import FSLClassifier
    from alsys.config import FSLClassifierConfig
    from alsys.data import load_dataset
    from alsys.embed.simclr import preset, train_simclr

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fsl-images", type=int, default=500)
    parser.add_argument("--fsl-epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu.py: no CUDA GPU is visible")
    print(
        f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    config = preset("cifar10", args.epochs)
    dims = (8, 16, 32, 64, 128, 256, 512)
    rows = []

    def simclr() -> list[float]:
        return train_simclr(images, config, dims, 0, nested=True, show_progress=False)[1]

    cpu_t, cpu_loss = timed("cpu", 1, simclr)  # one CPU run: it is the slow side
    gpu_t, gpu_loss = timed("cuda", args.repeats, simclr)
    rows.append(
        (
            f"SimCLR ResNet18, {args.images} imgs x {args.epochs} ep",
            cpu_t,
            gpu_t,
            f"final loss {cpu_loss[-1]:.4f} vs {gpu_loss[-1]:.4f}",
        )
    )

    digits = load_dataset("digits")
    labeled = np.arange(100)

    def fsl_digits() -> np.ndarray:
        clf = FSLClassifier(FSLClassifierConfig(), "digits", digits.n_classes)
        clf.fit(digits.train_images[labeled], digits.train_labels[labeled], seed=0)
        return clf.predict_proba(digits.test_images)

    cpu_t, cpu_p = timed("cpu", args.repeats, fsl_digits)
    gpu_t, gpu_p = timed("cuda", args.repeats, fsl_digits)
    agree = float(np.mean(cpu_p.argmax(1) == gpu_p.argmax(1)))
    rows.append(
        ("FSL digits CNN, 100 labels x 50 ep", cpu_t, gpu_t, f"same test predictions {agree:.3f}")
    )

    fsl_x = rng.integers(0, 256, size=(args.fsl_images, 32, 32, 3), dtype=np.uint8)
    fsl_y = rng.integers(0, 10, size=args.fsl_images)

    def fsl_cifar() -> np.ndarray:
        clf = FSLClassifier(FSLClassifierConfig(epochs=args.fsl_epochs), "cifar10", 10)
        clf.fit(fsl_x, fsl_y, seed=0)
        return clf.predict_proba(images[:2048])

    cpu_t, cpu_p = timed("cpu", 1, fsl_cifar)
    gpu_t, gpu_p = timed("cuda", args.repeats, fsl_cifar)
    agree = float(np.mean(cpu_p.argmax(1) == gpu_p.argmax(1)))
    rows.append(
        (
            f"FSL ResNet18, {args.fsl_images} labels x {args.fsl_epochs} ep",
            cpu_t,
            gpu_t,
            f"same predictions {agree:.3f}",
        )
    )

    print(f"\n{'work':<42} {'CPU s':>8} {'GPU s':>8} {'speed-up':>9}  agreement")
    for name, c, g, note in rows:
        print(f"{name:<42} {c:>8.2f} {g:>8.2f} {c / g:>8.1f}x  {note}")


if __name__ == "__main__":
    main()
