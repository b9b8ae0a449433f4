"""Contract tests: agents/GuestService run as pacemaker-execd runs it, a fresh process per action.

Three set-ups, none needing a real guest:

- the plain executable, for metadata, validation and an unknown action;
- the plain executable against libvirt's test driver (a private libvirtd, as root) and against
  a socket that never answers, for the VM and hypervisor layers;
- a wrapper executable that installs a fake ``libvirt_qemu`` (a guest agent whose guest keeps
  its services in a JSON file) and then runs the same ``main``, against ``test:///default``
  whose domain ``test`` is always running; for the service and client-path layers, with real
  listeners on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lxml import etree

from tests.support.agent import ROOT, ocf_env, run_agent

PCS_RNG = "/usr/share/pcs/data/ocf-1.1.rng"
GOLDEN = os.path.join(ROOT, "tests", "data", "metadata", "GuestService.xml")
LIB = os.path.join(ROOT, "lib")
AGENT = "GuestService"


def env_for(params, tmp_path, *, interval_ms=20000, timeout_ms=20000, extra=None):
    base = {"OCF_RESOURCE_TYPE": AGENT}
    base.update(extra or {})
    return ocf_env(
        "svc1", params, rsctmp=str(tmp_path / "rsctmp"), interval_ms=interval_ms, timeout_ms=timeout_ms, extra=base
    )


def _no_traceback(run):
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.reasons) <= 1


# -- metadata ------------------------------------------------------------------------------


def test_metadata_valid_against_pcs_schema():
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=AGENT)
    assert run.rc == 0 and run.stderr == ""
    schema = etree.RelaxNG(etree.parse(PCS_RNG))
    doc = etree.fromstring(run.stdout.encode())
    assert schema.validate(doc), schema.error_log
    names = [p.get("name") for p in doc.iter("parameter")]
    assert names[:4] == ["domain", "hypervisor", "service", "manager"]
    assert {a.get("name") for a in doc.iter("action")} >= {
        "start",
        "stop",
        "monitor",
        "validate-all",
        "meta-data",
    }


def test_metadata_matches_golden():
    run = run_agent("meta-data", {"PATH": "/usr/bin:/bin"}, agent=AGENT)
    with open(GOLDEN) as fh:
        assert run.stdout == fh.read(), f"metadata changed: regenerate {GOLDEN} if intended"


# -- validation and bad input ----------------------------------------------------------------


def test_validate_all_accepts_good_parameters(tmp_path):
    for params in (
        {"domain": "web1", "service": "nginx"},
        {"domain": "web1", "service": "postgresql@15-main", "manager": "sysv", "tcp_check": "10.0.0.5:5432"},
        {"domain": str(uuid.uuid4()), "service": "sshd", "manager": "openrc", "http_check": "http://web1:8080/h"},
        {
            "domain": "web1",
            "manager": "commands",
            "start_command": "/opt/app/bin/app start --config '/etc/app/my app.conf'",
            "stop_command": "/opt/app/bin/app stop",
            "status_command": "/opt/app/bin/app status",
        },
    ):
        run = run_agent("validate-all", env_for(params, tmp_path), agent=AGENT)
        assert run.rc == 0, (params, run.stderr)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"service": "nginx;reboot"}, "not a valid service name"),
        ({"service": "$(reboot)"}, "not a valid service name"),
        ({"service": "../../bin/sh", "manager": "sysv"}, "not a valid service name"),
        ({"service": "-H evil"}, "not a valid service name"),
        (
            {
                "manager": "commands",
                "start_command": "/bin/app start; reboot",
                "stop_command": "/bin/app stop",
                "status_command": "/bin/app status",
            },
            "metacharacter",
        ),
        (
            {
                "manager": "commands",
                "start_command": "/bin/app start",
                "stop_command": "/bin/app stop | logger",
                "status_command": "/bin/app status",
            },
            "metacharacter",
        ),
        (
            {
                "manager": "commands",
                "start_command": "/bin/app `id`",
                "stop_command": "/bin/app stop",
                "status_command": "/bin/app status",
            },
            "metacharacter",
        ),
        (
            {
                "manager": "commands",
                "start_command": "app start",
                "stop_command": "/bin/app stop",
                "status_command": "/bin/app status",
            },
            "absolute path",
        ),
        ({"manager": "commands", "start_command": "/bin/app start"}, "needs stop_command, status_command"),
        ({"service": "nginx", "start_command": "/bin/app start"}, "only apply to manager=commands"),
        ({}, "service is required"),
        ({"service": "nginx", "manager": "upstart"}, "not one of"),
        ({"service": "nginx", "tcp_check": "web1"}, "tcp_check"),
        ({"service": "nginx", "tcp_check": "web1:99999"}, "tcp_check"),
        ({"service": "nginx", "http_check": "gopher://web1/"}, "not an http:// or https:// URL"),
        ({"service": "nginx", "http_check": "http://u:p@web1/"}, "password"),
        ({"service": "nginx", "http_status": "42"}, "not a status from 100 to 599"),
        ({"service": "nginx", "http_status": "200,abc"}, "not a list of statuses"),
        ({"service": "nginx", "db_check": "redis://web1:6379"}, "not a postgresql:// or mysql:// URL"),
        ({"service": "nginx", "db_check": "postgresql://web1:70000/app"}, "port '70000' is not a number"),
        ({"service": "nginx", "db_check": "postgresql://app:pw@web1/app"}, "use db_password_file"),
        ({"service": "nginx", "db_check": "mysql://web1", "db_require_primary": "true"}, "needs a login"),
        ({"service": "nginx", "db_password_file": "etc/pw"}, "not an absolute path"),
        ({"service": "nginx", "agent_timeout": "1"}, "below the minimum"),
        ({"service": "nginx", "hypervisor": "qemu:///system extra"}, "URI"),
        ({"service": "nginx", "bogus": "1"}, "unknown parameter 'bogus'"),
    ],
)
def test_validate_all_refuses_bad_input(tmp_path, params, words):
    run = run_agent("validate-all", env_for({"domain": "web1", **params}, tmp_path), agent=AGENT)
    assert run.rc == 6, run.stderr
    assert words in run.reason
    _no_traceback(run)


def test_missing_domain_is_refused(tmp_path):
    run = run_agent("validate-all", env_for({"service": "nginx"}, tmp_path), agent=AGENT)
    assert run.rc == 6 and "domain is required" in run.reason


def test_start_refuses_metacharacters_before_connecting(tmp_path):
    # The hypervisor does not exist: a start that got as far as connecting would say so.
    params = {"domain": "web1", "service": "nginx&&reboot", "hypervisor": f"qemu+unix:///system?socket={tmp_path}/x"}
    run = run_agent("start", env_for(params, tmp_path), agent=AGENT)
    assert run.rc == 6 and "service name" in run.reason


def test_unknown_action(tmp_path):
    run = run_agent("promote", env_for({"domain": "web1", "service": "nginx"}, tmp_path), agent=AGENT)
    assert run.rc == 3
    assert "not implemented" in run.reason


# -- the hypervisor layer: a socket that accepts and never answers ---------------------------

HUNG_TIMEOUT_MS = 5000


@pytest.fixture
def hung_env(silent_socket, tmp_path):
    def make(interval_ms=20000):
        params = {"domain": "web1", "service": "nginx", "hypervisor": f"qemu+unix:///system?socket={silent_socket}"}
        return env_for(params, tmp_path, interval_ms=interval_ms, timeout_ms=HUNG_TIMEOUT_MS)

    return make


def _within_hung_timeout(run):
    assert run.seconds < HUNG_TIMEOUT_MS / 1000, f"took {run.seconds:.1f}s, past the {HUNG_TIMEOUT_MS} ms timeout"
    _no_traceback(run)


def test_hung_hypervisor_monitor_answers_within_its_timeout(hung_env):
    run = run_agent("monitor", hung_env(), agent=AGENT)
    _within_hung_timeout(run)
    assert run.rc == 1
    assert run.reason.startswith("hypervisor unreachable: ")


def test_hung_hypervisor_probe_is_not_running(hung_env):
    run = run_agent("monitor", hung_env(interval_ms=0), agent=AGENT)
    _within_hung_timeout(run)
    assert run.rc == 7


def test_hung_hypervisor_start_and_stop_end_inside_their_timeout(hung_env):
    run = run_agent("start", hung_env(), agent=AGENT)
    _within_hung_timeout(run)
    assert run.rc == 1, run.stderr
    assert "hypervisor" in run.reason or "did not finish" in run.reason
    # Stop cannot reach the guest; the service cannot run outside its VM, so the stop gives the
    # decision to the VM's resource instead of failing (which would fence the whole host).
    stop = run_agent("stop", hung_env(), agent=AGENT)
    _within_hung_timeout(stop)
    assert stop.rc == 0, stop.stderr
    assert "cannot confirm" in stop.stderr


# -- the VM layer: libvirt's test driver in a private libvirtd --------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a private libvirtd needs root (CI runs as root)")

DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>
"""


