"""Data sets as in-memory uint8 tensors, their seeded splits, and whole-batch augmentation.

The data set's name picks the source; nothing is downloaded:

* ``fashion-mnist``, ``mnist``: IDX files (gzip-compressed or raw), by default from Debian's
  ``dataset-fashion-mnist`` package, else from ``data_dir``.
* ``folder:DIR``: one subfolder of DIR per class (the ImageFolder convention: class names are
  the sorted subfolder names, label i is the i-th). Every ``.png``, ``.jpg`` and ``.jpeg`` file
  under a class subfolder (any depth, any case of the suffix) is an image; hidden files and
  folders (names starting with ``.``) are skipped and other files are ignored, with a note.
  Images may have any mode: if all are grey (Pillow's "1", "L", "LA", 16-bit grey) the data set
  has one channel, else three (every image converted to RGB; alpha is dropped). They may have
  any size too, but images of several sizes need a resolution.
* ``npz:FILE``: a ``numpy.savez`` archive with ``x_train``, ``y_train``, ``x_test``, ``y_test``
  (uint8 images (N, H, W) or (N, H, W, C) with C 1 or 3; integer labels (N,)) and optionally
  ``class_names`` (strings; label i is ``class_names[i]``, else the names are "0", "1", ...).

Test split: IDX and npz sources have their own. For ``folder:DIR`` it is the folder
``test_dir`` when given, else a folder named ``test`` beside DIR (``DIR/../test``) when there is
one, with the same class subfolders; else it is carved out of DIR (see `load_dataset`).

A resolution resizes every image of every source to resolution x resolution (see `resize`);
without one, images must be square and all of one size.

Decoding a folder is slow, so its decoded images are cached as one uint8 ``.npy`` file in
``cache_dir``, by default `default_cache_dir`. The file's name hashes the folder's absolute path,
each image's relative path, size and modification time, and the resolution: any change to the
images, or another resolution, makes a new cache file (old ones are left for the user to delete).
It is written once the data passed its checks, under a temporary name then renamed, so a failed
or killed run leaves no cache file, let alone a truncated one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nas.atomic import atomic_path
from nas.errors import UserError
from nas.progress import Progress


class DataError(UserError):
    """Data that cannot be used; the message names the path and what to do."""


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX data set lives, its class names and its files' names (without ``.gz``)."""

    default_dir: Path
    class_names: tuple[str, ...] = tuple(str(digit) for digit in range(10))
    train_images: str = "train-images-idx3-ubyte"
    train_labels: str = "train-labels-idx1-ubyte"
    test_images: str = "t10k-images-idx3-ubyte"
    test_labels: str = "t10k-labels-idx1-ubyte"
    install_hint: str = ""


DATASETS: dict[str, IdxSource] = {
    "fashion-mnist": IdxSource(Path("/usr/share/datasets/fashion-mnist"), FASHION_MNIST_CLASSES,
                               install_hint="apt-get install dataset-fashion-mnist"),
    "mnist": IdxSource(Path("/usr/share/datasets/mnist")),  # no Debian package: --data-dir
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = frozenset({"1", "L", "LA"})
GREY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})  # 16-bit grey PNGs
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
TEST_SEED = 0  # a carved-out test split is the same whatever --seed, so runs share it
CACHE_FORMAT = 1  # part of the cache key: bump when decoding changes
RESIZE_CHUNK = 256  # images resized at a time, to bound the float copy's memory
STATS_CHUNK = 1024  # images counted at a time by `channel_stats`

