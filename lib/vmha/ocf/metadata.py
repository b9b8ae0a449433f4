"""OCF 1.1 metadata for an ``AgentSpec``, built with lxml (so every value is escaped).

The result validates against pcs's ``/usr/share/pcs/data/ocf-1.1.rng``; the golden copies
in ``tests/data/metadata`` catch unintended changes.
"""

from __future__ import annotations

from vmha.ocf.params import ParamType, Value
from vmha.ocf.spec import AgentSpec

OCF_VERSION = "1.1"
# pcs shows a parameter as advanced (only with --full) when its shortdesc starts so.
ADVANCED_PREFIX = "Advanced use only: "


def _default_text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build(spec: AgentSpec) -> bytes:
    from lxml import etree  # lazy: only meta-data needs it

    root = etree.Element("resource-agent", name=spec.name, version=spec.version)
    etree.SubElement(root, "version").text = OCF_VERSION
    etree.SubElement(root, "longdesc", lang="en").text = spec.longdesc
    etree.SubElement(root, "shortdesc", lang="en").text = spec.shortdesc

    params = etree.SubElement(root, "parameters")
    for param in spec.params:
        attrs = {
            "name": param.name,
            "required": "1" if param.required else "0",
            "reloadable": "1" if param.reloadable else "0",
        }
        if param.unique_group:
            attrs["unique-group"] = param.unique_group
        node = etree.SubElement(params, "parameter", attrs)
        longdesc = param.longdesc
        if param.unsupported:
            longdesc = f"{longdesc} Not supported by vmha ({param.unsupported}); setting it is refused."
        etree.SubElement(node, "longdesc", lang="en").text = longdesc
        short = param.shortdesc
        if param.advanced and not short.startswith(ADVANCED_PREFIX):
            short = ADVANCED_PREFIX + short
        etree.SubElement(node, "shortdesc", lang="en").text = short
        if param.deprecated is not None:
            dep = etree.SubElement(node, "deprecated")
            for replacement in param.deprecated.replaced_with:
                etree.SubElement(dep, "replaced-with", name=replacement)
            etree.SubElement(dep, "desc", lang="en").text = param.deprecated.desc
        content = etree.SubElement(node, "content", type=param.type.value)
        default = _default_text(param.default)
        if default is not None:
            content.set("default", default)
        if param.type is ParamType.SELECT:
            for option in param.options:
                etree.SubElement(content, "option", value=option)

    actions = etree.SubElement(root, "actions")
    for action in spec.actions:
        if not action.advertise:
            continue
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

    body: bytes = etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True)
    return body
