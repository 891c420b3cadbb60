"""SimCLR parts, a short digits training, and the embedding store."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alsys.embed import simclr_embeddings
from alsys.embed.augment import CIFAR_AUGMENT, DIGITS_AUGMENT, augment
from alsys.embed.simclr import nested_nt_xent, nt_xent, preset, train_simclr
from alsys.embed.store import EmbeddingStore


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = {
            j: sum(a * b for a, b in zip(z[i], z[j], strict=True)) / temperature
            for j in range(2 * n)
            if j != i
        }
        total += -sims[positive] + float(np.log(sum(np.exp(v) for v in sims.values())))
    return total / (2 * n)


def test_nt_xent_matches_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(naive_nt_xent(z1, z2, 0.5), rel=1e-5)


def test_nested_loss_averages_the_prefixes() -> None:
    gen = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
    expected = np.mean([float(nt_xent(z1[:, :d], z2[:, :d], 0.1)) for d in (4, 8, 16)])
    assert float(nested_nt_xent(z1, z2, [4, 8, 16], 0.1)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("config", "shape"), [(CIFAR_AUGMENT, (5, 3, 32, 32)), (DIGITS_AUGMENT, (5, 1, 8, 8))]
)
def test_augmentations_change_the_image_but_keep_shape_and_range(config, shape) -> None:
    images = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    view = augment(images, config, torch.Generator().manual_seed(1))
    assert view.shape == images.shape
    assert float(view.min()) >= 0 and float(view.max()) <= 1
    assert not torch.allclose(view, images)
    again = augment(images, config, torch.Generator().manual_seed(1))
    assert torch.equal(view, again)  # every draw comes from the generator


def test_one_epoch_on_digits_gives_finite_embeddings(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    out = simclr_embeddings("digits", [8, 16], epochs=1, store=store, show_progress=False)
    assert out[8].train.shape == (1437, 8) and out[16].test.shape == (360, 16)
    assert np.isfinite(out[16].train).all()
    np.testing.assert_array_equal(out[8].train, out[16].train[:, :8])  # nested prefixes


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    images = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 1), dtype=np.uint8)
    config = preset("digits", epochs=1)
    before = torch.get_rng_state()
    a, _ = train_simclr(images, config, [8], seed=3, nested=False, show_progress=False)
    b, _ = train_simclr(images, config, [8], seed=3, nested=False, show_progress=False)
    assert torch.equal(before, torch.get_rng_state())
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def _fake_compute(marker: Path, seconds: float = 0.0) -> dict[str, np.ndarray]:
    with marker.open("a") as log:
        log.write("computed\n")
    time.sleep(seconds)  # a slow computation lets a second caller arrive and wait
    return {"train": np.arange(12, dtype=np.float32).reshape(4, 3)}


def test_store_reuses_an_entry(tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    marker = tmp_path / "calls"
    spec = {"dataset": "x", "dim": 3}
    first = store.get_or_compute(spec, lambda: _fake_compute(marker))
    second = store.get_or_compute(spec, lambda: _fake_compute(marker))
    np.testing.assert_array_equal(first["train"], second["train"])
    assert marker.read_text().count("computed") == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_store_rebuilds_a_damaged_entry(tmp_path: Path, damage: str) -> None:
    store = EmbeddingStore(tmp_path)
    marker = tmp_path / "calls"
    spec = {"dataset": "x", "dim": 3}
    store.get_or_compute(spec, lambda: _fake_compute(marker))
    file = store.path(spec) / "train.npy"
    if damage == "truncate":
        file.write_bytes(file.read_bytes()[:-7])
    elif damage == "flip":
        raw = bytearray(file.read_bytes())
        raw[-1] ^= 0xFF
        file.write_bytes(bytes(raw))
    else:
        (store.path(spec) / "manifest.json").write_text("{not json")
    assert store.load(spec) is None  # detected, never used
    rebuilt = store.get_or_compute(spec, lambda: _fake_compute(marker))
    np.testing.assert_array_equal(rebuilt["train"], np.arange(12).reshape(4, 3))
    assert marker.read_text().count("computed") == 2
    manifest = json.loads((store.path(spec) / "manifest.json").read_text())
    assert manifest["files"]["train"]["shape"] == [4, 3]


def _worker(root: str, marker: str) -> None:
    EmbeddingStore(root).get_or_compute({"dataset": "x"}, lambda: _fake_compute(Path(marker), 1.0))


@pytest.mark.integration
def test_two_processes_compute_an_entry_once(tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(str(tmp_path), str(marker))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert marker.read_text().count("computed") == 1


def test_plots_write_pictures(tmp_path: Path) -> None:
    from PIL import Image

    from alsys.plots import cluster_class_distribution, tsne_scatter

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    points = rng.normal(size=(60, 5)) + labels[:, None] * 4
    tsne = tsne_scatter(points, labels, ["a", "b", "c"], tmp_path / "t.png", selected=np.arange(3))
    bars = cluster_class_distribution(labels[::-1] % 4, labels, ["a", "b", "c"], tmp_path / "c.png")
    for path in (tsne, bars):
        with Image.open(path) as image:
            assert image.width > 300 and image.height > 300
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
            assert len(np.unique(pixels, axis=0)) > 5  # something was drawn


@pytest.mark.parametrize("backbone", ["resnet18_cifar", "resnet34_cifar", "resnet18"])
def test_resnet_backbones_give_512_features(backbone: str) -> None:
    from dataclasses import replace

    from alsys.embed.simclr import SimCLR

    config = replace(preset("cifar10"), backbone=backbone)
    model = SimCLR(config, out_dim=16, in_channels=3).eval()
    size = 64 if backbone == "resnet18" else 32
    with torch.no_grad():
        assert model.backbone(torch.zeros(2, 3, size, size)).shape == (2, 512)
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 16)


def test_backbone_features_are_the_embedding_and_each_dim_has_a_head() -> None:
    from alsys.embed.simclr import SimCLR

    config = preset("digits")
    assert config.features == "backbone"  # the reference code's tensor, before the head
    model = SimCLR(config, out_dim=512, in_channels=1, dims=[8, 64, 512]).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        features = model.backbone(x)
        assert features.shape == (4, 512)
        torch.testing.assert_close(model(x), features)  # the embedding is the backbone output
        projections = model.projections(x)
    assert [p.shape for p in projections] == [(4, config.projection_dim)] * 3
    assert len(model.heads) == 3  # one projection head per trained prefix


def test_head_features_keep_the_nested_head_output() -> None:
    from dataclasses import replace

    from alsys.embed.simclr import SimCLR

    config = replace(preset("digits"), features="head")
    model = SimCLR(config, out_dim=32, in_channels=1, dims=[8, 32]).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        z = model(x)
        projections = model.projections(x)
    assert z.shape == (4, 32)
    torch.testing.assert_close(projections[0], z[:, :8])
    torch.testing.assert_close(projections[1], z)


def test_backbone_cannot_embed_wider_than_it_is() -> None:
    from dataclasses import replace

    from alsys.embed.simclr import SimCLR
    from alsys.errors import InputError

    config = replace(preset("digits"), backbone="small_cnn")  # 128 features
    with pytest.raises(InputError, match="128 features"):
        SimCLR(config, out_dim=512, in_channels=1)


def test_digit_affine_shifts_by_a_pixel_at_most() -> None:
    from dataclasses import replace

    from alsys.embed.augment import random_affine

    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 3:5, 3:5] = 1.0  # a 2x2 blob in the centre
    shift_only = replace(DIGITS_AUGMENT, rotate=0.0, scale=(1.0, 1.0))
    gen = torch.Generator().manual_seed(0)
    views = random_affine(image.expand(256, 1, 8, 8), shift_only, gen)
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    mass = views.sum(dim=(1, 2, 3))
    centre_x = (views[:, 0] * xs).sum(dim=(1, 2)) / mass
    centre_y = (views[:, 0] * ys).sum(dim=(1, 2)) / mass
    assert float((centre_x - 3.5).abs().max()) <= 1.0 + 1e-5
    assert float((centre_y - 3.5).abs().max()) <= 1.0 + 1e-5
    assert float((centre_x - 3.5).abs().max()) > 0.5  # it does move
    still = replace(shift_only, translate=0.0)
    torch.testing.assert_close(random_affine(image, still, gen), image)  # identity, exactly
