"""The run configuration: every field the paper names, its default, its bounds, and how a config is named.

The paper's vocabulary, said once:
  HL    units in each hidden layer of a subnet (the basic net's hidden width too)
  KL    number of hidden layers of a subnet
  BC    base channel count of the CNN subnet (its second convolution has 2*BC)
  K     kernel size of both CNN convolutions
  OC    flattened size after the CNN's convolutions; it follows from BC and K
  C-HL  units in each hidden layer after the two subnets are combined
  C-KL  number of those hidden layers (0: the 20 digit logits go straight to the output)
  alpha weight of the comparison loss in equation 1; the two digit losses share 1 - alpha
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

# The choices, said once: the CLI's flags, the form and the engine read them from here.
SUBNETS = ("basic", "fcn", "cnn")
SUBNET_LABELS = {"basic": "basic net", "fcn": "FCN subnet", "cnn": "CNN subnet"}
DEVICES = ("auto", "cpu", "cuda")
ENGINES = ("batched", "loop")  # batched: every round as one stacked model; loop: the reference loop
DATA_SOURCES = ("auto", "mnist", "embedded")  # auto: full MNIST when present, else the embedded subset


class ConfigError(ValueError):
    """A bad configuration value, naming the field (and the file, when there is one). `errors` holds every bad
    field of the config with its reason, the first one being `key`'s (a form shows them all at once)."""

    def __init__(self, key: str, message: str, source: str | None = None, errors: dict[str, str] | None = None):
        self.key, self.message, self.source = key, message, source
        self.errors = {key: message, **(errors or {})}
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}")

    @classmethod
    def of(cls, errors: dict[str, str], source: str | None = None) -> ConfigError:
        key, message = next(iter(errors.items()))
        return cls(key, message, source, errors)

    def at(self, key: str | None = None, source: str | None = None) -> ConfigError:
        """The same complaint, said of another key (a sweep's `stage.grid.hl`) or file."""
        errors = self.errors if key is None else {}
        return ConfigError(key or self.key, self.message, source or self.source, errors)


# a stack's replicas may differ here
REPLICA_FIELDS = ("aux_loss", "alpha", "seed", "repair", "shift", "rotate", "lr", "lr_decay", "dropout")


@dataclass(frozen=True)
class FieldSpec:
    """What one config field is: its type, its label in the form and tables, its help, its bounds or choices."""

    kind: type
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    # Fields only some subnets use. For the others a field is ignored (the form greys it out) and a switch
    # (weight sharing, the auxiliary loss: the basic net has no subnets) is off; asked for on, it is refused.
    subnets: tuple[str, ...] = SUBNETS


FIELDS: dict[str, FieldSpec] = {
    "subnet": FieldSpec(str, "Subnet", "basic net, fully connected (fcn) or convolutional (cnn)", choices=SUBNETS),
    "weight_sharing": FieldSpec(bool, "Weight sharing", "both images go through one set of subnet weights",
                                subnets=("fcn", "cnn")),
    "aux_loss": FieldSpec(bool, "Auxiliary loss", "add the two digit-classification losses (equation 1)",
                          subnets=("fcn", "cnn")),
    "alpha": FieldSpec(float, "alpha", "weight of the comparison loss in equation 1", 0.0, 1.0,
                       subnets=("fcn", "cnn")),
    "hl": FieldSpec(int, "HL", "units in each hidden layer", 1, 4096),
    "kl": FieldSpec(int, "KL", "number of hidden layers", 1, 8),
    "bc": FieldSpec(int, "BC", "base channels of the CNN subnet", 1, 256, subnets=("cnn",)),
    "k": FieldSpec(int, "K", "kernel size of the CNN subnet", 1, 5, subnets=("cnn",)),
    "c_hl": FieldSpec(int, "C-HL", "units in each hidden layer after the combination", 1, 4096,
                      subnets=("fcn", "cnn")),
    "c_kl": FieldSpec(int, "C-KL", "hidden layers after the combination", 0, 8, subnets=("fcn", "cnn")),
    "dropout": FieldSpec(float, "Dropout", "fraction of units dropped in training", 0.0, 0.95),
    "lr": FieldSpec(float, "Learning rate", "Adam's learning rate", 1e-7, 10.0),
    "lr_decay": FieldSpec(float, "LR decay", "learning rate factor applied after every epoch", 0.01, 1.0),
    "epochs": FieldSpec(int, "Epochs", "training epochs per round", 1, 1000),
    "repair": FieldSpec(bool, "Re-pairing", "each epoch, pair the round's training digits anew (targets from "
                        "their classes; no other digit is used)"),
    "shift": FieldSpec(int, "Shift", "augmentation: each epoch, every training digit moves by up to this many "
                       "pixels (of 14) each way; 0: off", 0, 4),
    "rotate": FieldSpec(float, "Rotate", "augmentation: each epoch, every training digit turns by up to this many "
                        "degrees either way; 0: off", 0.0, 45.0),
    "batch_size": FieldSpec(int, "Batch size", "pairs per optimizer step", 1, 10000),
    "rounds": FieldSpec(int, "Rounds", "independent trainings, each with fresh pairs and weights", 1, 100),
    "pairs": FieldSpec(int, "Pairs", "pairs in the train set and in the test set", 10, 30000),
    "seed": FieldSpec(int, "Seed", "seed of round 0; round r uses a seed derived from it", 0, 2**31 - 1),
    "device": FieldSpec(str, "Device", "auto (CUDA when available), cpu or cuda", choices=DEVICES),
}


