import csv
from pathlib import Path

import pytest

from workbench.paper.config import FIELDS, ConfigError, RunConfig, from_dict
from workbench.paper.presets import TABLE_II, find_preset, load_preset, load_presets

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "paper_results.csv"


def test_defaults_are_the_papers():
    c = RunConfig()
    assert (c.lr, c.lr_decay, c.dropout, c.epochs, c.batch_size, c.rounds, c.pairs) == (1e-3, 0.9, 0.2, 20, 5, 10, 1000)
    assert (c.hl, c.kl, c.bc, c.k, c.alpha) == (64, 1, 4, 3, 0.5)


@pytest.mark.parametrize("key, value, message", [
    ("hl", "abc", "whole number"), ("hl", 0, "at least"), ("alpha", 1.5, "at most"), ("alpha", "nan", "finite"),
    ("subnet", "rnn", "one of"), ("weight_sharing", "maybe", "true or false"), ("k", 6, "at most"),
    ("nonsense", 1, "unknown key"),
])
def test_bad_values_name_the_field(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        from_dict({key: value})
    assert err.value.key == key


def test_basic_net_refuses_subnet_features():
    with pytest.raises(ConfigError, match="aux_loss"):
        from_dict({"subnet": "basic", "aux_loss": True})
    assert not from_dict({"subnet": "basic"}).weight_sharing


def test_every_shipped_preset_loads_and_table_ii_is_complete():
    presets = load_presets()
    assert set(TABLE_II) <= set(presets)
    assert {"basic", "table3-fcn-best", "table4-cnn-best"} <= set(presets)
    paper_rows = [p for name, p in presets.items() if not name.startswith("beyond-")]
    assert all(p.paper is not None for p in paper_rows)  # every paper preset carries the paper's score
    # what goes beyond the paper carries no paper score, and trains in a way the paper did not (issue 21)
    assert all(p.paper is None and (p.config.repair or p.config.shift or p.config.rotate)
               for n, p in presets.items() if n.startswith("beyond-"))


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs ../shared/reference/paper_results.csv, which is not beside this checkout")
def test_presets_carry_the_papers_numbers():
    presets = load_presets()
    by_row = {(p.paper.table, p.paper.row, p.config.subnet): p for p in presets.values() if p.paper}
    with open(REFERENCE, newline="") as f:
        for row in csv.DictReader(f):
            if row["table"] != "II":
                continue
            p = by_row[("II", row["row"], row["subnet"])]
            assert p.paper.score == float(row["score"]) and p.paper.std == float(row["std"])
            assert p.config.weight_sharing == (row["weight_sharing"] == "yes")
            assert p.config.aux_loss == (row["aux_loss"] == "yes")


@pytest.mark.skipif(not REFERENCE.exists(), reason="needs ../shared/reference/paper_results.csv, which is not beside this checkout")
def test_sweep_stages_carry_the_papers_numbers():
    from workbench.sweep.spec import find_spec, load_spec

    with open(REFERENCE, newline="") as f:
        reference = {(r["table"], r["row"]): float(r["score"]) for r in csv.DictReader(f) if r["table"] in ("III", "IV")}
    stages = [s for name in ("table3-fcn", "table4-cnn") for s in load_spec(find_spec(name)).stages]
    assert {(s.paper.table, s.paper.row): s.paper.score for s in stages} == reference


@pytest.mark.parametrize("body, key", [
    ('[config]\nsubnet = "fcn"\nwidth = 3\n', "width"),
    ('[config]\nhl = "big"\n', "hl"),
    ('[config]\nalpha = 2.0\n', "alpha"),
    ('[config]\nkl = 0\n', "kl"),
    ('extra = 1\n[config]\n', "extra"),
    ('[config]\n[paper]\nscore = "high"\n', "paper.score"),
    ('[config]\n[paper]\nscore = 1.7\n', "paper.score"),
    ('[config\n', "file"),
])
def test_preset_errors_name_the_file_and_the_key(tmp_path, body, key):
    path = tmp_path / "broken.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    assert err.value.key == key
    assert str(path) in str(err.value) and key in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="table2-fcn-ws-aux"):
        find_preset("table9")


def test_every_field_has_a_flag_that_sets_it_with_its_help():
    from workbench.cli.entry import build_parser
    from workbench.cli.train import config_from_args
    from workbench.cli.usage import flag

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]  # the `run` subcommand's own parser
    helps = {action.dest: action.help for action in run._actions}
    other = RunConfig(subnet="cnn", weight_sharing=False, aux_loss=False, alpha=0.25, hl=33, kl=2, bc=5, k=4,
                      c_hl=17, c_kl=2, dropout=0.1, lr=0.002, lr_decay=0.8, epochs=3, repair=True, shift=1, rotate=7.5,
                      batch_size=7,
                      rounds=2, pairs=70, seed=9, device="cpu")
    for key, spec in FIELDS.items():
        value = getattr(other, key)
        assert value != getattr(RunConfig(), key), key  # each flag is seen to change its field
        argv = [f"--{'' if value else 'no-'}{flag(key)[2:]}"] if spec.kind is bool else [flag(key), str(value)]
        args = parser.parse_args(["run", "--subnet", "cnn", *argv])
        assert getattr(config_from_args(args, None), key) == value, key
        assert spec.label and helps[key] and spec.help in helps[key], key


def test_a_run_is_the_papers_row_only_while_its_config_is_the_presets():
    preset = find_preset("table2-cnn-ws")
    assert preset.is_row(preset.config) and preset.paper_for(preset.config) is preset.paper
    # where it runs and with which seed do not change what it is
    assert preset.paper_for(preset.config.replace(device="cpu", seed=7)) is preset.paper
    assert preset.is_row(preset.config.replace(alpha=0.3))  # without the auxiliary loss alpha does nothing
    for change in ({"hl": 128}, {"weight_sharing": False}, {"epochs": 5}, {"rounds": 3}, {"aux_loss": True}):
        edited = preset.config.replace(**change)
        assert not preset.is_row(edited) and preset.paper_for(edited) is None, change
    with_aux = find_preset("table2-cnn-ws-aux")
    assert not with_aux.is_row(with_aux.config.replace(alpha=0.3))


@pytest.mark.parametrize("key, value", [("hl", "１２"), ("hl", "1_0"), ("epochs", "٣"), ("lr", "1_0.5"),
                                        ("lr", "１e-3"), ("hl", "12.0"), ("seed", "0x10")])
def test_only_plain_ascii_numbers_are_numbers(key, value):
    with pytest.raises(ConfigError) as err:
        from_dict({key: value})
    assert err.value.key == key


def test_errors_quote_a_long_paste_short_and_say_an_int_limit_as_an_int():
    with pytest.raises(ConfigError) as err:
        from_dict({"hl": "9" * 10_000 + "x"})
    assert len(str(err.value)) < 120 and "(10003 characters)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from_dict({"seed": str(10 ** 23)})
    assert "at most 2147483647" in str(err.value)


def test_presets_come_in_the_papers_order():
    names = list(load_presets())
    assert names[0] == "basic"
    assert names[1:9] == TABLE_II  # Table II as printed: FCN plain, aux, WS, WS+aux, then the CNN's
    assert names.index("table3-fcn-best") < names.index("table4-cnn-best")
