"""Every reader of a file the workbench did not just write, fuzzed: a record's summary, history, predictions,
weights and resume state; presets and sweep specs; the MNIST files; the pictures `predict` reads. Arbitrary bytes,
and valid files damaged in every way hypothesis finds, give the program's own refusal (one line, naming the file)
or a correct read: never another exception, and never an allocation past a bound (a header may claim terabytes).

The settings are fixed (derandomize, no example database) so that CI runs the same examples every time."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PEAK_BYTES = 64 << 20  # what reading one fuzzed file may allocate, at most


@contextmanager
def bounded():
    """Fails when the block allocates more than PEAK_BYTES (numpy's arrays included: it reports to tracemalloc),
    or lets a library's warning out (it would reach the user's terminal)."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{peak:,} bytes allocated"


@contextmanager
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.fixture
def record(command_record):
    """The session's record: the valid files every fuzzer damages (read only, never written)."""
    return command_record


def damaged(data: bytes):
    """A valid file cut short, with bytes changed, or with bytes put in: a strategy of such files."""
    n = len(data)
    cut = st.integers(0, n).map(lambda i: data[:i])
    flipped = st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda changes: bytes(_flip(bytearray(data), changes)))
    spliced = st.tuples(st.integers(0, n), st.binary(max_size=64)).map(lambda t: data[:t[0]] + t[1] + data[t[0]:])
    return st.one_of(cut, flipped, spliced, st.binary(max_size=512))


def _flip(data: bytearray, changes) -> bytearray:
    for at, value in changes:
        if data:
            data[at % len(data)] = value
    return data


# ---------------------------------------------------------------------- summary.json and history.csv

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@FUZZ
@given(data=st.data())
def test_a_summary_of_any_shape_is_read_or_refused(record, data):
    from workbench.records.store import RecordUnreadable, read_record

    valid = json.loads((record / "summary.json").read_text())
    how = data.draw(st.sampled_from(["value", "drop", "bytes"]))
    with folder() as tmp:
        run = tmp / record.name
        run.mkdir()
        if how == "bytes":
            (run / "summary.json").write_bytes(data.draw(damaged((record / "summary.json").read_bytes())))
        else:
            changed = dict(valid)
            key = data.draw(st.sampled_from(sorted(valid)))
            if how == "drop":
                changed.pop(key)
            else:
                changed[key] = data.draw(JSON)
            (run / "summary.json").write_text(json.dumps(changed))
        with bounded():
            try:
                summary = read_record(run)
            except RecordUnreadable as exc:
                assert str(run / "summary.json") in str(exc) and "\n" not in str(exc)
                return
        assert summary.id and summary.config is not None


@FUZZ
@given(data=st.data())
def test_a_history_of_any_bytes_is_read_or_refused(record, data):
    from workbench.records.store import load_history

    with folder() as tmp:
        (tmp / "history.csv").write_bytes(data.draw(damaged((record / "history.csv").read_bytes())))
        with bounded():
            try:
                rows = load_history(tmp)
            except (OSError, ValueError) as exc:  # read_history's own refusal: an empty history and a line
                assert "\n" not in str(exc)
                return
        assert all(row["round"] >= 0 and row["epoch"] >= 0 for row in rows)


# ---------------------------------------------------------------------- numpy archives

DESCR = st.sampled_from(["<f4", "<f8", "<c8", "|u1", ">i4", "|O", "|b1", "<U3", "V8"])
SHAPES = st.lists(st.integers(0, 10**13), max_size=3).map(tuple)


@st.composite
def archives(draw, valid: bytes):
    """A numpy archive whose members keep valid names but claim any dtype and shape, or hold any bytes."""
    with zipfile.ZipFile(io.BytesIO(valid)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    names = sorted(members)
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        if draw(st.booleans()):
            header = io.BytesIO()
            descr = draw(DESCR)
            np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": draw(st.booleans()),
                                                          "shape": draw(SHAPES)})
            members[name] = header.getvalue() + draw(st.binary(max_size=64))
        else:
            members[name] = draw(damaged(members[name]))
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        members.pop(name, None)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def archive_or_bytes(valid: bytes):
    return st.one_of(archives(valid), damaged(valid))


@FUZZ
@given(data=st.data())
def test_weights_of_any_content_are_read_or_refused(record, data):
    from workbench.records.store import read_record
    from workbench.records.weights import WeightsUnreadable, kept_rounds, read_weights

    config = read_record(record).config
    with folder() as tmp:
        (tmp / "weights.npz").write_bytes(data.draw(archive_or_bytes((record / "weights.npz").read_bytes())))
        with bounded():
            try:
                kept_rounds(tmp)
                arrays = read_weights(tmp, config, 0)
            except WeightsUnreadable as exc:
                assert str(tmp / "weights.npz") in str(exc) and "\n" not in str(exc)
                return
        assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays.values())


@FUZZ
@given(data=st.data())
def test_a_resume_state_of_any_content_is_read_or_refused(record, data):
    from workbench.records.checkpoint import ResumeUnreadable, read_states
    from workbench.records.store import read_record

    config = read_record(record).config
    with folder() as tmp:
        (tmp / "resume.npz").write_bytes(data.draw(archive_or_bytes((record / "resume.npz").read_bytes())))
        with bounded():
            try:
                states, history = read_states(tmp, config)
            except ResumeUnreadable as exc:
                assert str(tmp / "resume.npz") in str(exc) and "\n" not in str(exc)
                return
        assert all(1 <= s.epoch for s in states.values())


