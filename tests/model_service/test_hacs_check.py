"""The offline HACS checks pass on this repository and catch what HACS would refuse."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from devtools import hacs_check
from devtools.render_brand import png_bytes, render

REPO = Path(__file__).resolve().parents[2]


def test_this_repository_passes() -> None:
    assert hacs_check.check(REPO) == []


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("hacs.json", "README.md", "LICENSE", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(
        REPO / "custom_components" / "midasheng", root / "custom_components" / "midasheng"
    )
    return root


def test_what_hacs_would_refuse(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert hacs_check.check(root) == []
    (root / "LICENSE").unlink()
    (root / "hacs.json").write_text(
        json.dumps({"name": "x", "domains": ["midasheng"], "zip_release": True})
    )
    brand = root / "custom_components" / "midasheng" / "brand"
    (brand / "icon.png").write_bytes(png_bytes(render(128)))
    manifest = root / "custom_components" / "midasheng" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["issue_tracker"] = "not a url"
    manifest.write_text(json.dumps(data))
    failures = "\n".join(hacs_check.check(root))
    assert "license: the repository has no LICENSE file" in failures
    assert "extra key 'domains'" in failures
    assert "zip_release is true, but filename is not set" in failures
    assert "(128, 128), not 256x256" in failures
    assert "'issue_tracker' must be an http(s) URL" in failures
    (brand / "icon.png").unlink()
    assert "brand/icon.png is missing" in "\n".join(hacs_check.check(root))


def test_licence_must_match_pyproject(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person")
    assert any("LICENSE is MIT but pyproject.toml says" in f for f in hacs_check.check(root))