@needs_root
def test_domain_absent_probe_is_not_running_and_stop_succeeds(daemon, tmp_path):
    uri, _holder = daemon
    params = {"domain": "gs-absent", "service": "nginx", "hypervisor": uri}
    probe = run_agent("monitor", env_for(params, tmp_path, interval_ms=0), agent=AGENT)
    assert probe.rc == 7 and probe.reasons == []
    monitor = run_agent("monitor", env_for(params, tmp_path), agent=AGENT)
    assert monitor.rc == 7 and monitor.reason.startswith("VM down: domain gs-absent")
    stop = run_agent("stop", env_for(params, tmp_path), agent=AGENT)
    assert stop.rc == 0, stop.stderr
    by_uuid = run_agent("stop", env_for({**params, "domain": str(uuid.uuid4())}, tmp_path), agent=AGENT)
    assert by_uuid.rc == 0


@needs_root
def test_domain_shut_off_and_running_without_agent(daemon, tmp_path):
    uri, holder = daemon
    name, dom_uuid = "gs-" + uuid.uuid4().hex[:8], str(uuid.uuid4())
    dom = holder.defineXML(DOMAIN_XML.format(name=name, uuid=dom_uuid))
    try:
        params = {"domain": name, "service": "nginx", "hypervisor": uri}
        off = run_agent("monitor", env_for(params, tmp_path), agent=AGENT)
        assert off.rc == 7 and off.reason.startswith(f"VM down: domain {name} is shutoff")
        assert run_agent("stop", env_for(params, tmp_path), agent=AGENT).rc == 0

        dom.create()
        # The test driver has no guest agent: the real qemuAgentCommand, through libvirtd, says so.
        on = run_agent("monitor", env_for(params, tmp_path), agent=AGENT)
        assert on.rc == 1
        assert on.reason.startswith("guest agent unusable: hypervisor driver has no guest agent support")
        probe = run_agent("monitor", env_for({**params, "domain": dom_uuid}, tmp_path, interval_ms=0), agent=AGENT)
        assert probe.rc == 7  # a probe never answers "failed" for what it cannot see
        stop = run_agent("stop", env_for(params, tmp_path), agent=AGENT)
        assert stop.rc == 0, stop.stderr  # nothing can have been started through this hypervisor
        start = run_agent("start", env_for(params, tmp_path, timeout_ms=5000), agent=AGENT)
        assert start.rc == 1 and "guest agent unusable" in start.reason
        assert start.seconds < 3  # not worth retrying: it will not change
    finally:
        try:
            dom.destroy()
        except Exception:  # noqa: BLE001, S110 - already off
            pass
        dom.undefine()


