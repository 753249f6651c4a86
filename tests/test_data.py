import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import nas.data
from conftest import write_fashion_like, write_idx, write_image, write_image_folder
from nas.data import (DataError, channel_stats, decode_image, default_cache_dir, load_dataset,
                      normalize, random_crop_flip, random_erase, read_idx, resize)
from nas.progress import Progress


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_reads_gz_and_raw(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, compress)
    assert torch.equal(read_idx(path), torch.from_numpy(array))


def test_corrupt_idx_files_name_the_path(tmp_path):
    good = write_idx(tmp_path / "a-idx3-ubyte", np.zeros((4, 5, 5), np.uint8), compress=False)
    truncated = tmp_path / "t-idx3-ubyte"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(DataError, match=f"{truncated}.*corrupt"):
        read_idx(truncated)
    magic = tmp_path / "m-idx3-ubyte"
    magic.write_bytes(b"\x01\x02" + good.read_bytes()[2:])
    with pytest.raises(DataError, match="bad magic"):
        read_idx(magic)
    broken_gz = tmp_path / "g-idx3-ubyte.gz"
    broken_gz.write_bytes(gzip.compress(good.read_bytes())[:-12])
    with pytest.raises(DataError, match=str(broken_gz)):
        read_idx(broken_gz)


def test_splits_are_seeded_disjoint_and_sized(idx_dir):
    a = load_dataset("fashion-mnist", idx_dir, val_samples=100, train_samples=300, seed=1)
    b = load_dataset("fashion-mnist", idx_dir, val_samples=100, train_samples=300, seed=1)
    c = load_dataset("fashion-mnist", idx_dir, val_samples=100, train_samples=300, seed=2)
    assert (len(a.train), len(a.val), len(a.test)) == (300, 100, 200)
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape[1:] == (1, 16, 16)
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    train_rows = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.images)
    assert a.num_classes == 10 and 0 < a.mean[0] < 1 and a.std[0] > 0


def test_missing_directory_and_files_are_reported(tmp_path, idx_dir):
    with pytest.raises(DataError, match="does not exist.*--data-dir"):
        load_dataset("fashion-mnist", tmp_path / "nowhere")
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_dataset("fashion-mnist", idx_dir, val_samples=10)
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("imagenet", idx_dir)


def test_raw_idx_directory_loads_too(tmp_path):
    directory = write_fashion_like(tmp_path / "raw", compress=False)
    assert len(load_dataset("mnist", directory, val_samples=50).train) == 550


def test_crop_and_flip_on_whole_batches():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    assert torch.equal(random_crop_flip(images, 0, False, g), images)
    flipped = [random_crop_flip(images, 0, True, g) for _ in range(20)]
    assert all(torch.equal(f[i], images[i]) or torch.equal(f[i], images[i].flip(-1))
               for f in flipped for i in range(2))
    assert any(torch.equal(f[0], images[0].flip(-1)) for f in flipped)
    crops = random_crop_flip(images, 1, False, g)
    assert crops.shape == images.shape and crops.dtype == torch.uint8


def test_random_erasing_replaces_one_rectangle_per_chosen_image():
    images = torch.full((2000, 3, 28, 28), 7, dtype=torch.uint8)
    assert torch.equal(random_erase(images, 0.0, torch.Generator().manual_seed(0)), images)
    erased = random_erase(images, 0.5, torch.Generator().manual_seed(0))
    assert erased.dtype == torch.uint8 and erased.shape == images.shape
    assert torch.equal(erased, random_erase(images, 0.5, torch.Generator().manual_seed(0)))
    changed = erased != 7
    per_image = changed.any(1)  # (n, h, w)
    # a pixel is erased in all channels or none (its noise is 7 in a channel one time in 256)
    assert (per_image & ~changed.all(1)).sum() < 0.02 * per_image.sum()
    hit = per_image.flatten(1).any(1)
    assert abs(hit.float().mean().item() - 0.5) < 0.05
    for mask in per_image[hit][:200]:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.float().mean() > 0.9  # a filled rectangle (noise hits 7 one time in 256)
        assert 0.02 * 784 * 0.7 <= h * w <= 0.4 * 784 * 1.2
        assert 0.3 / 1.5 <= h / w <= 1.5 / 0.3


