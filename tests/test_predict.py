"""`digit-workbench predict RUN A.png B.png`: a picture becomes a digit the way MNIST and the pairs make theirs,
and the run's network answers for the pair; bad pictures and runs without networks say why in one line."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.analysis.predict import DigitImageError, answer, digit_from_image
from workbench.cli.entry import main
from workbench.paper.config import RunConfig

TINY = RunConfig(subnet="cnn", hl=16, c_hl=8, bc=4, rounds=1, epochs=2, pairs=200, batch_size=20, device="cpu")


def as_picture(digit14: np.ndarray, path, scale: int = 8, light_paper: bool = False, pad: int = 3) -> None:
    """A pooled digit drawn large (each pixel a scale x scale block) on a wider canvas, as a user's file."""
    big = np.kron(digit14, np.ones((scale, scale)))
    canvas = np.zeros((big.shape[0] + 2 * pad * scale, big.shape[1] + 4 * pad * scale))
    canvas[pad * scale:pad * scale + big.shape[0], 2 * pad * scale:2 * pad * scale + big.shape[1]] = big
    if light_paper:
        canvas = 255 - canvas
    Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).save(path)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_a_picture_of_a_digit_becomes_that_digit_on_dark_or_light_paper(source, tmp_path):
    for i in range(5):
        digit = source.test.images[i].numpy()
        as_picture(digit, tmp_path / "dark.png")
        as_picture(digit, tmp_path / "light.png", light_paper=True)
        dark, light = digit_from_image(tmp_path / "dark.png"), digit_from_image(tmp_path / "light.png")
        assert dark.shape == (14, 14) and dark.dtype == np.float32 and 0 <= dark.min() and dark.max() <= 255
        assert np.abs(dark - light).max() < 3  # dark ink on paper reads as MNIST's white on black (uint8 rounding aside)
        assert correlation(dark, digit) > 0.8, i  # re-centred and re-scaled, still the same digit


def test_an_empty_drawing_is_an_empty_digit():
    from workbench.analysis.predict import mnist_like

    assert not mnist_like(np.full((40, 50), 255, np.float32)).any()  # the playground's blank canvas


def no_digit_picture(kind: str, path):
    if kind == "white":
        Image.new("L", (50, 40), 255).save(path)
    elif kind == "black":
        Image.new("RGB", (28, 28), (0, 0, 0)).save(path)
    elif kind == "transparent":
        Image.new("RGBA", (28, 28), (0, 0, 0, 0)).save(path)
    elif kind == "one pixel":
        Image.new("L", (1, 1), 0).save(path)
    elif kind == "blank 4096":
        Image.new("L", (4096, 4096), 250).save(path)
    elif kind == "faint":
        picture = np.full((28, 28), 200, np.uint8)
        picture[10:18, 12:15] = 190  # a smudge, not a stroke
        Image.fromarray(picture).save(path)
    elif kind == "nan":
        values = np.zeros((28, 28), np.float32)
        values[5:20, 12] = np.nan
        Image.fromarray(values, mode="F").save(path.with_suffix(".tiff"))
        path = path.with_suffix(".tiff")
    return path


@pytest.mark.parametrize("kind, says", [("white", "a blank picture"), ("black", "a blank picture"),
                                        ("transparent", "a blank picture"), ("one pixel", "1x1 pixels"),
                                        ("blank 4096", "a blank picture"), ("faint", "a blank picture"),
                                        ("nan", "not finite")])
def test_a_picture_that_holds_no_digit_is_said_so_not_answered(tmp_path, kind, says):
    path = no_digit_picture(kind, tmp_path / "p.png")
    with pytest.raises(DigitImageError, match=f"{path}: holds no digit .*{says}"):
        digit_from_image(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, source):
    root = tmp_path_factory.mktemp("predict") / "runs"
    assert main(["run", "--subnet", "cnn", "--hl", "16", "--c-hl", "8", "--bc", "4", "--rounds", "2", "--epochs", "2",
                 "--pairs", "200", "--name", "mine", "--runs-dir", str(root)]) == 0
    return root


