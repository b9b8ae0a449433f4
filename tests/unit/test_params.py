from __future__ import annotations

import pytest
from vmha.ocf.params import (
    Param,
    ParamError,
    Params,
    ParamType,
    parse_params,
    refuse_unsupported,
)

FLAG = Param("flag", ParamType.BOOLEAN, "s", "l", default=False)
FLAG_ON = Param("flag_on", ParamType.BOOLEAN, "s", "l", default=True)
COUNT = Param("count", ParamType.INTEGER, "s", "l", default=3, minimum=0, maximum=10)
FREE_INT = Param("free", ParamType.INTEGER, "s", "l", default=None)
MODE = Param("mode", ParamType.SELECT, "s", "l", default="fail", options=("fail", "degraded"))
NAME = Param("name", ParamType.STRING, "s", "l", default="dflt")


class TestBoolean:
    @pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "YES", "on", "On", "y", " true ", "ja"])
    def test_true_spellings(self, raw):
        assert FLAG.parse(raw) is True

    @pytest.mark.parametrize("raw", ["0", "false", "FALSE", "no", "No", "off", "OFF", "n", " no\n", "nein"])
    def test_false_spellings(self, raw):
        assert FLAG_ON.parse(raw) is False

    @pytest.mark.parametrize("raw", ["2", "truthy", "enable", "t", "-1", "yes please", "nope"])
    def test_garbage_is_refused_and_names_the_parameter(self, raw):
        with pytest.raises(ParamError, match=r"^parameter flag: "):
            FLAG.parse(raw)

    def test_empty_and_unset_give_the_default(self):
        assert FLAG_ON.parse("") is True
        assert FLAG_ON.parse(None) is True
        assert FLAG.parse("") is False


class TestInteger:
    @pytest.mark.parametrize(
        ("raw", "want"),
        [("5", 5), (" 5 ", 5), ("+7", 7), ("0", 0), ("10", 10), ("007", 7), ("5\n", 5)],
    )
    def test_valid(self, raw, want):
        value = COUNT.parse(raw)
        assert value == want and type(value) is int

    @pytest.mark.parametrize("raw", ["12abc", "abc", "1.5", "1e3", "0x10", "5 5", "1_000", "٣", "--1", "+"])
    def test_garbage_is_refused(self, raw):
        with pytest.raises(ParamError, match=r"^parameter count: expected an integer"):
            COUNT.parse(raw)

    def test_below_minimum(self):
        with pytest.raises(ParamError, match="below the minimum 0"):
            COUNT.parse("-1")

    def test_above_maximum(self):
        with pytest.raises(ParamError, match="above the maximum 10"):
            COUNT.parse("11")

    def test_negative_allowed_without_bounds(self):
        assert FREE_INT.parse("-42") == -42

    def test_empty_gives_default(self):
        assert COUNT.parse("") == 3
        assert FREE_INT.parse(None) is None


class TestSelect:
    def test_each_option(self):
        assert MODE.parse("fail") == "fail"
        assert MODE.parse("degraded") == "degraded"

    @pytest.mark.parametrize("raw", ["FAIL", "other", "fail,degraded", "deg"])
    def test_other_values_are_refused(self, raw):
        with pytest.raises(ParamError, match="is not one of fail, degraded"):
            MODE.parse(raw)

    def test_empty_gives_default(self):
        assert MODE.parse("") == "fail"


class TestString:
    def test_kept_verbatim(self):
        assert NAME.parse("  a b ") == "  a b "

    def test_empty_gives_default(self):
        assert NAME.parse("") == "dflt"


class TestCheck:
    def _param(self, seen, **kw):
        def check(value):
            seen.append(value)
            return "must be even" if value % 2 else None

        return Param("even", ParamType.INTEGER, "s", "l", check=check, **kw)

    def test_check_gets_the_typed_value(self):
        seen = []
        assert self._param(seen).parse("4") == 4
        assert seen == [4]

    def test_check_refusal_names_the_parameter(self):
        with pytest.raises(ParamError, match=r"^parameter even: must be even$"):
            self._param([]).parse("3")

    def test_check_not_run_for_default(self):
        seen = []
        assert self._param(seen, default=7).parse("") == 7
        assert seen == []

    def test_check_not_run_when_type_is_wrong(self):
        seen = []
        with pytest.raises(ParamError, match="expected an integer"):
            self._param(seen).parse("x")
        assert seen == []


DECLARED = (FLAG, COUNT, MODE, NAME)


