"""``vmha.virt.guest_agent.GuestAgent`` against a fake ``libvirt_qemu.qemuAgentCommand`` that answers
(and fails) the way libvirt does: real ``libvirtError`` objects with libvirt's codes and
messages, base64 output from guest-exec-status, a call that hangs."""

from __future__ import annotations

import base64
import json
import threading
import time

import libvirt
import pytest
from vmha.deadline import Deadline
from vmha.virt import bounded, errors
from vmha.virt import guest_agent as agent_mod
from vmha.virt.connection import Connection
from vmha.virt.domain import Domain
from vmha.virt.guest_agent import (
    AgentCommandFailed,
    AgentCommandUnsupported,
    GuestAgent,
    GuestExecTimedOut,
    GuestProgramMissing,
    libvirt_timeout,
    looks_like_uuid,
)

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

VIR_FROM_QEMU = 10


def lv_error(code, message, domain=VIR_FROM_QEMU):
    """A libvirtError as the binding builds it from virGetLastError."""
    exc = libvirt.libvirtError(message)
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
    return exc


NOT_CONNECTED = (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: QEMU guest agent is not connected")
NOT_CONFIGURED = (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, "argument unsupported: QEMU guest agent is not configured")
UNRESPONSIVE = (libvirt.VIR_ERR_AGENT_UNRESPONSIVE, "Guest agent is not responding: Guest agent not available for now")
BUSY = (
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    "Timed out during operation: cannot acquire state change lock (held by agent=remoteDispatchDomainQemuAgentCommand)",
)
NOT_RUNNING = (libvirt.VIR_ERR_OPERATION_INVALID, "Requested operation is not valid: domain is not running")
NO_DRIVER = (
    libvirt.VIR_ERR_NO_SUPPORT,
    "this function is not supported by the connection driver: virDomainQemuAgentCommand",
)


def agent_error(execute, desc):
    return (libvirt.VIR_ERR_INTERNAL_ERROR, f"internal error: unable to execute QEMU agent command '{execute}': {desc}")


class FakeAgentCommand:
    """Stands in for ``libvirt_qemu.qemuAgentCommand(dom, cmd, timeout, flags)``.

    ``answers`` maps a command name to a list of answers used in order (the last one
    repeats): a dict (the ``return`` value), a (code, message) tuple (raised as a
    libvirtError), a str (the raw reply text), or ``"hang"`` (blocks until the test ends).
    """

    def __init__(self, answers=None):
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.calls = []
        self.release = threading.Event()

    def __call__(self, dom, cmd, timeout, flags):
        request = json.loads(cmd)
        self.calls.append((request["execute"], request.get("arguments"), timeout, flags))
        queue = self.answers.get(request["execute"])
        if not queue:
            raise AssertionError(f"unexpected agent command {request}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer == "hang":
            self.release.wait(30)
            raise lv_error(*UNRESPONSIVE)
        if isinstance(answer, tuple):
            raise lv_error(*answer)
        if isinstance(answer, str):
            return answer
        return json.dumps({"return": answer})

    def executes(self):
        return [c[0] for c in self.calls]


class StubRaw:
    def name(self):
        return "web1"


@pytest.fixture
def make():
    fakes = []

    def build(answers=None, **kw):
        fake = FakeAgentCommand(answers)
        fakes.append(fake)
        conn = Connection(None, "qemu:///system", Deadline.after(60), bounded.Wedge())
        dom = Domain(StubRaw(), conn)
        sleeps = []
        ga = GuestAgent(dom, command=fake, sleep=sleeps.append, **kw)
        return ga, fake, sleeps

    yield build
    for fake in fakes:
        fake.release.set()


def b64(text):
    return base64.b64encode(text.encode()).decode()


# -- the per-command libvirt timeout -----------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "cap", "seconds"),
    [
        (30.0, 10.0, 10),  # capped: a ping that needs longer is a hung agent
        (12.0, 10.0, 6),  # room for libvirt's 5 s guest-sync before the command
        (6.0, 10.0, 2),  # little time: half for the sync, half for the command
        (1.6, 10.0, 1),  # at least one second when there is one
        (1.4, 10.0, 0),  # not even that: no call
        (0.0, 10.0, 0),
    ],
)
def test_libvirt_timeout(remaining, cap, seconds):
    assert libvirt_timeout(remaining, cap) == seconds


# -- ping and info -----------------------------------------------------------------------


def test_ping_sends_guest_ping_with_a_libvirt_timeout(make):
    ga, fake, _ = make({"guest-ping": [{}]})
    ga.ping(Deadline.after(20))
    (execute, arguments, timeout, flags) = fake.calls[0]
    assert (execute, arguments, flags) == ("guest-ping", None, 0)
    assert 1 <= timeout <= agent_mod.CALL_TIMEOUT_S


@pytest.mark.parametrize(
    ("answer", "cls"),
    [
        (NOT_CONNECTED, errors.AgentNotConnected),
        (NOT_CONFIGURED, errors.AgentNotConnected),
        (UNRESPONSIVE, errors.AgentUnresponsive),
        (BUSY, errors.AgentUnresponsive),
        (NOT_RUNNING, errors.OperationInvalid),
        (NO_DRIVER, errors.OperationUnsupported),
        (agent_error("guest-ping", "The command guest-ping has not been found"), AgentCommandUnsupported),
        (agent_error("guest-ping", "Command guest-ping has been disabled for this instance"), AgentCommandUnsupported),
        (agent_error("guest-ping", "Guest agent command failed, error was 'oops'"), AgentCommandFailed),
        ('{"error": {"class": "GenericError"}}', AgentCommandFailed),
        ("not json", AgentCommandFailed),
    ],
)
def test_ping_errors_are_told_apart(make, answer, cls):
    ga, _fake, _ = make({"guest-ping": [answer]})
    with pytest.raises(cls) as info:
        ga.ping(Deadline.after(20))
    assert type(info.value) is cls
    assert "web1" in info.value.message or "guest-ping" in info.value.message


def test_unknown_command_is_operation_unsupported_and_no_driver_is_not_the_agents_fault(make):
    ga, _fake, _ = make({"guest-exec": [agent_error("guest-exec", "The command guest-exec has not been found")]})
    with pytest.raises(errors.OperationUnsupported) as info:
        ga.run(["/bin/true"], Deadline.after(20))
    assert isinstance(info.value, AgentCommandUnsupported)
    assert "does not allow guest-exec" in info.value.message
    ga, _fake, _ = make({"guest-ping": [NO_DRIVER]})
    with pytest.raises(errors.OperationUnsupported) as info:
        ga.ping(Deadline.after(20))
    assert not isinstance(info.value, AgentCommandUnsupported)
    assert "hypervisor driver" in info.value.message


def test_a_hung_agent_costs_at_most_the_deadline(make, monkeypatch):
    # Shrink libvirt's sync allowance so the test takes about a second, not ten.
    monkeypatch.setattr(agent_mod, "SYNC_WAIT_S", 0.1)
    ga, fake, _ = make({"guest-ping": ["hang"]})
    t0 = time.monotonic()
    with pytest.raises(errors.AgentUnresponsive) as info:
        ga.ping(Deadline.after(1.6))
    took = time.monotonic() - t0
    assert took < 1.9
    assert "did not answer guest-ping" in info.value.message
    assert fake.calls[0][2] == 1  # libvirt was told 1 s


def test_no_time_left_makes_no_call(make):
    ga, fake, _ = make({"guest-ping": [{}]})
    with pytest.raises(errors.AgentUnresponsive, match="no time left"):
        ga.ping(Deadline.after(0.5))
    assert fake.calls == []


def test_wedged_connection_makes_no_call(make):
    ga, fake, _ = make({"guest-ping": [{}]})
    ga.dom.conn.wedge.what = "state of domain web1"
    with pytest.raises(errors.HypervisorTimeout, match="not attempted"):
        ga.ping(Deadline.after(20))
    assert fake.calls == []


def test_info_lists_enabled_and_disabled_commands(make):
    ga, _fake, _ = make(
        {
            "guest-info": [
                {
                    "version": "7.2.0",
                    "supported_commands": [
                        {"name": "guest-ping", "enabled": True},
                        {"name": "guest-exec", "enabled": False},
                        {"name": "guest-exec-status"},
                    ],
                }
            ]
        }
    )
    info = ga.info(Deadline.after(20))
    assert info.version == "7.2.0"
    assert info.enabled == {"guest-ping", "guest-exec-status"}
    assert info.disabled == {"guest-exec"}


# -- exec --------------------------------------------------------------------------------


def test_run_spawns_an_argv_without_a_shell_and_polls_until_exit(make):
    ga, fake, sleeps = make(
        {
            "guest-exec": [{"pid": 4242}],
            "guest-exec-status": [
                {"exited": False},
                {"exited": False},
                {"exited": True, "exitcode": 3, "out-data": b64("inactive\n"), "err-data": b64("")},
            ],
        }
    )
    result = ga.run(["/usr/bin/systemctl", "is-active", "nginx"], Deadline.after(20))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "inactive\n", "")
    assert not result.truncated and result.signal is None
    execute, arguments, _timeout, _flags = fake.calls[0]
    assert execute == "guest-exec"
    assert arguments["path"] == "/usr/bin/systemctl"
    assert arguments["arg"] == ["is-active", "nginx"]
    assert arguments["capture-output"] is True
    assert "LC_ALL=C" in arguments["env"]
    assert [c[1] for c in fake.calls[1:]] == [{"pid": 4242}] * 3
    assert sleeps == [0.05, 0.1]  # backing off between polls


