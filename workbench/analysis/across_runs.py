"""Final score against one setting across many runs (W&B's scatter panel): every done run a point with its std
over rounds, coloured by subnet, weight sharing and the auxiliary loss. The app's scatter view and `plot
--scatter FIELD` draw the same points from here. Torch-free."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from workbench.format import percent
from workbench.paper.architecture import weight_count
from workbench.paper.config import FIELDS, SUBNETS, short_label

WEIGHTS = "weights"
SCATTER_FIELDS = (*FIELDS, WEIGHTS)
COLOUR_BY = {"net": "subnet, WS, aux", "subnet": "subnet", "weight_sharing": "weight sharing", "aux_loss": "aux loss"}
LOG_FIELDS = {WEIGHTS, "lr", "hl", "c_hl", "batch_size", "pairs"}  # sizes and rates read best on a log axis
SPAN_FOR_LOG = 10.0


@dataclass(frozen=True)
class Point:
    x: float
    mean: float  # percent
    std: float
    group: str
    name: str
    run_id: str


@dataclass
class Scatter:
    field: str
    colour_by: str
    points: list[Point]
    ticks: list[tuple[float, str]] | None = None  # a switch's or a choice's values, placed at 0, 1, …
    unused: int = 0  # runs whose net has no such setting (alpha of the basic net)
    not_done: int = 0  # failed, cancelled, or without a score
    log_x: bool = False
    groups: dict[str, list[Point]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return axis_label(self.field)

    def left_out(self) -> str:
        """What the points do not show, said in words ('' when every run is a point)."""
        parts = []
        if self.unused:
            parts.append(f"{self.unused} without {self.label}")
        if self.not_done:
            parts.append(f"{self.not_done} not done")
        return ", ".join(parts)


def axis_label(key: str) -> str:
    if key == WEIGHTS:
        return "weights"
    return FIELDS[key].label


def field_named(text: str) -> str:
    """A field as a user types it (alpha, C-HL, c_hl, weights); ValueError naming the known ones."""
    wanted = text.strip().lower().replace("-", "_").replace(" ", "_")
    for key in SCATTER_FIELDS:
        if wanted in (key, axis_label(key).lower().replace("-", "_").replace(" ", "_")):
            return key
    raise ValueError(f"no setting named {text!r} (known: {', '.join(SCATTER_FIELDS)})")


def group_of(config, colour_by: str) -> str:
    if colour_by == "subnet":
        return config.subnet
    if colour_by in ("weight_sharing", "aux_loss"):
        if not config.uses(colour_by):
            return "basic"
        return f"{short_label(colour_by)} {'on' if getattr(config, colour_by) else 'off'}"
    if config.subnet == "basic":
        return "basic"
    switches = [short_label(k) for k in ("weight_sharing", "aux_loss") if getattr(config, k)]
    return " ".join([config.subnet, *switches]) if switches else f"{config.subnet} plain"


def value_of(config, key: str):
    return weight_count(config) if key == WEIGHTS else getattr(config, key)


def varying(summaries: list) -> list[str]:
    """The settings (and weights) whose value differs among the done runs that use them, in SCATTER_FIELDS' order:
    a setting the same in every run is one column of dots, nothing to read across."""
    done = [s for s in summaries if s.status == "done" and s.mean is not None]
    return [key for key in SCATTER_FIELDS
            if len({value_of(s.config, key) for s in done if key == WEIGHTS or s.config.uses(key)}) > 1]


def scatter(summaries: list, key: str, colour_by: str = "net") -> Scatter:
    """The points of `summaries` against setting `key`; a switch or a choice sits at 0, 1, … with its names as
    ticks, and its groups side by side so that they do not hide one another."""
    if colour_by not in COLOUR_BY:
        raise ValueError(f"colour by one of {', '.join(COLOUR_BY)}, got {colour_by!r}")
    result = Scatter(key, colour_by, [])
    spec = FIELDS.get(key)
    categories: tuple | None = None
    if spec is not None and spec.kind is bool:
        categories = (False, True)
        result.ticks = [(0.0, "off"), (1.0, "on")]
    elif spec is not None and spec.choices:
        categories = SUBNETS if key == "subnet" else spec.choices
        result.ticks = [(float(i), name) for i, name in enumerate(categories)]
    raw = []
    for s in summaries:
        if s.status != "done" or s.mean is None:
            result.not_done += 1
        elif key != WEIGHTS and not s.config.uses(key):
            result.unused += 1
        else:
            raw.append((s, value_of(s.config, key), group_of(s.config, colour_by)))
    names = sorted({g for _, _, g in raw}, key=group_rank)
    for s, value, group in raw:
        if categories is None:
            x = float(value)
        else:  # groups side by side within a category
            x = categories.index(value) + (names.index(group) - (len(names) - 1) / 2) * 0.08
        result.points.append(Point(x, percent(s.mean), percent(s.std or 0.0), group, s.name, s.id))
    xs = [p.x for p in result.points]
    result.log_x = (categories is None and key in LOG_FIELDS and bool(xs) and min(xs) > 0
                    and max(xs) / min(xs) >= SPAN_FOR_LOG)
    grouped: dict[str, list[Point]] = defaultdict(list)
    for point in result.points:
        grouped[point.group].append(point)
    result.groups = {name: sorted(grouped[name], key=lambda p: p.x) for name in names}
    return result


def group_rank(group: str) -> tuple:
    """Groups in the paper's order: basic, then FCN before CNN, plain before the switches, off before on."""
    words = group.split()
    net = SUBNETS.index(words[0]) if words[0] in SUBNETS else len(SUBNETS)
    switches = len([w for w in words[1:] if w not in ("plain", "on", "off")])
    return net, words[-1] == "on", switches, group
