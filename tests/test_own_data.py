"""End to end on a user's own data: a folder of images (RGB, mixed sizes) and an .npz file."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_image
from nas.cli import main

pytestmark = pytest.mark.slow  # whole searches

CLASSES = ("cat", "dog", "fish")


def _learnable(label: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An RGB image whose class is the colour of a bright band: learnable in one short epoch."""
    w, h = size
    image = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    image[h // 3: 2 * h // 3, :, label] = 230
    return image


def write_folder(root, per_class=40):
    """3 classes; PNG and JPEG; RGB, grey-palette and RGBA; several sizes."""
    rng = np.random.default_rng(0)
    sizes = [(20, 20), (24, 18), (32, 32), (17, 23)]
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            image = Image.fromarray(_learnable(label, sizes[i % len(sizes)], rng))
            suffix = ".jpg" if i % 3 == 0 else ".png"
            if i % 3 == 1:
                image = image.convert("RGBA")  # PNG only
            write_image(root / name / f"{i}{suffix}", image)
    return root


def write_npz(path, n_train=150, n_test=60):
    rng = np.random.default_rng(1)
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 3, n)
        arrays[f"x_{part}"] = np.stack([_learnable(int(y), (32, 32), rng) for y in labels])
        arrays[f"y_{part}"] = labels
    np.savez(path, **arrays, class_names=np.array(CLASSES))
    return path


def _search_and_export(results, run_name, dataset):
    common = ["--latency-budget", "1000ms", "--val-samples", "20", "--epochs", "1",
              "--trials", "1", "--sampler", "random", "--rung-epochs", "none",
              "--references", "none", "--backend", "torch",  # eager: a table in seconds
              "--results-dir", str(results)]
    assert main(["search", "--dataset", dataset, "--run-name", run_name, *common]) == 0
    run = results / run_name
    assert (pd.read_csv(run / "trials.csv")["status"] == "trained").sum() == 1
    out = run / "export"
    assert main(["export", str(run), "--format", "json,onnx"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    arch = json.loads((out / "arch.json").read_text())
    assert card["class_names"] == arch["class_names"] == list(CLASSES)
    assert card["input"].startswith("3x28x28") and len(card["normalization"]["mean"]) == 3
    assert card["test_accuracy"] is not None
    return run


def test_search_and_export_on_an_image_folder_and_an_npz_file(tmp_path):
    results = tmp_path / "results"  # one latency table for both runs
    folder = write_folder(tmp_path / "pets" / "train")
    run = _search_and_export(results, "folder", f"folder:{folder}")
    summary = (run / "summary.md").read_text()
    assert "images of 28px, 3 channel(s), 3 classes" in summary
    npz = write_npz(tmp_path / "pets.npz")
    _search_and_export(results, "npz", f"npz:{npz}")
