from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time

import pytest
from vmha.ocf import codes
from vmha.ocf.codes import OcfRc
from vmha.ocf.dispatch import EXIT_REASON_PREFIX, one_line, run, watchdog_margin
from vmha.ocf.params import Param, ParamType
from vmha.ocf.spec import Action, AgentSpec

PARAMS = (
    Param("count", ParamType.INTEGER, "Count", "How many.", default=2, minimum=0),
    Param("legacy", ParamType.STRING, "Legacy", "Old.", default="", unsupported="use count"),
)

LONG = {"OCF_RESKEY_CRM_meta_timeout": "60000"}  # the watchdog must never fire in-process


class Recorder:
    def __init__(self):
        self.calls = []
        self.behaviour = None

    def __call__(self, ctx, log):
        self.calls.append(ctx)
        if self.behaviour is not None:
            self.behaviour(ctx, log)


def make_spec(recorder, *extra):
    return AgentSpec(
        name="Tiny",
        version="0.1",
        shortdesc="tiny",
        longdesc="a tiny agent",
        params=PARAMS,
        actions=(
            Action("start", 20, recorder),
            Action("stop", 20, recorder),
            Action("monitor", 20, recorder, interval_s=10),
            Action("validate-all", 5, recorder),
            Action("status", 20, recorder, advertise=False),
            Action("notify", 5, None),
            *extra,
        ),
    )


def dispatch(action, env=None, behaviour=None, argv=None):
    rec = Recorder()
    rec.behaviour = behaviour
    out, err = io.StringIO(), io.StringIO()
    full_env = dict(LONG)
    full_env.update(env or {})
    rc = run(make_spec(rec), argv if argv is not None else ["Tiny", action], full_env, out, err)
    return rc, out.getvalue(), err.getvalue(), rec


def reasons(stderr, prefix=EXIT_REASON_PREFIX):
    return [line[len(prefix) :] for line in stderr.splitlines() if line.startswith(prefix)]


def raising(exc):
    def behaviour(ctx, log):
        raise exc

    return behaviour


ERROR_CLASSES = [
    (codes.GenericError, 1),
    (codes.InvalidArgs, 2),
    (codes.Unimplemented, 3),
    (codes.InsufficientPrivilege, 4),
    (codes.NotInstalled, 5),
    (codes.NotConfigured, 6),
    (codes.NotRunning, 7),
    (codes.RunningPromoted, 8),
    (codes.FailedPromoted, 9),
    (codes.Degraded, 190),
    (codes.DegradedPromoted, 191),
]


class TestOutcomes:
    def test_success(self):
        rc, _out, err, rec = dispatch("start")
        assert rc == 0
        assert len(rec.calls) == 1
        assert reasons(err) == []

    @pytest.mark.parametrize(("cls", "want"), ERROR_CLASSES)
    def test_each_error_class_exits_with_its_code_and_one_reason(self, cls, want):
        rc, _out, err, _rec = dispatch("start", behaviour=raising(cls("the reason")))
        assert rc == want
        assert reasons(err) == ["the reason"]

    def test_error_for_maps_back_to_every_class(self):
        for cls, rc in ERROR_CLASSES:
            exc = codes.error_for(OcfRc(rc), "x")
            assert type(exc) is cls and exc.rc == rc

    def test_probe_not_running_has_no_reason(self):
        rc, _out, err, _rec = dispatch("monitor", behaviour=raising(codes.NotRunning("domain vm1 is shut off")))
        assert rc == 7
        assert reasons(err) == []

    def test_recurring_monitor_not_running_has_a_reason(self):
        rc, _out, err, _rec = dispatch(
            "monitor",
            env={"OCF_RESKEY_CRM_meta_interval": "10000"},
            behaviour=raising(codes.NotRunning("domain vm1 is shut off")),
        )
        assert rc == 7
        assert reasons(err) == ["domain vm1 is shut off"]

    def test_empty_reason_writes_no_line(self):
        rc, _out, err, _rec = dispatch("start", behaviour=raising(codes.GenericError("")))
        assert rc == 1
        assert reasons(err) == []

    def test_prefix_from_environment(self):
        rc, _out, err, _rec = dispatch(
            "start", env={"OCF_EXIT_REASON_PREFIX": "XREASON:"}, behaviour=raising(codes.NotInstalled("no qemu"))
        )
        assert rc == 5
        assert reasons(err, "XREASON:") == ["no qemu"]
        assert reasons(err) == []

    def test_multi_line_reason_becomes_one_line(self):
        rc, _out, err, _rec = dispatch("start", behaviour=raising(codes.GenericError("first\nsecond\r\n\tthird  ")))
        assert rc == 1
        assert reasons(err) == ["first second third"]

    def test_unexpected_exception_is_one_line_without_traceback(self):
        def boom(ctx, log):
            raise RuntimeError("kaputt\nsecond line")

        rc, out, err, _rec = dispatch("start", behaviour=boom)
        assert rc == 1
        got = reasons(err)
        assert len(got) == 1
        assert "RuntimeError" in got[0] and "kaputt second line" in got[0]
        assert "Traceback" not in err and "Traceback" not in out
        assert 'File "' not in err

    def test_reason_truncated_and_cleaned(self):
        assert one_line("a\x1b[31mb") == "a[31mb"
        long = one_line("x" * 1000)
        assert len(long) <= 480 and long.endswith("...")
        assert one_line("  spaced\n\n out ") == "spaced out"

    @pytest.mark.parametrize("text", ["x" * 300, "\u00e9" * 100], ids=["ascii", "two-byte"])
    def test_reason_fits_pacemakers_limit(self, text):
        _rc, _out, err, _rec = dispatch("start", behaviour=raising(codes.GenericError(text)))
        (reason,) = reasons(err)
        assert len(reason.encode("utf-8")) <= 128
        assert reason.endswith("...")


