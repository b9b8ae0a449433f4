from __future__ import annotations

import pytest
from vmha.ocf.context import DEFAULT_RSCTMP, DEFAULT_TIMEOUT_MS, OcfContext
from vmha.ocf.params import Param, ParamType

DECLARED = (Param("count", ParamType.INTEGER, "s", "l", default=1, minimum=0),)


def ctx(action="monitor", **env):
    return OcfContext.from_env(action, env, DECLARED)


class TestProbe:
    def test_monitor_without_interval_is_a_probe(self):
        assert ctx("monitor").is_probe

    def test_monitor_with_interval_zero_is_a_probe(self):
        assert ctx("monitor", OCF_RESKEY_CRM_meta_interval="0").is_probe

    def test_recurring_monitor_is_not_a_probe(self):
        assert not ctx("monitor", OCF_RESKEY_CRM_meta_interval="10000").is_probe

    @pytest.mark.parametrize("action", ["start", "stop", "status", "migrate_to", "validate-all"])
    def test_other_actions_are_never_probes(self, action):
        assert not ctx(action, OCF_RESKEY_CRM_meta_interval="0").is_probe


class TestTimeoutAndInterval:
    def test_values_in_ms(self):
        c = ctx(OCF_RESKEY_CRM_meta_timeout="90000", OCF_RESKEY_CRM_meta_interval="10000")
        assert (c.timeout_ms, c.interval_ms) == (90000, 10000)
        assert c.timeout_s == 90.0

    @pytest.mark.parametrize("raw", [None, "", "abc", "20s", "1.5", "0"])
    def test_missing_garbage_or_zero_timeout_is_the_default(self, raw):
        env = {} if raw is None else {"OCF_RESKEY_CRM_meta_timeout": raw}
        assert ctx(**env).timeout_ms == DEFAULT_TIMEOUT_MS == 20000

    @pytest.mark.parametrize("raw", ["", "abc", "10s"])
    def test_garbage_interval_is_zero_so_monitor_counts_as_probe(self, raw):
        c = ctx(OCF_RESKEY_CRM_meta_interval=raw)
        assert c.interval_ms == 0 and c.is_probe

    def test_deadline_is_timeout_after_start(self):
        c = ctx(OCF_RESKEY_CRM_meta_timeout="5000")
        assert c.deadline().expires_at == pytest.approx(c.started_at + 5.0)
        assert 4.0 < c.deadline().remaining() <= 5.0


class TestIdentity:
    def test_instance_and_resource_id(self):
        c = ctx(OCF_RESOURCE_INSTANCE="vm1")
        assert (c.instance, c.resource_id) == ("vm1", "vm1")

    def test_clone_suffix_stripped(self):
        c = ctx(OCF_RESOURCE_INSTANCE="health:1")
        assert (c.instance, c.resource_id) == ("health:1", "health")

    def test_missing_instance(self):
        assert ctx().instance == "undef"
        assert ctx(OCF_RESOURCE_INSTANCE="").instance == "undef"


class TestEnvironment:
    def test_rsctmp_default_and_override(self):
        assert ctx().rsc_tmp == DEFAULT_RSCTMP == "/run/resource-agents"
        assert ctx(HA_RSCTMP="").rsc_tmp == DEFAULT_RSCTMP
        assert ctx(HA_RSCTMP="/tmp/x").rsc_tmp == "/tmp/x"

    @pytest.mark.parametrize(("raw", "want"), [(None, 0), ("10", 10), ("20", 20), ("deep", 0), ("", 0)])
    def test_check_level(self, raw, want):
        env = {} if raw is None else {"OCF_CHECK_LEVEL": raw}
        assert ctx(**env).check_level == want

    def test_meta_and_migration_fields(self):
        c = ctx(
            "migrate_to",
            OCF_RESKEY_CRM_meta_migrate_target="ha2",
            OCF_RESKEY_CRM_meta_migrate_source="ha1",
            OCF_RESKEY_CRM_meta_on_node="ha1",
            OCF_RESKEY_CRM_meta_clone_max="2",
        )
        assert (c.migrate_target, c.migrate_source, c.on_node) == ("ha2", "ha1", "ha1")
        assert c.meta["clone_max"] == "2"

    def test_params_parsed_with_errors_and_unknown(self):
        c = ctx("start", OCF_RESKEY_count="-3", OCF_RESKEY_bogus="1", OCF_RESKEY_CRM_meta_timeout="1000")
        assert c.params["count"] == 1  # fell back to the default
        assert len(c.param_errors) == 1 and "count" in c.param_errors[0]
        assert c.unknown_params == ("bogus",)