# -- the service and client-path layers: a fake guest agent ----------------------------------

WRAPPER = textwrap.dedent(
    '''\
    #!/usr/bin/python3 -I
    """GuestService with a fake libvirt_qemu: a guest whose state lives in $VMHA_FAKE_GUEST."""
    import base64, fcntl, json, os, sys, time, types
    sys.path.insert(0, {lib!r})
    import libvirt

    GUEST = os.environ["VMHA_FAKE_GUEST"]

    def error(code, message):
        exc = libvirt.libvirtError(message)
        exc.err = (code, 10, message, 2, None, None, None, 0, 0)
        return exc

    def agent_error(execute, desc):
        return error(1, f"internal error: unable to execute QEMU agent command '{{execute}}': {{desc}}")

    def systemctl(g, verb, svc):
        state = g["services"].get(svc, "inactive")
        if verb == "is-active":
            return (0 if state == "active" else 3), state + "\\n", ""
        if verb == "start":
            if svc in g.get("start_fails", []):
                g["services"][svc] = "failed"
                return 1, "", f"Job for {{svc}}.service failed because the control process exited with error code."
            g["services"][svc] = "failed" if svc in g.get("start_dies", []) else "active"
            return 0, "", ""
        if verb == "stop":
            if svc not in g.get("stop_ignored", []):
                g["services"][svc] = "inactive"
            return 0, "", ""
        return 1, "", "unknown verb"

    def spawn(g, path, args):
        if path in g.get("missing", []) or (path not in ("/usr/bin/systemctl",) and path not in g["programs"]):
            raise agent_error("guest-exec", "Guest agent command failed, error was 'Failed to execute child "
                              f"process \\u201c{{path}}\\u201d (No such file or directory)'")
        g["execs"].append([path] + args)
        if path == "/usr/bin/systemctl":
            return systemctl(g, args[0], args[1])
        rc, out, err = g["programs"][path]
        return rc, out, err

    def qemuAgentCommand(dom, cmd, timeout, flags):
        request = json.loads(cmd)
        with open(GUEST, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            g = json.load(fh)
            g["calls"] += 1
            mode = g["agent"]
            if g.get("connect_after") is not None and g["calls"] > g["connect_after"]:
                mode = "ok"
            try:
                if mode == "hang":
                    reply = None
                elif mode == "not connected":
                    raise error(86, "Guest agent is not responding: QEMU guest agent is not connected")
                elif request["execute"] in g.get("disabled", []):
                    raise agent_error(request["execute"], f"Command {{request['execute']}} has been disabled")
                elif request["execute"] == "guest-exec":
                    args = request["arguments"]
                    rc, out, err = spawn(g, args["path"], args.get("arg", []))
                    g["next_pid"] += 1
                    g["procs"][str(g["next_pid"])] = [rc, out, err]
                    reply = {{"return": {{"pid": g["next_pid"]}}}}
                elif request["execute"] == "guest-exec-status":
                    rc, out, err = g["procs"].pop(str(request["arguments"]["pid"]))
                    reply = {{"return": {{"exited": True, "exitcode": rc,
                              "out-data": base64.b64encode(out.encode()).decode(),
                              "err-data": base64.b64encode(err.encode()).decode()}}}}
                else:
                    reply = {{"return": {{}}}}
            finally:
                fh.seek(0)
                fh.truncate()
                json.dump(g, fh)
        if reply is None:
            time.sleep(3600)
        return json.dumps(reply)

    fake = types.ModuleType("libvirt_qemu")
    fake.qemuAgentCommand = qemuAgentCommand
    sys.modules["libvirt_qemu"] = fake

    from vmha.guest_service.agent import main

    rc = main(sys.argv, dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
    '''
)