_IDX_UBYTE = 0x08


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{exc.__class__.__name__}: {exc}".split())


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes (raw or ``.gz``) into a uint8 tensor of its shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({_one_line(exc)}); "
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

    def subset(self, index: torch.Tensor | slice) -> Split:
        return Split(self.images[index], self.labels[index])

    def to(self, device: torch.device) -> Split:
        """The split on ``device``, its images still uint8 (a quarter of float's memory and
        transfer); itself where it already is."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Dataset:
    name: str  # as given to `load_dataset`, with a folder's or file's path made absolute
    train: Split
    val: Split  # carved from the training images; the search is scored on it
    test: Split  # never seen by the search
    class_names: tuple[str, ...]  # label i is class_names[i]
    mean: tuple[float, ...]  # per-channel pixel statistics of the training split, in [0, 1]
    std: tuple[float, ...]
    notes: tuple[str, ...] = ()  # how the data was read, for the user: one sentence each

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    def to(self, device: torch.device) -> Dataset:
        """The data set with every split on ``device`` (see `Split.to`), where training then
        augments and normalises whole batches."""
        return replace(self, train=self.train.to(device), val=self.val.to(device),
                       test=self.test.to(device))


@dataclass(frozen=True)
class Source:
    """A source's images before splitting; ``test`` is None when the source has no test split."""

    where: str  # the path that messages name
    train: Split
    test: Split | None
    class_names: tuple[str, ...]
    notes: tuple[str, ...] = ()
    caches: tuple[tuple[Path, torch.Tensor], ...] = ()  # decoded images to cache, once checked


# --- IDX ------------------------------------------------------------------------------------

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


def _load_idx(name: str, data_dir: str | Path | None) -> Source:
    source = DATASETS[name]
    directory = Path(data_dir) if data_dir is not None else source.default_dir
    if not directory.is_dir():
        hint = (f"install it ({source.install_hint}) or "
                if data_dir is None and source.install_hint else "")
        raise DataError(f"data directory {directory} does not exist; {hint}pass --data-dir DIR")
    return Source(str(directory), _load_pair(directory, source.train_images, source.train_labels),
                  _load_pair(directory, source.test_images, source.test_labels),
                  source.class_names)


# --- npz ------------------------------------------------------------------------------------

def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass npz:FILE, a numpy.savez archive of "
                        f"{', '.join(NPZ_ARRAYS)}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an .npz archive, or a truncated one; save "
                        f"{', '.join(NPZ_ARRAYS)} in one file with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_ARRAYS if key not in archive.files]
            if missing:
                raise DataError(f"{path}: no array named {', '.join(missing)}; an npz data set "
                                f"holds {', '.join(NPZ_ARRAYS)} and optionally class_names")
            return {key: archive[key] for key in (*NPZ_ARRAYS, "class_names")
                    if key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read an array ({_one_line(exc)}); write the file with "
                        "numpy.savez, strings as numpy.array(names, dtype=str)") from exc


def _npz_split(path: Path, arrays: dict[str, np.ndarray], part: str) -> Split:
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if x.dtype != np.uint8 or not (x.ndim == 3 or x.ndim == 4 and x.shape[3] in (1, 3)):
        raise DataError(f"{path}: x_{part} must be uint8 images (N, H, W) or (N, H, W, C) with C "
                        f"1 or 3, got {x.dtype} {x.shape}; store 0..255 pixels as numpy.uint8")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DataError(f"{path}: y_{part} must be integer labels (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{path}: x_{part} holds {len(x)} images but y_{part} {len(y)} labels; "
                        "give every image one label")
    images = torch.from_numpy(x[..., None] if x.ndim == 3 else x).permute(0, 3, 1, 2)
    return Split(images.contiguous(), torch.from_numpy(y.astype(np.int64)))


def _npz_class_names(path: Path, arrays: dict[str, np.ndarray], splits: Sequence[Split]) -> \
        tuple[str, ...]:
    if "class_names" not in arrays:
        top = max((int(split.labels.max()) for split in splits if len(split)), default=-1)
        return tuple(str(label) for label in range(top + 1))
    names = arrays["class_names"]
    if names.dtype.kind != "U" or names.ndim != 1:
        raise DataError(f"{path}: class_names must be strings (K,), got {names.dtype} "
                        f"{names.shape}; store numpy.array(names, dtype=str)")
    return tuple(str(name) for name in names)


def _load_npz(path: Path) -> Source:
    arrays = _read_npz(path)
    train, test = _npz_split(path, arrays, "train"), _npz_split(path, arrays, "test")
    class_names = _npz_class_names(path, arrays, (train, test))
    if len(class_names) < 2:
        raise DataError(f"{path}: {len(class_names)} class(es); a classifier needs labels of at "
                        "least two classes")
    return Source(str(path), train, test, class_names)


