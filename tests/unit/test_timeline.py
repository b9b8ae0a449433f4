"""The failover picture (vmha.lab.timeline): drawn from the controllers' events, parsed back."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET

from vmha.lab.events import Event, parse_line
from vmha.lab.timeline import Mark, failed, render, write

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_800_000_000.0


def op(node: str, rsc: str, task: str, at: float, exec_ms: int, *, rc: int = 0, interval_ms: int = 0) -> Event:
    return Event("resource", node, node, rsc, task, interval_ms, rc, 0, "Done", "ok" if rc == 0 else "error",
                 "", "", T0 + at, exec_ms)  # fmt: skip


def ev(
    kind: str,
    node: str,
    at: float,
    *,
    task: str = "",
    desc: str = "",
    rc: int | None = 0,
    attr: str = "",
    value: str = "",
) -> Event:
    return Event(kind, "ha1", node, "", task, 0, rc, None, "", desc, attr, value, T0 + at, None)  # fmt: skip


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def rects(root: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if cls in (r.get("class") or "").split()]


FAILOVER = [
    op("ha2", "vm1", "start", 1.0, 2000),
    ev("node", "ha2", 10.0, desc="lost"),
    ev("fencing", "ha2", 14.0, task="reboot", desc="OK"),
    op("ha1", "vm1", "start", 18.0, 3000),
    op("ha1", "vm2", "start", 19.0, 1000, rc=1),
    op("ha1", "vm2", "monitor", 25.0, 5, rc=7, interval_ms=10000),
    op("ha1", "vm1", "monitor", 26.0, 5, interval_ms=10000),  # a passing monitor: not drawn
    ev("attribute", "ha1", 20.0, attr="#health-vmha", value="red"),
    ev("attribute", "ha1", 21.0, attr="some-other", value="red"),
    ev("attribute", "ha1", 22.0, attr="#health-vmha", value="red"),  # rewritten, same colour
    ev("node", "ha2", 40.0, desc="member"),
]


def test_a_failover_is_drawn_one_row_per_host_in_time_order() -> None:
    root = parse(render(FAILOVER, [Mark(T0 + 9.5, "power off ha2")], hosts=["ha1", "ha2"], start=T0))
    hosts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "host"]
    assert hosts == ["ha1", "ha2"]
    ops = rects(root, "op")
    assert len(ops) == 3, "three one-shot operations, the passing monitor left out"
    xs = [float(r.get("x", "0")) for r in ops]
    widths = [float(r.get("width", "0")) for r in ops]
    # ha2's start began at 1 s - 2 s = -1 s, clipped to the start; ha1's at 15 s and 18 s
    assert xs[0] == min(xs) and xs[1] < xs[2]
    assert widths[1] > widths[2], "a 3 s start is wider than a 1 s one"
    failed = rects(root, "failed")
    assert len(failed) == 1 and "vm2 start on ha1" in (failed[0].findtext("s:title", namespaces=NS) or "")
    assert len([p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "detected"]) == 1
    assert len([p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "lost"]) == 1
    assert len([g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "fenced"]) == 1
    health = rects(root, "health")
    assert len(health) == 1 and health[0].get("fill") == "#d62728", "only #health-vmha, in its colour"
    marks = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "mark"]
    assert marks == ["1 power off ha2 (9.5 s)"]
    assert [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "mark-n"] == ["1"]


def test_a_probe_answer_and_a_cancelled_monitor_are_no_failures() -> None:
    found_running = Event("resource", "ha1", "ha1", "web1", "monitor", 0, 0, 7, "0", "ok", "", "", T0 + 1, 200)
    cancelled = Event("resource", "ha1", "ha1", "web1", "monitor", 3000, 0, 0, "1", "Cancelled", "", "", T0 + 2, 0)
    broken_probe = Event("resource", "ha1", "ha1", "web1", "monitor", 0, 1, 7, "0", "error", "", "", T0 + 3, 10)
    assert not failed(found_running) and not failed(cancelled) and failed(broken_probe)
    root = parse(render([found_running, cancelled, broken_probe], start=T0))
    assert len(rects(root, "op")) == 2 and len(rects(root, "failed")) == 1
    assert not [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "detected"]


def test_fencing_lands_left_of_the_restart_it_allowed() -> None:
    root = parse(render(FAILOVER, hosts=["ha1", "ha2"], start=T0))
    fence = next(g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "fenced")
    fx = float(fence.find("s:circle", NS).get("cx", "0"))  # type: ignore[union-attr]
    restart = rects(root, "op")[1]
    assert fx < float(restart.get("x", "0"))


def test_names_are_escaped_and_nothing_is_an_empty_picture() -> None:
    hostile = op("ha1", 'vm"<&>', "start", 1.0, 100)
    svg = render([hostile], hosts=["ha1"])
    root = parse(svg)  # still well-formed XML
    assert any(t.text == 'vm"<&>' for t in root.iter("{http://www.w3.org/2000/svg}text"))
    empty = parse(render([], hosts=["ha1", "ha2"]))
    assert any(t.text == "no cluster events recorded" for t in empty.iter("{http://www.w3.org/2000/svg}text"))


def test_an_event_line_as_the_alert_agent_writes_it_is_drawn() -> None:
    line = "\t".join(
        ["resource", "ha1", "ha1", "vm1", "start", "0", "0", "0", "0", "ok", "", "", f"{T0 + 2:.6f}", "1500"]
    )
    e = parse_line(line + "\n")
    assert e is not None
    assert len(rects(parse(render([e], start=T0)), "op")) == 1


def test_written_atomically_readable_by_all(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "timeline.svg")
    write(path, render(FAILOVER))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert parse(open(path).read()).tag.endswith("svg")
    assert os.listdir(str(tmp_path)) == ["timeline.svg"]