class Guest:
    """The fake guest's state file and an agent runner bound to it."""

    def __init__(self, tmp_path, wrapper):
        self.path = tmp_path / "guest.json"
        self.tmp_path = tmp_path
        self.wrapper = wrapper
        self.write(
            {
                "agent": "ok",
                "services": {},
                "programs": {},
                "missing": [],
                "execs": [],
                "procs": {},
                "next_pid": 1000,
                "calls": 0,
            }
        )

    def read(self):
        return json.loads(self.path.read_text())

    def write(self, data):
        self.path.write_text(json.dumps(data))

    def set(self, **kw):
        data = self.read()
        data.update(kw)
        self.write(data)

    def run(self, action, *, interval_ms=20000, timeout_ms=20000, **params):
        base = {"domain": "test", "hypervisor": "test:///default", "service": "nginx"}
        base.update(params)
        env = env_for(
            base,
            self.tmp_path,
            interval_ms=interval_ms,
            timeout_ms=timeout_ms,
            extra={"VMHA_FAKE_GUEST": str(self.path)},
        )
        run = run_agent(action, env, executable=str(self.wrapper))
        _no_traceback(run)
        return run


@pytest.fixture
def guest(tmp_path):
    wrapper = tmp_path / "GuestService-fake-agent"
    wrapper.write_text(WRAPPER.format(lib=LIB))
    wrapper.chmod(0o755)
    return Guest(tmp_path, wrapper)


def test_monitor_reads_the_service_state(guest):
    guest.set(services={"nginx": "active"})
    assert guest.run("monitor").rc == 0
    assert guest.read()["execs"] == [["/usr/bin/systemctl", "is-active", "nginx"]]

    guest.set(services={"nginx": "inactive"})
    down = guest.run("monitor")
    assert down.rc == 7 and down.reason == "service down: nginx in VM test is inactive"

    guest.set(services={"nginx": "failed"})
    failed = guest.run("monitor")
    assert failed.rc == 1 and failed.reason == "service failed: nginx in VM test is failed"
    assert guest.run("monitor", interval_ms=0).rc == 1  # seen failed: the probe says so