# --- image folders, npz files, resizing, the cache, bad data, progress ---------------------


def constant(value: int, size: tuple[int, int], mode: str) -> Image.Image:
    """A constant image of grey ``value`` in ``mode``; ``size`` is (width, height)."""
    if mode == "I;16":
        return Image.fromarray(np.full(size[::-1], value * 257, np.uint16))
    if mode == "P":
        return Image.new("RGB", size, (value,) * 3).convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "1":  # thresholded at 128, not dithered
        return Image.new("L", size, value).convert("1", dither=Image.Dither.NONE)
    return Image.new("L", size, value).convert(mode)


def all_splits(data) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.cat([data.train.images, data.val.images, data.test.images]),
            torch.cat([data.train.labels, data.val.labels, data.test.labels]))


def test_rgb_folder_of_mixed_sizes_and_modes(tmp_path):
    values = {"cat": 30, "dog": 120, "eel": 210}
    root = tmp_path / "pets"
    for name, value in values.items():
        for file, size, mode in [("a.png", (10, 10), "RGB"), ("b.png", (12, 8), "L"),
                                 ("c.png", (16, 16), "P"), ("d.png", (9, 11), "RGBA"),
                                 ("e.jpg", (10, 10), "RGB"), ("f.JPEG", (8, 8), "L"),
                                 ("sub/g.png", (10, 10), "LA")]:
            write_image(root / name / file, constant(value, size, mode))
    write_image(root / "cat" / "h.png", Image.new("RGB", (10, 10), (45, 30, 15)))  # mean 30
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "._a.png").write_bytes(b"macOS metadata, hidden")
    (root / ".hidden").mkdir()
    data = load_dataset(f"folder:{root}", val_samples=3, resolution=8)
    images, labels = all_splits(data)
    assert data.name == f"folder:{root}" and data.class_names == ("cat", "dog", "eel")
    assert (data.num_classes, data.in_channels, data.image_size) == (3, 3, 8)
    assert images.shape == (22, 3, 8, 8) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [8, 7, 7]
    expected = torch.tensor([values[name] for name in data.class_names])[labels]
    assert (images.float().mean((1, 2, 3)) - expected).abs().max() <= 2  # labels match images
    assert any((image[0] != image[2]).any() for image in images)  # colour is kept
    assert len(data.mean) == len(data.std) == 3
    assert any("ignored 1 file" in note and "cat/notes.txt" in note for note in data.notes)


def test_grey_folder_has_one_channel_and_uses_the_sibling_test_folder(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for name, value in (("a", 60), ("b", 180)):
            for i in range(count):
                mode = ("L", "LA", "I;16", "1")[i % 4]
                write_image(tmp_path / split / name / f"{i}.png", constant(value, (10, 10), mode))
    data = load_dataset(f"folder:{tmp_path / 'train'}", val_samples=2)
    assert (data.in_channels, data.image_size, data.class_names) == (1, 10, ("a", "b"))
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 4)
    assert data.test.labels.tolist() == [0, 0, 1, 1]
    assert not any("no test split" in note for note in data.notes)


@pytest.mark.parametrize("mode, channels, value, decoded", [
    ("L", 1, 77, 77), ("LA", 1, 77, 77), ("I;16", 1, 77, 77), ("1", 1, 200, 255),
    ("RGB", 3, 77, 77), ("RGBA", 3, 77, 77), ("P", 3, 77, 77)])
def test_decode_image_modes(tmp_path, mode, channels, value, decoded):
    path = write_image(tmp_path / "x.png", constant(value, (5, 3), mode))
    image = decode_image(path)
    assert image.shape == (channels, 3, 5) and image.dtype == torch.uint8
    assert torch.all(image == decoded)


