"""packaging/tools/manpage.py: groff that renders what the metadata says, whatever it says.

No root, no package: a fake agent prints metadata full of groff's special characters, and
the page is rendered with groff itself (warnings on) to check nothing is lost or obeyed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TOOLS = os.path.join(ROOT, "packaging", "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import manpage  # noqa: E402
import version  # noqa: E402

TRICKY = r"""<?xml version="1.0"?>
<!DOCTYPE resource-agent [<!ENTITY secret SYSTEM "file://@SECRET@">]>
<resource-agent name="Tricky" version="9.9">
  <version>1.1</version>
  <longdesc lang="en">.TH not a request
'also not a request. A back\slash, "quotes", --double-dash and &secret; here.

Second paragraph.</longdesc>
  <shortdesc lang="en">Tests escaping</shortdesc>
  <parameters>
    <parameter name="opt-name" required="1">
      <longdesc lang="en">.so /etc/passwd</longdesc>
      <shortdesc lang="en">An "option"</shortdesc>
      <content type="string"/>
    </parameter>
    <parameter name="mode" required="0" reloadable="1">
      <longdesc lang="en">Pick one.</longdesc>
      <shortdesc lang="en">Mode</shortdesc>
      <content type="select" default="a\b">
        <option value="a\b"/>
        <option value="-x"/>
      </content>
    </parameter>
  </parameters>
  <actions>
    <action name="start" timeout="20s"/>
    <action name="monitor" timeout="30s" interval="10s" depth="10"/>
    <action name="migrate_to" timeout="60s"/>
  </actions>
</resource-agent>
"""


@pytest.fixture
def fake_agent(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET-CONTENT\n")
    xml = tmp_path / "meta.xml"
    xml.write_text(TRICKY.replace("@SECRET@", str(secret)))
    agent = tmp_path / "Tricky"
    agent.write_text(f"#!/bin/sh\nexec cat {xml}\n")
    agent.chmod(0o755)
    return str(agent)


def render(page: str, tmp_path) -> str:
    src = tmp_path / "page.7"
    src.write_text(page)
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed")
    done = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-rLL=200n", "-P-cbou", str(src)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout  # -P-cbou: plain text, no bold/underline overstrikes or SGR codes


def test_page_renders_every_character(fake_agent, tmp_path):
    page = manpage.agent_page(manpage.read_metadata(fake_agent), ["Tricky", "Other"])
    text = render(page, tmp_path)
    for expected in (
        ".TH not a request",
        "'also not a request.",
        r"A back\slash",
        '"quotes"',
        "--double-dash",
        ".so /etc/passwd",
        r"default: a\b",
        "opt-name",
        "-x",
        "Second paragraph.",
        "pcs resource create tricky1 ocf:vmha:Tricky",
        "op monitor interval=10s timeout=30s OCF_CHECK_LEVEL=10",
        "meta allow-migrate=true",
        "ocf_vmha_Other(7)",
    ):
        assert expected in text, expected
    assert "root:" not in text  # .so was not obeyed


def test_entities_are_not_resolved(fake_agent, tmp_path):
    text = render(manpage.agent_page(manpage.read_metadata(fake_agent)), tmp_path)
    assert "SECRET-CONTENT" not in text
    assert "&secret; here." in text  # shown as written, and the text after it is kept


def test_page_date_follows_source_date_epoch(fake_agent, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert '"1970-01-01"' in manpage.agent_page(manpage.read_metadata(fake_agent))


@pytest.mark.parametrize(
    ("upstream", "package"),
    [("0.1.0", "0.1.0"), ("1.2.0rc1", "1.2.0~rc1"), ("1.2.0.dev3", "1.2.0~dev3"), ("2.0b1", "2.0~b1")],
)
def test_package_version(upstream, package):
    assert version.package_version(upstream) == package


def test_package_version_refuses_what_it_cannot_order():
    with pytest.raises(ValueError):
        version.package_version("1.0+local")


def test_version_is_the_library_version():
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    import vmha

    assert version.upstream_version() == vmha.__version__