def test_agent_not_connected(guest):
    guest.set(agent="not connected")
    recurring = guest.run("monitor")
    assert recurring.rc == 1 and recurring.reason.startswith("guest agent unreachable: VM test")
    probe = guest.run("monitor", interval_ms=0)
    assert probe.rc == 7 and probe.reasons == []
    assert guest.run("stop").rc == 0  # the service cannot run without its guest


def test_hung_agent_never_outlives_the_timeout(guest):
    guest.set(agent="hang", services={"nginx": "active"})
    run = guest.run("monitor", timeout_ms=6000, agent_timeout="2")
    assert run.seconds < 6.0
    assert run.rc == 1 and run.reason.startswith("guest agent unreachable: VM test agent not answering")
    stop = guest.run("stop", timeout_ms=5000)
    assert stop.seconds < 5.0 and stop.rc == 0  # cannot confirm; left to the VM's resource, no fencing
    assert "cannot confirm" in stop.stderr


def test_stop_leaves_an_unreachable_guest_to_its_vm_well_before_the_timeout(guest):
    # a frozen guest: the VM's stop, ordered after this one, is the recovery; a stop that
    # waited out its 60 s for the agent would hold that recovery back for as long
    from vmha.guest_service.agent import UNREACHABLE_STOP_S

    guest.set(agent="hang", services={"nginx": "active"})
    stop = guest.run("stop", timeout_ms=60000, agent_timeout="2")
    assert stop.rc == 0 and "cannot confirm" in stop.stderr
    assert UNREACHABLE_STOP_S <= stop.seconds < UNREACHABLE_STOP_S + 5, stop.seconds


def test_start_runs_systemctl_start_and_waits_for_running(guest):
    assert guest.run("start").rc == 0
    g = guest.read()
    assert g["services"]["nginx"] == "active"
    assert ["/usr/bin/systemctl", "start", "nginx"] in g["execs"]
    assert guest.run("start").rc == 0  # already running: no second start command
    assert guest.read()["execs"].count(["/usr/bin/systemctl", "start", "nginx"]) == 1


def test_start_waits_for_a_booting_guest(guest):
    guest.set(agent="not connected", connect_after=3)
    run = guest.run("start")
    assert run.rc == 0, run.stderr
    assert guest.read()["services"]["nginx"] == "active"


def test_start_failure_names_the_service_manager_error(guest):
    guest.set(start_fails=["nginx"])
    run = guest.run("start")
    assert run.rc == 1
    assert run.reason.startswith("start: start command failed in VM test (exit code 1): Job for nginx.service failed")


def test_start_fails_at_once_when_the_service_dies_after_starting(guest):
    guest.set(start_dies=["nginx"])
    run = guest.run("start")
    assert run.rc == 1 and run.seconds < 3.0
    assert run.reason == "start: service nginx in VM test is failed after starting"


def test_start_gives_up_at_the_deadline_when_the_agent_never_comes(guest):
    guest.set(agent="not connected")
    run = guest.run("start", timeout_ms=4000)
    assert run.rc == 1 and run.seconds < 4.0
    assert "guest agent unreachable" in run.reason


def test_stop_runs_systemctl_stop(guest):
    guest.set(services={"nginx": "active"})
    assert guest.run("stop").rc == 0
    assert guest.read()["services"]["nginx"] == "inactive"
    assert guest.run("stop").rc == 0  # stopped already: nothing run but the status
    assert guest.read()["execs"].count(["/usr/bin/systemctl", "stop", "nginx"]) == 1


def test_stop_that_does_not_stop_fails_inside_the_timeout(guest):
    guest.set(services={"nginx": "active"}, stop_ignored=["nginx"])
    run = guest.run("stop", timeout_ms=4000)
    assert run.rc == 1 and run.seconds < 4.0
    assert run.reason.startswith("stop: nginx still active in VM test")


def test_exec_disabled_in_the_guest(guest):
    guest.set(disabled=["guest-exec"])
    run = guest.run("monitor")
    assert run.rc == 1 and "does not allow guest-exec" in run.reason
    assert guest.run("stop").rc == 0  # this resource cannot have started anything


def test_sysv_script_missing_means_not_installed(guest):
    run = guest.run("monitor", manager="sysv")
    assert run.rc == 1 and run.reason.startswith("service manager missing: /etc/init.d/nginx not found")
    assert guest.run("monitor", manager="sysv", interval_ms=0).rc == 7
    assert guest.run("stop", manager="sysv").rc == 0