def test_test_dir_overrides_the_sibling_and_must_have_the_same_classes(tmp_path):
    write_image_folder(tmp_path / "train", {"a": 10, "b": 90}, per_class=4)
    write_image_folder(tmp_path / "test", {"a": 10, "b": 90}, per_class=1)
    write_image_folder(tmp_path / "holdout", {"a": 10, "b": 90}, per_class=3)
    data = load_dataset(f"folder:{tmp_path / 'train'}", val_samples=2,
                        test_dir=tmp_path / "holdout")
    assert len(data.test) == 6
    write_image_folder(tmp_path / "other", {"a": 10, "c": 90}, per_class=1)
    with pytest.raises(DataError, match=f"{tmp_path / 'other'}: its class subfolders differ"):
        load_dataset(f"folder:{tmp_path / 'train'}", val_samples=2, test_dir=tmp_path / "other")


def test_without_a_test_folder_a_fixed_test_split_is_carved_out(tmp_path):
    root = tmp_path / "train"
    for name, offset in (("a", 0), ("b", 100)):
        for i in range(10):  # every image distinct, to track it across splits
            write_image(root / name / f"{i}.png", constant(offset + i, (6, 6), "L"))
    runs = [load_dataset(f"folder:{root}", val_samples=4, seed=seed) for seed in (1, 2)]
    for data in runs:
        assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
        ids = [set(split.images[:, 0, 0, 0].tolist()) for split in (data.train, data.val,
                                                                     data.test)]
        assert len(set.union(*ids)) == 20  # disjoint, all used
        assert any(f"{root} has no test split" in note for note in data.notes)
    assert torch.equal(runs[0].test.images, runs[1].test.images)  # whatever the seed
    assert not torch.equal(runs[0].val.images, runs[1].val.images)
    with pytest.raises(DataError, match=f"between 1 and 9 for {root}.*test split"):
        load_dataset(f"folder:{root}", val_samples=10)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_npz_with_nhw_or_nhwc_images(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (20, 8, 8) if channels is None else (20, 8, 8, channels)
    x_train, x_test = (rng.integers(0, 256, (n, *shape[1:]), dtype=np.uint8) for n in (20, 6))
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x_train, y_train=np.arange(20) % 3, x_test=x_test,
             y_test=np.array([0, 1, 2, 0, 1, 2], np.int8))
    data = load_dataset(f"npz:{path}", val_samples=5)
    assert (data.in_channels, data.image_size) == (channels or 1, 8)
    assert data.class_names == ("0", "1", "2") and data.name == f"npz:{path}"
    expected = torch.from_numpy(x_test.reshape(6, 8, 8, -1)).permute(0, 3, 1, 2)
    assert torch.equal(data.test.images, expected) and data.test.labels.dtype == torch.int64
    np.savez(path, x_train=x_train, y_train=np.arange(20) % 3, x_test=x_test,
             y_test=np.zeros(6, np.int64), class_names=np.array(["x", "y", "z", "w"]))
    data = load_dataset(f"npz:{path}", val_samples=5, resolution=12)
    assert data.class_names == ("x", "y", "z", "w") and data.image_size == 12


def test_resize_shape_constant_and_antialiasing():
    flat = torch.full((2, 3, 10, 14), 77, dtype=torch.uint8)  # non-square
    for size in (4, 8, 23):
        assert torch.equal(resize(flat, size), torch.full((2, 3, size, size), 77,
                                                          dtype=torch.uint8))
    assert resize(flat, None) is flat
    stripes = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    stripes[..., ::3] = 255  # one bright column in three
    # shrinking by 3 averages the stripes (255 / 3 = 85 inside; the edges see fewer columns)
    # where sampling without antialiasing would hit the dark columns only
    assert resize(stripes, 4)[0, 0].tolist() == [[96, 85, 85, 64]] * 4
    halves = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    halves[..., 4:] = 200
    small = resize(halves, 4)[0, 0]
    assert small[:, 0].tolist() == [0] * 4 and small[:, 3].tolist() == [200] * 4
    assert (small[:, 1] < small[:, 2]).all()