def test_run_tuple_unpacks_to_code_stdout_stderr(make):
    ga, _fake, _ = make(
        {"guest-exec": [{"pid": 1}], "guest-exec-status": [{"exited": True, "exitcode": 0, "out-data": b64("hi")}]}
    )
    code, out, err, *_rest = ga.run(["/bin/echo", "hi"], Deadline.after(20))
    assert (code, out, err) == (0, "hi", "")


def test_output_is_capped(make):
    big = "x" * 5000
    ga, _fake, _ = make(
        {
            "guest-exec": [{"pid": 1}],
            "guest-exec-status": [{"exited": True, "exitcode": 0, "out-data": b64(big), "err-data": b64("e" * 10)}],
        }
    )
    result = ga.run(["/bin/cat", "/big"], Deadline.after(20), max_output=100)
    assert result.stdout == "x" * 100 and result.stderr == "e" * 10
    assert result.truncated


def test_agent_side_truncation_is_reported(make):
    ga, _fake, _ = make(
        {
            "guest-exec": [{"pid": 1}],
            "guest-exec-status": [{"exited": True, "exitcode": 0, "out-data": b64("a"), "out-truncated": True}],
        }
    )
    assert ga.run(["/bin/cat"], Deadline.after(20)).truncated


def test_killed_by_a_signal(make):
    ga, _fake, _ = make({"guest-exec": [{"pid": 1}], "guest-exec-status": [{"exited": True, "signal": 9}]})
    result = ga.run(["/bin/sleep", "100"], Deadline.after(20))
    assert result.exit_code is None and result.signal == 9
    assert result.describe() == "killed by signal 9"


