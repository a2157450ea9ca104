import os

import pytest
import torch

# Under pytest-xdist (make test runs one worker per core) each worker gets one core's thread. xdist also sets
# COLUMNS=80 and LINES=24 in its workers: the commands' tables and the apps started in a pseudo-terminal would
# read them as the terminal's size, so they go, as in a plain test run.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
else:
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test writes runs and exports into its own folder; the digit cache is shared by the session."""
    monkeypatch.setenv("DIGIT_WORKBENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PYTORCH_DATA_DIR", raising=False)
    yield


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    os.environ["DIGIT_WORKBENCH_CACHE"] = str(cache)
    yield cache


@pytest.fixture(scope="session")
def source(session_cache):
    from workbench.paper.data import load_embedded

    return load_embedded()


@pytest.fixture
def tiny():
    """A config that trains in well under a second."""
    from workbench.paper.config import RunConfig

    return RunConfig(subnet="fcn", hl=32, c_hl=16, rounds=2, epochs=2, pairs=200, batch_size=10, device="cpu")


@pytest.fixture(scope="session")
def command_record(tmp_path_factory, source):
    """One record as the `run` command writes it (summary, history, predictions, weights, resume state), trained
    once per session: the valid files the archive and fuzz tests copy and damage (never in place)."""
    from workbench.cli.entry import main

    root = tmp_path_factory.mktemp("command-record")
    assert main(["run", "--hl", "16", "--c-hl", "8", "--rounds", "1", "--epochs", "1", "--pairs", "100",
                 "--batch-size", "20", "--name", "kept", "--runs-dir", str(root)]) == 0
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder
