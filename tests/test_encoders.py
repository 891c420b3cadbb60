"""`alsys select --images DIR --encoder NAME`: each pretrained encoder through its real loading
code, with randomly initialised weights (seeded) that the test saves to a file in the
library's own format; weights found in the usual caches; nothing downloaded; the store keyed so
that round 2 embeds nothing; one-line errors when the weights are missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alsys.cli import main
from alsys.embed.encoders import ENCODERS
from tests.encoder_weights import random_weights

DIMS = {"resnet50": 2048, "vit_b_16": 768, "dinov2_vits14": 384, "dinov2_vitb14": 768}
DIMS["openclip_vitb32"] = 512


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve RGB images of the digits (JPEG and PNG, 64 x 48, a folder and names with a space
    and an "é") and one corrupt file."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = tmp_path_factory.mktemp("photos") / "my photos"
    (folder / "sub é").mkdir(parents=True)
    for i in range(12):
        pixels = np.clip(digits.images[i] * 16, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L").resize((64, 48)).convert("RGB")
        image.save(folder / "sub é" / f"{i} x.png" if i % 2 else folder / f"{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


def select(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["select", *argv])
    return code, capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_each_encoder_embeds_once_and_round_two_embeds_nothing(
    name: str, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = random_weights(name, tmp_path)
    store = tmp_path / "store"
    argv = ["--images", str(photos), "--encoder", name, "--weights", str(weights)]
    argv += ["--store", str(store), "--budget", "3", "--strategy", "typiclust"]
    code, err = select([*argv, "--out", str(tmp_path / "r1.csv")], capsys)
    assert code == 0, err
    assert f"embeddings: {ENCODERS[name].title}, 224 px, weights {weights.name} on 12 images" in err
    assert "1 unreadable (broken.jpg)" in err
    (entry,) = [p for p in store.iterdir() if p.is_dir()]
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["files"]["embeddings"]["shape"] == [12, DIMS[name]]
    assert manifest["spec"]["encoder"] == name and len(manifest["spec"]["weights_sha256"]) == 64
    embeddings = np.load(entry / "embeddings.npy")
    assert np.isfinite(embeddings).all() and np.ptp(embeddings, axis=0).max() > 0  # per image
    code, err = select([*argv, "--out", str(tmp_path / "r2.csv")], capsys)
    assert code == 0 and "read from the store" in err and "nothing embedded" in err
    check_loaded(name, weights)
    if name == "resnet50":  # other weights, another store entry (the key holds their hash)
        (tmp_path / "other").mkdir()
        argv[5] = str(random_weights(name, tmp_path / "other", seed=1))
        code, err = select([*argv, "--out", str(tmp_path / "r3.csv")], capsys)
        assert code == 0 and "on 12 images" in err
        assert len([p for p in store.iterdir() if p.is_dir()]) == 2


def check_loaded(name: str, weights: Path) -> None:
    """What alsys builds holds the file's tensors (a silently random model would not)."""
    import torch

    from alsys.embed.encoders import get_encoder

    loaded = get_encoder(name).build(weights)
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        saved = load_file(str(weights))
    else:
        saved = torch.load(weights, weights_only=True)
    state = loaded.modules.state_dict()
    shared = [k for k in saved if k in state and saved[k].shape == state[k].shape]
    assert len(shared) > 0.9 * len(state)
    for key in shared:
        assert torch.equal(state[key], saved[key]), key


@pytest.mark.slow
def test_weights_from_the_usual_caches(
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch hub's checkpoints folder ($TORCH_HOME) and the Hugging Face hub cache
    ($HF_HUB_CACHE, in its snapshots layout), without --weights."""
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    random_weights("resnet50", tmp_path).rename(checkpoints / "resnet50-11ad3fa6.pth")
    repo = tmp_path / "hf" / "models--timm--vit_small_patch14_dinov2.lvd142m"
    revision = "0" * 40
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    random_weights("dinov2_vits14", repo / "snapshots" / revision)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    for name, file in (
        ("resnet50", "resnet50-11ad3fa6.pth"),
        ("dinov2_vits14", "model.safetensors"),
    ):
        argv = ["--images", str(photos), "--encoder", name, "--store", str(tmp_path / "store")]
        code, err = select([*argv, "--budget", "2", "--strategy", "typiclust"], capsys)
        assert code == 0, err
        assert f"weights {file} on 12 images" in err


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet50", ["resnet50-11ad3fa6.pth", "download.pytorch.org", "checkpoints"]),
        ("vit_b_16", ["vit_b_16-c867db91.pth", "checkpoints"]),
        ("dinov2_vits14", ["model.safetensors", "timm/vit_small_patch14_dinov2.lvd142m"]),
        ("dinov2_vitb14", ["model.safetensors", "timm/vit_base_patch14_dinov2.lvd142m"]),
        ("openclip_vitb32", ["open_clip_model.safetensors", "laion/CLIP-ViT-B-32"]),
    ],
)
def test_missing_weights_are_one_line_naming_the_file_and_where(
    name: str,
    expected: list[str],
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    store, out = tmp_path / "store", tmp_path / "out.csv"
    argv = ["--images", str(photos), "--encoder", name, "--store", str(store), "--out", str(out)]
    code, err = select([*argv, "--budget", "2", "--strategy", "typiclust"], capsys)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("alsys select: error: --encoder:") and "--weights FILE" in line
    for text in [*expected, str(tmp_path)]:
        assert text in line, line
    assert not out.exists() and not [p for p in store.glob("*") if p.is_dir()]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--encoder", "resnet50", "--image-size", "64"],
            "--image-size: applies to --encoder simclr",
        ),
        (["--encoder", "dinov2_vits14", "--epochs", "3"], "--epochs: applies to --encoder simclr"),
        (["--weights", "w.pth"], "--weights: applies to a pretrained --encoder"),
        (["--encoder", "resnet50", "--weights", "nope.pth"], "--weights: no such file: nope.pth"),
    ],
)
def test_encoder_flags_are_checked_at_the_door(
    extra: list[str],
    expected: str,
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--images", str(photos), "--store", str(tmp_path / "store"), *extra]
    code, err = select([*argv, "--budget", "2", "--strategy", "typiclust"], capsys)
    assert code == 2 and expected in err, err
