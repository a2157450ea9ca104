"""A run's trained networks kept with its record (weights.npz) and reopened as the reference module: its
predictions on the run's test pairs are the recorded ones, for every net, with and without weight sharing, from
either engine; what cannot be reopened says why in one line."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch

from workbench.analysis.networks import load_network
from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.paper.data import round_pairs
from workbench.records.layout import WEIGHTS_FILE
from workbench.records.store import load_runs
from workbench.records.weights import WeightsUnreadable, kept_rounds, read_weights, resolve_keep

BASE = RunConfig(hl=16, c_hl=8, bc=4, rounds=2, epochs=2, pairs=100, batch_size=20, device="cpu")
NETS = {"basic": BASE.replace(subnet="basic"), "fcn-ws": BASE, "fcn": BASE.replace(weight_sharing=False),
        "cnn-ws": BASE.replace(subnet="cnn"), "cnn": BASE.replace(subnet="cnn", weight_sharing=False, aux_loss=False)}


@pytest.fixture(scope="module", params=["batched", "loop"])
def records(request, tmp_path_factory, source):
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    root = tmp_path_factory.mktemp(request.param) / "runs"
    for name, result in zip(NETS, run_configs(list(NETS.values()), source, engine=request.param)):
        save_run(result, name, root=root)
    return {s.name: s for s in load_runs(root)[0]}


def test_a_reopened_round_predicts_what_the_record_holds(records, source):
    from workbench.analysis.predictions import load_predictions

    for name, summary in records.items():
        recorded = load_predictions(summary.path)
        assert kept_rounds(summary.path) == [0, 1]
        for r in (0, 1):
            net = load_network(summary, r)
            assert not net.training
            test = round_pairs(source, summary.config.pairs, summary.config.seed, r)[1]
            with torch.no_grad():
                logits, digits = net(test.input)
            prob = torch.sigmoid(logits).numpy()
            # the record keeps float16; the stacked engine's kernels round a float32 ulp apart from the module's,
            # which can tip a float16 rounding: within one float16 step, the same decision on every pair
            assert np.abs(prob - recorded.prob[r]).max() <= 2 ** -11, (name, r)
            clear = np.abs(recorded.prob[r] - 0.5) > 2 ** -11
            assert np.array_equal((prob > 0.5)[clear], (recorded.prob[r] > 0.5)[clear]), (name, r)
            if recorded.digit_pred is not None:
                heads = torch.stack(digits, 1).argmax(-1).numpy()
                assert (heads == recorded.digit_pred[r]).mean() >= 0.99, (name, r)  # ties aside


def test_weight_sharing_is_one_set_of_subnet_weights(records):
    shared = read_weights(records["fcn-ws"].path, records["fcn-ws"].config, 0)
    both = read_weights(records["fcn"].path, records["fcn"].config, 0)
    assert not any(k.startswith("right.") for k in shared) and any(k.startswith("right.") for k in both)
    from workbench.paper.architecture import weight_count

    for name in ("fcn-ws", "fcn", "cnn", "basic"):
        arrays = read_weights(records[name].path, records[name].config, 1)
        assert sum(a.size for a in arrays.values()) == weight_count(records[name].config)


def test_a_record_reopens_by_id_or_folder_on_any_device_named(records, monkeypatch):
    summary = records["cnn-ws"]
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(summary.path.parent))
    by_id = load_network(summary.id[-6:], 1)
    by_folder = load_network(summary.path, 1, device=torch.device("cpu"))
    for a, b in zip(by_id.parameters(), by_folder.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("keep, rounds", [("first", [0]), ("none", [])])
def test_weights_keeps_the_first_round_or_none(tmp_path, keep, rounds):
    at = ["--runs-dir", str(tmp_path / "runs"), "--rounds", "2", "--epochs", "1", "--pairs", "100", "--hl", "16",
          "--c-hl", "8", "--weights", keep]
    assert main(["run", *at]) == 0
    (summary,) = load_runs(tmp_path / "runs")[0]
    assert kept_rounds(summary.path) == rounds
    assert (summary.path / WEIGHTS_FILE).exists() == bool(rounds)


def test_the_default_keeps_every_round_while_small_then_the_first():
    assert resolve_keep(BASE, None) == ("all", "")
    wide = BASE.replace(subnet="basic", hl=4096, kl=4, rounds=10)  # 50.3 M weights a round
    keep, why = resolve_keep(wide, None)
    assert keep == "first" and why.startswith("weights kept for round 0 only: 10 rounds would take ")
    assert resolve_keep(wide, "all") == ("all", "")
    with pytest.raises(ValueError, match="weights: one of all, first, none"):
        resolve_keep(BASE, "some")


def copy_record(summary, tmp_path):
    import shutil

    folder = tmp_path / summary.path.name
    shutil.copytree(summary.path, folder)
    return folder


def test_what_cannot_be_reopened_says_why_in_one_line(records, tmp_path):
    summary = records["fcn"]
    folder = copy_record(summary, tmp_path)
    with pytest.raises(WeightsUnreadable, match=r"round 5 is not kept \(kept: 0, 1\)"):
        load_network(folder, 5)
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])  # cut short
    with pytest.raises(WeightsUnreadable, match="cannot be read") as cut:
        load_network(folder, 0)
    assert "\n" not in str(cut.value)
    np.savez(folder / WEIGHTS_FILE, **{"round0/left.body.1.weight": np.zeros((3, 3), np.float32)})  # foreign
    with pytest.raises(WeightsUnreadable, match=r"is float32 \(3, 3\), not the network's float32"):
        load_network(folder, 0)
    wrong = {f"round0/{k}": np.zeros_like(v) for k, v in read_weights(summary.path, summary.config, 0).items()}
    wrong["round0/left.body.1.weight"] = np.zeros((4, 4), np.float32)
    np.savez(folder / WEIGHTS_FILE, **wrong)
    with pytest.raises(WeightsUnreadable, match=r"left.body.1.weight is float32 \(4, 4\), not the network's float32"):
        load_network(folder, 0)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(WeightsUnreadable, match="no weights kept"):
        load_network(folder, 0)
    os.mkfifo(folder / WEIGHTS_FILE)  # a FIFO is refused, never read (it would block)
    with pytest.raises(WeightsUnreadable, match="cannot be read"):
        load_network(folder, 0)
    assert kept_rounds(tmp_path / "nowhere") == []


def test_a_pickle_in_the_archive_is_never_loaded(records, tmp_path):
    summary = records["basic"]
    folder = copy_record(summary, tmp_path)
    arrays = {f"round0/{k}": v for k, v in read_weights(summary.path, summary.config, 0).items()}
    first = next(iter(arrays))
    arrays[first] = np.array([{"evil": 1}], dtype=object)  # numpy would need pickle to read this member
    with zipfile.ZipFile(folder / WEIGHTS_FILE, "w") as archive:
        for key, value in arrays.items():
            with archive.open(key + ".npy", "w") as member:
                np.lib.format.write_array(member, value, allow_pickle=True)
    with pytest.raises(WeightsUnreadable, match=r"is object \(1,\), not the network's float32"):
        load_network(folder, 0)


def test_the_first_layer_as_pictures_for_every_net(records):
    from workbench.analysis.networks import first_layer
    from workbench.paper.randomness import init_model

    shapes = {"basic": [(16, 14, 28)], "fcn-ws": [(16, 14, 14)], "fcn": [(16, 14, 14)] * 2,
              "cnn-ws": [(4, 3, 3)], "cnn": [(4, 3, 3)] * 2}
    for name, want in shapes.items():
        sides = first_layer(records[name], 1)
        assert [p.shape for _, p in sides] == want, name
    labels = [label for label, _ in first_layer(records["fcn"], 0)]
    assert labels == ["left subnet", "right subnet"] and first_layer(records["fcn-ws"], 0)[0][0] == \
        "both subnets (shared)"
    summary = records["fcn-ws"]
    start = init_model(summary.config, 1).left.body[1].weight.detach().numpy().reshape(-1, 14, 14)
    raw, change = first_layer(summary, 1)[0][1], first_layer(summary, 1, change=True)[0][1]
    assert np.allclose(change, raw - start) and np.abs(change).max() > 0
    corner = np.abs(change[:, 0, 0]).max()  # no digit has ink in the corner: its weights never moved
    assert corner == 0.0


def test_plot_weights_draws_one_run_and_refuses_in_one_line(records, tmp_path, capsys):
    summary = records["cnn"]
    runs_dir = str(summary.path.parent)
    out = tmp_path / "w.png"
    assert main(["plot", summary.id, "--weights", "--round", "1", "--change", "--out", str(out),
                 "--runs-dir", runs_dir]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "round 1" in capsys.readouterr().out
    assert main(["plot", summary.id, records["fcn"].id, "--weights", "--runs-dir", runs_dir]) == 2
    assert "RUN: --weights draws one run, got 2" in capsys.readouterr().err
    assert main(["plot", summary.id, "--weights", "--round", "7", "--runs-dir", runs_dir]) == 2
    assert "round 7 is not kept" in capsys.readouterr().err


async def test_what_it_learned_in_a_runs_details(records, tmp_path):
    from textual.widgets import Static

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.details import RunDetails
    from workbench.tui.results import ResultsTable

    root = records["cnn-ws"].path.parent
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "x.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        table = app.query_one(ResultsTable)
        for name, kind, side in (("cnn-ws", "filters", "both subnets (shared): 4 of its filters"),
                                 ("fcn", "units", "right subnet: ")):
            table.move_cursor(row=[s.name for s in table.shown()].index(name))
            table.focus()
            await pilot.press("enter")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RunDetails)
            await pilot.press("w")
            await pilot.pause()
            note = str(screen.query_one("#learned-note", Static).render())
            picture = str(screen.query_one("#learned-picture", Static).render())
            assert f"round 0: the weights of the first layer's {kind}" in note and side in picture
            await pilot.press("i", "right_square_bracket")
            await pilot.pause()
            assert "round 1: what training changed in the first layer" in str(
                screen.query_one("#learned-note", Static).render())
            await pilot.press("escape")
            await pilot.pause()


async def test_the_form_says_which_networks_a_run_keeps(tmp_path):
    from textual.widgets import Input, Select

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.form import ConfigForm

    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "x.csv")
    async with app.run_test(size=(120, 40)) as pilot:
        form = app.query_one(ConfigForm)
        for key, value in {"hl": "16", "c_hl": "8", "rounds": "2", "epochs": "1", "pairs": "100",
                           "batch_size": "20"}.items():
            form.query_one(f"#f-{key}", Input).value = value
        for keep in ("first", "none"):
            form.query_one("#f-keep", Select).value = keep
            form.query_one("#f-name", Input).value = keep
            await pilot.pause()
            app.action_run()
            while not app.runs.idle:
                await pilot.pause(0.1)
    kept = {s.name: kept_rounds(s.path) for s in load_runs(tmp_path / "runs")[0]}
    assert kept == {"first": [0], "none": []}


async def test_the_playground_answers_as_predict_does_for_two_runs_side_by_side(records, tmp_path):
    from textual.widgets import Static

    from workbench.analysis.predict import answer
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.playground import DigitCanvas, PlaygroundScreen

    root = records["cnn-ws"].path.parent
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "x.csv", load_digits_at_start=False)
    pair = [records["fcn-ws"], records["fcn"]]
    async with app.run_test(size=(120, 40)) as pilot:
        app.notebook.playground(pair)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PlaygroundScreen)
        first, second = screen.query_one("#play-first", DigitCanvas), screen.query_one("#play-second", DigitCanvas)
        for y in range(3, 11):
            first.stroke(12, y, erase=False)  # a vertical stroke: pixel column 6
        await pilot.press("r")  # a recorded test pair on both canvases, then the stroke again on top
        await pilot.pause()
        first.stroke(12, 5, erase=False)
        await pilot.pause()
        assert first.pixels[5, 6] == 255 and first.pixels[5, 7] >= 150
        for i, summary in enumerate(pair):
            said = answer(load_network(summary, 0), first.pixels, second.pixels)
            panel = str(screen.query_one(f"#play-answer-{i}", Static).render())
            assert summary.name in panel and f"P(first ≤ second) {said.p_le:5.3f}" in panel
            best = int(said.heads[0].argmax())
            assert f"first digit: {best} ({said.heads[0][best]:.2f})" in panel
        await pilot.press("right_square_bracket")  # round 1's networks answer
        await pilot.pause()
        assert "round 1 · " in str(screen.query_one("#play-answer-0", Static).render())
        first.stroke(12, 5, erase=True)
        assert first.pixels[5, 6] == 0
        await pilot.press("c")
        assert not first.pixels.any() and not second.pixels.any()


async def test_the_playground_of_a_run_without_networks_says_so(tmp_path):
    from textual.widgets import Static

    from workbench.tui.app import WorkbenchApp

    root = tmp_path / "runs"
    assert main(["run", "--hl", "16", "--c-hl", "8", "--rounds", "1", "--epochs", "1", "--pairs", "100",
                 "--weights", "none", "--runs-dir", str(root)]) == 0
    app = WorkbenchApp(runs_root=root, export_path=tmp_path / "x.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3", "p")
        await pilot.pause()
        assert "no networks kept for this run" in str(app.screen.query_one("#play-answer-0", Static).render())


TRAIN_DEVICE = os.environ.get("DIGIT_WORKBENCH_TEST_DEVICE", "cpu")  # cuda on a GPU machine (device_check.sh)


def test_networks_trained_on_the_test_device_reopen_on_the_cpu(tmp_path, source):
    """On a GPU machine the weights are copied off the GPU as they are kept, so they reopen on a CPU; the CPU's
    answers are the recorded predictions at the record's precision, as for a CPU run."""
    from workbench.analysis.predictions import load_predictions
    from workbench.engine import run_configs
    from workbench.records.store import save_run

    config = NETS["cnn"].replace(device=TRAIN_DEVICE)
    summary = save_run(run_configs([config], source)[0], "on the device", root=tmp_path / "runs")
    recorded = load_predictions(summary.path)
    net = load_network(summary, 1, device="cpu")
    assert next(net.parameters()).device.type == "cpu"
    test = round_pairs(source, config.pairs, config.seed, 1)[1]
    with torch.no_grad():
        prob = torch.sigmoid(net(test.input)[0]).numpy()
    assert np.abs(prob - recorded.prob[1]).max() <= 2 ** -10


async def test_the_playground_fits_80_by_24(records, tmp_path):
    from textual.widgets import Static

    from workbench.tui.app import WorkbenchApp
    from workbench.tui.playground import DigitCanvas

    app = WorkbenchApp(runs_root=records["cnn-ws"].path.parent, export_path=tmp_path / "x.csv",
                       load_digits_at_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.notebook.playground([records["cnn-ws"]])
        await pilot.pause()
        await pilot.pause(0.2)
        screen = app.screen
        assert screen.has_class("-short")
        whole = screen.region
        for canvas in screen.query(DigitCanvas):  # both canvases whole on screen, side by side
            assert whole.contains_region(canvas.region) and canvas.region.height == 16
        panel = screen.query_one("#play-answer-0", Static)
        assert whole.contains_region(panel.region)
        text = str(panel.render())
        assert "P(first ≤ second) " in text and "first: " in text and "second: " in text
        assert len(text.splitlines()) <= 4
