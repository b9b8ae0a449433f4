"""GuestService's pure decisions: which argv each manager runs, what each status answer means,
which names and commands are refused, how client-path targets parse and what their outcomes say."""

from __future__ import annotations

import pytest
from vmha.ocf.codes import OcfRc
from vmha.verdicts import client_checks as cc
from vmha.verdicts.guest_command import RefusedCommand, split_command
from vmha.verdicts.service_status import (
    ServiceState,
    check_service_name,
    commands_for,
    judge_status,
)

# -- commands per manager ----------------------------------------------------------------


def test_systemd_commands():
    c = commands_for("systemd", "nginx")
    assert c.start[0] == ("/usr/bin/systemctl", "start", "nginx")
    assert c.stop[0] == ("/usr/bin/systemctl", "stop", "nginx")
    assert c.status == (("/usr/bin/systemctl", "is-active", "nginx"), ("/bin/systemctl", "is-active", "nginx"))


def test_sysv_commands():
    c = commands_for("sysv", "postgresql")
    assert (c.start, c.stop, c.status) == (
        (("/etc/init.d/postgresql", "start"),),
        (("/etc/init.d/postgresql", "stop"),),
        (("/etc/init.d/postgresql", "status"),),
    )


def test_openrc_commands():
    c = commands_for("openrc", "sshd")
    assert c.start[0] == ("/sbin/rc-service", "sshd", "start")
    assert c.status[-1] == ("/bin/rc-service", "sshd", "status")


def test_explicit_commands_are_split_into_words():
    c = commands_for(
        "commands",
        "",
        start="/opt/app/bin/app --config '/etc/app/my app.conf' start",
        stop="/opt/app/bin/app stop",
        status="/opt/app/bin/app status",
    )
    assert c.start == (("/opt/app/bin/app", "--config", "/etc/app/my app.conf", "start"),)
    assert c.status == (("/opt/app/bin/app", "status"),)


def test_unknown_manager():
    with pytest.raises(RefusedCommand):
        commands_for("upstart", "x")


# -- refused input -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nginx", "postgresql@15-main", "getty@tty1.service", "a:b", "x_y.z", "A1"])
def test_good_service_names(name):
    check_service_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-x",
        ".hidden",
        "..",
        "a/b",
        "../etc/passwd",
        "nginx;reboot",
        "a b",
        "$(id)",
        "a`b`",
        "a|b",
        "a\nb",
        "x" * 300,
    ],
)
def test_bad_service_names(name):
    with pytest.raises(RefusedCommand):
        check_service_name(name)
    with pytest.raises(RefusedCommand):
        commands_for("systemd", name)


@pytest.mark.parametrize(
    "text",
    [
        "/bin/app; reboot",
        "/bin/app && reboot",
        "/bin/app | tee /x",
        "/bin/app > /x",
        "/bin/app $HOME",
        "/bin/app `id`",
        "/bin/app $(id)",
        "/bin/app *",
        "/bin/app ~root",
        "/bin/app 'a;b'",  # quoted, still refused: the user expects a shell
        '/bin/app "a|b"',
        "/bin/app\nreboot",
        "/bin/app \\x",
        "/bin/app # note",
    ],
)
def test_shell_metacharacters_are_refused(text):
    with pytest.raises(RefusedCommand, match="metacharacter"):
        split_command(text, "start_command")


@pytest.mark.parametrize(
    ("text", "why"),
    [("app start", "absolute path"), ("", "empty"), ("   ", "empty"), ("/bin/app 'open", "quotation")],
)
def test_other_bad_commands(text, why):
    with pytest.raises(RefusedCommand, match=why):
        split_command(text, "start_command")


# -- status answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "out", "state", "rc"),
    [
        (0, "active\n", ServiceState.RUNNING, OcfRc.SUCCESS),
        (0, "reloading\n", ServiceState.RUNNING, OcfRc.SUCCESS),
        (3, "inactive\n", ServiceState.STOPPED, OcfRc.NOT_RUNNING),
        (3, "failed\n", ServiceState.DEAD, OcfRc.ERR_GENERIC),
        (3, "activating\n", ServiceState.CHANGING, OcfRc.ERR_GENERIC),
        (0, "deactivating\n", ServiceState.CHANGING, OcfRc.ERR_GENERIC),
        (0, "", ServiceState.RUNNING, OcfRc.SUCCESS),  # no text: the exit code decides
        (3, "", ServiceState.STOPPED, OcfRc.NOT_RUNNING),
        (4, "", ServiceState.UNKNOWN, OcfRc.ERR_GENERIC),
        (None, "", ServiceState.UNKNOWN, OcfRc.ERR_GENERIC),
    ],
)
def test_systemd_status(code, out, state, rc):
    verdict = judge_status("systemd", code, out)
    assert (verdict.state, verdict.rc) == (state, rc)


