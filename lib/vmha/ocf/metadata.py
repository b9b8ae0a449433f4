"""OCF metadata for an ``AgentSpec``, built with lxml (so every value is escaped).

The result carries the document type resource-agents' own agents carry
(``<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">``) and validates against both
``/usr/share/resource-agents/ra-api-1.dtd`` (what ``ocf-tester`` checks, with
``xmllint --valid``) and pcs's ``/usr/share/pcs/data/ocf-1.1.rng``; the golden copies in
``tests/data/metadata`` catch unintended changes.

ra-api-1.dtd predates OCF 1.1, so what it has no place for is said another way or left out:

- ``select`` parameters are ``type="string"``; their allowed values go into the longdesc
  (the agent still refuses any other value);
- a ``deprecated`` parameter says so, and names its replacement, in its longdesc;
- a ``unique-group`` of one parameter is that parameter's ``unique="1"`` (OCF 1.0's way);
  a group of several cannot be said and is refused;
- ``reloadable`` has no attribute, and the ``reload-agent`` action is not in the DTD's list
  of action names, so neither is advertised: Pacemaker (which only uses reload-agent from
  an agent claiming OCF 1.1) restarts the resource when a parameter changes. The agents
  still answer ``reload-agent`` when asked.
"""

from __future__ import annotations

from vmha.ocf.params import Param, ParamType, Value
from vmha.ocf.spec import AgentSpec

OCF_VERSION = "1.1"
DOCTYPE = '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">'
# pcs shows a parameter as advanced (only with --full) when its shortdesc starts so.
ADVANCED_PREFIX = "Advanced use only: "
# The action names ra-api-1.dtd allows (its ATTLIST of <action name>).
DTD_ACTIONS = frozenset(
    (
        "start stop recover monitor restart migrate_to migrate_from promote demote notify status reload "
        "meta-data usage methods validate-all"
    ).split()
)
# Accepted by the agents but not advertised: the DTD has no such name (see the module docstring).
UNADVERTISED = frozenset({"reload-agent"})


def _default_text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _longdesc(param: Param) -> str:
    text = param.longdesc
    if param.type is ParamType.SELECT:
        text = f"{text} Allowed values: {', '.join(param.options)}."
    if param.deprecated is not None:
        text = f"{text} Deprecated: {param.deprecated.desc}"
        if param.deprecated.replaced_with:
            text = f"{text} (replaced with {', '.join(param.deprecated.replaced_with)})."
    if param.unsupported:
        text = f"{text} Not supported by vmha ({param.unsupported}); setting it is refused."
    return text


def _unique(spec: AgentSpec, param: Param) -> str:
    if not param.unique_group:
        return "0"
    members = [p.name for p in spec.params if p.unique_group == param.unique_group]
    if len(members) > 1:
        raise ValueError(
            f"unique-group {param.unique_group!r} of {members}: ra-api-1.dtd has unique per parameter only"
        )
    return "1"


def build(spec: AgentSpec) -> bytes:
    from lxml import etree  # lazy: only meta-data needs it

    root = etree.Element("resource-agent", name=spec.name, version=spec.version)
    etree.SubElement(root, "version").text = OCF_VERSION
    etree.SubElement(root, "longdesc", lang="en").text = spec.longdesc
    etree.SubElement(root, "shortdesc", lang="en").text = spec.shortdesc

    params = etree.SubElement(root, "parameters")
    for param in spec.params:
        attrs = {"name": param.name, "required": "1" if param.required else "0", "unique": _unique(spec, param)}
        node = etree.SubElement(params, "parameter", attrs)
        etree.SubElement(node, "longdesc", lang="en").text = _longdesc(param)
        short = param.shortdesc
        if param.advanced and not short.startswith(ADVANCED_PREFIX):
            short = ADVANCED_PREFIX + short
        etree.SubElement(node, "shortdesc", lang="en").text = short
        type_ = ParamType.STRING if param.type is ParamType.SELECT else param.type
        content = etree.SubElement(node, "content", type=type_.value)
        default = _default_text(param.default)
        if default is not None:
            content.set("default", default)

    actions = etree.SubElement(root, "actions")
    for action in spec.actions:
        if not action.advertise or action.name in UNADVERTISED:
            continue
        if action.name not in DTD_ACTIONS:
            raise ValueError(f"action {action.name!r} is not an action name of ra-api-1.dtd")
        attrs = {"name": action.name, "timeout": f"{action.timeout_s}s"}
        if action.interval_s is not None:
            attrs["interval"] = f"{action.interval_s}s"
        if action.depth is not None:
            attrs["depth"] = str(action.depth)
        if action.role is not None:
            attrs["role"] = action.role
        etree.SubElement(actions, "action", attrs)
    for name, timeout in (("meta-data", 5),):
        etree.SubElement(actions, "action", name=name, timeout=f"{timeout}s")

    body: bytes = etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True, doctype=DOCTYPE)
    return body
