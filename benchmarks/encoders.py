"""Seconds per 1,000 images for each encoder of ``alsys select --images --encoder``.

The images are the digits written as 320 x 240 RGB JPEG files (so decoding, EXIF handling and
each encoder's own resize and crop are in the time). Each pretrained encoder runs through
alsys's real path (its library builds it from a weights file, then ``embed_files`` in batches
of 32) with seeded random weights in its library's format: no weights can be downloaded here,
and a forward pass takes the same time whatever the weights hold. SimCLR, the offline
default, trains on the folder itself (30 epochs at 32 px) and then embeds it: its time is the
whole first round. Medians of ``--repeats`` runs; model building (reading the weights) is
timed apart, once per round.

    .venv/bin/python benchmarks/encoders.py                     # 200 images, 3 repeats
    .venv/bin/python benchmarks/encoders.py --images 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.encoder_weights, run from anywhere

from alsys.data.imagefolder import scan_folder  # noqa: E402
from alsys.embed.encoders import ENCODERS  # noqa: E402
from alsys.embed.folder import embed_files, folder_embeddings  # noqa: E402
from alsys.embed.store import EmbeddingStore  # noqa: E402
from tests.encoder_weights import random_weights  # noqa: E402


def write_images(folder: Path, n: int) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = np.clip(digits.images[i % len(digits.images)] * 16, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((320, 240), Image.Resampling.BICUBIC)
        image.convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)


def time_pretrained(name: str, scan_dir: Path, work: Path, repeats: int) -> tuple[float, float]:
    """(median seconds to embed the folder, seconds to build the model from its file)."""
    encoder = ENCODERS[name]
    (work / name).mkdir()
    weights = random_weights(name, work / name)
    began = time.perf_counter()
    loaded = encoder.build(weights)
    build = time.perf_counter() - began
    scan = scan_folder(scan_dir)
    embed_files(scan_folder(work / "warmup"), loaded, encoder.image_size, 32, False)
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        embed_files(scan, loaded, encoder.image_size, 32, False)
        runs.append(time.perf_counter() - began)
    return statistics.median(runs), build


def time_simclr(scan_dir: Path, work: Path, repeats: int) -> float:
    runs = []
    for repeat in range(repeats):
        store = EmbeddingStore(work / f"simclr-store-{repeat}")
        found = folder_embeddings(scan_folder(scan_dir), 32, None, store, False)
        assert found.trained
        runs.append(found.seconds)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="images per pretrained run")
    parser.add_argument("--simclr-images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="encoder names (default: all)")
    args = parser.parse_args()
    names = args.only or ["simclr", *ENCODERS]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'GPU' if torch.cuda.is_available() else 'CPU'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_images(work / "pool", args.images)
        write_images(work / "warmup", 8)
        rows = []
        for name in names:
            if name == "simclr":
                write_images(work / "simclr-pool", args.simclr_images)
                seconds = time_simclr(work / "simclr-pool", work, args.repeats)
                per_1000 = seconds / args.simclr_images * 1000
                rows.append((name, "SimCLR trained on the folder, 32 px", per_1000, None))
            else:
                seconds, build = time_pretrained(name, work / "pool", work, args.repeats)
                rows.append((name, ENCODERS[name].title, seconds / args.images * 1000, build))
            print(f"{name}: {rows[-1][2]:.1f} s per 1,000 images", flush=True)
    print("\n| encoder | model | s per 1,000 images | model build s |\n|---|---|---|---|")
    for name, title, per_1000, build in rows:
        built = "-" if build is None else f"{build:.1f}"
        print(f"| {name} | {title} | {per_1000:.1f} | {built} |")


if __name__ == "__main__":
    main()
