"""Runs sent to MLflow (`--track`, DIGIT_WORKBENCH_TRACK, `export --mlflow`): read back through MLflow's own
client from its SQL store and from a real `mlflow server`; whole or not at all; a store that is down costs one
line and never the local record."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli.entry import main
from workbench.paper.config import RunConfig
from workbench.records.store import load_runs, readable_history

mlflow_tracking_client = pytest.importorskip("mlflow.tracking")
MlflowClient = mlflow_tracking_client.MlflowClient


def trained(tmp_path, source, track=None, **changes):
    from workbench.training.group import NamedRun
    from workbench.training.train import train_and_record

    config = RunConfig(hl=16, c_hl=8, rounds=2, epochs=3, pairs=100, batch_size=20, device="cpu", **changes)
    run = NamedRun.of(config, None, "α [0.3] run", ("probe", "try 2"), "a note: [bold]kept[/] as text")
    (recorded,) = train_and_record([run], source, runs_root=tmp_path / "runs", track=track)
    return recorded


def the_sent_run(uri: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("digit-workbench")
    runs = client.search_runs([experiment.experiment_id])
    return client, runs


def assert_arrived_whole(client, mlflow_run, summary, tmp_path) -> None:
    """Params, tags, every curve point of the record, the final scores, and the record's files as artifacts."""
    data = mlflow_run.data
    assert mlflow_run.info.status == "FINISHED"
    assert data.params == {k: str(v) for k, v in summary.config.to_dict().items()}
    assert data.tags["mlflow.runName"] == summary.name
    assert data.tags["mlflow.note.content"] == summary.note
    assert data.tags["tags"] == "probe, try 2" and data.tags["digit_workbench.run_id"] == summary.id
    assert data.tags["tag/probe"] == data.tags["tag/try 2"] == "true"  # each tag on its own, for MLflow's search
    assert data.tags["digit_workbench.cpu"] == summary.versions["cpu"]  # where the numbers came from
    assert data.tags["digit_workbench.workbench"] == summary.versions["workbench"]
    assert data.metrics["cost/peak_mib"] == pytest.approx(summary.cost["peak_mib"])
    run_id = mlflow_run.info.run_id
    history = readable_history(summary)
    columns = {"test_acc": "test_acc", "train_loss": "train_loss", "train_acc": "train_acc", "digit_acc": "digit_acc"}
    for key, column in columns.items():
        for r in range(summary.config.rounds):
            got = {(m.step, round(m.value, 6)) for m in client.get_metric_history(run_id, f"{key}/round_{r}")}
            want = {(int(h["epoch"]), round(float(h[column]), 6)) for h in history if int(h["round"]) == r}
            assert got == want and len(want) == summary.config.epochs, (key, r)
        assert len(client.get_metric_history(run_id, f"{key}/mean")) == summary.config.epochs
    assert data.metrics["final/test_acc_mean"] == pytest.approx(summary.mean)
    assert data.metrics["final/test_acc_std"] == pytest.approx(summary.std)
    assert [data.metrics[f"final/round_{i}"] for i in range(2)] == pytest.approx(summary.round_acc)
    from workbench.paper.architecture import weight_count

    assert data.metrics["weights"] == weight_count(summary.config)
    record = {a.path for a in client.list_artifacts(run_id, "record")}
    assert {"record/summary.json", "record/history.csv", "record/predictions.npz"} <= record
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/report.png"]
    local = client.download_artifacts(run_id, "record/summary.json", str(tmp_path))
    assert Path(local).read_bytes() == (summary.path / "summary.json").read_bytes()


