"""A picture of a failover: an SVG timeline drawn from the cluster's own event stamps.

One row per host, a lane per resource inside it, time on the x axis (seconds since the
start).  Drawn from vmha.lab.events (the controllers' alert stamps):

- a bar for every one-shot operation (start, stop, migrate_to, migrate_from, probe), from
  when it began (its stamp less its run time) to its result; a failed one outlined red;
- a red triangle where a recurring monitor failed (the cluster's detection);
- a node lost (a cross) or back (a dot), a fencing done (an "F" on the fenced host's row);
- a health colour change (a square of the new colour);
- the scenario's own moments (a power-off requested, a service answering again) as numbered
  dashed lines across every row, named in a list under the picture.

Plain SVG written with the standard library: nothing here earns a plotting library, and the
file opens in any browser.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from vmha.lab.events import Event

WIDTH = 1100
LEFT = 130  # the hosts' names
RIGHT = 30
TOP = 70  # title and the marks' labels
LANE_H = 16
ROW_GAP = 14
AXIS_H = 40
LEGEND_H = 24
MARK_H = 15  # a line of the moments' list
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#e15759")
HEALTH_COLOURS = {"green": "#2ca02c", "yellow": "#e6b800", "red": "#d62728"}
HEALTH_ATTRIBUTE = "#health-vmha"


@dataclass(frozen=True)
class Mark:
    """A moment of the scenario (epoch seconds), drawn as a labelled line across the rows."""

    at: float
    label: str


def failed(e: Event) -> bool:
    """Whether a resource event is a failure: a probe's "running" or "not running" is an
    answer, not a failure; a cancelled recurring monitor is no result at all."""
    if e.desc == "Cancelled":
        return False
    if e.task == "monitor" and not e.interval_ms:
        return e.rc not in (0, 7, 8)
    return not e.ok


def _colour_of_health(value: str) -> str | None:
    if value in HEALTH_COLOURS:
        return HEALTH_COLOURS[value]
    try:
        score = int(value)
    except ValueError:
        return None
    return HEALTH_COLOURS["green"] if score >= 0 else HEALTH_COLOURS["red"]


def _ticks(span_s: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if span_s / step <= 14:
            return float(step)
    return 7200.0


def render(
    events: Sequence[Event],
    marks: Sequence[Mark] = (),
    *,
    hosts: Sequence[str] = (),
    start: float | None = None,
    end: float | None = None,
    title: str = "vmha lab: what the cluster did",
) -> str:
    """The SVG text.  ``hosts`` orders the rows (hosts only seen in events follow);
    ``start``/``end`` (epoch seconds) bound the picture, by default the events' and marks'."""
    shown = [e for e in events if e.kind in ("resource", "node", "fencing", "attribute")]
    shown = [e for e in shown if not (e.kind == "resource" and e.interval_ms and not failed(e))]  # monitor passing
    shown = [e for e in shown if not (e.kind == "attribute" and e.attribute != HEALTH_ATTRIBUTE)]
    times = [e.began if e.kind == "resource" else e.at for e in shown] + [e.at for e in shown] + [m.at for m in marks]
    t0 = start if start is not None else (min(times) if times else 0.0)
    t1 = end if end is not None else (max(times) if times else t0 + 1.0)
    t1 = max(t1, t0 + 1.0)
    rows = list(dict.fromkeys([*hosts, *sorted({e.node for e in shown if e.node})]))
    lanes: dict[str, list[str]] = {h: [] for h in rows}
    for e in shown:
        if e.kind == "resource" and e.rsc and e.rsc not in lanes[e.node]:
            lanes[e.node].append(e.rsc)
    resources = list(dict.fromkeys(r for h in rows for r in lanes[h]))
    colour = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(sorted(resources))}
    row_y: dict[str, float] = {}
    y = float(TOP)
    for h in rows:
        row_y[h] = y
        y += LANE_H * (max(1, len(lanes[h])) + 1) + ROW_GAP
    plot_bottom = y
    height = int(plot_bottom + AXIS_H + LEGEND_H + 20 + MARK_H * ((len(marks) + 1) // 2))
    scale = (WIDTH - LEFT - RIGHT) / (t1 - t0)

    def x(t: float) -> float:
        return LEFT + (min(max(t, t0), t1) - t0) * scale

    def lane_y(host: str, rsc: str | None) -> float:
        i = lanes[host].index(rsc) + 1 if rsc in lanes[host] else 0
        return row_y[host] + i * LANE_H

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    # rows and the time axis
    for h in rows:
        top, bottom = row_y[h], row_y[h] + LANE_H * (max(1, len(lanes[h])) + 1)
        out.append(
            f'<rect class="row" x="{LEFT}" y="{top:.1f}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{bottom - top:.1f}" fill="#f4f4f4"/>'
        )
        out.append(f'<text class="host" x="10" y="{top + 12:.1f}" font-weight="bold">{escape(h)}</text>')
        for rsc in lanes[h]:
            out.append(f'<text x="22" y="{lane_y(h, rsc) + 12:.1f}" fill="#555">{escape(rsc)}</text>')
    step = _ticks(t1 - t0)
    tick = 0.0
    while t0 + tick <= t1 + 1e-9:
        tx = x(t0 + tick)
        out.append(f'<line x1="{tx:.1f}" y1="{TOP}" x2="{tx:.1f}" y2="{plot_bottom:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{tx:.1f}" y="{plot_bottom + 14:.1f}" text-anchor="middle">{tick:g}</text>')
        tick += step
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{plot_bottom + 30:.1f}" text-anchor="middle" '
        f'fill="#555">seconds</text>'
    )
    # what the cluster did
    last_health: dict[str, str] = {}
    for e in shown:
        if e.node not in row_y:
            continue
        if e.kind == "resource" and not e.interval_ms:
            ly = lane_y(e.node, e.rsc)
            bx, bw = x(e.began), max(2.0, x(e.at) - x(e.began))
            bad = failed(e)
            stroke = ' stroke="#d62728" stroke-width="2"' if bad else ""
            what = f"{e.rsc} {e.task} on {e.node}: {e.desc or e.status} ({(e.exec_ms or 0) / 1000:.2f} s)"
            out.append(
                f'<rect class="{"op failed" if bad else "op"}" x="{bx:.1f}" y="{ly + 2:.1f}" '
                f'width="{bw:.1f}" height="{LANE_H - 4}" fill="{colour[e.rsc]}"{stroke}>'
                f"<title>{escape(what)}</title></rect>"
            )
            if bw > 40:
                out.append(
                    f'<text x="{bx + 3:.1f}" y="{ly + 12:.1f}" fill="white" font-size="9">{escape(e.task)}</text>'
                )
        elif e.kind == "resource":  # a recurring monitor that failed: the cluster noticed
            ly, ex = lane_y(e.node, e.rsc), x(e.at)
            out.append(
                f'<path class="detected" d="M{ex:.1f},{ly + 2:.1f} l5,10 l-10,0 z" fill="#d62728">'
                f"<title>{escape(f'{e.rsc} {e.task} failed on {e.node}: {e.desc or e.status}')}</title></path>"
            )
        elif e.kind == "node":
            ry, ex = row_y[e.node] + 8, x(e.at)
            if e.desc == "lost":
                out.append(
                    f'<path class="lost" d="M{ex - 5:.1f},{ry - 5:.1f} l10,10 m0,-10 l-10,10" stroke="black" '
                    f'stroke-width="2"><title>{escape(e.node)} lost</title></path>'
                )
            else:
                out.append(
                    f'<circle class="member" cx="{ex:.1f}" cy="{ry:.1f}" r="4" fill="#2ca02c">'
                    f"<title>{escape(e.node)} {escape(e.desc)}</title></circle>"
                )
        elif e.kind == "fencing":
            ry, ex = row_y[e.node] + 8, x(e.at)
            ok = e.rc == 0
            out.append(
                f'<g class="{"fenced" if ok else "fence-failed"}"><circle cx="{ex:.1f}" cy="{ry:.1f}" r="7" '
                f'fill="{"#d62728" if ok else "white"}" stroke="#d62728"/>'
                f'<text x="{ex:.1f}" y="{ry + 4:.1f}" text-anchor="middle" fill="{"white" if ok else "#d62728"}" '
                f'font-weight="bold">F</text><title>{escape(f"{e.task} of {e.node}: {e.desc}")}</title></g>'
            )
        elif e.kind == "attribute":
            fill = _colour_of_health(e.value)
            if fill and last_health.get(e.node) != fill:  # a change of colour, not a rewrite
                last_health[e.node] = fill
                ry, ex = row_y[e.node] + 8, x(e.at)
                out.append(
                    f'<rect class="health" x="{ex - 4:.1f}" y="{ry - 4:.1f}" width="8" height="8" fill="{fill}" '
                    f'stroke="#333"><title>{escape(f"{e.node} {e.attribute}={e.value}")}</title></rect>'
                )
    # the scenario's moments: a numbered dashed line each (numbers staggered so neighbours
    # stay legible), named in the list under the legend
    ordered = sorted(marks, key=lambda m: m.at)
    for i, m in enumerate(ordered, start=1):
        mx = x(m.at)
        ny = TOP - 6 - 13 * ((i - 1) % 3)
        out.append(
            f'<line class="mark" x1="{mx:.1f}" y1="{ny + 3}" x2="{mx:.1f}" y2="{plot_bottom:.1f}" '
            f'stroke="#333" stroke-dasharray="4,3"><title>{escape(m.label)}</title></line>'
        )
        out.append(f'<text class="mark-n" x="{mx:.1f}" y="{ny}" text-anchor="middle" font-weight="bold">{i}</text>')
    if not shown and not marks:
        out.append(f'<text x="{LEFT}" y="{TOP + 20}">no cluster events recorded</text>')
    # legend, then the moments
    lx, ly = float(LEFT), plot_bottom + AXIS_H
    for r in sorted(resources):
        out.append(f'<rect x="{lx:.0f}" y="{ly:.0f}" width="10" height="10" fill="{colour[r]}"/>')
        out.append(f'<text x="{lx + 14:.0f}" y="{ly + 9:.0f}">{escape(r)}</text>')
        lx += 24 + 7 * len(r)
    out.append(
        f'<text x="{LEFT}" y="{ly + 27:.0f}" fill="#555">bar: an operation, from its start to its result '
        "(red edge: failed) · ▲ a monitor failed (the cluster noticed) · ✕ host lost · ● host back · "
        "F fenced · ■ health colour changed</text>"
    )
    col_w = (WIDTH - LEFT - RIGHT) / 2
    for i, m in enumerate(ordered, start=1):
        mx = LEFT + ((i - 1) % 2) * col_w
        my = ly + 27 + MARK_H * ((i + 1) // 2)
        out.append(
            f'<text class="mark" x="{mx:.0f}" y="{my:.0f}"><tspan font-weight="bold">{i}</tspan> '
            f"{escape(m.label)} ({m.at - t0:.1f} s)</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path: str, svg: str) -> None:
    """Written atomically, readable by all (a picture, no secret in it)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(svg)
    os.replace(tmp, path)