def test_a_program_that_does_not_exit_times_out_with_its_pid(make):
    ga, fake, sleeps = make({"guest-exec": [{"pid": 77}], "guest-exec-status": [{"exited": False}]})
    t0 = time.monotonic()
    with pytest.raises(GuestExecTimedOut) as info:
        ga.run(["/bin/sleep", "1000"], Deadline.after(3.0))
    assert time.monotonic() - t0 < 3.0
    assert info.value.pid == 77 and "guest PID 77" in info.value.message
    assert fake.executes()[0] == "guest-exec" and len(sleeps) >= 1


def test_missing_program(make):
    desc = (
        "Guest agent command failed, error was "
        "'Failed to execute child process \u201c/bin/nope\u201d (No such file or directory)'"
    )
    ga, _fake, _ = make({"guest-exec": [agent_error("guest-exec", desc)]})
    with pytest.raises(GuestProgramMissing):
        ga.run(["/bin/nope"], Deadline.after(20))


def test_relative_program_is_refused_before_any_call(make):
    ga, fake, _ = make({})
    with pytest.raises(ValueError, match="absolute path"):
        ga.run(["systemctl", "status"], Deadline.after(20))
    assert fake.calls == []


def test_exec_not_connected_midway(make):
    ga, _fake, _ = make({"guest-exec": [{"pid": 5}], "guest-exec-status": [NOT_CONNECTED]})
    with pytest.raises(errors.AgentNotConnected):
        ga.run(["/bin/true"], Deadline.after(20))


def test_reply_without_pid(make):
    ga, _fake, _ = make({"guest-exec": [{}]})
    with pytest.raises(AgentCommandFailed, match="no pid"):
        ga.run(["/bin/true"], Deadline.after(20))


# -- the real binding --------------------------------------------------------------------


def test_real_binding_on_the_test_driver_is_unsupported():
    """libvirt's test driver has no guest agent: the real qemuAgentCommand says so."""
    conn = Connection.open("test:///default", Deadline.after(10))
    try:
        dom = conn.lookup(name="test")
        with pytest.raises(errors.OperationUnsupported) as info:
            GuestAgent(dom).ping(Deadline.after(10))
    finally:
        conn.close()
    assert not isinstance(info.value, AgentCommandUnsupported)
    assert isinstance(info.value.__cause__, errors.OperationUnsupported)


def test_run_in_guest_on_the_test_driver_is_unsupported():
    with pytest.raises(errors.OperationUnsupported, match="no guest agent support"):
        agent_mod.run_in_guest("test:///default", "test", ["/bin/true"], timeout=10)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("c7a5fdbd-edaf-9455-926a-d65c16db1809", True),
        ("c7a5fdbdedaf9455926ad65c16db1809", True),
        ("web1", False),
        ("c7a5fdbd-edaf-9455-926a-d65c16db180", False),
    ],
)
def test_looks_like_uuid(text, ok):
    assert looks_like_uuid(text) is ok
