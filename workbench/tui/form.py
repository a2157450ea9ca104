"""The configuration form: every field of the paper, validated as typed, presets, and what was edited."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from workbench.format import setting, weights_label
from workbench.paper.architecture import sharing_saves, weight_count
from workbench.paper.config import (DEFAULTS, DEVICES, FIELDS, SUBNET_LABELS, SUBNETS, ConfigError, RunConfig,
                                    field_applies, from_dict)
from workbench.paper.presets import Preset
from workbench.records.notebook import check_name, check_note, parse_tags
from workbench.training.group import NamedRun
from workbench.training.train import too_many_pairs
from workbench.tui.text_input import TextInput

SWITCH_FIELDS = ["weight_sharing", "aux_loss", "repair"]
# The form's sections after "Network" (subnet and the two switches), each with its text fields in order.
SECTIONS = {"Siamese net": ["alpha"], "Subnet": ["hl", "kl", "bc", "k"], "After the combination": ["c_hl", "c_kl"],
            "Training": ["dropout", "lr", "lr_decay", "epochs", "batch_size", "rounds", "pairs", "seed", "shift",
                         "rotate"]}
TEXT_FIELDS = [key for keys in SECTIONS.values() for key in keys]
KEEP_CHOICES = [("all (first if > 50 MB)", "auto"), ("all rounds", "all"), ("first round", "first"), ("none", "none")]
# What the run is called and what the user says of it: kept in its record, not part of its config. Last in the
# form, below the settings, so that every setting keeps its place.
NOTEBOOK_FIELDS = {"name": ("Name", "the run's name (empty: its preset and what differs, shown greyed)"),
                   "tags": ("Tags", "words to find the run by, comma-separated (kept for the next run too)"),
                   "note": ("Note", "a line about the run (kept for the next run too)")}


def weights_note(config: RunConfig) -> str:
    """How many weights the configuration trains, and what weight sharing saves (or would save) it."""
    n, saved = weight_count(config), sharing_saves(config)
    if not saved:
        return f"{weights_label(n)} weights"
    if config.weight_sharing:
        return f"{weights_label(n)} weights; sharing saves {weights_label(saved)}"
    return f"{weights_label(n)} weights; sharing would save {weights_label(saved)}"


def field_text(key: str, value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ConfigForm(VerticalScroll):
    """Edits a RunConfig. Posts ConfigForm.Changed whenever the values it would run change."""

    class Changed(Message):
        def __init__(self, form: ConfigForm) -> None:
            super().__init__()
            self.form = form

    def __init__(self, presets: dict[str, Preset], **kwargs) -> None:
        super().__init__(**kwargs)
        self.presets = presets
        self.preset: Preset | None = None
        self.errors: dict[str, str] = {}
        self._filling = False
        self.cuda_note = ""
        self.digits: tuple[str, int] | None = None  # (name, most pairs) once the digits are loaded

    def compose(self) -> ComposeResult:
        options = [(f"{name}  ({p.paper.label()})" if p.paper else name, name) for name, p in self.presets.items()]
        yield Label("Preset", classes="section")
        yield Select(options, prompt="choose a preset…", id="preset", allow_blank=True, compact=True)
        yield Static("custom configuration", id="preset-status")
        with Vertical(classes="form-section"):
            yield Label("Network", classes="section")
            with Horizontal(classes="field"):
                yield Label(FIELDS["subnet"].label, classes="field-label")
                yield Select([(SUBNET_LABELS[s], s) for s in SUBNETS], value=DEFAULTS.subnet,
                             allow_blank=False, id="f-subnet", compact=True)
            for key in SWITCH_FIELDS:
                with Horizontal(classes="field", id=f"row-{key}"):
                    yield Label(FIELDS[key].label, classes="field-label")
                    yield Switch(id=f"f-{key}", tooltip=FIELDS[key].help)
                    yield Label("", id=f"s-{key}", classes="switch-state")
        for title, keys in SECTIONS.items():
            with Vertical(classes="form-section"):
                yield Label(title, classes="section")
                for key in keys:
                    spec = FIELDS[key]
                    with Vertical(classes="field-cell"):  # a field and its error: one cell of the narrow grid
                        with Horizontal(classes="field", id=f"row-{key}"):
                            yield Label(spec.label, classes="field-label")
                            yield TextInput(id=f"f-{key}", tooltip=spec.help, select_on_focus=True, compact=True)
                        yield Static("", id=f"e-{key}", classes="field-error")
                if title == "Training":
                    with Vertical(classes="field-cell"):
                        with Horizontal(classes="field"):
                            yield Label(FIELDS["device"].label, classes="field-label")
                            yield Select([(d, d) for d in DEVICES], value=DEFAULTS.device, allow_blank=False,
                                         id="f-device", compact=True)
                        yield Static("", id="e-device", classes="field-error")
        with Vertical(classes="form-section"):
            yield Label("Notebook", classes="section")
            for key, (label, help_text) in NOTEBOOK_FIELDS.items():
                with Vertical(classes="field-cell"):
                    with Horizontal(classes="field", id=f"row-{key}"):
                        yield Label(label, classes="field-label")
                        yield TextInput(id=f"f-{key}", tooltip=help_text, compact=True)
                    yield Static("", id=f"e-{key}", classes="field-error")
            with Vertical(classes="field-cell"):
                with Horizontal(classes="field"):
                    yield Label("Networks kept", classes="field-label")
                    yield Select(KEEP_CHOICES, value="auto", allow_blank=False, id="f-keep", compact=True,
                                 tooltip="the rounds whose trained networks the record keeps (to reopen them, "
                                         "predict, see what they learned)")

    def on_mount(self) -> None:
        self.set_config(RunConfig())

    # ------------------------------------------------------------------ filling

    def set_config(self, config: RunConfig, preset: Preset | None = None) -> None:
        self._filling = True
        try:
            self.query_one("#f-subnet", Select).value = config.subnet
            self.query_one("#f-device", Select).value = config.device
            for key in SWITCH_FIELDS:
                self.query_one(f"#f-{key}", Switch).value = getattr(config, key)
            for key in TEXT_FIELDS:
                self.query_one(f"#f-{key}", Input).value = field_text(key, getattr(config, key))
            self.preset = preset
            picker = self.query_one("#preset", Select)
            if preset is None:
                picker.clear()
            elif picker.value != preset.name:  # the picker names the preset the form now holds
                picker.value = preset.name
        finally:
            self._filling = False
        self.refresh_state()

    def load_preset(self, name: str) -> None:
        preset = self.presets[name]
        self.set_config(preset.config, preset)
        select = self.query_one("#preset", Select)
        if select.value != name:
            self._filling = True
            select.value = name
            self._filling = False

    # ------------------------------------------------------------------ reading

    def raw_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "subnet": self.query_one("#f-subnet", Select).value,
            "device": self.query_one("#f-device", Select).value,
        }
        for key in SWITCH_FIELDS:
            values[key] = self.query_one(f"#f-{key}", Switch).value
        for key in TEXT_FIELDS:
            values[key] = self.query_one(f"#f-{key}", Input).value
        return values

    def notes(self) -> tuple[tuple[str | None, tuple[str, ...], str], dict[str, str]]:
        """(name, tags, note) as the run will keep them, and what is wrong with each (by field)."""
        checks = {"name": check_name, "tags": lambda text: tuple(parse_tags(text)), "note": check_note}
        kept: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for key, check in checks.items():
            try:
                kept[key] = check(self.query_one(f"#f-{key}", Input).value)
            except ValueError as exc:
                errors[key] = str(exc)
        return (kept.get("name"), kept.get("tags", ()), kept.get("note", "")), errors

    def keep_weights(self) -> str | None:
        """The rounds whose networks a run queued from the form keeps (None: networks.resolve_keep's default)."""
        value = self.query_one("#f-keep", Select).value
        return None if value == "auto" else value

    def queued(self) -> None:
        """A run was queued from the form: its name was that run's; the tags and note stay for the next."""
        self.query_one("#f-name", Input).value = ""

    def next_run(self) -> tuple[NamedRun | None, str]:
        """The run the form would queue, or None and why not, naming every bad field by its label."""
        self.refresh_state()
        config, errors = self.read()
        if config is None:
            labels = {key: FIELDS[key].label if key in FIELDS else NOTEBOOK_FIELDS[key][0] for key in errors}
            return None, (f"fix {', '.join(labels.values())} first: "
                          + "; ".join(f"{labels[k]}: {v}" for k, v in errors.items()))
        return NamedRun.of(config, self.preset, *self.notes()[0], weights=self.keep_weights()), ""

    def enabled(self, key: str, values: dict[str, Any]) -> bool:
        return field_applies(key, values["subnet"], values["aux_loss"])

    def read(self) -> tuple[RunConfig | None, dict[str, str]]:
        """The config the form would run, or None, and each bad field's reason (fields in use only), as the
        config itself judges them."""
        values = self.raw_values()
        errors = {"device": self.cuda_note} if values["device"] == "cuda" and self.cuda_note else {}
        try:
            config = from_dict({k: v for k, v in values.items() if self.enabled(k, values)},
                               base=self.preset.config if self.preset else None)
        except ConfigError as exc:
            return None, {**exc.errors, **errors}
        if self.digits is not None and too_many_pairs(config.pairs, self.digits[1], self.digits[0]):
            errors["pairs"] = too_many_pairs(config.pairs, self.digits[1], self.digits[0])
        errors.update(self.notes()[1])
        return (None, errors) if errors else (config, {})

    # ------------------------------------------------------------------ state

    def refresh_state(self) -> None:
        """Enable what the subnet uses, mark bad fields with their reason, say how the form differs from the preset."""
        values = self.raw_values()
        for key in [*SWITCH_FIELDS, *TEXT_FIELDS]:
            on = self.enabled(key, values)
            self.query_one(f"#row-{key}").set_class(not on, "-off")
            self.query_one(f"#f-{key}").disabled = not on
        for key in SWITCH_FIELDS:
            state = "on" if values[key] else "off"
            self.query_one(f"#s-{key}", Label).update(state if self.enabled(key, values) else f"{state} (n/a)")
        config, errors = self.read()
        self.errors = errors
        for key in [*TEXT_FIELDS, "device", *NOTEBOOK_FIELDS]:
            message = errors.get(key, "")
            self.query_one(f"#e-{key}", Static).update(message)
            self.query_one(f"#e-{key}").display = bool(message)
            if key != "device":
                self.query_one(f"#f-{key}", Input).set_class(bool(message), "-bad")
        if config is not None:  # the name the run gets unless one is typed
            self.query_one("#f-name", Input).placeholder = NamedRun.of(config, self.preset).name
        self.query_one("#preset-status", Static).update(self.preset_status(config))
        self.post_message(self.Changed(self))

    def preset_status(self, config: RunConfig | None) -> str:
        return self.preset_line(config) + (f"\n[dim]{weights_note(config)}[/dim]" if config is not None else "")

    def preset_line(self, config: RunConfig | None) -> str:
        if self.preset is None:
            return "custom configuration"
        paper = f" · paper {self.preset.paper.label()}" if self.preset.paper else ""
        if config is None:
            return f"[b]{self.preset.name}[/b], edited (has errors){paper}"
        changed = config.differences(self.preset.config)
        if not changed:
            return f"[b]{self.preset.name}[/b]{paper}"
        listed = ", ".join(f"{FIELDS[k].label} {setting(v)}" for k, v in list(changed.items())[:4])
        more = "…" if len(changed) > 4 else ""
        return f"[b]{self.preset.name}[/b] [yellow]edited[/yellow]: {listed}{more}{paper}"

    def on_input_changed(self, event: Input.Changed) -> None:
        if not self._filling:
            self.refresh_state()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        if not self._filling:
            self.refresh_state()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self._filling:
            return
        if event.select.id == "preset":
            # a picker set to the preset the form already holds (a run loaded into the form) loads nothing
            if isinstance(event.value, str) and (self.preset is None or event.value != self.preset.name):
                self.load_preset(event.value)
            return
        self.refresh_state()

    def set_cuda(self, available: bool, reason: str) -> None:
        select = self.query_one("#f-device", Select)
        label = "cuda" if available else f"cuda (unavailable: {reason})"
        current = select.value
        self._filling = True
        select.set_options([(label if d == "cuda" else d, d) for d in DEVICES])
        select.value = current
        self._filling = False
        self.cuda_note = "" if available else f"CUDA is unavailable: {reason}"
        self.refresh_state()
