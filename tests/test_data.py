import gzip

import numpy as np
import pytest
import torch

from conftest import write_fashion_like, write_idx
from nas.data import DataError, load_dataset, random_crop_flip, read_idx


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
    assert a.num_classes == 10 and 0 < a.mean < 1 and a.std > 0


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
