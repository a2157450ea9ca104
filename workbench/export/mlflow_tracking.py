"""Runs sent to an MLflow tracking store, for teams that keep their experiments there (`--track URI`, or
DIGIT_WORKBENCH_TRACK for every run the app, the CLI and a sweep's final measurement record).

One MLflow run per record, in the experiment "digit-workbench": every setting as a param; the name, note, tags,
preset, status and the record's id as tags; per epoch the mean and std over rounds and every round's value of each
curve; the final score, each round's score, the weight count and the paper's score as metrics; the record's files
(summary, history, predictions) and its report figure as artifacts. A run arrives whole or is deleted again, and
the local record is never touched: a store that is down or refuses costs one line, and the run can be sent later
(`export --mlflow URI`). The MLflow client is an optional extra (`pip install -e '.[track]'`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from workbench.analysis.curves import Curves
from workbench.analysis.figures import report_png
from workbench.paper.architecture import weight_count
from workbench.records.store import RunSummary, readable_history

TRACK_ENV = "DIGIT_WORKBENCH_TRACK"
EXPERIMENT = "digit-workbench"
RECORD_ID_TAG = "digit_workbench.run_id"  # finds a run already sent, so sending again adds nothing
REACH_TIMEOUT_S = 5.0
# MLflow retries a failed request for minutes by default; a store that is down should cost seconds
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
              "MLFLOW_ALLOW_FILE_STORE": "true",  # MLflow 3 refuses a file store unless asked; naming one asks
              "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # our one line says where it went; no more over the app
QUIET_LOGGERS = ("mlflow", "alembic", "sqlalchemy")  # their lines would land over the app's screen; ours say it all
# the stores MLflow's client opens; anything else is refused before a run trains
STORE_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")
SQL_DRIVERS = {"postgresql": ("psycopg2", "psycopg", "pg8000"), "mysql": ("pymysql", "MySQLdb", "mysql.connector"),
               "mssql": ("pyodbc", "pymssql")}


class NotSent(Exception):
    """Why a run did not reach the store, in one line."""


def tracking_uri(flag: str | None = None) -> str | None:
    """The store runs go to: the flag's, else the environment's; None: runs stay local only."""
    uri = flag if flag is not None else os.environ.get(TRACK_ENV, "")
    return uri.strip() or None


def store_refusal(uri: str) -> str | None:
    """Why `uri` names no store MLflow's client can open (checked before anything trains, without importing
    MLflow), or None. A bare path is a file store, as MLflow takes it."""
    if not uri.strip():
        return "an empty store address (http://host:5000, sqlite:///runs.db, file:./mlruns)"
    if any(ch < " " for ch in uri):
        return f"{uri!r} holds control characters"
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if uri.startswith("file:"):
        scheme = "file"
    if scheme and scheme not in STORE_SCHEMES:
        return (f"{uri!r}: MLflow opens no {scheme}:// store (http://host:5000, sqlite:///runs.db, "
                "postgresql://…, file:./mlruns)")
    if scheme in SQL_DRIVERS and "+" not in uri.split("://", 1)[0]:
        if not any(importlib.util.find_spec(m.split(".")[0]) for m in SQL_DRIVERS[scheme]):
            return f"{uri!r}: no {scheme} driver is installed (pip install {SQL_DRIVERS[scheme][0]})"
    return None


def client(uri: str):
    """MLflow's client for `uri`, after checking that an HTTP server answers (NotSent when it does not, or when
    the client is not installed)."""
    why = store_refusal(uri)
    if why:
        raise NotSent(why)
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    if uri.startswith(("http://", "https://")):
        reach(uri)
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise NotSent("the MLflow client is not installed (pip install -e '.[track]')") from None
    for name in QUIET_LOGGERS:  # after the import, which sets mlflow's own levels
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return MlflowClient(tracking_uri=uri)


def reach(uri: str) -> None:
    """An MLflow server answers /health; anything else (refused, timed out, not MLflow) is NotSent."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT_S) as response:
            if response.status != 200:
                raise NotSent(f"{uri} answered {response.status} to /health")
    except urllib.error.HTTPError as exc:
        raise NotSent(f"{uri} answered {exc.code} to /health: not an MLflow server?") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotSent(f"cannot reach {uri}: {reason}") from None


def experiment_id(mlflow_client, uri: str) -> str:
    found = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if found is not None and found.lifecycle_stage == "active":
        return found.experiment_id
    return mlflow_client.create_experiment(EXPERIMENT, artifact_location=artifacts_beside(uri))


def artifacts_beside(uri: str) -> str | None:
    """A local SQL store's artifacts in a folder beside its database (MLflow's default is ./mlruns in whatever
    folder the command ran from); a server's: where the server keeps them (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):]).expanduser().resolve()
    return (database.parent / f"{database.stem}-artifacts").as_uri()


def metric_key(text: str) -> str:
    """A name as MLflow takes it (letters, digits, _ - . / space)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", text)


