"""How figures read, the same in the command's tables and in the app: torch-free, rich-free plain text."""

from __future__ import annotations

STATUS_STYLE = {"done": "green", "cancelled": "yellow", "failed": "red", "running": "cyan", "queued": "dim"}


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as percent: 0.873 -> '87.3'; None -> '—'."""
    return "—" if value is None else f"{value * 100:.{digits}f}"


def mean_std_label(mean: float | None, std: float | None) -> str:
    """Mean ± std over rounds, in percent."""
    if mean is None:
        return "—"
    return f"{mean * 100:.1f} ± {std * 100:.1f}" if std is not None else f"{mean * 100:.1f}"


def signed_points(diff: float | None) -> str:
    """A difference of fractions in accuracy points, signed."""
    return "—" if diff is None else f"{diff * 100:+.1f}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def setting(value) -> str:
    """A config value as a person reads it: switches on/off, numbers to four significant digits."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def mark(on: bool) -> str:
    """A switch in a table cell."""
    return "✓" if on else "·"


def run_name(preset_name: str, edited: bool) -> str:
    """A run's default name: its preset's, marked when the config no longer equals the preset's."""
    return f"{preset_name} (edited)" if edited else preset_name


def config_name(subnet: str, weight_sharing: bool, aux_loss: bool) -> str:
    """A run's default name without a preset: 'fcn WS aux'."""
    return f"{subnet}{' WS' if weight_sharing else ''}{' aux' if aux_loss else ''}"


def paper_label(summary) -> str:
    """The paper's score beside a run; 'edited' for a run whose config is no longer its preset's row."""
    if summary.paper is not None:
        return summary.paper.label()
    return "edited" if summary.preset else "—"
