"""Charts drawn on the server as inline SVG, from whole numbers: bars and lines.

Tills may be offline, so there is no chart library and nothing is fetched: each chart is a small
SVG the page carries itself, coloured with presentation attributes (the pages' Content Security
Policy allows no inline styles). Coordinates are worked out in integers. Every chart has a title
for screen readers; the table beside it holds the exact figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

PALETTE = ("#0b5f66", "#d99a00", "#7a3fa0", "#b3261e", "#4a5866", "#1e6b34")
INK, MUTED, GRID = "#15202b", "#6b7785", "#d9dee4"
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 44  # room for the axis labels and the legend
NICE_STEPS = (1, 2, 5)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | None]  # one per label; None where there is nothing to show


def _number(value: int, decimals: int = 0, suffix: str = "") -> str:
    """``1234`` -> ``1,234``; with one decimal, ``418`` (tenths) -> ``41.8``."""
    if not decimals:
        return f"{value:,}{suffix}"
    whole, part = divmod(abs(value), 10**decimals)
    return f"{'-' if value < 0 else ''}{whole:,}.{part:0{decimals}d}{suffix}"


def nice_step(span: int, lines: int = 4) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that covers ``span`` in at most ``lines`` steps."""
    scale = 1
    while True:
        for step in NICE_STEPS:
            if step * scale * lines >= span:
                return step * scale
        scale *= 10


def axis_range(values: Sequence[int]) -> tuple[int, int, int]:
    """(low, high, step): a range from whole steps that holds every value and zero."""
    low, high = min([0, *values]), max([0, *values])
    step = nice_step(max(high - low, 1))
    low = (low // step) * step
    high = -(-high // step) * step
    if high == low:
        high = low + step
    return low, high, step


class _Frame:
    """The plot area, its scale and its axes."""

    def __init__(self, labels: Sequence[str], values: Sequence[int], width: int, height: int, decimals: int, suffix: str) -> None:
        self.labels = list(labels)
        self.decimals, self.suffix = decimals, suffix
        self.width, self.height = width, height
        self.left, self.top = LEFT, TOP
        self.plot_w = width - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM
        self.low, self.high, self.step = axis_range(values)

    def number(self, value: int) -> str:
        return _number(value, self.decimals, self.suffix)

    def y(self, value: int) -> int:
        return self.top + (self.high - value) * self.plot_h // (self.high - self.low)

    def slot(self, index: int) -> tuple[int, int]:
        """The left edge and width of the label's slot on the x axis."""
        n = max(len(self.labels), 1)
        start = self.left + index * self.plot_w // n
        return start, self.left + (index + 1) * self.plot_w // n - start

    def centre(self, index: int) -> int:
        start, width = self.slot(index)
        return start + width // 2

    def grid(self) -> list[str]:
        parts = []
        for value in range(self.low, self.high + 1, self.step):
            y = self.y(value)
            colour = MUTED if value == 0 else GRID
            parts.append(f'<line x1="{self.left}" y1="{y}" x2="{self.left + self.plot_w}" y2="{y}" stroke="{colour}" stroke-width="1"/>')
            parts.append(
                f'<text x="{self.left - 8}" y="{y + 4}" text-anchor="end" font-size="12" fill="{MUTED}">{self.number(value)}</text>'
            )
        every = max(1, -(-len(self.labels) // 12))  # at most twelve labels under the axis
        for i, label in enumerate(self.labels):
            if i % every:
                continue
            parts.append(
                f'<text x="{self.centre(i)}" y="{self.top + self.plot_h + 20}" text-anchor="middle" font-size="12" '
                f'fill="{INK}">{escape(label)}</text>'
            )
        return parts


def _legend(series: Sequence[Series], shape: str) -> list[str]:
    parts, x = [], LEFT
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        if shape == "line":
            parts.append(f'<line x1="{x}" y1="14" x2="{x + 18}" y2="14" stroke="{colour}" stroke-width="3"/>')
        else:
            parts.append(f'<rect x="{x}" y="7" width="14" height="14" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{x + 22}" y="19" font-size="13" fill="{INK}">{escape(s.name)}</text>')
        x += 40 + 8 * len(s.name)
    return parts


def _svg(title: str, body: list[str], width: int, height: int, css_class: str) -> Markup:
    head = (
        f'<svg class="chart {css_class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _values(series: Sequence[Series]) -> list[int]:
    return [v for s in series for v in s.values if v is not None]


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = WIDTH, height: int = HEIGHT,
    decimals: int = 0, suffix: str = "",
) -> Markup:
    """Bars side by side for each label, one colour per series; a legend when there are several.
    With ``decimals``, the values are in tenths (1) or hundredths (2): ``418`` with 1 is 41.8."""
    frame = _Frame(labels, _values(series), width, height, decimals, suffix)
    body = frame.grid()
    n = max(len(series), 1)
    for i, label in enumerate(frame.labels):
        start, slot = frame.slot(i)
        gap = max(2, slot // 6)
        bar_w = max(1, (slot - 2 * gap) // n)
        for k, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            y0, y1 = frame.y(0), frame.y(value)
            top, h = min(y0, y1), max(abs(y0 - y1), 1 if value else 0)
            x = start + gap + k * bar_w
            colour = PALETTE[k % len(PALETTE)]
            body.append(
                f'<rect x="{x}" y="{top}" width="{max(bar_w - 2, 1)}" height="{h}" fill="{colour}">'
                f'<title>{escape(s.name)}, {escape(label)}: {frame.number(value)}</title></rect>'
            )
    if len(series) > 1:
        body += _legend(series, "bar")
    return _svg(title, body, width, height, "chart-bars")


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = WIDTH, height: int = HEIGHT,
    decimals: int = 0, suffix: str = "",
) -> Markup:
    """A line per series across the labels (months, say), with a dot at each value."""
    frame = _Frame(labels, _values(series), width, height, decimals, suffix)
    body = frame.grid()
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = [
            (frame.centre(i), frame.y(v), v, frame.labels[i])
            for i, v in enumerate(s.values[:len(frame.labels)]) if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x},{y}" for x, y, _, _ in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="3" stroke-linejoin="round"/>')
        for x, y, v, label in points:
            body.append(
                f'<circle cx="{x}" cy="{y}" r="4" fill="{colour}">'
                f'<title>{escape(s.name)}, {escape(label)}: {frame.number(v)}</title></circle>'
            )
    body += _legend(series, "line")
    return _svg(title, body, width, height, "chart-lines")