def test_a_run_arrives_whole_in_mlflows_store_and_once(tmp_path, source, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")  # MLflow's own default would put the artifacts here, in ./mlruns
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    recorded = trained(tmp_path, source, track=uri)
    assert (tmp_path / "mlflow-artifacts").is_dir() and not (tmp_path / ".." / "mlruns").exists()  # beside the db
    assert recorded.sent and recorded.tracked.startswith("α [0.3] run: sent to MLflow at sqlite:")
    client, runs = the_sent_run(uri)
    assert len(runs) == 1
    assert_arrived_whole(client, runs[0], recorded.summary, tmp_path)
    # sent again (export --mlflow on a machine that tracked it already): found by its record id, not doubled
    assert main(["export", "--runs-dir", str(tmp_path / "runs"), "--mlflow", uri]) == 0
    assert len(the_sent_run(uri)[1]) == 1


def test_the_environment_variable_tracks_every_recorded_run(tmp_path, source, monkeypatch):
    uri = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("DIGIT_WORKBENCH_TRACK", uri)
    recorded = trained(tmp_path, source)
    assert recorded.sent
    assert len(the_sent_run(uri)[1]) == 1
    monkeypatch.setenv("DIGIT_WORKBENCH_TRACK", "")
    assert trained(tmp_path, source).tracked == ""  # empty: nothing is sent


def test_a_half_sent_run_is_deleted_and_nothing_half_stays(tmp_path, source, monkeypatch):
    from workbench.export import mlflow_tracking

    runs_root = tmp_path / "runs"
    recorded = trained(tmp_path, source)
    uri = f"sqlite:///{tmp_path}/half.db"
    before = sorted(p.name for p in recorded.summary.path.iterdir())

    def fails(self, run_id, local_path, artifact_path=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MlflowClient, "log_artifact", fails)
    ((line, ok),) = mlflow_tracking.track(load_runs(runs_root)[0], uri)
    assert not ok and line == ("α [0.3] run: not sent to MLflow (OSError: [Errno 28] No space left on device); "
                               "its local record is kept")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("digit-workbench").experiment_id
    assert client.search_runs([experiment]) == []  # what arrived before the failure was deleted again
    assert sorted(p.name for p in recorded.summary.path.iterdir()) == before
    # a run a killed sender left unfinished is replaced by a whole one
    client.create_run(experiment, tags={"digit_workbench.run_id": recorded.summary.id})
    monkeypatch.undo()
    ((line, ok),) = mlflow_tracking.track(load_runs(runs_root)[0], uri)
    assert ok and "sent to" in line
    (whole,) = client.search_runs([experiment])
    assert_arrived_whole(client, whole, load_runs(runs_root)[0][0], tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_store_that_is_down_costs_one_line_and_keeps_the_record(tmp_path, source, capsys):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code = main(["run", "--subnet", "fcn", "--hl", "16", "--c-hl", "8", "--rounds", "1", "--epochs", "1",
                 "--pairs", "100", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"), "--track", uri])
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert code == 0  # the run is done and recorded; only its copy elsewhere is missing
    lines = [line for line in err.splitlines() if "MLflow" in line]
    assert len(lines) == 1 and f"not sent to MLflow (cannot reach {uri}" in lines[0]
    assert "its local record is kept" in lines[0] and "Traceback" not in err
    (summary,) = load_runs(tmp_path / "runs")[0]
    assert summary.status == "done"
    assert main(["export", "--runs-dir", str(tmp_path / "runs"), "--mlflow", uri]) == 1  # said, and not zero


MLFLOW_COMMAND = Path(sys.executable).with_name("mlflow")  # beside this Python: CI's PATH may not hold the venv


@pytest.mark.skipif(not MLFLOW_COMMAND.exists(), reason="the mlflow server is not installed")
def test_a_run_arrives_whole_through_a_real_mlflow_server(tmp_path, source):
    port = free_port()
    server = subprocess.Popen([str(MLFLOW_COMMAND), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                               "--artifacts-destination", str(tmp_path / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
                              start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the mlflow server did not start"
                time.sleep(0.5)
        from workbench.export.mlflow_tracking import reach

        while True:  # the port opens before the app answers
            try:
                reach(uri)
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        recorded = trained(tmp_path, source, track=uri, weight_sharing=True)
        assert recorded.sent, recorded.tracked
        client, runs = the_sent_run(uri)
        assert len(runs) == 1
        assert_arrived_whole(client, runs[0], recorded.summary, tmp_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's workers too: no orphans
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_without_the_client_installed_the_run_says_so_in_one_line(tmp_path, source, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    recorded = trained(tmp_path, source, track=f"sqlite:///{tmp_path}/x.db")
    assert not recorded.sent
    assert recorded.tracked == ("α [0.3] run: not sent to MLflow (the MLflow client is not installed "
                                "(pip install -e '.[track]')); its local record is kept")
    assert (recorded.summary.path / "summary.json").is_file()


@pytest.fixture
def one_record(tmp_path, source):
    return trained(tmp_path, source).summary


@pytest.mark.parametrize("uri, said", [
    ("garbage://x", "MLflow opens no garbage:// store"),
    ("sqlite:///{tmp}/notes.txt", "file is not a database"),
    (" ", "an empty store address"),
    ("postgresql://user@localhost/db", "no postgresql driver is installed"),
    ("http://127.0.0.1:9/", "cannot reach"),
])
def test_a_store_the_client_cannot_open_costs_one_line_per_run(one_record, tmp_path, monkeypatch, uri, said):
    import importlib.util

    from workbench.export.mlflow_tracking import track

    (tmp_path / "notes.txt").write_text("not a database, and it stays as it was\n")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("psycopg2", "psycopg", "pg8000") else real_find_spec(name, *a))
    ((line, sent),) = track([one_record], uri.format(tmp=tmp_path))
    assert not sent and said in line and "its local record is kept" in line and "\n" not in line, line
    assert (tmp_path / "notes.txt").read_text() == "not a database, and it stays as it was\n"


@pytest.mark.parametrize("form", ["file:{tmp}/mlruns", "{tmp}/bare"])
def test_a_file_store_a_new_user_names_just_works(one_record, tmp_path, monkeypatch, form):
    from workbench.export.mlflow_tracking import track

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = form.format(tmp=tmp_path)
    ((line, sent),) = track([one_record], uri)
    assert sent and "sent to MLflow" in line, line
    client, runs = the_sent_run(uri)
    assert [r.data.tags["digit_workbench.run_id"] for r in runs] == [one_record.id]


def test_a_store_no_client_can_open_is_refused_before_training(tmp_path, capsys, monkeypatch):
    argv = ["run", "--hl", "16", "--rounds", "1", "--epochs", "1", "--pairs", "100", "--runs-dir", str(tmp_path / "r")]
    assert main([*argv, "--track", "garbage://x"]) == 2
    assert "--track: 'garbage://x': MLflow opens no garbage:// store" in capsys.readouterr().err
    monkeypatch.setenv("DIGIT_WORKBENCH_TRACK", "ftp://somewhere")
    assert main(argv) == 2
    assert "DIGIT_WORKBENCH_TRACK: 'ftp://somewhere'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


def test_a_store_that_raises_anything_never_ends_the_worker_or_loses_the_record(tmp_path, source, monkeypatch):
    import workbench.training.train as train

    def broken(summaries, uri):
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(train, "send", broken)
    recorded = trained(tmp_path, source, track="sqlite:///x.db")
    assert not recorded.sent and "the store fell over" in recorded.tracked
    assert [s.id for s in load_runs(tmp_path / "runs")[0]] == [recorded.summary.id]


def test_export_refuses_flags_that_name_no_place_before_writing(one_record, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = str(tmp_path / "runs")
    for argv, said in ((["--tensorboard", ""], "--tensorboard: an empty folder name"),
                       (["--mlflow", " "], "--mlflow: an empty store address"),
                       (["--mlflow", "garbage://x"], "--mlflow: 'garbage://x'")):
        capsys.readouterr()
        assert main(["export", *argv, "--runs-dir", runs]) == 2
        assert said in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written into this folder
    (tmp_path / "file").write_text("x")
    assert main(["export", "--runs-dir", str(tmp_path / "file")]) == 2
    assert "--runs-dir" in capsys.readouterr().err and not (tmp_path / "runs-export.csv").exists()
