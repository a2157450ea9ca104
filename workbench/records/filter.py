"""Which runs a filter finds: one language, parsed here, for the app's `/`, `runs ls`, `compare`, `plot --scatter`.

A filter is words, and a run must match every one:

  word          somewhere in its name, id, status, tags, note, net or settings' values (`fcn`, `quick`, `0.2`)
  KEY=VALUE     a setting by key, label or short label (`alpha=0.2`, `hl=128`, `batch=10`, `ws=true`)
  KEY<N  >=  <=  >  !=   a number compared (`alpha>0.3`, `epochs<=20`, `acc>=85`; acc and std in percent)
  status=done   its status (done, failed, cancelled); `tag=NAME` one of its tags; `preset=NAME`
  name~TEXT     TEXT somewhere in the field (name, note, tag, preset, id)

An unknown key or a malformed word is refused (FilterError, one line naming the word and the closest key); a
filter never silently matches nothing because of how it was typed. Torch-free.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Callable

from workbench.format import setting
from workbench.paper.config import FIELDS, short_label
from workbench.paper.architecture import weight_count
from workbench.records.store import RunSummary

STATUSES = ("done", "failed", "cancelled")
WORD = re.compile(r"(?P<key>[^<>=!~\s]+)(?P<op><=|>=|!=|=|<|>|~)(?P<value>.*)")
TEXT_FIELDS = {"name": lambda s: [s.name], "note": lambda s: [s.note], "tag": lambda s: list(s.tags),
               "preset": lambda s: [s.preset or ""], "id": lambda s: [s.id], "status": lambda s: [s.status],
               "device": lambda s: [s.device], "engine": lambda s: [s.engine]}
RESULT_NUMBERS = {"acc": lambda s: None if s.mean is None else s.mean * 100,
                  "std": lambda s: None if s.std is None else s.std * 100,
                  "weights": lambda s: float(weight_count(s.config))}
NUMBER_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), "!=": lambda a, b: not math.isclose(a, b),
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
GRAMMAR = ("words match anywhere; KEY=VALUE, KEY<N, KEY>=N, KEY!=N on settings (alpha, hl, epochs, …) and acc, "
           "std, weights; status=done, tag=NAME, preset=NAME; name~TEXT")


class FilterError(ValueError):
    """A filter word that cannot mean anything: the message names it, and the closest key."""


def _setting_keys() -> dict[str, str]:
    """Every name a setting answers to (key, label, short label; lower case, spaces as _) -> its key."""
    names = {}
    for key, spec in FIELDS.items():
        for name in (key, spec.label, short_label(key)):
            names[name.lower().replace(" ", "_").replace("-", "_")] = key
    return names


SETTINGS = _setting_keys()
ALL_KEYS = sorted({*SETTINGS, *TEXT_FIELDS, *RESULT_NUMBERS, "acc"})


@dataclass(frozen=True)
class Filter:
    text: str
    tests: tuple[Callable[[RunSummary], bool], ...]

    def __call__(self, summary: RunSummary) -> bool:
        return all(test(summary) for test in self.tests)


def parse_filter(text: str) -> Filter:
    """The filter a user typed; FilterError for the first word that cannot match as typed."""
    return Filter(text, tuple(_word(word) for word in text.split()))


def _key(raw: str, word: str) -> str:
    key = raw.lower().replace("-", "_")
    if key in SETTINGS or key in TEXT_FIELDS or key in RESULT_NUMBERS:
        return key
    close = difflib.get_close_matches(key, ALL_KEYS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else f" ({GRAMMAR})"
    raise FilterError(f"{word!r}: no setting or field {raw!r}{hint}")


def _number(raw: str, word: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FilterError(f"{word!r}: {raw!r} is no number") from None
    if not math.isfinite(value):
        raise FilterError(f"{word!r}: {raw!r} is no finite number")
    return value


def _word(word: str) -> Callable[[RunSummary], bool]:
    lowered = word.lower()
    found = WORD.fullmatch(word)
    if found is None:
        if any(ch in word for ch in "<>=~"):
            raise FilterError(f"{word!r}: a comparison needs a key before it ({GRAMMAR})")
        return lambda s: lowered in _haystack(s)
    raw_key, op, value = found["key"], found["op"], found["value"]
    if not value:
        raise FilterError(f"{word!r}: nothing after {op!r}")
    if any(ch in value for ch in "<>=~"):
        raise FilterError(f"{word!r}: one comparison per word")
    key = _key(raw_key, word)
    if key in TEXT_FIELDS and key not in SETTINGS:
        return _text_test(key, op, value.lower(), word)
    if key in RESULT_NUMBERS:
        return _number_test(RESULT_NUMBERS[key], op, _number(value, word))
    field = SETTINGS[key]
    spec = FIELDS[field]
    if spec.kind is bool:
        if op not in ("=", "!="):
            raise FilterError(f"{word!r}: {raw_key} is on or off; say {raw_key}=true or {raw_key}=false")
        if value.lower() not in TRUE + FALSE:
            raise FilterError(f"{word!r}: {raw_key} is true or false, not {value!r}")
        wanted = value.lower() in TRUE
        return lambda s: (getattr(s.config, field) == wanted) == (op == "=")
    if spec.kind is str:
        if op not in ("=", "!=", "~"):
            raise FilterError(f"{word!r}: {raw_key} is a word; say {raw_key}={spec.choices[0] if spec.choices else 'x'}")
        if spec.choices and op != "~" and value.lower() not in spec.choices:
            raise FilterError(f"{word!r}: {raw_key} is one of {', '.join(spec.choices)}")
        return _text_test_of(lambda s: [str(getattr(s.config, field))], op, value.lower())
    if op == "~":
        raise FilterError(f"{word!r}: ~ looks for text; {raw_key} is a number (say {raw_key}={value})")
    return _number_test(lambda s: float(getattr(s.config, field)), op, _number(value, word))


def _text_test(key: str, op: str, value: str, word: str) -> Callable[[RunSummary], bool]:
    if op not in ("=", "!=", "~"):
        raise FilterError(f"{word!r}: {key} is text: use {key}=…, {key}!=… or {key}~…")
    if key == "status" and op != "~" and value not in STATUSES:
        raise FilterError(f"{word!r}: a status is {', '.join(STATUSES)}")
    return _text_test_of(TEXT_FIELDS[key], op, value)


def _text_test_of(values: Callable[[RunSummary], list[str]], op: str, value: str) -> Callable[[RunSummary], bool]:
    if op == "~":
        return lambda s: any(value in v.lower() for v in values(s))
    if op == "=":
        return lambda s: any(value == v.lower() for v in values(s))
    return lambda s: all(value != v.lower() for v in values(s))


def _number_test(of: Callable[[RunSummary], float | None], op: str, value: float) -> Callable[[RunSummary], bool]:
    compare = NUMBER_OPS[op]

    def test(summary: RunSummary) -> bool:
        got = of(summary)
        return got is not None and compare(got, value)

    return test


def _haystack(summary: RunSummary) -> str:
    c = summary.config
    settings = [f"{name}={setting(value)}" for key, value in c.to_dict().items()
                for name in (key, FIELDS[key].label.replace(" ", "_"), short_label(key))]
    return " ".join([summary.name, summary.id, summary.status, summary.preset or "", *summary.tags, summary.note,
                     c.subnet, "ws" if c.weight_sharing else "", "aux" if c.aux_loss else "", *settings,
                     summary.device]).lower()
