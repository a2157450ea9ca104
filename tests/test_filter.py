"""The one filter language (records/filter.py) of the app's `/`, `runs ls`, `compare` and `plot --scatter`:
words anywhere, settings compared as numbers, status, tags and text fields; a word that cannot mean anything is
refused in one line naming it and the closest key, never silently matching nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.filter import FilterError, parse_filter


def run(**changes):
    base = dict(name="table2-cnn-ws-aux α 0.2", id="20261201-000000-abcdef", status="done",
                preset="table2-cnn-ws-aux", config=RunConfig(subnet="cnn", alpha=0.2, hl=128, batch_size=10, epochs=20),
                device="cpu", engine="batched", tags=["baseline", "quick"], note="to beat", mean=0.873, std=0.012)
    return SimpleNamespace(**{**base, **changes})


def finds(text: str, summary=None) -> bool:
    return parse_filter(text)(summary or run())


@pytest.mark.parametrize("text", [
    "0.2", "alpha=0.2", "α=0.2", "hl=128", "HL=128", "batch_size=10", "batch=10", "cnn done", "α", "baseline",
    "beat", "alpha>0.1", "alpha>=0.2", "alpha<0.3", "epochs<=20", "lr=0.001", "lr=1e-3", "status=done", "tag=quick",
    "name~cnn-ws", "acc>85", "acc<=87.3", "std<2", "ws=true", "aux=yes", "subnet=cnn",
    "subnet!=fcn", "tag!=slow", "preset=table2-cnn-ws-aux", "note~beat", "weights>0", "C-HL=64", "c-hl=64", "",
])
def test_what_a_run_is_finds_it(text):
    assert finds(text), text


@pytest.mark.parametrize("text", [
    "alpha=0.3", "hl=64", "c_hl=128", "failed", "alpha>0.2", "epochs<20", "status=failed", "tag=slow", "name~fcn",
    "acc>90", "ws=false", "subnet=fcn", "tag!=quick",
])
def test_what_a_run_is_not_leaves_it_out(text):
    assert not finds(text), text


@pytest.mark.parametrize("text, said", [
    ("nosuchfield=1", "no setting or field 'nosuchfield'"),
    ("alhpa>0.3", "did you mean alpha?"),
    ("tag=", "nothing after '='"),
    ("hl=16=16", "one comparison per word"),
    ("alpha>abc", "'abc' is no number"),
    ("alpha>nan", "no finite number"),
    ("status=finished", "a status is done, failed, cancelled"),
    ("ws>1", "ws is on or off"),
    ("ws=maybe", "true or false"),
    ("subnet=mlp", "subnet is one of basic, fcn, cnn"),
    ("hl~12", "~ looks for text"),
    ("name>3", "name is text"),
    (">3", "needs a key"),
])
def test_a_word_that_cannot_mean_anything_is_refused_naming_it(text, said):
    with pytest.raises(FilterError, match=said.replace("?", r"\?")) as err:
        parse_filter(text)
    assert text.split()[0] in str(err.value) and "\n" not in str(err.value)


def test_a_run_without_a_score_is_never_found_by_a_score_comparison():
    assert not finds("acc>0", run(mean=None, std=None)) and not finds("acc<100", run(mean=None))


def test_the_commands_refuse_a_filter_in_one_line(tmp_path, capsys):
    for argv in (["runs", "ls", "nosuchfield=1"], ["plot", "--scatter", "weights", "alpha>x"]):
        assert main([*argv, "--runs-dir", str(tmp_path)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("nosuchfield" in err or "alpha>x" in err), err


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_a_filter_or_one_refusal(text):
    """Whatever is typed into `/`, character by character: a filter that answers, or FilterError; nothing else."""
    try:
        shows = parse_filter(text)
    except FilterError as exc:
        assert "\n" not in str(exc).replace("\\n", "")
        return
    assert shows(run()) in (True, False)


async def test_the_apps_filter_turns_red_while_it_cannot_mean_anything_and_enter_says_why(tmp_path):
    from textual.widgets import Input

    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=tmp_path / "runs", export_path=tmp_path / "e.csv", load_digits_at_start=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3", "slash")
        box = app.query_one("#results-filter", Input)
        for key in "alpha>":
            await pilot.press(key)
        await pilot.pause()
        assert box.has_class("-invalid")
        await pilot.press("enter")
        await pilot.pause()
        assert any("nothing after '>'" in str(n.message) for n in app._notifications)
        await pilot.press("0", ".", "3")
        await pilot.pause()
        assert not box.has_class("-invalid") and app.query_one("ResultsTable").filter_text == "alpha>0.3"