class TestActions:
    def test_no_action_is_err_args(self):
        rc, out, err, rec = dispatch(None, argv=["Tiny"])
        assert rc == 2
        assert "usage:" in out
        assert len(reasons(err)) == 1
        assert rec.calls == []

    def test_empty_action_is_err_args(self):
        rc, _out, _err, _rec = dispatch(None, argv=["Tiny", ""])
        assert rc == 2

    @pytest.mark.parametrize("action", ["promote", "START", "sta", "start ", "meta_data"])
    def test_unknown_action_is_unimplemented(self, action):
        rc, _out, err, rec = dispatch(action)
        assert rc == 3
        assert len(reasons(err)) == 1
        assert rec.calls == []

    def test_action_without_handler_is_unimplemented(self):
        rc, _out, _err, _rec = dispatch("notify")
        assert rc == 3

    def test_hidden_action_still_runs(self):
        rc, _out, _err, rec = dispatch("status")
        assert rc == 0 and len(rec.calls) == 1

    def test_meta_data(self):
        rc, out, err, rec = dispatch("meta-data")
        assert rc == 0
        assert out.startswith("<?xml") and '<resource-agent name="Tiny"' in out
        assert reasons(err) == [] and rec.calls == []

    @pytest.mark.parametrize("action", ["usage", "help", "--help"])
    def test_usage(self, action):
        rc, out, _err, rec = dispatch(action)
        assert rc == 0
        assert out.strip() == "usage: Tiny {start|stop|monitor|validate-all|notify|meta-data|usage}"
        assert rec.calls == []

    def test_handler_sees_its_context(self):
        _rc, _out, _err, rec = dispatch("start", env={"OCF_RESOURCE_INSTANCE": "vm1:0", "OCF_RESKEY_count": "5"})
        ctx = rec.calls[0]
        assert (ctx.action, ctx.resource_id, ctx.params["count"]) == ("start", "vm1", 5)


class TestStrictness:
    @pytest.mark.parametrize("action", ["start", "validate-all"])
    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            ({"OCF_RESKEY_count": "12abc"}, "count"),
            ({"OCF_RESKEY_count": "-1"}, "count"),
            ({"OCF_RESKEY_legacy": "x"}, "legacy"),
            ({"OCF_RESKEY_bogus": "1"}, "bogus"),
        ],
    )
    def test_strict_actions_refuse(self, action, env, needle):
        rc, _out, err, rec = dispatch(action, env=env)
        assert rc == 6
        assert rec.calls == []
        (reason,) = reasons(err)
        assert needle in reason

    def test_all_problems_in_one_reason(self):
        rc, _out, err, _rec = dispatch("start", env={"OCF_RESKEY_count": "x", "OCF_RESKEY_bogus": "1"})
        assert rc == 6
        (reason,) = reasons(err)
        assert "count" in reason and "bogus" in reason

    def test_pacemaker_meta_is_not_an_unknown_parameter(self):
        env = {"OCF_RESKEY_CRM_meta_interval": "0", "OCF_RESKEY_crm_feature_set": "3.19.0"}
        rc, _out, _err, rec = dispatch("start", env=env)
        assert rc == 0 and len(rec.calls) == 1

    @pytest.mark.parametrize("action", ["stop", "monitor"])
    def test_non_strict_actions_run_with_defaults(self, action):
        env = {"OCF_RESKEY_count": "12abc", "OCF_RESKEY_bogus": "1", "OCF_RESKEY_legacy": "x"}
        rc, _out, err, rec = dispatch(action, env=env)
        assert rc == 0
        assert rec.calls[0].params["count"] == 2
        assert reasons(err) == []
        assert "WARNING" in err and "count" in err  # the operator still learns about it


