"""Dataset loaders, each on data in its real on-disk format that the test writes itself."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alsys.data import DatasetUnavailable, load_dataset, long_tail_counts
from alsys.data.cifar import long_tail_subset
from alsys.errors import InputError


def write_cifar10(root: Path, per_class: int = 12, test_per_class: int = 3) -> Path:
    """A small CIFAR-10 in the official pickled layout (cifar-10-batches-py)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), per_class)
    rng.shuffle(labels)
    for b, chunk in enumerate(np.array_split(labels, 5), start=1):
        data = rng.integers(0, 256, size=(len(chunk), 3072), dtype=np.uint8)
        batch = {"data": data, "labels": chunk.tolist(), "batch_label": f"batch {b}"}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch))
    test_labels = np.repeat(np.arange(10), test_per_class)
    test = {
        "data": rng.integers(0, 256, (len(test_labels), 3072), dtype=np.uint8),
        "labels": test_labels.tolist(),
    }
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return folder


def test_digits_is_offline_with_a_fixed_split() -> None:
    first, second = load_dataset("digits"), load_dataset("digits")
    assert first.train_images is not None and first.test_images is not None
    assert first.train_images.shape == (1437, 8, 8, 1) and first.test_images.shape == (360, 8, 8, 1)
    assert first.train_images.dtype == np.uint8
    np.testing.assert_array_equal(first.train_labels, second.train_labels)
    np.testing.assert_array_equal(first.test_images, second.test_images)
    assert np.bincount(first.test_labels).min() >= 35  # stratified