class TestParseParams:
    def test_values_typed_and_defaults_filled(self):
        parsed = parse_params(DECLARED, {"OCF_RESKEY_flag": "yes", "OCF_RESKEY_count": "7"})
        assert parsed.errors == () and parsed.unknown == ()
        assert dict(parsed.params) == {"flag": True, "count": 7, "mode": "fail", "name": "dflt"}

    def test_errors_collected_and_bad_values_fall_back_to_default(self):
        parsed = parse_params(
            DECLARED,
            {"OCF_RESKEY_flag": "maybe", "OCF_RESKEY_count": "12abc", "OCF_RESKEY_mode": "x", "OCF_RESKEY_name": "ok"},
        )
        assert len(parsed.errors) == 3
        assert {e.split(":")[0] for e in parsed.errors} == {"parameter flag", "parameter count", "parameter mode"}
        assert parsed.params["flag"] is False
        assert parsed.params["count"] == 3
        assert parsed.params["mode"] == "fail"
        assert parsed.params["name"] == "ok"

    def test_unknown_reskeys_reported_sorted_but_pacemaker_keys_ignored(self):
        env = {
            "OCF_RESKEY_zzz": "1",
            "OCF_RESKEY_aaa": "",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": "0",
            "OCF_RESKEY_crm_feature_set": "3.17.4",
            "OCF_RESOURCE_INSTANCE": "vm1",
            "OCF_CHECK_LEVEL": "10",
            "HA_RSCTMP": "/run/resource-agents",
        }
        assert parse_params(DECLARED, env).unknown == ("aaa", "zzz")

    def test_parameter_names_are_case_sensitive(self):
        parsed = parse_params(DECLARED, {"OCF_RESKEY_FLAG": "yes"})
        assert parsed.unknown == ("FLAG",)
        assert parsed.params["flag"] is False

    def test_empty_env(self):
        parsed = parse_params(DECLARED, {})
        assert parsed.errors == () and parsed.unknown == ()
        assert not any(parsed.params.is_set(p.name) for p in DECLARED)


class TestParamsAccessors:
    def _params(self, env):
        return parse_params(DECLARED + (FREE_INT,), env).params

    def test_is_set_only_for_non_empty_user_values(self):
        p = self._params({"OCF_RESKEY_count": "3", "OCF_RESKEY_name": ""})
        assert p.is_set("count") is True  # set even though equal to the default
        assert p.is_set("name") is False
        assert p.is_set("flag") is False

    def test_is_set_of_undeclared_raises(self):
        with pytest.raises(KeyError):
            self._params({}).is_set("nope")

    def test_getitem_of_undeclared_raises(self):
        with pytest.raises(KeyError):
            self._params({})["nope"]

    def test_text(self):
        p = self._params({"OCF_RESKEY_count": "4"})
        assert p.text("count") == "4"
        assert p.text("free") == ""  # None default
        assert p.text("name") == "dflt"

    def test_integer(self):
        p = self._params({"OCF_RESKEY_count": "4"})
        assert p.integer("count") == 4
        with pytest.raises(TypeError):
            p.integer("flag")  # a bool is not an integer here
        with pytest.raises(TypeError):
            p.integer("name")
        with pytest.raises(TypeError):
            p.integer("free")  # None

    def test_flag(self):
        p = self._params({"OCF_RESKEY_flag": "on"})
        assert p.flag("flag") is True
        with pytest.raises(TypeError):
            p.flag("count")

    def test_mapping_protocol(self):
        p = Params({"a": 1, "b": None}, explicit=["a"])
        assert sorted(p) == ["a", "b"]
        assert len(p) == 2
        assert p.is_set("a") and not p.is_set("b")


UNSUPPORTED = Param("copyindirs", ParamType.STRING, "s", "l", default="", unsupported="needs libguestfs")
UNSUPPORTED_FLAG = Param("old", ParamType.BOOLEAN, "s", "l", default=False, unsupported="gone")


class TestRefuseUnsupported:
    def test_unset_is_fine(self):
        params = parse_params((UNSUPPORTED, UNSUPPORTED_FLAG), {}).params
        assert refuse_unsupported((UNSUPPORTED, UNSUPPORTED_FLAG), params) == []

    def test_explicit_default_is_fine(self):
        params = parse_params((UNSUPPORTED_FLAG,), {"OCF_RESKEY_old": "false"}).params
        assert refuse_unsupported((UNSUPPORTED_FLAG,), params) == []

    def test_non_default_is_refused_with_reason(self):
        declared = (UNSUPPORTED, UNSUPPORTED_FLAG, NAME)
        params = parse_params(
            declared, {"OCF_RESKEY_copyindirs": "/etc", "OCF_RESKEY_old": "yes", "OCF_RESKEY_name": "x"}
        ).params
        reasons = refuse_unsupported(declared, params)
        assert len(reasons) == 2
        assert reasons[0].startswith("parameter copyindirs is not supported by vmha")
        assert "needs libguestfs" in reasons[0]
        assert reasons[1].startswith("parameter old ")