def run_metrics(summary: RunSummary) -> list[tuple[str, float, int]]:
    """(key, value, step) for every curve point the record holds, the final score and the sizes."""
    out: list[tuple[str, float, int]] = []
    for column, which, epoch, value in Curves.of(readable_history(summary)).points():
        out.append((f"{column}/{which if isinstance(which, str) else f'round_{which}'}", value, epoch))
    if summary.mean is not None:
        out.append(("final/test_acc_mean", summary.mean, 0))
    if summary.std is not None:
        out.append(("final/test_acc_std", summary.std, 0))
    out += [(f"final/round_{i}", acc, 0) for i, acc in enumerate(summary.round_acc)]
    if summary.paper is not None:
        out.append(("paper/score", summary.paper.score, 0))
    out += [("weights", float(weight_count(summary.config)), 0), ("wall_time_s", summary.wall_time, 0)]
    out += [(f"cost/{key}", float(value), 0) for key, value in sorted(summary.cost.items())]
    return out


def run_tags(summary: RunSummary) -> dict[str, str]:
    tags = {"mlflow.runName": summary.name, RECORD_ID_TAG: summary.id, "status": summary.status,
            "engine": summary.engine, "device": summary.device, "data_source": summary.data_source,
            "preset": summary.preset or "", "tags": ", ".join(summary.tags)}
    for tag in summary.tags:  # each tag a key of its own too: MLflow's search filters on `tags."tag/NAME"`
        tags[f"tag/{metric_key(tag)}"] = "true"
    for key in ("workbench", "commit", "cpu", "isa", "torch"):  # where the numbers came from (records/provenance)
        if summary.versions.get(key):
            tags[f"digit_workbench.{key}"] = str(summary.versions[key])[:5000]
    if summary.note:
        tags["mlflow.note.content"] = summary.note
    if summary.reason:
        tags["reason"] = summary.reason[:5000]
    return tags


def already_sent(mlflow_client, experiment: str, summary: RunSummary) -> str | None:
    """The MLflow run of this record when one arrived whole; a half one (a process killed while sending) is
    deleted so that it is sent again."""
    found = mlflow_client.search_runs([experiment], f"tags.`{RECORD_ID_TAG}` = '{summary.id}'")
    for run in found:
        if run.info.status == "FINISHED":
            return run.info.run_id
        mlflow_client.delete_run(run.info.run_id)
    return None


def send_run(summary: RunSummary, mlflow_client) -> tuple[str, bool]:
    """Sends one saved run; returns its MLflow run id and whether it was sent now (False: it was already there).
    Whole or not at all: a failure deletes what arrived, and raises NotSent."""
    from mlflow.entities import Metric, Param

    if summary.path is None:
        raise NotSent("it was not saved locally, so there is nothing to send")
    experiment = experiment_id(mlflow_client, mlflow_client.tracking_uri)
    previous = already_sent(mlflow_client, experiment, summary)
    if previous is not None:
        return previous, False
    run = mlflow_client.create_run(experiment, start_time=int(summary.started_at * 1000) or None,
                                   tags=run_tags(summary))
    run_id = run.info.run_id
    try:
        params = [Param(k, str(v)) for k, v in summary.config.to_dict().items()]
        stamp = int((summary.saved_at or summary.started_at) * 1000)
        metrics = [Metric(metric_key(k), float(v), stamp, step) for k, v, step in run_metrics(summary)]
        for start in range(0, len(params), 100):  # MLflow's limits per batch
            mlflow_client.log_batch(run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), 1000):
            mlflow_client.log_batch(run_id, metrics=metrics[start:start + 1000])
        for path in sorted(summary.path.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                mlflow_client.log_artifact(run_id, str(path), "record")
        send_figure(mlflow_client, run_id, summary)
        mlflow_client.set_terminated(run_id, "FINISHED", end_time=stamp or None)
    except BaseException as exc:
        try:
            mlflow_client.delete_run(run_id)
        except Exception:
            pass
        if isinstance(exc, Exception):
            raise NotSent(f"{type(exc).__name__}: {first_line(exc)}") from None
        raise
    return run_id, True


def send_figure(mlflow_client, run_id: str, summary: RunSummary) -> None:
    png = report_png(summary)
    if png is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.png"
        path.write_bytes(png[0])
        mlflow_client.log_artifact(run_id, str(path), "figures")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def track(summaries: list[RunSummary], uri: str) -> list[tuple[str, bool]]:
    """Sends each run; per run one line saying where it went, or why it did not (its local record stays), and
    whether it is in the store now. Nothing the store does raises: a store that cannot be opened (a database
    that is no database, a server that is down, a missing driver) is said once per run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's warnings are not the user's to read; our line says it
        try:
            mlflow_client = client(uri)
            experiment_id(mlflow_client, uri)  # the first contact with the store: where most stores refuse
        except NotSent as exc:
            return [(not_sent(s, str(exc)), False) for s in summaries]
        except Exception as exc:
            why = f"cannot open the store {uri}: {type(exc).__name__}: {first_line(exc)}"
            return [(not_sent(s, why), False) for s in summaries]
        lines = []
        for summary in summaries:
            try:
                run_id, now = send_run(summary, mlflow_client)
                lines.append((f"{summary.name}: {'sent to' if now else 'already in'} MLflow at {uri} (run {run_id})",
                              True))
            except NotSent as exc:
                lines.append((not_sent(summary, str(exc)), False))
            except Exception as exc:  # the store refused (permissions, a schema it does not know): said, not raised
                lines.append((not_sent(summary, f"{type(exc).__name__}: {first_line(exc)}"), False))
        return lines


def not_sent(summary: RunSummary, why: str) -> str:
    return f"{summary.name}: not sent to MLflow ({why}); its local record is kept"
