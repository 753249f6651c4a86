"""Shared fixtures: small data sets written in their real formats (IDX, image folders)."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.space import resolve_space

# The ImageNet-style 224 px space: tests that count its stages and feature maps use it by name.
LARGE_SPACE = resolve_space("mobilenetv3")
ROOT = Path(__file__).resolve().parent.parent


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzip-compressed when ``compress``."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def learnable_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is where a bright square sits: a small net learns it in an epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    cell = size // 4
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 4)
        images[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 220
    return images, labels


def write_fashion_like(directory: Path, n_train: int = 600, n_test: int = 200, size: int = 16,
                       compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = learnable_images(n, size, seed)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return directory


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    return write_fashion_like(tmp_path / "fmnist")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Folder data sets cache their decoded images under XDG_CACHE_HOME: keep ~/.cache clean."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def write_image(path: Path, image: Image.Image) -> Path:
    """Save ``image`` at ``path`` (the suffix picks the format), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_image_folder(root: Path, class_values: dict[str, int], per_class: int = 4,
                       size: int = 12, mode: str = "RGB") -> Path:
    """A folder with one subfolder per class whose PNGs are constant at ``class_values[c]``."""
    for name, value in class_values.items():
        image = Image.new("L", (size, size), value).convert(mode)
        for i in range(per_class):
            write_image(root / name / f"{i}.png", image)
    return root


# A space small enough that profiling it takes seconds and a candidate trains in about one:
# for the tests that run whole searches in subprocesses (killed, in parallel, on PostgreSQL).
TINY_SPACE = """\
name: tiny
resolution: 16
stem: {channels: 8, activation: hswish}
stages:
  - {channels: 16, stride: 2}
  - {channels: 24, stride: 1}
choices:
  depth: [1, 2]
  kernel: [3, 5]
  expansion: [3, 6]
  se: [false, true]
  activation: [relu, hswish]
head: {channels: 48, features: 64, activation: hswish}
"""


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fashion_like(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def tiny_lut(tmp_path_factory: pytest.TempPathFactory, tiny_space: Path) -> Path:
    """The tiny space's latency table on this machine, profiled once for the session."""
    out = tmp_path_factory.mktemp("lut") / "tiny.json"
    subprocess.run([sys.executable, "-m", "nas", "profile", "--space", str(tiny_space), "--out",
                    str(out), "--rounds", "5"], check=True, capture_output=True, cwd=ROOT,
                   timeout=300)
    return out


def search_command(space: Path, data: Path, results: Path, run_name: str, trials: int,
                   *extra: str) -> list[str]:
    """``run_search.py`` flags for a tiny search: one epoch on the tiny data, one fidelity (no
    halving rungs; a later ``--rung-epochs`` in ``extra`` wins), random sampler, a budget nothing
    exceeds, one training thread."""
    return [str(ROOT / "run_search.py"), "--latency-budget", "1000ms", "--space", str(space),
            "--data-dir", str(data), "--val-samples", "100", "--epochs", "1",
            "--rung-epochs", "none", "--references", "none", "--sampler", "random",
            "--train-threads", "1", "--results-dir", str(results), "--run-name", run_name,
            "--trials", str(trials), *extra]
