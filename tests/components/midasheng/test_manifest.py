"""Checks on the packaging: manifest, translations, icons and the quality scale."""

from __future__ import annotations

import json
from pathlib import Path
import re

import yaml

from custom_components.midasheng.binary_sensor import (
    DESCRIPTIONS as BINARY_SENSORS,
    HEARING_PROBLEM,
)
from custom_components.midasheng.const import DOMAIN, KNOWN_CATEGORIES
from custom_components.midasheng.event import DESCRIPTION as EVENT
from custom_components.midasheng.sensor import DESCRIPTIONS as SENSORS

PACKAGE = Path(__file__).parents[3] / "custom_components" / DOMAIN


def _json(name: str) -> dict:
    return json.loads((PACKAGE / name).read_text())


def test_manifest_and_hacs() -> None:
    """The manifest has what HACS and Home Assistant need, and no requirements."""
    manifest = _json("manifest.json")
    assert manifest["domain"] == DOMAIN
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] == "local_push"
    assert manifest["zeroconf"] == ["_midasheng._tcp.local."]
    assert manifest["requirements"] == []
    assert manifest["version"]
    hacs = json.loads((PACKAGE.parents[1] / "hacs.json").read_text())
    assert hacs["name"] == manifest["name"]
    assert hacs["homeassistant"]


def test_translations() -> None:
    """en.json is strings.json, and every key the code uses is translated."""
    strings = _json("strings.json")
    assert _json("translations/en.json") == strings
    entity = strings["entity"]
    assert set(BINARY_SENSORS) == set(KNOWN_CATEGORIES)
    assert set(entity["binary_sensor"]) == set(KNOWN_CATEGORIES) | {HEARING_PROBLEM.key}
    assert {d.translation_key for d in SENSORS} <= set(entity["sensor"])
    for states in (
        entity["sensor"]["last_sound"]["state"],
        entity["event"][EVENT.translation_key]["state_attributes"]["event_type"]["state"],
        strings["selector"]["categories"]["options"],
    ):
        assert set(states) == set(KNOWN_CATEGORIES)

    code = "\n".join(path.read_text() for path in PACKAGE.glob("*.py"))
    config_flow = (PACKAGE / "config_flow.py").read_text()
    options_start = config_flow.index("class MidashengOptionsFlow")
    subentry_start = config_flow.index("class SourceSubentryFlow")
    for section, source in (
        (strings["config"], config_flow[:options_start]),
        (strings["options"], config_flow[options_start:subentry_start]),
        (strings["config_subentries"]["source"], config_flow[subentry_start:]),
    ):
        for error in re.findall(r'errors\[[^\]]+\] = "(\w+)"', source):
            assert error in section["error"], error
        for reason in re.findall(r'reason="(\w+)"', source):
            assert reason in section["abort"], reason
    for key in re.findall(r'translation_domain=DOMAIN,\s+translation_key="(\w+)"', code):
        assert key in strings["exceptions"], key
    for step in re.findall(r'step_id="(\w+)"', config_flow[subentry_start:]):
        assert step in strings["config_subentries"]["source"]["step"], step
    for key in ("service_unreachable", "incompatible_version", "source_deaf", "storage_problem"):
        assert key in strings["issues"]


def test_icons() -> None:
    """Icons exist only for translated entities."""
    icons = _json("icons.json")["entity"]
    strings = _json("strings.json")["entity"]
    for platform, keys in icons.items():
        assert set(keys) <= set(strings[platform]), platform


def test_quality_scale() -> None:
    """Every rule is done, or exempt or todo with a reason."""
    rules = yaml.safe_load((PACKAGE / "quality_scale.yaml").read_text())["rules"]
    for rule, status in rules.items():
        assert status == "done" or (isinstance(status, dict) and status.get("comment")), rule