def test_cifar10_reads_the_official_format(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path)
    data = load_dataset("cifar10", root=str(tmp_path), download=False, verify=False)
    assert data.train_images is not None and data.train_images.shape == (120, 32, 32, 3)
    assert data.test_images is not None and data.test_images.shape == (30, 32, 32, 3)
    assert data.classes[0] == "airplane" and data.n_classes == 10
    raw = pickle.loads((folder / "data_batch_1").read_bytes())
    np.testing.assert_array_equal(
        data.train_images[0], raw["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )


def test_cifar10_checksums_are_checked_by_default(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(DatasetUnavailable, match="fails its MD5 check"):
        load_dataset("cifar10", root=str(tmp_path), download=False)


def test_missing_cifar_without_download_says_what_to_get(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match=r"cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", root=str(tmp_path), download=False)


def test_a_download_that_cannot_happen_fails_fast_and_clearly(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="cannot download"):
        load_dataset("cifar100", root=str(tmp_path))
    assert time.perf_counter() - start < 30


def test_long_tail_profile_has_the_requested_ratio() -> None:
    counts = long_tail_counts(np.full(10, 5000), 50.0)
    assert counts[0] == 5000 and counts[-1] == 100
    assert np.all(np.diff(counts) < 0)


def test_cifar10_lt_counts_and_balanced_test(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_class=100)
    data = load_dataset(
        "cifar10_lt", root=str(tmp_path), download=False, verify=False, imbalance_ratio=50.0
    )
    expected = np.floor(100 * 50.0 ** (-np.arange(10) / 9)).astype(int)
    np.testing.assert_array_equal(np.bincount(data.train_labels, minlength=10), expected)
    assert np.bincount(data.test_labels).tolist() == [3] * 10
    again = load_dataset(
        "cifar10_lt", root=str(tmp_path), download=False, verify=False, imbalance_ratio=50.0
    )
    np.testing.assert_array_equal(data.train_images, again.train_images)
    labels = np.repeat(np.arange(10), 100)
    assert not np.array_equal(long_tail_subset(labels, 50, 0), long_tail_subset(labels, 50, 1))


def write_isic(root: Path, per_class: int = 3) -> Path:
    folder = root / "isic2019"
    images = folder / "ISIC_2019_Training_Input"
    images.mkdir(parents=True)
    classes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
    rows = ["image," + ",".join([*classes, "UNK"])]
    rng = np.random.default_rng(0)
    for c in range(len(classes)):
        for i in range(per_class):
            name = f"ISIC_{c:02d}{i:05d}"
            pixels = rng.integers(0, 256, size=(30 + c, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / f"{name}.jpg")
            onehot = ["1.0" if j == c else "0.0" for j in range(len(classes))]
            rows.append(",".join([name, *onehot, "0.0"]))
    (folder / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_isic_loads_a_folder_and_the_ground_truth(tmp_path: Path) -> None:
    write_isic(tmp_path, per_class=5)
    data = load_dataset(
        "isic2019", root=str(tmp_path), image_size=24, test_fraction=0.2, show_progress=False
    )
    assert data.train_images is not None and data.train_images.shape[1:] == (24, 24, 3)
    assert data.n_train + len(data.test_labels) == 40
    assert set(np.unique(data.test_labels)) == set(range(8))


def test_missing_isic_says_what_to_download_and_where(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as error:
        load_dataset("isic2019", root=str(tmp_path))
    message = str(error.value)
    assert "challenge.isic-archive.com" in message and str(tmp_path / "isic2019") in message


def test_isic_image_listed_but_missing_is_named(tmp_path: Path) -> None:
    folder = write_isic(tmp_path)
    next((folder / "ISIC_2019_Training_Input").glob("*.jpg")).unlink()
    with pytest.raises(DatasetUnavailable, match="missing"):
        load_dataset("isic2019", root=str(tmp_path), show_progress=False)


def test_bring_your_own_embeddings(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.normal(size=(50, 6)).astype(np.float32))
    np.save(tmp_path / "test.npy", rng.normal(size=(20, 6)).astype(np.float32))
    np.save(tmp_path / "train_y.npy", rng.integers(0, 3, 50))
    (tmp_path / "test_y.txt").write_text("\n".join(str(v) for v in rng.integers(0, 3, 20)))
    data = load_dataset(
        "embeddings",
        train=str(tmp_path / "train.npy"),
        train_labels=str(tmp_path / "train_y.npy"),
        test=str(tmp_path / "test.npy"),
        test_labels=str(tmp_path / "test_y.txt"),
        classes="a,b,c",
    )
    assert not data.has_images and data.classes == ("a", "b", "c")
    assert data.train_features is not None and data.train_features.shape == (50, 6)


def test_unknown_dataset_or_option_lists_what_is_valid() -> None:
    with pytest.raises(InputError, match="valid: cifar10, cifar100, cifar10_lt, digits"):
        load_dataset("mnist")
    with pytest.raises(InputError, match="cifar10 takes: root, download, verify"):
        load_dataset("cifar10", rot="x")


def test_a_tampered_cifar_batch_cannot_run_code(tmp_path: Path) -> None:
    """The batches are unpickled by an unpickler that allows numpy arrays and nothing else."""
    folder = write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    # (once Ray is imported, builtins.print pickles as its safe_print: refused all the same)
    with pytest.raises(DatasetUnavailable, match=r"print is not allowed in a CIFAR batch"):
        load_dataset("cifar10", root=str(tmp_path), verify=False)


def test_digits_lt_follows_the_long_tail_profile_and_keeps_the_digits_test_split() -> None:
    digits, lt = load_dataset("digits"), load_dataset("digits_lt")
    sizes = np.bincount(digits.train_labels, minlength=10)
    counts = np.bincount(lt.train_labels, minlength=10)
    np.testing.assert_array_equal(counts, long_tail_counts(sizes, 10.0))
    assert counts[0] == sizes[0]  # the head class is kept whole
    assert counts[-1] == sizes.max() // 10 and np.all(np.diff(counts) < 0)
    assert lt.classes == digits.classes
    assert lt.train_images is not None and digits.train_images is not None
    # Every kept image is a digits train image with its own label.
    pairs = zip(digits.train_images, digits.train_labels, strict=True)
    rows = {img.tobytes(): int(y) for img, y in pairs}
    assert [rows[img.tobytes()] for img in lt.train_images] == lt.train_labels.tolist()
    np.testing.assert_array_equal(lt.test_images, digits.test_images)
    np.testing.assert_array_equal(lt.test_labels, digits.test_labels)


def test_digits_lt_is_deterministic_and_takes_its_ratio() -> None:
    first, second = load_dataset("digits_lt"), load_dataset("digits_lt")
    np.testing.assert_array_equal(first.train_images, second.train_images)
    np.testing.assert_array_equal(first.train_labels, second.train_labels)
    flat = load_dataset("digits_lt", imbalance_ratio=1)
    assert flat.n_train == load_dataset("digits").n_train
    steep = np.bincount(load_dataset("digits_lt", imbalance_ratio=50).train_labels)
    assert steep[0] > 40 * steep[-1]


@pytest.mark.parametrize("ratio", [0.5, 0, -3, "ten", None, True, float("nan"), 1000])
def test_a_bad_digits_lt_ratio_is_one_line(ratio: object) -> None:
    with pytest.raises(InputError) as error:
        load_dataset("digits_lt", imbalance_ratio=ratio)
    assert error.value.field == "digits_lt.imbalance_ratio"
    assert "\n" not in str(error.value)
