import os

import pytest
import torch

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
    from workbench.data import load_embedded

    return load_embedded()


@pytest.fixture
def tiny():
    """A config that trains in well under a second."""
    from workbench.config import RunConfig

    return RunConfig(subnet="fcn", hl=32, c_hl=16, rounds=2, epochs=2, pairs=200, batch_size=10, device="cpu")
