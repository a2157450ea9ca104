"""Hyperparameter sweeps: the paper's staged grid searches, scored honestly, on one machine or many.

A spec (presets/sweeps/*.toml) has a base config and stages run in order; each stage searches a few parameters
(an exact grid, or ranges for a model-based search) and the best of a stage is the base of the next, as the paper
tuned one group of parameters at a time. Trials are scored on validation pairs drawn from training digits the
trial's train pairs do not use, never on the test pairs; test accuracy is recorded beside, to show the gap.

Engine: Optuna. One study per stage, named "<study>/<stage number>-<stage name>". Storage: a journal file under
runs/sweeps/ (no server), shared by the worker processes of one machine; or a database URL (PostgreSQL) that
workers on several machines join.

spec.py reads specs; storage.py keeps and reads the studies; worker.py works through the stages, batch.py trains a
worker's batch of trials in one engine call and pruning.py stops hopeless ones (opt-in); supervisor.py runs one
sweep on this machine, the one object the command (cli/sweep.py) and the app's screen both use.
"""

from workbench.sweep.batch import open_points, point_key
from workbench.sweep.spec import SWEEPABLE, Stage, SweepSpec, find_spec, load_spec, parse_spec, spec_paths, sweeps_dir
from workbench.sweep.storage import (MAX_RETRIES, StageSummary, Trial, all_trials, best_params, default_storage,
                                     export_trials, final_runs, is_database, open_storage, record_spec, recorded_spec,
                                     stage_base, stage_study_name, stage_summaries, stage_tables, stage_trials, storage_exists,
                                     trials_csv, trials_csv_path)
from workbench.sweep.supervisor import FinalRun, SweepRun
from workbench.sweep.worker import reap_dead_trials, run_worker, start_workers

__all__ = ["MAX_RETRIES", "SWEEPABLE", "FinalRun", "Stage", "StageSummary", "SweepRun", "SweepSpec", "Trial",
           "all_trials", "best_params", "default_storage", "export_trials", "final_runs", "find_spec", "is_database",
           "load_spec", "open_points", "open_storage", "parse_spec", "point_key", "reap_dead_trials", "record_spec",
           "recorded_spec", "run_worker", "stage_base", "stage_study_name", "stage_summaries", "stage_tables", "stage_trials",
           "start_workers", "storage_exists", "spec_paths", "sweeps_dir", "trials_csv", "trials_csv_path"]