# --- image folders --------------------------------------------------------------------------

@dataclass(frozen=True)
class FolderListing:
    """The images of a folder with one subfolder per class, in label order, then path order."""

    root: Path  # absolute
    class_names: tuple[str, ...]
    files: tuple[str, ...]  # relative to root, with "/"
    labels: tuple[int, ...]
    stamps: tuple[tuple[int, int], ...]  # each file's size and mtime in ns, for the cache key
    ignored: tuple[str, ...]  # files that are not .png/.jpg/.jpeg, relative to root


def list_folder(root: Path) -> FolderListing:
    """List a class-per-subfolder image folder; DataError if it is missing or a class is empty."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; folder:DIR needs a folder with one subfolder "
                        "of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"{root}: {len(class_dirs)} class subfolder(s); put each class's images "
                        "in a subfolder named after the class, at least two classes")
    files: list[str] = []
    labels: list[int] = []
    stamps: list[tuple[int, int]] = []
    ignored: list[str] = []
    for label, class_dir in enumerate(class_dirs):
        count = len(files)
        for path in sorted(class_dir.rglob("*")):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(relative.as_posix())
                continue
            stat = path.stat()
            files.append(relative.as_posix())
            labels.append(label)
            stamps.append((stat.st_size, stat.st_mtime_ns))
        if len(files) == count:
            raise DataError(f"{class_dir}: empty class folder (no .png, .jpg or .jpeg images); "
                            "add images to it or remove it")
    return FolderListing(root, tuple(d.name for d in class_dirs), tuple(files), tuple(labels),
                         tuple(stamps), tuple(ignored))


def _pixels(image: Image.Image) -> np.ndarray:
    if image.mode in GREY16_MODES:
        return np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257), 0, 255) \
            .astype(np.uint8)
    return np.array(image.convert("L" if image.mode in GREY_MODES else "RGB"))


def decode_image(path: Path) -> torch.Tensor:
    """Fully decode a PNG or JPEG into uint8 (C, H, W): C is 1 for a grey image, else 3 (RGB).

    Grey means Pillow's modes "1", "L", "LA" and 16-bit grey (scaled to 8 bits); every other
    mode (palette, RGBA, CMYK, ...) is converted to RGB. Alpha is dropped. A truncated or
    undecodable file raises DataError.
    """
    try:
        with Image.open(path) as image:
            image.load()  # decode now: Image.open reads only the header
            pixels = _pixels(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({_one_line(exc)}); replace or delete "
                        "the file") from exc
    return torch.from_numpy(pixels[..., None] if pixels.ndim == 2 else pixels).permute(2, 0, 1)


def decode_folder(listing: FolderListing, resolution: int | None) -> torch.Tensor:
    """Decode a listing's images into uint8 (N, C, H, W), each resized as `resize` does.

    C is 3 if any image is in colour (grey ones are repeated into R, G and B), else 1. Without
    a resolution every image must have the first one's size. Shows a `Progress` on stderr.
    """
    decoded: list[torch.Tensor] = []
    with Progress(f"decoding {listing.root}", len(listing.files)) as progress:
        for relative in listing.files:
            path = listing.root / relative
            image = resize(decode_image(path).unsqueeze(0), resolution)[0]
            if decoded and image.shape[1:] != decoded[0].shape[1:]:
                (h, w), (h0, w0) = image.shape[1:], decoded[0].shape[1:]
                raise DataError(f"{path}: {h}x{w} pixels, but {listing.root / listing.files[0]} "
                                f"is {h0}x{w0}; pass --resolution N to resize all images to NxN")
            decoded.append(image)
            progress.step()
    channels = max(image.shape[0] for image in decoded)
    return torch.stack([image.expand(channels, -1, -1) for image in decoded])


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nas/folders`` if XDG_CACHE_HOME is an absolute path, else
    ``~/.cache/nas/folders``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "nas" / "folders"


def cache_path(listing: FolderListing, resolution: int | None, cache_dir: Path) -> Path:
    """The cache file of a listing decoded at a resolution (the file need not exist)."""
    key = json.dumps([CACHE_FORMAT, str(listing.root), resolution, listing.files, listing.stamps])
    return cache_dir / f"{listing.root.name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def _read_cache(path: Path) -> torch.Tensor | None:
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError):  # missing, or unreadable: decode again, overwrite it
        return None


def _write_cache(path: Path, images: torch.Tensor) -> None:
    """Write the whole file atomically (`nas.atomic.atomic_path`): never a truncated cache."""
    try:
        with atomic_path(path) as temporary, open(temporary, "wb") as f:
            np.save(f, images.numpy())
    except OSError as exc:
        raise DataError(f"{path.parent}: cannot write the cache of decoded images "
                        f"({_one_line(exc)}); pass --cache-dir DIR") from exc


def _folder_split(listing: FolderListing, resolution: int | None,
                  cache_dir: Path) -> tuple[Split, str, tuple[Path, torch.Tensor] | None]:
    """The listing's images read from the cache, or decoded with their cache file still to
    write (the path and images, else None), and a note for the user."""
    path = cache_path(listing, resolution, cache_dir)
    labels = torch.tensor(listing.labels, dtype=torch.int64)
    images = _read_cache(path)
    if images is not None:
        return Split(images, labels), f"read the images of {listing.root} from the cache {path}", \
            None
    images = decode_folder(listing, resolution)
    return Split(images, labels), f"decoded {listing.root} and cached its images in {path}", \
        (path, images)


def _test_folder(root: Path, test_dir: str | Path | None) -> Path | None:
    if test_dir is not None:
        return Path(test_dir).expanduser().resolve()
    sibling = root.parent / "test"
    return sibling if sibling != root and sibling.is_dir() else None


def _load_folders(root: Path, test_dir: str | Path | None, resolution: int | None,
                  cache_dir: Path) -> Source:
    listing = list_folder(root)
    test_root = _test_folder(root, test_dir)
    test_listing = list_folder(test_root) if test_root is not None else None
    if test_listing is not None and test_listing.class_names != listing.class_names:
        only_test = sorted(set(test_listing.class_names) - set(listing.class_names))
        only_train = sorted(set(listing.class_names) - set(test_listing.class_names))
        raise DataError(f"{test_root}: its class subfolders differ from {root}'s (only in the "
                        f"test folder: {only_test}, only in the training folder: {only_train}); "
                        "give both the same class subfolders")
    splits: list[Split] = []
    notes: list[str] = []
    caches: list[tuple[Path, torch.Tensor]] = []
    for each in (listing, test_listing) if test_listing is not None else (listing,):
        split, note, unsaved = _folder_split(each, resolution, cache_dir)
        splits.append(split)
        notes.append(note)
        caches += [unsaved] if unsaved is not None else []
        if each.ignored:
            notes.append(f"ignored {len(each.ignored)} file(s) in {each.root} that are not "
                         f".png, .jpg or .jpeg, e.g. {each.ignored[0]}")
    return Source(str(root), splits[0], splits[1] if len(splits) > 1 else None,
                  listing.class_names, tuple(notes), tuple(caches))


# --- whole data sets ------------------------------------------------------------------------

def _load_source(name: str, data_dir: str | Path | None, test_dir: str | Path | None,
                 resolution: int | None, cache_dir: str | Path | None) -> tuple[str, Source]:
    """The data set's canonical name and its images; see the module's docstring for names."""
    if test_dir is not None and not name.startswith("folder:"):
        raise DataError(f"--test-dir is for folder:DIR data sets, not {name!r}; leave it out")
    kind, colon, target = name.partition(":")
    if not colon or kind not in ("folder", "npz"):
        if name not in DATASETS:
            raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, "
                            "folder:DIR or npz:FILE")
        return name, _load_idx(name, data_dir)
    if not target:
        raise DataError(f"data set {name!r} names no path; write {kind}:PATH")
    if data_dir is not None:
        raise DataError(f"--data-dir is for the IDX data sets ({', '.join(DATASETS)}); "
                        f"{kind}:PATH already names the data, leave --data-dir out")
    path = Path(target).expanduser().resolve()
    if kind == "npz":
        return f"npz:{path}", _load_npz(path)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return f"folder:{path}", _load_folders(path, test_dir, resolution, cache)


def resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) images to (N, C, size, size); unchanged if size is None or theirs.

    Bilinear interpolation with antialiasing (so shrinking averages rather than skips pixels),
    computed in float and rounded back to uint8. Non-square images are stretched to the square:
    the aspect ratio is not preserved.
    """
    if size is None or images.shape[-2:] == (size, size):
        return images
    resized = torch.empty(*images.shape[:2], size, size, dtype=torch.uint8)
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = images[start:start + RESIZE_CHUNK].float()
        resized[start:start + RESIZE_CHUNK] = torch.nn.functional.interpolate(
            chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False,
        ).round_().clamp_(0, 255)
    return resized


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and sample standard deviation of uint8 (N, C, H, W) images in [0, 1].

    Computed exactly from per-channel counts of the 256 byte values, a chunk of images at a
    time, so the images are never copied to float all at once.
    """
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.float64)
    for chunk in images.split(STATS_CHUNK):
        for c in range(channels):
            counts[c] += torch.bincount(chunk[:, c].flatten(), minlength=256)
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum(1)
    mean = counts @ values / n
    var = (counts * (values - mean[:, None]) ** 2).sum(1) / (n - 1)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def _check_images(where: str, splits: Sequence[Split]) -> None:
    """The splits' images must share one square size (they do after resizing)."""
    sizes = sorted({tuple(split.images.shape[2:]) for split in splits})
    if len(sizes) > 1:
        raise DataError(f"{where}: training and test images differ in size "
                        f"({' and '.join(f'{h}x{w}' for h, w in sizes)}); pass --resolution N "
                        "to resize all images to NxN")
    (h, w), = sizes
    if h != w:
        raise DataError(f"{where}: images are {h}x{w} (height x width), not square; pass "
                        "--resolution N to resize them to NxN")