def test_predict_prints_what_the_reopened_network_answers(run_dir, source, tmp_path, capsys):
    from workbench.analysis.networks import load_network

    first, second = source.test.images[0].numpy(), source.test.images[1].numpy()
    as_picture(first, tmp_path / "a.png")
    as_picture(second, tmp_path / "b.png", light_paper=True)
    capsys.readouterr()
    assert main(["predict", "mine", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--round", "1", "--json",
                 "--runs-dir", str(run_dir)]) == 0
    said = json.loads(capsys.readouterr().out)
    net = load_network(next(run_dir.iterdir()), 1)
    direct = answer(net, digit_from_image(tmp_path / "a.png"), digit_from_image(tmp_path / "b.png"))
    assert said["round"] == 1 and said["p_first_le_second"] == pytest.approx(direct.p_le, abs=1e-7)
    assert np.allclose(said["heads"], np.stack(direct.heads), atol=1e-7)
    assert all(abs(sum(h) - 1) < 1e-5 for h in said["heads"])
    assert main(["predict", "mine", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--runs-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "P(first ≤ second) = " in out and "first digit: " in out and "second digit: " in out


def bad_picture(kind, tmp_path):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("not a picture")
    elif kind == "huge":
        Image.new("L", (5000, 8), 0).save(path)
    elif kind == "fifo":
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind, says", [("text", "not an image"), ("huge", "5000x8 pixels; at most 4096 a side"),
                                        ("fifo", "cannot be read"), ("missing", "cannot be read")])
def test_a_bad_picture_is_refused_in_one_line_naming_it(run_dir, tmp_path, capsys, kind, says):
    path = bad_picture(kind, tmp_path)
    as_picture(np.pad(np.full((10, 4), 255.0), 9), tmp_path / "ok.png")
    assert main(["predict", "mine", str(path), str(tmp_path / "ok.png"), "--runs-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and str(path) in err and len(err.splitlines()) == 1
    with pytest.raises(DigitImageError):
        digit_from_image(path)


def test_predict_on_a_blank_picture_exits_in_one_line(run_dir, tmp_path, capsys):
    path = no_digit_picture("white", tmp_path / "blank.png")
    assert main(["predict", "mine", str(path), str(path), "--runs-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no digit" in err and "P(first" not in err and len(err.splitlines()) == 1


def test_a_run_without_networks_says_so(tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["run", "--hl", "16", "--c-hl", "8", "--rounds", "1", "--epochs", "1", "--pairs", "100",
                 "--weights", "none", "--name", "bare", "--runs-dir", str(root)]) == 0
    as_picture(np.pad(np.full((10, 4), 255.0), 9), tmp_path / "ok.png")
    capsys.readouterr()
    assert main(["predict", "bare", str(tmp_path / "ok.png"), str(tmp_path / "ok.png"), "--runs-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no weights kept" in err and len(err.splitlines()) == 1
    assert torch.get_num_threads() >= 1


def test_a_run_still_being_written_says_so(run_dir, tmp_path, capsys):
    writing = run_dir / "20991231-235959-abcdef"
    writing.mkdir()
    (writing / "history.csv").write_text("round,epoch\n")
    as_picture(np.pad(np.full((10, 4), 255.0), 9), tmp_path / "ok.png")
    try:
        code = main(["predict", "abcdef", str(tmp_path / "ok.png"), str(tmp_path / "ok.png"),
                     "--runs-dir", str(run_dir)])
    finally:
        (writing / "history.csv").unlink()
        writing.rmdir()
    err = capsys.readouterr().err.strip()
    assert code == 2 and "20991231-235959-abcdef is still being written" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("p, verdict", [(0.8, "first ≤ second"), (0.2, "first > second"), (0.5, "first > second")])
def test_the_verdict_printed_is_the_one_its_probability_gives(run_dir, source, tmp_path, capsys, monkeypatch, p,
                                                              verdict):
    """The command says what the probability says (at even odds: not 'first ≤ second', as the engine scores it)."""
    import workbench.cli.networks as command
    from workbench.analysis.predict import Answer

    monkeypatch.setattr(command, "answer", lambda net, first, second: Answer(p, None))
    as_picture(source.test.images[0].numpy(), tmp_path / "a.png")
    as_picture(source.test.images[1].numpy(), tmp_path / "b.png")
    capsys.readouterr()
    assert main(["predict", "mine", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--runs-dir", str(run_dir)]) == 0
    assert f"P(first ≤ second) = {p:.3f}: {verdict}\n" in capsys.readouterr().out
