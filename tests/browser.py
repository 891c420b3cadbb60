"""Headless Chromium, as a person would open a page: the DOM after scripts ran, and a
screenshot kept under test-artifacts/ (or $ALSYS_TEST_ARTIFACTS) for a human to look at."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("these tests need Chromium: apt-get install -y chromium (as .ci/run does)")
    return found


def artifacts() -> Path:
    folder = Path(os.environ.get("ALSYS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dom(url: str, budget_ms: int = 5000, tmp: Path | None = None) -> str:
    """The page's DOM once its scripts ran for ``budget_ms`` of virtual time."""
    profile = ["--user-data-dir=" + str(tmp / "chromium-profile")] if tmp else []
    out = subprocess.run(
        [chromium(), *FLAGS, *profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def screenshot(url: str, name: str, budget_ms: int = 5000, size: str = "1280,2400") -> Path:
    """A PNG of the page; asserts that it is not blank (many distinct colours)."""
    from PIL import Image

    path = artifacts() / name
    out = subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--window-size={size}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={path}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and path.is_file(), out.stderr[-2000:]
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"{path} looks blank ({len(colours)} colours)"
    return path