@dataclass(frozen=True)
class RunConfig:
    """One training configuration. Defaults are the paper's Table II settings (docs/protocol.md)."""

    subnet: str = "fcn"
    weight_sharing: bool = True
    aux_loss: bool = True
    alpha: float = 0.5
    hl: int = 64
    kl: int = 1
    bc: int = 4
    k: int = 3
    # Not stated for Table II; 1 x 64 mirrors the subnets' own HL=64, KL=1 (README, "Choices").
    c_hl: int = 64
    c_kl: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    lr_decay: float = 0.9
    epochs: int = 20
    repair: bool = False  # beyond the paper: off in every paper preset
    shift: int = 0  # augmentation, beyond the paper too: off in every paper preset
    rotate: float = 0.0
    batch_size: int = 5
    rounds: int = 10
    pairs: int = 1000
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        """Where every value is checked (ConfigError names every bad field); a switch the subnet lacks is off."""
        errors = {}
        for key in FIELDS:
            try:
                object.__setattr__(self, key, coerce(key, getattr(self, key)))
            except ConfigError as exc:
                errors[key] = exc.message
        if not errors and self.batch_size > self.pairs:
            errors["batch_size"] = f"larger than the {self.pairs} pairs"
        if errors:
            raise ConfigError.of(errors)
        for key, spec in FIELDS.items():
            if spec.kind is bool and not field_applies(key, self.subnet):
                object.__setattr__(self, key, False)

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_siamese(self) -> bool:
        return self.subnet != "basic"

    def architecture_key(self) -> tuple:
        """What the replicas of one stack share: runs that agree here can train in one stack. Each replica carries
        its own loss settings, its own seed, re-pairing and augmentation (drawn from its own streams), and its own
        learning rate, decay and dropout rate."""
        d = self.to_dict()
        for own in REPLICA_FIELDS:
            d.pop(own)
        return tuple(sorted(d.items()))

    @property
    def rate_class(self) -> tuple[float, float]:
        """The learning rate and its decay: the replicas of a stack that share them step in one Adam call."""
        return self.lr, self.lr_decay

    def uses(self, key: str) -> bool:
        """Whether the field matters to this config: its subnet has it, and alpha only with the auxiliary loss."""
        return field_applies(key, self.subnet, self.aux_loss)

    def differences(self, other: RunConfig | None = None) -> dict[str, Any]:
        """Fields whose value differs from `other` (default: the defaults)."""
        base = (other or RunConfig()).to_dict()
        return {k: v for k, v in self.to_dict().items() if base[k] != v}


# A field as a run's name, a filter word or the compare screen says it briefly ('table2-cnn-ws-aux α 0.2');
# the others by their label.
SHORT_LABELS = {"weight_sharing": "WS", "aux_loss": "aux", "alpha": "α", "dropout": "dropout", "lr": "lr",
                "lr_decay": "decay", "epochs": "epochs", "repair": "re-pairing", "shift": "shift", "rotate": "rotate",
                "batch_size": "batch",
                "rounds": "rounds", "pairs": "pairs", "seed": "seed"}
NAME_ORDER = ["subnet", "weight_sharing", "aux_loss", "repair", "shift", "rotate", "alpha", "hl", "kl", "bc", "k", "c_hl", "c_kl",
              "dropout", "lr", "lr_decay", "epochs", "batch_size", "rounds", "pairs", "seed"]  # the form's; no device


