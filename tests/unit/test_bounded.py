from __future__ import annotations

import threading
import time

import libvirt
import pytest
from vmha.deadline import Deadline
from vmha.virt import bounded, errors

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@pytest.fixture
def release():
    """An event that blocked calls wait on; set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def test_returns_the_value():
    assert bounded.call(lambda a, b: a + b, 2, 3, deadline=Deadline.after(5), what="add") == 5


def test_classifies_libvirt_errors():
    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(errors.DomainNotFound) as info:
            bounded.call(conn.lookupByName, "vmha-missing", deadline=Deadline.after(5), what="lookup of vmha-missing")
    finally:
        conn.close()
    assert isinstance(info.value.__cause__, libvirt.libvirtError)
    assert info.value.message.startswith("lookup of vmha-missing: ")


def test_other_exceptions_become_operation_failed():
    def fail():
        raise KeyError("k")

    with pytest.raises(errors.OperationFailed) as info:
        bounded.call(fail, deadline=Deadline.after(5), what="thing")
    assert isinstance(info.value.__cause__, KeyError)


def test_blocking_call_times_out_near_the_deadline(release):
    wedge = bounded.Wedge()
    started = time.monotonic()
    with pytest.raises(errors.HypervisorTimeout, match="state of domain vm1"):
        bounded.call(release.wait, deadline=Deadline.after(0.3), what="state of domain vm1", wedge=wedge)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.0
    assert wedge and wedge.what == "state of domain vm1"


def test_timeout_is_a_hypervisor_unreachable(release):
    with pytest.raises(errors.HypervisorUnreachable):
        bounded.call(release.wait, deadline=Deadline.after(0.05), what="x")


def test_after_a_hang_the_wedge_fails_later_calls_at_once(release):
    wedge = bounded.Wedge()
    with pytest.raises(errors.HypervisorTimeout):
        bounded.call(release.wait, deadline=Deadline.after(0.1), what="first call", wedge=wedge)
    called = []
    started = time.monotonic()
    with pytest.raises(errors.HypervisorTimeout, match="during first call"):
        bounded.call(called.append, 1, deadline=Deadline.after(10), what="second call", wedge=wedge)
    assert time.monotonic() - started < 0.05
    assert called == []


def test_expired_deadline_never_calls():
    called = []
    with pytest.raises(errors.HypervisorTimeout, match="no time left"):
        bounded.call(called.append, 1, deadline=Deadline.after(-1), what="x")
    assert called == []


def test_fresh_wedge_is_false_and_does_not_block():
    wedge = bounded.Wedge()
    assert not wedge
    assert bounded.call(lambda: "ok", deadline=Deadline.after(5), what="x", wedge=wedge) == "ok"
    assert not wedge


def test_a_call_that_fails_quickly_does_not_wedge():
    wedge = bounded.Wedge()

    def fail():
        raise RuntimeError("no")

    with pytest.raises(errors.OperationFailed):
        bounded.call(fail, deadline=Deadline.after(5), what="x", wedge=wedge)
    assert not wedge


class TestDeadline:
    def test_arithmetic_with_a_fake_clock(self):
        now = [100.0]
        clock = lambda: now[0]  # noqa: E731
        d = Deadline.after(10, clock)
        assert d.remaining() == 10 and not d.expired
        assert d.earlier(3).remaining() == 7
        assert d.within(4).remaining() == 4
        assert d.within(40).remaining() == 10
        now[0] = 109.5
        assert d.remaining() == pytest.approx(0.5)
        now[0] = 111
        assert d.remaining() == 0.0 and d.expired
        assert d.earlier(100).remaining() == 0.0


def test_run_within_gives_the_value_or_abandons_the_step():
    from vmha.deadline import run_within

    assert run_within(lambda a, b: a + b, 1.0, 2, 3, name="add") == (True, 5)
    gate = threading.Event()
    t0 = time.monotonic()
    try:
        assert run_within(gate.wait, 0.1, 10, name="stuck") == (False, None)
        assert time.monotonic() - t0 < 1.0
    finally:
        gate.set()


def test_run_within_raises_what_the_step_raised():
    from vmha.deadline import run_within

    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_within(boom, 1.0, name="boom")
