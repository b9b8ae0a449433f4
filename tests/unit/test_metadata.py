from __future__ import annotations

import pytest
from lxml import etree
from vmha.ocf.metadata import ADVANCED_PREFIX, DOCTYPE, build
from vmha.ocf.params import Deprecation, Param, ParamType
from vmha.ocf.spec import Action, AgentSpec

RNG = "/usr/share/pcs/data/ocf-1.1.rng"
DTD = "/usr/share/resource-agents/ra-api-1.dtd"

NASTY = "a <b> & \"c\" 'd' ]]> </longdesc>"

PARAMS = (
    Param("config", ParamType.STRING, "Config <file>", NASTY, required=True, unique_group="config"),
    Param("on", ParamType.BOOLEAN, "On", "on", default=True, reloadable=True),
    Param("off", ParamType.BOOLEAN, "Off", "off", default=False),
    Param("n", ParamType.INTEGER, "N", "n", default=5, advanced=True),
    Param("already", ParamType.INTEGER, ADVANCED_PREFIX + "Already", "x", default=0, advanced=True),
    Param("mode", ParamType.SELECT, "Mode", "m", default="fail", options=("fail", "degraded")),
    Param("nodefault", ParamType.STRING, "No default", "none"),
    Param("empty", ParamType.STRING, "Empty default", "empty", default=""),
    Param("old", ParamType.STRING, "Old", "old", deprecated=Deprecation("use config", ("config",))),
    Param("gone", ParamType.STRING, "Gone", "gone.", default="", unsupported="needs libguestfs"),
)

SPEC = AgentSpec(
    name="Tiny",
    version="0.1",
    shortdesc="tiny & <small>",
    longdesc=NASTY,
    params=PARAMS,
    actions=(
        Action("start", 90),
        Action("monitor", 30, interval_s=10, depth=0),
        Action("monitor", 60, interval_s=60, depth=10, role="Promoted"),
        Action("status", 30, advertise=False),
        Action("reload-agent", 10),
    ),
)


@pytest.fixture(scope="module")
def body():
    return build(SPEC)


@pytest.fixture(scope="module")
def root(body):
    return etree.fromstring(body)


def param(root, name):
    (node,) = root.xpath(f"/resource-agent/parameters/parameter[@name='{name}']")
    return node


def test_valid_against_pcs_rng(body):
    schema = etree.RelaxNG(etree.parse(RNG))
    doc = etree.fromstring(body)
    assert schema.validate(doc), schema.error_log


def test_valid_against_resource_agents_dtd(body):
    dtd = etree.DTD(DTD)
    assert dtd.validate(etree.fromstring(body)), dtd.error_log.filter_from_errors()


def test_header(body, root):
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n" + DOCTYPE.encode() + b"\n")
    assert root.tag == "resource-agent"
    assert (root.get("name"), root.get("version")) == ("Tiny", "0.1")
    assert root.findtext("version") == "1.1"


def test_escaping_round_trips(body, root):
    assert root.findtext("longdesc") == NASTY
    assert root.findtext("shortdesc") == "tiny & <small>"
    assert param(root, "config").findtext("longdesc") == NASTY
    assert b"<b>" not in body  # escaped, not markup


def test_attributes(root):
    # ra-api-1.dtd has no reloadable or unique-group: a group of one is OCF 1.0's unique="1".
    config = param(root, "config")
    assert dict(config.attrib) == {"name": "config", "required": "1", "unique": "1"}
    on = param(root, "on")
    assert dict(on.attrib) == {"name": "on", "required": "0", "unique": "0"}


def test_unique_group_of_several_is_refused():
    group = (
        Param("a", ParamType.STRING, "A", "a", unique_group="g"),
        Param("b", ParamType.STRING, "B", "b", unique_group="g"),
    )
    with pytest.raises(ValueError, match="unique-group 'g'"):
        build(SPEC._replace(params=group))


def test_action_outside_the_dtd_is_refused():
    with pytest.raises(ValueError, match="'frobnicate'"):
        build(SPEC._replace(actions=(Action("frobnicate", 10),)))


@pytest.mark.parametrize(
    ("name", "type_", "default"),
    [
        ("on", "boolean", "true"),
        ("off", "boolean", "false"),
        ("n", "integer", "5"),
        ("mode", "string", "fail"),  # select: not in ra-api-1.dtd
        ("nodefault", "string", None),
        ("empty", "string", ""),
    ],
)
def test_content_type_and_default(root, name, type_, default):
    content = param(root, name).find("content")
    assert content.get("type") == type_
    assert content.get("default") == default


def test_select_options_are_said_in_longdesc(root):
    node = param(root, "mode")
    assert node.find("content/option") is None
    assert node.findtext("longdesc") == "m Allowed values: fail, degraded."


def test_advanced_prefix_added_once(root):
    assert param(root, "n").findtext("shortdesc") == ADVANCED_PREFIX + "N"
    assert param(root, "already").findtext("shortdesc") == ADVANCED_PREFIX + "Already"
    assert param(root, "on").findtext("shortdesc") == "On"


def test_deprecated_is_said_in_longdesc(root):
    old = param(root, "old")
    assert old.find("deprecated") is None  # not in ra-api-1.dtd
    assert old.findtext("longdesc") == "old Deprecated: use config (replaced with config)."
    assert "Deprecated" not in param(root, "config").findtext("longdesc")


def test_unsupported_is_said_in_longdesc(root):
    text = param(root, "gone").findtext("longdesc")
    assert text.startswith("gone.")
    assert "Not supported by vmha" in text and "needs libguestfs" in text


def test_actions(root):
    actions = [dict(a.attrib) for a in root.iterfind("actions/action")]
    assert actions == [
        {"name": "start", "timeout": "90s"},
        {"name": "monitor", "timeout": "30s", "interval": "10s", "depth": "0"},
        {"name": "monitor", "timeout": "60s", "interval": "60s", "depth": "10", "role": "Promoted"},
        {"name": "meta-data", "timeout": "5s"},
    ]


def test_reload_agent_not_advertised(body):
    # Not an action name of ra-api-1.dtd; the agents still answer it.
    assert b"reload-agent" not in body


def test_hidden_action_not_advertised(body):
    assert b'"status"' not in body


def test_parameters_in_declared_order(root):
    assert [p.get("name") for p in root.iterfind("parameters/parameter")] == [p.name for p in PARAMS]


def test_virtual_machine_metadata_is_valid():
    from vmha.virtual_machine.agent import SPEC as VM_SPEC

    doc = etree.fromstring(build(VM_SPEC))
    schema = etree.RelaxNG(etree.parse(RNG))
    assert schema.validate(doc), schema.error_log
    dtd = etree.DTD(DTD)
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()
