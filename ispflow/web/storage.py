"""The storage page (admins): sizes, growth, free space and a graph drawn as inline SVG."""
from __future__ import annotations

from flask import render_template

from ..app_state import session, settings
from ..retention.storage import human_bytes, storage_report
from ..roles import ADMIN
from .blueprint import blueprint
from .access import menu_entry, roles_required

CHART_DAYS = 200
CHART_WIDTH, CHART_HEIGHT = 760, 180


@blueprint.route("/storage")
@menu_entry("Storage", ADMIN)
@roles_required(ADMIN)
def storage_page():
    report = storage_report(session().connection(), settings())
    days = report.days[-CHART_DAYS:]
    return render_template(
        "ispflow/storage.html", report=report, human_bytes=human_bytes,
        day_chart=bar_chart([(d.day.strftime("%Y-%m-%d"), d.bytes) for d in days]),
        size_chart=line_chart(report.samples),
    )


MIN_BARS = 31


def bar_chart(values: list[tuple[str, int]]) -> list[dict]:
    """Bars (x, y, width, height, label) of an inline SVG chart scaled to its tallest value."""
    if not values:
        return []
    top = max(v for _, v in values) or 1
    width = CHART_WIDTH / max(len(values), MIN_BARS)  # a few days of data stay narrow bars
    return [{"x": round(i * width, 2), "width": round(max(width - 1, 1), 2),
             "height": round(v / top * CHART_HEIGHT, 2), "y": round(CHART_HEIGHT - v / top * CHART_HEIGHT, 2),
             "label": f"{label}: {human_bytes(v)}"} for i, (label, v) in enumerate(values)]


def line_chart(samples: list) -> str:
    """SVG polyline points of (time, bytes) samples; empty with fewer than two."""
    if len(samples) < 2:
        return ""
    first, last = samples[0][0].timestamp(), samples[-1][0].timestamp()
    low, high = min(b for _, b in samples), max(b for _, b in samples)
    span, rise = (last - first) or 1, (high - low) or 1
    return " ".join(f"{(at.timestamp() - first) / span * CHART_WIDTH:.1f},"
                    f"{CHART_HEIGHT - (b - low) / rise * (CHART_HEIGHT - 10) - 5:.1f}" for at, b in samples)