@pytest.mark.parametrize("manager", ["sysv", "commands"])
@pytest.mark.parametrize(
    ("code", "state", "rc", "stopped"),
    [
        (0, ServiceState.RUNNING, OcfRc.SUCCESS, False),
        (1, ServiceState.DEAD, OcfRc.ERR_GENERIC, True),
        (2, ServiceState.DEAD, OcfRc.ERR_GENERIC, True),
        (3, ServiceState.STOPPED, OcfRc.NOT_RUNNING, True),
        (4, ServiceState.UNKNOWN, OcfRc.ERR_GENERIC, False),
        (7, ServiceState.UNKNOWN, OcfRc.ERR_GENERIC, False),
        (127, ServiceState.UNKNOWN, OcfRc.ERR_GENERIC, False),
    ],
)
def test_lsb_status(manager, code, state, rc, stopped):
    verdict = judge_status(manager, code, "whatever the script prints")
    assert (verdict.state, verdict.rc, verdict.stopped) == (state, rc, stopped)


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, ServiceState.RUNNING),
        (3, ServiceState.STOPPED),
        (4, ServiceState.CHANGING),
        (8, ServiceState.CHANGING),
        (16, ServiceState.STOPPED),
        (32, ServiceState.DEAD),
        (1, ServiceState.UNKNOWN),
    ],
)
def test_openrc_status(code, state):
    assert judge_status("openrc", code, "").state is state


# -- client-path targets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("10.0.0.5:5432", "10.0.0.5", 5432, "10.0.0.5:5432"),
        ("db.example.com:3306", "db.example.com", 3306, "db.example.com:3306"),
        ("[fd00::5]:80", "fd00::5", 80, "[fd00::5]:80"),
    ],
)
def test_parse_tcp(text, host, port, shown):
    target = cc.parse_tcp(text)
    assert (target.host, target.port, target.describe()) == (host, port, shown)


@pytest.mark.parametrize("text", ["host", ":80", "host:0", "host:65536", "host:http", "a b:80", "[zz]:80", "h;x:1"])
def test_bad_tcp(text):
    with pytest.raises(cc.CheckConfigError, match="tcp_check"):
        cc.parse_tcp(text)


@pytest.mark.parametrize(
    ("url", "host", "port", "path", "header"),
    [
        ("http://10.0.0.5/health", "10.0.0.5", 80, "/health", "10.0.0.5"),
        ("http://web:8080", "web", 8080, "/", "web:8080"),
        ("HTTP://web:8080/a?b=c#frag", "web", 8080, "/a?b=c", "web:8080"),
        ("http://[::1]:8080/x", "::1", 8080, "/x", "[::1]:8080"),
    ],
)
def test_parse_http(url, host, port, path, header):
    target = cc.parse_http(url)
    assert (target.host, target.port, target.path, target.host_header) == (host, port, path, header)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://web/", "not an http"),
        ("web/health", "not an http"),
        ("http://user:pw@web/", "user or password"),
        ("http:///x", "no host"),
        ("http://web:99999/", "port"),
        ("http://web/a b", "whitespace"),
        ("http://[::1/", "unclosed"),
    ],
)
def test_bad_http(url, why):
    with pytest.raises(cc.CheckConfigError, match=why):
        cc.parse_http(url)


# -- client-path verdicts ----------------------------------------------------------------

TCP = cc.TcpTarget("10.0.0.5", 5432)
HTTP = cc.parse_http("http://10.0.0.5/health")


@pytest.mark.parametrize(
    ("outcome", "detail", "ok", "start"),
    [
        (cc.TcpOutcome.CONNECTED, "", True, ""),
        (cc.TcpOutcome.REFUSED, "", False, "port closed: 10.0.0.5:5432"),
        (cc.TcpOutcome.TIMEOUT, "", False, "port timeout: 10.0.0.5:5432 did not accept within 5s"),
        (cc.TcpOutcome.UNREACHABLE, "No route to host", False, "port unreachable: 10.0.0.5:5432 (No route"),
        (cc.TcpOutcome.NAME_ERROR, "Name or service not known", False, "port check: cannot resolve 10.0.0.5"),
        (cc.TcpOutcome.ERROR, "boom", False, "port check: 10.0.0.5:5432 (boom)"),
    ],
)
def test_judge_tcp(outcome, detail, ok, start):
    result = cc.judge_tcp(TCP, outcome, 5.0, detail)
    assert result.ok is ok
    assert result.reason.startswith(start)


@pytest.mark.parametrize(
    ("outcome", "ok", "reason"),
    [
        (cc.HttpOutcome(200), True, ""),
        (cc.HttpOutcome(500), False, "HTTP 500: http://10.0.0.5/health (expected 200)"),
        (cc.HttpOutcome(404), False, "HTTP 404: http://10.0.0.5/health (expected 200)"),
        (
            cc.HttpOutcome(302, location="/login"),
            False,
            "HTTP 302: http://10.0.0.5/health (expected 200, redirects are not followed (to /login))",
        ),
        (cc.HttpOutcome(None, timed_out=True), False, "HTTP timeout: http://10.0.0.5/health did not answer within 5s"),
        (cc.HttpOutcome(None, "connection refused"), False, "HTTP error: http://10.0.0.5/health: connection refused"),
    ],
)
def test_judge_http(outcome, ok, reason):
    result = cc.judge_http(HTTP, outcome, 200, 5.0)
    assert (result.ok, result.reason) == (ok, reason)


def test_judge_http_other_expected_status():
    assert cc.judge_http(HTTP, cc.HttpOutcome(204), 204, 5.0).ok
    assert not cc.judge_http(HTTP, cc.HttpOutcome(200), 204, 5.0).ok


def test_reasons_name_the_layer_within_the_first_bytes():
    """pacemaker-execd keeps 128 bytes: the layer must come first."""
    long_url = cc.parse_http("http://10.0.0.5/" + "a" * 200)
    reason = cc.judge_http(long_url, cc.HttpOutcome(503), 200, 5.0).reason
    assert reason.startswith("HTTP 503: ")
