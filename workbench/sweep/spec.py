"""Sweep specs: a base config and the stages of a staged search, read from presets/sweeps/*.toml. Every error
names the file and the key (`stage[0].grid.hl`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.paper.config import FIELDS, ConfigError, RunConfig, field_applies, from_dict
from workbench.paper.presets import PaperScore, parse_paper, parse_toml, presets_dir, read_text

SWEEPABLE = {k for k, spec in FIELDS.items() if k not in ("device", "seed", "rounds", "pairs")}  # the protocol stays
SPEC_KEYS = {"title", "base", "stage", "paper", "validation_pairs", "final_rounds", "batch", "pruner"}
STAGE_KEYS = {"name", "grid", "range", "trials", "paper"}
MAX_GRID_POINTS = 100_000  # a stage's grid is enumerated to hand out trials; beyond this, use a range search
MAX_VALIDATION = 30000  # pairs: MNIST's 60,000 training digits (the digits in use are checked when a trial draws)
MAX_BATCH = 1000  # trials a worker trains at once (its memory is checked as a run's is, before it trains)
DEFAULT_BATCH = 10
PRUNERS = ("none", "median", "halving")


@dataclass
class Stage:
    name: str
    grid: dict[str, list] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    trials: int = 0  # for ranges: how many trials the model-based search gets
    paper: PaperScore | None = None  # what the paper reports after this stage of its own search

    @property
    def is_grid(self) -> bool:
        return bool(self.grid)

    def size(self) -> int:
        if self.is_grid:
            n = 1
            for values in self.grid.values():
                n *= len(values)
            return n
        return self.trials


@dataclass
class SweepSpec:
    name: str
    title: str
    base: RunConfig
    stages: list[Stage]
    validation_pairs: int = 500
    final_rounds: int = 10
    paper: PaperScore | None = None
    path: Path | None = None
    batch: int = DEFAULT_BATCH  # at most this many trials trained at once by one worker (1: one at a time)
    pruner: str = "none"  # stops hopeless trials early from their per-epoch validation (pruning.py)


SPECS_ENV = "DIGIT_WORKBENCH_SWEEP_SPECS"  # a folder of the user's own specs, beside the shipped ones


def sweeps_dir() -> Path:
    return presets_dir() / "sweeps"


def spec_dirs() -> list[Path]:
    """Where specs are found by name, in this order: the shipped ones, then the folder DIGIT_WORKBENCH_SWEEP_SPECS
    names (the app's sweep screen lists both)."""
    own = os.environ.get(SPECS_ENV)
    return [sweeps_dir()] + ([Path(own)] if own else [])


def spec_paths() -> list[Path]:
    return [path for folder in spec_dirs() for path in sorted(folder.glob("*.toml"))]


def find_spec(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        return path
    for folder in spec_dirs():
        candidate = folder / f"{name}.toml"
        if candidate.exists():
            return candidate
    known = ", ".join(sorted({p.stem for p in spec_paths()}))
    raise ConfigError("spec", f"no sweep spec named {name!r} (known: {known})")


def load_spec(path: Path) -> SweepSpec:
    """Read a sweep spec; every error names the file and the key."""
    return parse_spec(read_text(path), Path(path))


def parse_spec(text: str, path: Path) -> SweepSpec:
    source = str(path)
    data = parse_toml(text, source, "a sweep spec")
    for key in data:
        if key not in SPEC_KEYS:
            raise ConfigError(key, f"unknown key (known: {', '.join(sorted(SPEC_KEYS))})", source)
    if not isinstance(data.get("base", {}), dict):
        raise ConfigError("base", "must be a table of settings ([base])", source)
    base = from_dict(data.get("base", {}), source)
    stages_data = data.get("stage", [])
    if not isinstance(stages_data, list) or not stages_data:
        raise ConfigError("stage", "a sweep needs at least one [[stage]]", source)
    stages = [parse_stage(i, s, base, source) for i, s in enumerate(stages_data)]
    paper = parse_paper(data["paper"], "paper", source) if "paper" in data else None
    validation = data.get("validation_pairs", 500)
    if isinstance(validation, bool) or not isinstance(validation, int) or not 10 <= validation <= MAX_VALIDATION:
        raise ConfigError("validation_pairs", f"a whole number in 10..{MAX_VALIDATION}, got {validation!r}", source)
    final_rounds = data.get("final_rounds", 10)
    if isinstance(final_rounds, bool) or not isinstance(final_rounds, int) or not 1 <= final_rounds <= 100:
        raise ConfigError("final_rounds", f"a whole number in 1..100, got {final_rounds!r}", source)
    batch = data.get("batch", DEFAULT_BATCH)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigError("batch", f"trials a worker trains at once: a whole number in 1..{MAX_BATCH}, got {batch!r}",
                          source)
    pruner = data.get("pruner", "none")
    if pruner not in PRUNERS:
        raise ConfigError("pruner", f"one of {', '.join(map(repr, PRUNERS))}, got {pruner!r}", source)
    title = one_line(data.get("title", Path(path).stem), "title", source)
    return SweepSpec(Path(path).stem, title, base, stages, validation, final_rounds, paper, Path(path), batch,
                     pruner)


MAX_TITLE = 120


def one_line(value: Any, key: str, source: str) -> str:
    """A title or a stage's name: text on one line, of a sane length, as it is drawn on the sweep screen."""
    if not isinstance(value, str):
        raise ConfigError(key, f"text in quotes, got {type(value).__name__} {value!r}"[:160], source)
    value = value.strip()
    if not value or len(value) > MAX_TITLE or not value.isprintable():
        raise ConfigError(key, f"one line of 1 to {MAX_TITLE} printable characters, got {value[:40]!r}", source)
    return value


def parse_stage(index: int, data: Any, base: RunConfig, source: str) -> Stage:
    where = f"stage[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(where, "must be a table", source)
    for key in data:
        if key not in STAGE_KEYS:
            raise ConfigError(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(STAGE_KEYS))})", source)
    stage = Stage(name=one_line(data.get("name", f"stage {index + 1}"), f"{where}.name", source))
    if "paper" in data:
        stage.paper = parse_paper(data["paper"], f"{where}.paper", source)
    grid, ranges = data.get("grid", {}), data.get("range", {})
    for kind, table in (("grid", grid), ("range", ranges)):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}.{kind}", f"must be a table of parameter = [{'values' if kind == 'grid' else 'low, high'}],"
                              f" got {type(table).__name__}", source)
    if not grid and not ranges:
        raise ConfigError(where, "needs a grid or a range", source)
    if grid and ranges:
        raise ConfigError(where, "has both a grid and a range: one kind of search per stage", source)
    for param, values in grid.items():
        key = f"{where}.grid.{param}"
        check_param(param, key, base, source)
        if not isinstance(values, list) or not values:
            raise ConfigError(key, "an empty grid: list at least one value", source)
        stage.grid[param] = checked_values(base, param, values, key, source)
        if len(set(stage.grid[param])) != len(stage.grid[param]):
            raise ConfigError(key, "lists a value twice", source)
    if grid and stage.size() > MAX_GRID_POINTS:
        sizes = " x ".join(str(len(v)) for v in stage.grid.values())
        raise ConfigError(f"{where}.grid", f"{sizes} = {stage.size():,} points, more than the {MAX_GRID_POINTS:,} a "
                          "grid may hold; split it into stages or search a range", source)
    for param, bounds in ranges.items():
        key = f"{where}.range.{param}"
        check_param(param, key, base, source)
        if FIELDS[param].kind is not float:
            raise ConfigError(key, "ranges are for real-valued parameters; use a grid", source)
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ConfigError(key, "a range is [low, high]", source)
        low, high = checked_values(base, param, bounds, key, source)
        if not low < high:
            raise ConfigError(key, f"low must be below high, got [{low}, {high}]", source)
        stage.ranges[param] = (low, high)
    if ranges:
        trials = data.get("trials")
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 10000:
            raise ConfigError(f"{where}.trials", f"a range search needs trials = 1..10000, got {trials!r}", source)
        stage.trials = trials
    return stage


def checked_values(base: RunConfig, param: str, values: list, key: str, source: str) -> list:
    """Each value as the config takes it, asked of the config itself: a bad value is refused as the field
    refuses it, one that makes no valid config with the base (a batch larger than its pairs) says so."""
    out = []
    for value in values:
        try:
            out.append(getattr(base.replace(**{param: value}), param))
        except ConfigError as exc:
            if exc.key == param:
                raise exc.at(key, source) from None
            raise ConfigError(key, f"{value!r} with the base: {exc.key}: {exc.message}", source) from None
    return out


def check_param(param: str, key: str, base: RunConfig, source: str) -> None:
    if param not in SWEEPABLE:
        raise ConfigError(key, f"unknown or unsweepable parameter (sweepable: {', '.join(sorted(SWEEPABLE))})",
                          source)
    if not field_applies(param, base.subnet):
        raise ConfigError(key, f"the {base.subnet} subnet has no {param}", source)
