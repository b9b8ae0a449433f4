from __future__ import annotations

import os

import pytest
from lxml import etree
from vmha.ocf.metadata import ADVANCED_PREFIX, build
from vmha.ocf.params import Deprecation, Param, ParamType
from vmha.ocf.spec import Action, AgentSpec

RNG = "/usr/share/pcs/data/ocf-1.1.rng"

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


@pytest.mark.skipif(not os.path.exists(RNG), reason="pcs's ocf-1.1.rng is not installed")
def test_valid_against_pcs_rng(body):
    schema = etree.RelaxNG(etree.parse(RNG))
    doc = etree.fromstring(body)
    assert schema.validate(doc), schema.error_log


def test_header(body, root):
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert root.tag == "resource-agent"
    assert (root.get("name"), root.get("version")) == ("Tiny", "0.1")
    assert root.findtext("version") == "1.1"


def test_escaping_round_trips(body, root):
    assert root.findtext("longdesc") == NASTY
    assert root.findtext("shortdesc") == "tiny & <small>"
    assert param(root, "config").findtext("longdesc") == NASTY
    assert b"<b>" not in body  # escaped, not markup


def test_attributes(root):
    config = param(root, "config")
    assert (config.get("required"), config.get("reloadable"), config.get("unique-group")) == ("1", "0", "config")
    on = param(root, "on")
    assert (on.get("required"), on.get("reloadable"), on.get("unique-group")) == ("0", "1", None)


@pytest.mark.parametrize(
    ("name", "type_", "default"),
    [
        ("on", "boolean", "true"),
        ("off", "boolean", "false"),
        ("n", "integer", "5"),
        ("mode", "select", "fail"),
        ("nodefault", "string", None),
        ("empty", "string", ""),
    ],
)
def test_content_type_and_default(root, name, type_, default):
    content = param(root, name).find("content")
    assert content.get("type") == type_
    assert content.get("default") == default


def test_select_options(root):
    options = [o.get("value") for o in param(root, "mode").iterfind("content/option")]
    assert options == ["fail", "degraded"]


def test_advanced_prefix_added_once(root):
    assert param(root, "n").findtext("shortdesc") == ADVANCED_PREFIX + "N"
    assert param(root, "already").findtext("shortdesc") == ADVANCED_PREFIX + "Already"
    assert param(root, "on").findtext("shortdesc") == "On"


def test_deprecated(root):
    dep = param(root, "old").find("deprecated")
    assert dep is not None
    assert [r.get("name") for r in dep.iterfind("replaced-with")] == ["config"]
    assert dep.findtext("desc") == "use config"
    assert param(root, "config").find("deprecated") is None


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
        {"name": "reload-agent", "timeout": "10s"},
        {"name": "meta-data", "timeout": "5s"},
    ]


def test_hidden_action_not_advertised(body):
    assert b'"status"' not in body


def test_parameters_in_declared_order(root):
    assert [p.get("name") for p in root.iterfind("parameters/parameter")] == [p.name for p in PARAMS]


@pytest.mark.skipif(not os.path.exists(RNG), reason="pcs's ocf-1.1.rng is not installed")
def test_virtual_machine_metadata_is_valid():
    from vmha.agents.virtual_machine import SPEC as VM_SPEC

    schema = etree.RelaxNG(etree.parse(RNG))
    assert schema.validate(etree.fromstring(build(VM_SPEC))), schema.error_log