def short_label(key: str) -> str:
    return SHORT_LABELS.get(key, FIELDS[key].label)


def name_changes(config: RunConfig, base: RunConfig) -> list[tuple[str, Any]]:
    """What a run's name says of its config against its preset's: (short label, value), in the form's order; a
    changed subnet by its value alone ('table2-cnn-ws-aux fcn')."""
    changed = config.differences(base)
    return [("" if k == "subnet" else short_label(k), changed[k]) for k in NAME_ORDER if k in changed]


def differing_fields(configs: list[RunConfig]) -> list[str]:
    """The fields whose value is not the same in every config, in the form's order (the device aside)."""
    values = [c.to_dict() for c in configs]
    return [k for k in NAME_ORDER if len({repr(v[k]) for v in values}) > 1]


MAX_DIGITS = 30  # every field's bounds have fewer digits: a longer whole number is out of bounds, unread
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def shown(value: Any, limit: int = 40) -> str:
    """A bad value as an error message quotes it: a long paste is cut, not echoed whole (a huge integer is not
    even turned into text: Python refuses past 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {'negative ' if value < 0 else ''}number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def bound(spec: FieldSpec, limit: float) -> str:
    """A field's limit as its kind reads: 2147483647, not 2.14748e+09."""
    return str(int(limit)) if spec.kind is int else f"{limit:g}"


def coerce(key: str, value: Any, source: str | None = None) -> Any:
    """Check one value against its field: type, bounds, choices. Returns the value in its field's type."""
    spec = FIELDS.get(key)
    if spec is None:
        raise ConfigError(key, f"unknown key (known: {', '.join(FIELDS)})", source)
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise ConfigError(key, f"expected true or false, got {shown(value)}", source)
    if spec.kind is int:
        # Python's int() also takes '1_0' and full-width digits: a field takes what a person means, ASCII digits
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (
                isinstance(value, str) and not WHOLE_NUMBER.fullmatch(value.strip())):
            raise ConfigError(key, f"expected a whole number, got {shown(value)}", source)
        if isinstance(value, str) and len(value.strip().lstrip("+-")) > MAX_DIGITS:  # int() refuses past 4,300
            negative = value.strip().startswith("-")
            side = f"at least {bound(spec, spec.low)}" if negative else f"at most {bound(spec, spec.high)}"
            raise ConfigError(key, f"must be {side}, got {shown(value)}", source)
        value = int(value.strip()) if isinstance(value, str) else value
    elif spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (
                isinstance(value, str) and not NUMBER.fullmatch(value.strip())):
            raise ConfigError(key, f"expected a number, got {shown(value)}", source)
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {shown(value)}", source)
    elif spec.kind is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected text, got {shown(value)}", source)
        value = value.strip().lower()
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(key, f"must be one of {', '.join(spec.choices)}, got {shown(value)}", source)
    if spec.low is not None and value < spec.low:
        raise ConfigError(key, f"must be at least {bound(spec, spec.low)}, got {shown(value)}", source)
    if spec.high is not None and value > spec.high:
        raise ConfigError(key, f"must be at most {bound(spec, spec.high)}, got {shown(value)}", source)
    return value


def field_applies(key: str, subnet: str, aux_loss: bool = True) -> bool:
    """Whether a field matters to a config of this subnet (the basic net has no subnets, so no switches, no
    alpha, no BC, K, C-HL, C-KL), and alpha only with the auxiliary loss."""
    return subnet in FIELDS[key].subnets and (key != "alpha" or aux_loss)


def from_dict(values: dict[str, Any], source: str | None = None, base: RunConfig | None = None) -> RunConfig:
    """A validated RunConfig from `base` (default: the defaults) with `values` applied; a ConfigError names the
    first bad key, and carries every bad key in `errors`."""
    unknown = [key for key in values if key not in FIELDS]
    if unknown:
        raise ConfigError(unknown[0], f"unknown key (known: {', '.join(FIELDS)})", source)
    try:
        config = RunConfig(**{**(base or DEFAULTS).to_dict(), **values})
    except ConfigError as exc:
        raise exc.at(source=source) from None
    for key, spec in FIELDS.items():  # asked for explicitly, a switch the subnet lacks is refused, not dropped
        if spec.kind is bool and key in values and not field_applies(key, config.subnet) and coerce(key, values[key]):
            raise ConfigError(key, f"the {config.subnet} net has no subnets; it cannot be on", source)
    return config


DEFAULTS = RunConfig()