def test_systemctl_found_in_bin_when_usr_bin_has_none(guest):
    guest.set(missing=["/usr/bin/systemctl"], programs={"/bin/systemctl": [0, "active\n", ""]})
    assert guest.run("monitor").rc == 0
    assert guest.read()["execs"] == [["/bin/systemctl", "is-active", "nginx"]]


def test_explicit_commands_with_lsb_status(guest):
    guest.set(programs={"/opt/app/bin/appctl": [1, "", "app dead but pid file exists"]})
    params = {
        "service": "",
        "manager": "commands",
        "start_command": "/opt/app/bin/appctl start",
        "stop_command": "/opt/app/bin/appctl stop",
        "status_command": "/opt/app/bin/appctl status --verbose",
    }
    run = guest.run("monitor", **params)
    assert run.rc == 1 and run.reason == "service failed: appctl in VM test is dead (status exit 1)"
    assert guest.read()["execs"] == [["/opt/app/bin/appctl", "status", "--verbose"]]
    guest.set(programs={"/opt/app/bin/appctl": [3, "", ""]})
    assert guest.run("monitor", **params).rc == 7


# -- client-path checks against real listeners -------------------------------------------------


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class _Status(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_port_closed(guest, closed_port):
    guest.set(services={"nginx": "active"})
    run = guest.run("monitor", tcp_check=f"127.0.0.1:{closed_port}")
    assert run.rc == 1
    assert run.reason == f"port closed: 127.0.0.1:{closed_port} refused the connection"


def test_port_open_and_http_ok(guest, web):
    guest.set(services={"nginx": "active"})
    run = guest.run("monitor", tcp_check=f"127.0.0.1:{web}", http_check=f"http://127.0.0.1:{web}/200")
    assert run.rc == 0, run.stderr


def test_http_500_names_the_status(guest, web):
    guest.set(services={"nginx": "active"})
    run = guest.run("monitor", http_check=f"http://127.0.0.1:{web}/500")
    assert run.rc == 1
    assert run.reason == f"HTTP 500: http://127.0.0.1:{web}/500 (expected 200)"
    assert guest.run("monitor", http_check=f"http://127.0.0.1:{web}/503", http_status="503").rc == 0


def test_service_layer_is_reported_before_the_client_path(guest, closed_port):
    guest.set(services={"nginx": "inactive"})
    run = guest.run("monitor", tcp_check=f"127.0.0.1:{closed_port}")
    assert run.rc == 7 and run.reason.startswith("service down: ")


def test_start_waits_for_the_client_path(guest, closed_port):
    run = guest.run("start", timeout_ms=4000, tcp_check=f"127.0.0.1:{closed_port}")
    assert run.rc == 1 and run.seconds < 4.0
    assert "port closed" in run.reason
    assert guest.read()["services"]["nginx"] == "active"  # started, but clients cannot reach it


def test_validate_all_and_the_db_password_file(tmp_path):
    """db_password_file: a file only root can read, or validate-all refuses it with one
    reason (6: fix the mode; 5: not on this host); its content never reaches any output."""
    pw = tmp_path / "db.pw"
    pw.write_text("s3cret-Value\n")
    params = {"domain": "web1", "service": "postgresql", "db_check": "postgresql://app@10.0.0.5/app"}
    cases = ((0o600, 0, ""), (0o640, 6, "is mode 0640, open to others: chmod 600 /"), (0o604, 6, "mode 0604"))
    for mode, rc, words in cases:
        pw.chmod(mode)
        run = run_agent("validate-all", env_for({**params, "db_password_file": str(pw)}, tmp_path), agent=AGENT)
        assert run.rc == rc, run.stderr
        assert words in run.reason
        assert "s3cret" not in run.stderr + run.stdout
        _no_traceback(run)
    missing = {**params, "db_password_file": str(tmp_path / "none")}
    run = run_agent("validate-all", env_for(missing, tmp_path), agent=AGENT)
    assert run.rc == 5 and "does not exist on this host" in run.reason, run.stderr
    link = tmp_path / "link.pw"
    link.symlink_to(pw)
    run = run_agent("validate-all", env_for({**params, "db_password_file": str(link)}, tmp_path), agent=AGENT)
    assert run.rc == 6, run.stderr  # O_NOFOLLOW: a symlink is not taken for the file
