"""The overview page's figures and charts, pure (issue 18): counts in, buckets and SVG out.

Time is passed in (`now`); buckets are hours and days in Asia/Tokyo, oldest first. The SVG is
plain markup with presentation attributes (no script, no inline style), so the page keeps its
strict Content-Security-Policy. Every bar carries its series, bucket and value as data-*
attributes and a <title>, so a browser test (and a screen reader) reads what is drawn.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from callguard.domain.nuisance import TOKYO

HOURS = 24
DAYS = 14

# (series key, Japanese label, English label, colour)
OUTCOME_SERIES = (
    ("connected", "接続", "connected", "#4e79a7"),
    ("recorded", "録音して接続", "recorded", "#59a14f"),
    ("rejected", "迷惑電話拒否", "rejected", "#e15759"),
    ("refused", "お断り", "refused", "#f28e2b"),
    ("menu144", "144 操作", "144 menu", "#b07aa1"),
)
DAILY_SERIES = (
    ("rejected", "迷惑電話拒否", "rejections", "#e15759"),
    ("recordings", "録音", "recordings", "#59a14f"),
)
FALLBACK_SERIES = (("fallback", "フォールバック", "fallback calls", "#9c755f"),)

Series = tuple[str, str, str, str]


@dataclass(frozen=True)
class Chart:
    """Buckets (oldest first, JST-local naive datetimes) and one count per series each."""

    buckets: list[datetime]
    values: dict[str, list[int]]  # series key → a count per bucket

    def total(self, series: str) -> int:
        return sum(self.values.get(series, []))


def hour_buckets(now: datetime, hours: int = HOURS) -> list[datetime]:
    """The last `hours` whole JST hours, the current one last."""
    top = now.astimezone(TOKYO).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    return [top - timedelta(hours=hours - 1 - i) for i in range(hours)]


def day_buckets(now: datetime, days: int = DAYS) -> list[datetime]:
    """The last `days` JST calendar days, today last."""
    top = now.astimezone(TOKYO).replace(hour=0, minute=0, second=0, microsecond=0,
                                        tzinfo=None)
    return [top - timedelta(days=days - 1 - i) for i in range(days)]


def fill(buckets: list[datetime], series: Sequence[Series],
         counts: Iterable[tuple[datetime, str, int]]) -> Chart:
    """Counts (bucket, series key, n) onto the buckets; unknown buckets/series are dropped."""
    index = {b: i for i, b in enumerate(buckets)}
    values = {key: [0] * len(buckets) for key, *_ in series}
    for bucket, key, n in counts:
        i = index.get(bucket.replace(tzinfo=None))
        if i is not None and key in values:
            values[key][i] += int(n)
    return Chart(buckets, values)


def _nice_max(value: int) -> int:
    """A y-axis top at or above `value`: 1, 2, 5 × 10^k (at least 1)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= value:
                return top * step
        top *= 10


def bar_chart(chart_id: str, chart: Chart, series: Sequence[Series], label_every: int,
              label_format: str, stacked: bool, title: str, lang: str = "ja") -> str:
    """A bar chart as inline SVG: stacked (one bar of all series per bucket) or grouped;
    the legend and each bar's title in `lang` ("ja" or "en")."""
    width, height = 760, 240
    left, right, top, bottom = 40, 10, 10, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(chart.buckets), 1)
    keys = [s[0] for s in series]
    if stacked:
        peak = max((sum(chart.values[k][i] for k in keys) for i in range(len(chart.buckets))),
                   default=0)
    else:
        peak = max((v for k in keys for v in chart.values[k]), default=0)
    y_max = _nice_max(peak)
    slot = plot_w / n
    bar_w = slot * 0.8 / (1 if stacked else len(keys))

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}" data-ymax="{y_max}">']
    for frac in (0.0, 0.5, 1.0):  # grid lines and the y axis labels
        gy = y(y_max * frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" '
                     'stroke="#ddd" stroke-width="1"/>')
        label = y_max * frac
        text = f"{label:g}" if label == int(label) else f"{label:.1f}"
        parts.append(f'<text x="{left - 4}" y="{gy + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#555">{text}</text>')
    for i, bucket in enumerate(chart.buckets):
        x0 = left + slot * i + slot * 0.1
        base = 0
        for j, (key, ja, en, colour) in enumerate(series):
            value = chart.values[key][i]
            if stacked:
                x, y_top, y_bottom = x0, y(base + value), y(base)
                base += value
            else:
                x, y_top, y_bottom = x0 + bar_w * j, y(value), y(0)
            stamp = bucket.strftime(label_format)
            parts.append(
                f'<rect class="bar" data-series="{key}" data-bucket="{bucket.isoformat()}" '
                f'data-value="{value}" x="{x:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                f'height="{max(y_bottom - y_top, 0):.1f}" fill="{colour}">'
                f"<title>{html.escape(stamp)} {html.escape(ja if lang == 'ja' else en)}: "
                f"{value}</title></rect>")
        if i % label_every == 0:
            parts.append(f'<text x="{x0 + slot * 0.4:.1f}" y="{height - bottom + 14}" '
                         f'text-anchor="middle" font-size="11" fill="#555">'
                         f"{html.escape(bucket.strftime(label_format))}</text>")
    legend_x = left
    for key, ja, en, colour in series:
        name = ja if lang == "ja" else en
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{legend_x + 14}" y="{height - 5}" '
                     f'font-size="11" fill="#333" data-legend="{key}">{html.escape(name)}</text>')
        legend_x += 30 + (13 if lang == "ja" else 7) * len(name)
    parts.append("</svg>")
    return "".join(parts)


def data_table(table_id: str, chart: Chart, series: Sequence[Series],
               label_format: str, lang: str = "ja",
               corner: tuple[str, str] = ("時間", "合計")) -> str:
    """The chart's numbers as a table (the same figures, readable without the picture);
    `corner`: the words for the time column and the totals row."""
    head = "".join(f'<th scope="col">{html.escape(ja if lang == "ja" else en)}</th>'
                   for _k, ja, en, _c in series)
    rows = []
    for i, bucket in enumerate(chart.buckets):
        cells = "".join(f'<td data-series="{key}">{chart.values[key][i]}</td>'
                        for key, *_ in series)
        rows.append(f'<tr data-bucket="{bucket.isoformat()}"><th scope="row">'
                    f"{html.escape(bucket.strftime(label_format))}</th>{cells}</tr>")
    totals = "".join(f'<td data-series="{key}">{chart.total(key)}</td>' for key, *_ in series)
    return (f'<table class="data" id="{table_id}"><thead><tr><th scope="col">'
            f'{html.escape(corner[0])}</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f'<tfoot><tr><th scope="row">{html.escape(corner[1])}</th>{totals}</tr></tfoot>'
            "</table>")