@FUZZ
@given(data=st.data())
def test_predictions_of_any_content_are_read_or_refused(record, data):
    from workbench.analysis.predictions import PredictionsUnreadable, load_predictions

    with folder() as tmp:
        (tmp / "predictions.npz").write_bytes(data.draw(archive_or_bytes((record / "predictions.npz").read_bytes())))
        with bounded():
            try:
                preds = load_predictions(tmp)
            except PredictionsUnreadable as exc:
                assert str(tmp / "predictions.npz") in str(exc) and "\n" not in str(exc)
                return
        assert preds is not None and ((preds.prob >= 0) & (preds.prob <= 1)).all()


# ---------------------------------------------------------------------- presets and sweep specs

def toml_damaged(text: str):
    """A valid TOML file with a line replaced by any text, a value by any value, or any bytes."""
    lines = text.splitlines()
    replace_line = st.tuples(st.integers(0, len(lines) - 1), st.text(max_size=40)).map(
        lambda t: "\n".join(lines[:t[0]] + [t[1]] + lines[t[0] + 1:]).encode())
    values = st.one_of(st.integers(-2**70, 2**70).map(str), st.floats().map(repr), st.text(max_size=12).map(json.dumps),
                       st.sampled_from(["[]", "{}", "true", '["a"]', "[1, 2]", "inf", "nan", "1e999"]))
    replace_value = st.tuples(st.integers(0, len(lines) - 1), values).map(
        lambda t: "\n".join(lines[:t[0]] + [_with_value(lines[t[0]], t[1])] + lines[t[0] + 1:]).encode())
    return st.one_of(replace_line, replace_value, damaged(text.encode()))


def _with_value(line: str, value: str) -> str:
    key, sep, _ = line.partition("=")
    return f"{key}= {value}" if sep else line


@FUZZ
@given(data=st.data())
def test_a_preset_of_any_content_is_read_or_refused(data):
    from workbench.paper.config import ConfigError
    from workbench.paper.presets import find_preset, load_preset

    valid = find_preset("table2-cnn-ws-aux").path.read_text()
    with folder() as tmp:
        path = tmp / "mine.toml"
        path.write_bytes(data.draw(toml_damaged(valid)))
        with bounded():
            try:
                preset = load_preset(path)
            except ConfigError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc).strip()
                return
        assert preset.config.epochs >= 1


@FUZZ
@given(data=st.data())
def test_a_sweep_spec_of_any_content_is_read_or_refused(data):
    from sweep_specs import tiny_spec_text

    from workbench.paper.config import ConfigError
    from workbench.sweep import load_spec

    with folder() as tmp:
        path = tmp / "mine.toml"
        path.write_bytes(data.draw(toml_damaged(tiny_spec_text())))
        with bounded():
            try:
                spec = load_spec(path)
            except ConfigError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc).strip()
                return
        assert spec.stages and spec.title.isprintable()


# ---------------------------------------------------------------------- MNIST files and pictures

@st.composite
def idx_files(draw, magic: int, dims: int):
    """An idx file: a header of any magic and sizes, a body of any length (sometimes the length it claims)."""
    found = draw(st.sampled_from([magic, magic + 1, 0, 2**32 - 1]))
    shape = [draw(st.integers(0, 2**32 - 1)) if draw(st.booleans()) else draw(st.integers(0, 40)) for _ in range(dims)]
    claimed = int(np.prod(shape, dtype=object))
    body = bytes(draw(st.lists(st.integers(0, 12), max_size=min(claimed, 2000)))) if claimed <= 2000 else b""
    if claimed <= 2000 and draw(st.booleans()):
        body = (body + bytes(claimed))[:claimed]
    return struct.pack(f">{1 + dims}I", found, *shape) + body


@FUZZ
@given(data=st.data())
def test_mnist_files_of_any_content_are_checked_or_refused(data):
    from workbench.paper.sources import DataError, check_mnist, mnist_raw

    with folder() as root:
        raw = mnist_raw(root)
        raw.mkdir(parents=True)
        for prefix in ("train", "t10k"):
            (raw / f"{prefix}-images-idx3-ubyte").write_bytes(data.draw(idx_files(2051, 3)))
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(data.draw(idx_files(2049, 1)))
        with bounded():
            try:
                train, test = check_mnist(root)
            except DataError as exc:
                assert "\n" not in str(exc)
                return
        assert train > 0 and test > 0


@st.composite
def pictures(draw):
    """A picture file of any size (1 to 48 a side), pixels and mode, as PNG (TIFF for integer and floating-point pixels)."""
    from PIL import Image

    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    grey = Image.frombytes("L", (width, height), draw(st.binary(min_size=width * height, max_size=width * height)))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "1", "P", "I", "F"]))
    buffer = io.BytesIO()
    grey.convert(mode).save(buffer, format="TIFF" if mode in ("F", "I") else "PNG")
    return buffer.getvalue()


@FUZZ
@given(data=st.data())
def test_a_picture_of_any_content_is_a_digit_or_refused(data):
    from workbench.analysis.predict import DigitImageError, digit_from_image

    content = data.draw(st.one_of(pictures(), pictures().flatmap(damaged)))
    with folder() as tmp:
        path = tmp / "digit.png"
        path.write_bytes(content)
        with bounded():
            try:
                digit = digit_from_image(path)
            except DigitImageError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                return
        assert digit.shape == (14, 14) and np.isfinite(digit).all() and 0 <= digit.min() and digit.max() <= 255


def test_the_fuzzers_are_fed_what_they_damage(record):
    """The valid files are what `run` writes today: a fuzzer fed nothing would pass whatever the readers do."""
    for name in ("summary.json", "history.csv", "weights.npz", "resume.npz", "predictions.npz"):
        assert (record / name).stat().st_size > 0, name