class TestRequired:
    REQUIRED = (Param("config", ParamType.STRING, "Config", "The config.", required=True),)

    def _run(self, action, env):
        rec = Recorder()
        spec = AgentSpec("Tiny", "0.1", "s", "l", self.REQUIRED, (Action("start", 20, rec), Action("stop", 20, rec)))
        err = io.StringIO()
        rc = run(spec, ["Tiny", action], {**LONG, **env}, io.StringIO(), err)
        return rc, err.getvalue(), rec

    def test_given(self):
        rc, _err, rec = self._run("start", {"OCF_RESKEY_config": "/etc/vm1.xml"})
        assert rc == 0 and len(rec.calls) == 1

    def test_stop_runs_without_it(self):
        rc, _err, rec = self._run("stop", {})
        assert rc == 0 and len(rec.calls) == 1

    @pytest.mark.parametrize("env", [{}, {"OCF_RESKEY_config": ""}])
    def test_strict_action_refuses_a_missing_required_parameter(self, env):
        rc, err, rec = self._run("start", env)
        assert rec.calls == []
        assert rc == 6
        (reason,) = reasons(err)
        assert "config" in reason


class TestWatchdog:
    @pytest.mark.parametrize(("timeout", "margin"), [(0.5, 0.2), (1.5, 0.2), (10, 1.0), (20, 2.0), (600, 2.0)])
    def test_margin(self, timeout, margin):
        assert watchdog_margin(timeout) == pytest.approx(margin)

    SCRIPT = textwrap.dedent(
        """
        import sys, time
        from vmha.ocf.dispatch import run
        from vmha.ocf.spec import Action, AgentSpec

        def slow(ctx, log):
            time.sleep(float(sys.argv[2]))

        spec = AgentSpec("Tiny", "0.1", "s", "l", (), (Action("start", 20, slow), Action("monitor", 20, slow)))
        env = {"OCF_RESKEY_CRM_meta_timeout": sys.argv[3]}
        rc = run(spec, ["Tiny", sys.argv[1]], env)
        print("returned", rc, flush=True)
        time.sleep(float(sys.argv[4]))
        print("still alive", flush=True)
        sys.exit(rc)
        """
    )

    def _run(self, env, action, sleep_s, timeout_ms, after_s):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", self.SCRIPT, action, str(sleep_s), str(timeout_ms), str(after_s)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc, time.monotonic() - started

    def test_hung_handler_ends_the_process_before_the_timeout(self, python_child_env):
        proc, elapsed = self._run(python_child_env, "start", 30, 1500, 0)
        assert proc.returncode == 1
        assert elapsed < 3.0, "the watchdog did not end the process in time"
        assert "returned" not in proc.stdout
        (reason,) = reasons(proc.stderr)
        assert reason.startswith("start did not finish within its 1.5s timeout")
        assert "Traceback" not in proc.stderr

    def test_hung_probe_is_named_a_probe(self, python_child_env):
        proc, elapsed = self._run(python_child_env, "monitor", 30, 500, 0)
        assert proc.returncode == 1 and elapsed < 2.5
        (reason,) = reasons(proc.stderr)
        assert reason.startswith("probe did not finish")

    def test_watchdog_disarmed_after_a_quick_handler(self, python_child_env):
        proc, _elapsed = self._run(python_child_env, "start", 0, 500, 0.8)
        assert proc.returncode == 0
        assert proc.stdout.split("\n")[:2] == ["returned 0", "still alive"]
        assert reasons(proc.stderr) == []


def test_a_note_from_a_successful_handler_is_the_one_exit_reason():
    import io

    from vmha.ocf import dispatch
    from vmha.ocf.spec import Action, AgentSpec

    spec = AgentSpec("Noted", "1", "s", "l", (), (Action("monitor", 5, lambda ctx, log: "red capped to yellow"),))
    err = io.StringIO()
    rc = dispatch.run(spec, ["Noted", "monitor"], {"OCF_RESKEY_CRM_meta_interval": "1000"}, io.StringIO(), err)
    assert rc == 0
    assert [line for line in err.getvalue().splitlines() if line.startswith("ocf-exit-reason:")] == [
        "ocf-exit-reason:red capped to yellow"
    ]