def _check_labels(where: str, part: str, split: Split, num_classes: int) -> None:
    if not len(split):
        raise DataError(f"{where}: the {part} split has no images; it needs some")
    low, high = int(split.labels.min()), int(split.labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(f"{where}: {part} label {low if low < 0 else high} is outside 0.."
                        f"{num_classes - 1} ({num_classes} classes); fix the labels or the "
                        "class names")


def _uniform(source: Source, resolution: int | None) -> tuple[Split, Split | None]:
    """The source's training and test splits resized, with one number of channels (grey
    images beside colour ones are repeated into three), and checked."""
    splits = {"training": source.train}
    if source.test is not None:
        splits["test"] = source.test
    resized = {part: resize(split.images, resolution) for part, split in splits.items()}
    channels = max(images.shape[1] for images in resized.values())
    uniform = {part: Split(images.expand(-1, channels, -1, -1).contiguous(), splits[part].labels)
               for part, images in resized.items()}
    _check_images(source.where, list(uniform.values()))
    for part, split in uniform.items():
        _check_labels(source.where, part, split, len(source.class_names))
    return uniform["training"], uniform.get("test")


def _carve(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """A seeded random ``count`` of the split's images, and the rest (in the same order)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return split.subset(order[:count]), split.subset(order[count:])


def load_dataset(name: str = "fashion-mnist", data_dir: str | Path | None = None, *,
                 val_samples: int = 5000, train_samples: int | None = None, seed: int = 0,
                 resolution: int | None = None, cache_dir: str | Path | None = None,
                 test_dir: str | Path | None = None) -> Dataset:
    """Load a data set and carve a seeded validation split out of its training images.

    ``name`` is ``fashion-mnist``, ``mnist`` (IDX files in ``data_dir``), ``folder:DIR`` (with
    the test folder ``test_dir``, and the decoded images cached in ``cache_dir``) or
    ``npz:FILE``; the module's docstring describes each. ``resolution`` resizes every image to
    resolution x resolution with `resize` (stretching non-square ones: the aspect ratio is
    not kept); without it the images must be square and of one size. Grey images beside
    colour ones are repeated into three channels.

    A folder without a test split gives ``val_samples`` of its images to the test split,
    drawn with seed `TEST_SEED` whatever ``seed`` is (so runs with different seeds share it),
    and says so in ``Dataset.notes``. ``train_samples`` keeps a seeded subset of what remains
    for training (all when None).
    """
    if resolution is not None and resolution < 1:
        raise DataError(f"--resolution must be positive, got {resolution}")
    name, source = _load_source(name, data_dir, test_dir, resolution, cache_dir)
    full, test = _uniform(source, resolution)
    for path, images in source.caches:
        _write_cache(path, images)
    limit = len(full) - 1 if test is not None else (len(full) - 1) // 2
    if not 0 < val_samples <= limit:
        carved = "" if test is not None else ", as many again being set aside as the test split"
        raise DataError(f"--val-samples must be between 1 and {limit} for {source.where} "
                        f"({len(full)} training images{carved}), got {val_samples}")
    notes = source.notes
    if test is None:
        test, full = _carve(full, val_samples, TEST_SEED)
        notes += (f"{source.where} has no test split (no --test-dir, no folder "
                  f"{Path(source.where).parent / 'test'}): {len(test)} of its images, drawn with "
                  f"seed {TEST_SEED} whatever the --seed, are set aside as the test split",)
    val, train = _carve(full, val_samples, seed)
    if train_samples is not None:
        if train_samples < 1:
            raise DataError(f"--train-samples must be positive, got {train_samples}")
        train = train.subset(slice(train_samples))
    mean, std = channel_stats(train.images)
    return Dataset(name=name, train=train, val=val, test=test, class_names=source.class_names,
                   mean=mean, std=std, notes=notes)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, C, H, W) images to float, scaled to [0, 1] then standardised per channel, on
    the images' device."""
    mean_, std_ = (torch.tensor(v, dtype=torch.float32, device=images.device).view(-1, 1, 1)
                   for v in (mean, std))
    return (images.float().div_(255) - mean_) / std_


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool,
                     generator: torch.Generator) -> torch.Tensor:
    """Random crops (zero padding) and, if ``flip``, horizontal flips, one draw per image.

    The draws come from ``generator``, a CPU one, and move to the images' device, where the
    crops are taken: the same generator state gives the same crops on every device."""
    n, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator).to(device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), generator=generator).to(device)
    flip = ((torch.rand(n, 1, 1, generator=generator) < 0.5) & flip).to(device)
    cols = torch.arange(w, device=device).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    rows = torch.arange(h, device=device).view(1, h, 1) + dy
    batch = torch.arange(n, device=device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_erase(images: torch.Tensor, probability: float, generator: torch.Generator,
                 area: tuple[float, float] = (0.02, 0.4), min_aspect: float = 0.3) -> torch.Tensor:
    """Random erasing (Zhong et al., AAAI 2020, whose defaults these are): with
    ``probability``, one rectangle of each image is replaced by uniform random pixel values.
    Its share of the image's area is uniform in ``area``, its aspect ratio log-uniform in
    [``min_aspect``, 1 / ``min_aspect``]; a side longer than the image is cut to it (where the
    paper draws again). One draw per image, all from ``generator``, a CPU one, on the CPU;
    the rectangles and noise then move to the images' device, so the same generator state
    erases the same pixels on every device."""
    n, _, h, w = images.shape
    device = images.device
    share = torch.empty(n).uniform_(*area, generator=generator)
    aspect = torch.empty(n).uniform_(math.log(min_aspect), -math.log(min_aspect),
                                     generator=generator).exp()
    eh = (share * h * w * aspect).sqrt().round().clamp(1, h).long()
    ew = (share * h * w / aspect).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    chosen = torch.rand(n, generator=generator) < probability
    noise = torch.randint(0, 256, images.shape, dtype=images.dtype, generator=generator)
    top, bottom, left, right, chosen = (t.view(n, 1, 1).to(device) for t in
                                        (top, top + eh, left, left + ew, chosen))
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    mask = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right) & chosen
    return torch.where(mask.unsqueeze(1), noise.to(device), images)
