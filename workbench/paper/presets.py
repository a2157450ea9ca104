"""The paper's rows as presets: each preset's settings and the score the paper reports for it, read from
presets/*.toml in the paper's order."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.format import mean_std_label
from workbench.fsutil import read_input_text
from workbench.paper.config import ConfigError, RunConfig, from_dict


@dataclass(frozen=True)
class PaperScore:
    """A score the paper reports for one of its rows (fractions, as our records keep them)."""

    table: str
    row: str
    score: float
    std: float | None = None
    note: str = ""

    def label(self) -> str:
        return mean_std_label(self.score, self.std)


# Where and with which draws a config runs, not what it is: a run that differs from its preset only here is
# still the paper's row.
RUN_ONLY_FIELDS = ("device", "seed")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    config: RunConfig
    paper: PaperScore | None = None
    path: Path | None = field(default=None, compare=False)

    def is_row(self, config: RunConfig) -> bool:
        """Whether `config` is still this preset's row of the paper (it differs at most in RUN_ONLY_FIELDS)."""
        changed = {k for k in config.differences(self.config) if config.uses(k) or self.config.uses(k)}
        return not changed - set(RUN_ONLY_FIELDS)

    def paper_for(self, config: RunConfig) -> PaperScore | None:
        """The paper's score beside a run of `config`: only for the paper's row itself, never for an edit."""
        return self.paper if self.is_row(config) else None


PRESET_KEYS = {"title", "config", "paper"}
PAPER_KEYS = {"table": str, "row": str, "score": float, "std": float, "note": str}


def parse_toml(text: str, source: str, what: str) -> dict[str, Any]:
    """A TOML text as a table; what is not TOML (or nests past the parser's depth) names the file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"not valid TOML: {exc}", source) from None
    except RecursionError:
        raise ConfigError("file", f"nested too deeply to be {what}", source) from None


def read_text(path: Path) -> str:
    """A preset's or a spec's text: a regular file of sane size (a FIFO or a device is refused, never read)."""
    try:
        return read_input_text(Path(path))
    except OSError as exc:
        raise ConfigError("file", f"cannot read: {exc.strerror or exc}", str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("file", f"not UTF-8 text: {exc}", str(path)) from None


def parse_paper(values: Any, where: str, source: str) -> PaperScore:
    """The paper's score as a preset, a sweep or a sweep's stage gives it; errors name `where`'s key."""
    if not isinstance(values, dict):
        raise ConfigError(where, "must be a table", source)
    for key, value in values.items():
        want = PAPER_KEYS.get(key)
        if want is None:
            raise ConfigError(f"{where}.{key}", f"unknown key (known: {', '.join(PAPER_KEYS)})", source)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want is float else isinstance(value, want)
        if not ok:
            raise ConfigError(f"{where}.{key}", f"expected {want.__name__}, got {value!r}", source)
    if "score" not in values:
        raise ConfigError(f"{where}.score", "missing", source)
    for key in ("score", "std"):
        if key in values and not 0.0 <= values[key] <= 1.0:
            raise ConfigError(f"{where}.{key}", f"must be a fraction in [0, 1] (0.9282, not 92.82), got "
                                                f"{values[key]!r}", source)
    return PaperScore(values.get("table", ""), values.get("row", ""), float(values["score"]),
                      float(values["std"]) if "std" in values else None, values.get("note", ""))


def load_preset(path: Path) -> Preset:
    """Read one preset TOML file; any error names the file and the key."""
    source = str(path)
    data = parse_toml(read_text(path), source, "a preset")
    for key in data:
        if key not in PRESET_KEYS:
            raise ConfigError(key, f"unknown key (known: {', '.join(sorted(PRESET_KEYS))})", source)
    if "config" not in data:  # an empty or mistyped file would otherwise train the defaults unasked
        raise ConfigError("config", "a preset needs a [config] table of settings", source)
    config_values = data["config"]
    if not isinstance(config_values, dict):
        raise ConfigError("config", "must be a table of settings", source)
    config = from_dict({k: v for k, v in config_values.items()}, source)
    paper = parse_paper(data["paper"], "paper", source) if "paper" in data else None
    title = data.get("title", path.stem)
    if not isinstance(title, str):
        raise ConfigError("title", f"expected text, got {title!r}", source)
    return Preset(name=path.stem, title=title, config=config, paper=paper, path=path)


def presets_dir() -> Path:
    """presets/ at the project root; the package ships a copy for installs outside the checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "presets", package / "presets"):
        if candidate.is_dir():
            return candidate
    return package.parent / "presets"


PAPER_TABLES = ("text", "I", "II", "III", "IV")  # the order the paper reports its rows in


def paper_order(preset: Preset) -> tuple:
    """The paper's order: the basic net, Table II's rows as printed (FCN then CNN), Tables III and IV; then the
    presets that are no row of the paper, by name."""
    table = preset.paper.table if preset.paper else ""
    rank = PAPER_TABLES.index(table) if table in PAPER_TABLES else len(PAPER_TABLES)
    row = TABLE_II.index(preset.name) if preset.name in TABLE_II else len(TABLE_II)
    return rank, row, preset.name


def load_presets(directory: Path | None = None) -> dict[str, Preset]:
    """Every preset, in the paper's order."""
    directory = directory or presets_dir()
    presets = [load_preset(p) for p in sorted(directory.glob("*.toml"))]
    return {p.name: p for p in sorted(presets, key=paper_order)}


def find_preset(name: str, directory: Path | None = None) -> Preset:
    directory = directory or presets_dir()
    path = Path(name)
    if path.suffix == ".toml" and path.exists():
        return load_preset(path)
    candidate = directory / f"{name}.toml"
    if not candidate.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
        raise ConfigError("preset", f"no preset named {name!r} (known: {known})")
    return load_preset(candidate)


TABLE_II = [f"table2-{net}-{tag}" for net in ("fcn", "cnn") for tag in ("plain", "aux", "ws", "ws-aux")]