def test_idx_class_names_stats_and_resolution(idx_dir):
    data = load_dataset("fashion-mnist", idx_dir, val_samples=100, resolution=20)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[-1] == "Ankle boot"
    assert data.image_size == 20 and data.num_classes == 10
    pixels = data.train.images.double() / 255
    assert data.mean == pytest.approx([float(pixels.mean())], abs=1e-9)
    assert data.std == pytest.approx([float(pixels.std())], abs=1e-9)
    assert load_dataset("mnist", idx_dir, val_samples=100).class_names == tuple("0123456789")


def test_channel_stats_and_normalize_are_per_channel():
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(images)
    pixels = images.double() / 255
    assert mean == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(pixels.std((0, 2, 3)).tolist(), abs=1e-12)
    out = normalize(images, mean, std)
    assert out.mean((0, 2, 3)).tolist() == pytest.approx([0] * 3, abs=1e-5)
    assert out.std((0, 2, 3)).tolist() == pytest.approx([1] * 3, abs=1e-5)


def count_decodes(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = nas.data.decode_image
    monkeypatch.setattr(nas.data, "decode_image", lambda path: calls.append(path) or real(path))
    return calls


def test_the_cache_saves_decoding_until_the_folder_changes(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data", {"a": 50, "b": 150}, per_class=5)
    cache = tmp_path / "cache"
    calls = count_decodes(monkeypatch)

    def load(resolution=None):
        return load_dataset(f"folder:{root}", val_samples=2, cache_dir=cache,
                            resolution=resolution)

    first = load()
    assert len(calls) == 10 and [p.suffix for p in cache.iterdir()] == [".npy"]
    assert any("decoded" in note and str(cache) in note for note in first.notes)
    second = load()
    assert len(calls) == 10  # read from the cache
    assert torch.equal(all_splits(first)[0], all_splits(second)[0])
    assert any("from the cache" in note for note in second.notes)
    load(resolution=6)
    assert len(calls) == 20  # another resolution, another cache file
    write_image(root / "a" / "0.png", constant(99, (12, 12), "RGB"))
    os.utime(root / "a" / "0.png", ns=(1, 1))  # the same size: the mtime tells
    changed = load()
    assert len(calls) == 30 and 99 in all_splits(changed)[0].flatten().tolist()
    (root / "b" / "4.png").unlink()
    assert len(all_splits(load())[1]) == 9 and len(calls) == 39
    write_image(root / "b" / "new.png", constant(150, (12, 12), "RGB"))
    load()
    assert len(calls) == 49 and len(list(cache.iterdir())) == 5  # no temporary files left


def test_cache_location_and_an_unreadable_cache(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data", {"a": 50, "b": 150}, per_class=2)
    load_dataset(f"folder:{root}", val_samples=1)
    (cached,) = (Path(os.environ["XDG_CACHE_HOME"]) / "nas" / "folders").iterdir()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # ignored, as the spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "nas" / "folders"
    cached.write_bytes(b"garbage")
    calls = count_decodes(monkeypatch)
    data = load_dataset(f"folder:{root}", val_samples=1, cache_dir=cached.parent)
    assert len(calls) == 4 and len(data.test) == 1
    assert np.load(cached).shape == (4, 3, 12, 12)  # rewritten


def test_a_failed_cache_write_leaves_nothing(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data", {"a": 50, "b": 150}, per_class=2)
    cache = tmp_path / "cache"

    def interrupted(f, array):
        f.write(b"\x93NUMPY half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nas.data.np, "save", interrupted)
    with pytest.raises(DataError, match=f"{cache}: cannot write.*--cache-dir"):
        load_dataset(f"folder:{root}", val_samples=1, cache_dir=cache)
    assert list(cache.iterdir()) == []


def png_bytes(size: int = 16) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    return buffer.getvalue()


def two_classes(root: Path) -> Path:
    return write_image_folder(root, {"a": 10, "b": 200}, per_class=2, size=8)


def empty_class(tmp):
    root = two_classes(tmp / "d")
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("no images here")
    return f"folder:{root}", {}, root / "c"


def text_named_png(tmp):
    root = two_classes(tmp / "d")
    (root / "b" / "x.png").write_text("hello")
    return f"folder:{root}", {}, root / "b" / "x.png"


def truncated(suffix):
    def make(tmp):
        root = two_classes(tmp / "d")
        buffer = io.BytesIO()
        Image.open(io.BytesIO(png_bytes())).save(buffer, format="PNG" if suffix == ".png"
                                                 else "JPEG")
        (root / "a" / f"cut{suffix}").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
        return f"folder:{root}", {}, root / "a" / f"cut{suffix}"
    return make


def one_class(tmp):
    root = write_image_folder(tmp / "d", {"a": 10}, per_class=2)
    return f"folder:{root}", {}, root


def missing_folder(tmp):
    return f"folder:{tmp / 'nowhere'}", {}, tmp / "nowhere"


def mixed_sizes(tmp):
    root = two_classes(tmp / "d")
    write_image(root / "b" / "z.png", constant(1, (9, 9), "L"))
    return f"folder:{root}", {}, root / "b" / "z.png"


def not_square(tmp):
    root = tmp / "d"
    for name in "ab":
        write_image(root / name / "0.png", constant(1, (10, 8), "L"))
        write_image(root / name / "1.png", constant(1, (10, 8), "L"))
    return f"folder:{root}", {}, root


def other_size_test_folder(tmp):
    root = two_classes(tmp / "train")
    write_image_folder(tmp / "test", {"a": 10, "b": 200}, per_class=1, size=10)
    return f"folder:{root}", {}, root


def npz_case(**changes):
    def make(tmp):
        arrays = {"x_train": np.zeros((10, 8, 8), np.uint8), "y_train": np.arange(10) % 2,
                  "x_test": np.zeros((4, 8, 8), np.uint8), "y_test": np.arange(4) % 2}
        arrays.update(changes)
        path = tmp / "d.npz"
        np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
        return f"npz:{path}", {}, path
    return make


def npz_missing(tmp):
    return f"npz:{tmp / 'none.npz'}", {}, tmp / "none.npz"


def npz_text(tmp):
    (tmp / "t.npz").write_text("x_train,y_train\n1,2\n")
    return f"npz:{tmp / 't.npz'}", {}, tmp / "t.npz"


def npz_single_array(tmp):
    with open(tmp / "one.npz", "wb") as f:
        np.save(f, np.zeros((3, 8, 8), np.uint8))
    return f"npz:{tmp / 'one.npz'}", {}, tmp / "one.npz"


def npz_cut(tmp):
    _, _, path = npz_case()(tmp)
    path.write_bytes(path.read_bytes()[:-100])
    return f"npz:{path}", {}, path


def idx_label_out_of_range(tmp):
    directory = write_fashion_like(tmp / "idx", n_train=50, n_test=10)
    write_idx(directory / "t10k-labels-idx1-ubyte", np.full(10, 12, np.uint8))
    return "fashion-mnist", {"data_dir": directory}, directory


BAD_DATA = {
    "empty class folder": empty_class,
    "text file named .png": text_named_png,
    "truncated png": truncated(".png"),
    "truncated jpeg": truncated(".jpg"),
    "fewer than two classes": one_class,
    "missing folder": missing_folder,
    "mixed sizes without a resolution": mixed_sizes,
    "not square without a resolution": not_square,
    "test folder of another size": other_size_test_folder,
    "missing npz file": npz_missing,
    "text file named .npz": npz_text,
    "a .npy, not an .npz": npz_single_array,
    "truncated npz": npz_cut,
    "missing array": npz_case(y_test=None),
    "float images": npz_case(x_train=np.zeros((10, 8, 8), np.float32)),
    "channels first": npz_case(x_train=np.zeros((10, 3, 8, 8), np.uint8)),
    "flat images": npz_case(x_test=np.zeros((4, 64), np.uint8)),
    "float labels": npz_case(y_train=np.zeros(10, np.float32)),
    "mismatched lengths": npz_case(y_train=np.arange(9) % 2),
    "negative labels": npz_case(y_test=np.array([0, 1, -1, 0])),
    "label beyond the class names": npz_case(class_names=np.array(["a", "b"]),
                                             y_train=np.arange(10) % 3),
    "class names not strings": npz_case(class_names=np.arange(2)),
    "class names as objects": npz_case(class_names=np.array(["a", "b"], dtype=object)),
    "one class": npz_case(y_train=np.zeros(10, np.int64), y_test=np.zeros(4, np.int64)),
    "empty test split": npz_case(x_test=np.zeros((0, 8, 8), np.uint8),
                                 y_test=np.zeros(0, np.int64)),
    "train and test sizes differ": npz_case(x_test=np.zeros((4, 6, 6), np.uint8)),
    "idx label out of range": idx_label_out_of_range,
}


@pytest.mark.parametrize("make", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_is_one_line_naming_the_path_and_leaves_no_cache(tmp_path, make):
    name, kwargs, path = make(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as raised:
        load_dataset(name, val_samples=2, cache_dir=cache if name.startswith("folder:") else None,
                     **kwargs)
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    assert not cache.exists() or not any(cache.iterdir())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_flags_that_do_not_fit_the_source(tmp_path, idx_dir):
    root = two_classes(tmp_path / "d")
    with pytest.raises(DataError, match="--test-dir is for folder:DIR"):
        load_dataset("fashion-mnist", idx_dir, test_dir=root)
    with pytest.raises(DataError, match="--data-dir is for the IDX"):
        load_dataset(f"folder:{root}", idx_dir)
    with pytest.raises(DataError, match="names no path"):
        load_dataset("npz:")
    with pytest.raises(DataError, match="--resolution must be positive"):
        load_dataset(f"folder:{root}", resolution=0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_prints_a_line_every_five_seconds_and_at_the_end():
    stream, clock = io.StringIO(), Clock()
    with Progress("decoding d", 10, stream, clock=clock) as progress:
        for second in range(10):
            clock.now = float(second + 1)
            progress.step()
    assert stream.getvalue().splitlines() == [
        "decoding d: 5/10, 5s, ~5s left", "decoding d: 10/10, 10s"]
    progress.close()  # idempotent
    assert stream.getvalue().count("\n") == 2


def test_progress_on_a_terminal_rewrites_one_line():
    stream, clock = Terminal(), Clock()
    progress = Progress("decoding d", 4, stream, clock=clock)
    for _ in range(3):
        clock.now += 0.5
        progress.step()
    assert "\n" not in stream.getvalue()
    last = "decoding d: 3/4, 2s, ~0s left"
    assert stream.getvalue().split("\r")[1:] == [
        "decoding d: 1/4, 0s, ~2s left", "decoding d: 2/4, 1s, ~1s left", last]
    clock.now += 0.05  # too soon for a line, but close shows the final count anyway
    progress.step()
    progress.close()  # blanks out the rest of the longer line before
    assert stream.getvalue().endswith("\r" + "decoding d: 4/4, 2s".ljust(len(last)) + "\n")


def test_progress_ends_the_terminal_line_on_an_error():
    stream = Terminal()
    with pytest.raises(RuntimeError):
        with Progress("x", 2, stream, clock=Clock()) as progress:
            progress.step()
            raise RuntimeError
    assert stream.getvalue() == "\rx: 1/2, 0s, ~0s left\n"
