"""Data sets as in-memory uint8 tensors, their seeded splits, and whole-batch augmentation.

Fashion-MNIST and MNIST are read from IDX files (gzip-compressed or raw), by default from
Debian's ``dataset-fashion-mnist`` package. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.errors import UserError


class DataError(UserError):
    """Data that cannot be used; the message names the path and what to do."""


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX data set lives and what its files are called (without ``.gz``)."""

    default_dir: Path
    train_images: str = "train-images-idx3-ubyte"
    train_labels: str = "train-labels-idx1-ubyte"
    test_images: str = "t10k-images-idx3-ubyte"
    test_labels: str = "t10k-labels-idx1-ubyte"
    install_hint: str = ""


DATASETS: dict[str, IdxSource] = {
    "fashion-mnist": IdxSource(Path("/usr/share/datasets/fashion-mnist"),
                               install_hint="apt-get install dataset-fashion-mnist"),
    "mnist": IdxSource(Path("/usr/share/datasets/mnist")),  # no Debian package: --data-dir
}

_IDX_UBYTE = 0x08


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes (raw or ``.gz``) into a uint8 tensor of its shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); "
                        "check the file or re-install the data set") from exc
    except EOFError as exc:
        raise DataError(f"{path}: truncated gzip stream; re-install the data set") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number); re-install the data set")
    dtype, ndim = raw[2], raw[3]
    if dtype != _IDX_UBYTE or not 1 <= ndim <= 4:
        raise DataError(f"{path}: unsupported IDX type 0x{dtype:02x} with {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header; re-install the data set")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for dim in shape:
        count *= dim
    if len(raw) - header != count:
        raise DataError(f"{path}: corrupt IDX file: header says {count} bytes of data, "
                        f"found {len(raw) - header}; re-install the data set")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: missing {stem}[.gz]; point --data-dir at the IDX files")


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split  # carved from the training files; the search is scored on it
    test: Split  # the test files; never seen by the search
    num_classes: int
    mean: float  # pixel statistics of the training split, in [0, 1]
    std: float

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


def _load_pair(directory: Path, images_stem: str, labels_stem: str) -> Split:
    images_path, labels_path = _find(directory, images_stem), _find(directory, labels_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dim() != 3 or labels.dim() != 1:
        raise DataError(f"{images_path}: expected images (N, H, W) and labels (N,), "
                        f"got {tuple(images.shape)} and {tuple(labels.shape)}")
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {len(labels)} labels in "
                        f"{labels_path}")
    return Split(images.unsqueeze(1).contiguous(), labels.long())


def load_dataset(name: str = "fashion-mnist", data_dir: str | Path | None = None, *,
                 val_samples: int = 5000, train_samples: int | None = None,
                 seed: int = 0) -> Dataset:
    """Load a data set and carve a seeded validation split out of its training files.

    ``train_samples`` keeps a seeded subset of what remains for training (all when None).
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    source = DATASETS[name]
    directory = Path(data_dir) if data_dir is not None else source.default_dir
    if not directory.is_dir():
        hint = f"install it ({source.install_hint}) or " if data_dir is None and source.install_hint \
            else ""
        raise DataError(f"data directory {directory} does not exist; {hint}pass --data-dir DIR")
    full = _load_pair(directory, source.train_images, source.train_labels)
    test = _load_pair(directory, source.test_images, source.test_labels)
    if not 0 < val_samples < len(full):
        raise DataError(f"--val-samples must be between 1 and {len(full) - 1} for {directory}, "
                        f"got {val_samples}")
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_samples], order[val_samples:]
    if train_samples is not None:
        if train_samples < 1:
            raise DataError(f"--train-samples must be positive, got {train_samples}")
        train_idx = train_idx[:train_samples]
    train = Split(full.images[train_idx], full.labels[train_idx])
    pixels = train.images.float().div_(255)
    return Dataset(name=name, train=train, val=Split(full.images[val_idx], full.labels[val_idx]),
                   test=test, num_classes=int(full.labels.max()) + 1,
                   mean=float(pixels.mean()), std=float(pixels.std()))


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 images to float, scaled to [0, 1] then standardised."""
    return (images.float().div_(255) - mean) / std


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool,
                     generator: torch.Generator) -> torch.Tensor:
    """Random crops (zero padding) and, if ``flip``, horizontal flips, one draw per image."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator)
    flip = (torch.rand(n, 1, 1, generator=generator) < 0.5) & flip
    cols = torch.arange(w).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    rows = torch.arange(h).view(1, h, 1) + dy
    batch = torch.arange(n).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
