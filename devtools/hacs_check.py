"""HACS's repository checks for an integration, run offline on this checkout.

HACS validates a repository before it can be added to its default list (its `validate`
checks: hacs.json, the integration manifest, brands, information, license; archived,
description, issues and topics are GitHub settings and cannot be checked from files). This
reproduces the file-based ones, so `scripts/lint` fails before HACS would:

- `hacsjson`: `hacs.json` exists, holds only the keys HACS knows, with their types, and
  `name`; `zip_release` needs `filename`.
- `integration_manifest`: exactly one integration under `custom_components/`, whose
  manifest has `codeowners` (a list), `documentation` and `issue_tracker` (http(s) URLs),
  `domain`, `name` and a `version`.
- `brands`: the integration ships `brand/icon.png` (Home Assistant 2026.3+ serves it; HACS
  then needs no brands-repository entry), a square PNG of 256 px (`icon@2x.png`: 512 px).
- `information`: a README (or info) file at the root.
- `license`: a LICENSE file at the root whose text GitHub identifies as a popular
  OSI-approved licence, the same one `pyproject.toml` declares.

    python -m devtools.hacs_check            # exit 1 with a line per failed check
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import struct
import sys
import tomllib
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]

HACS_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "content_in_root": bool,
    "country": (str, list),
    "filename": str,
    "hacs": str,
    "hide_default_branch": bool,
    "homeassistant": str,
    "persistent_directory": str,
    "render_readme": bool,
    "zip_release": bool,
}
# Licence texts GitHub recognises, by a phrase each one's text holds (SPDX id -> phrase).
LICENSES = {
    "Apache-2.0": r"Apache License\s+Version 2\.0, January 2004",
    "MIT": r"Permission is hereby granted, free of charge",
    "GPL-3.0": r"GNU GENERAL PUBLIC LICENSE\s+Version 3",
    "MPL-2.0": r"Mozilla Public License Version 2\.0",
    "BSD-3-Clause": r"Neither the name of the copyright holder",
}
VERSION = re.compile(r"^\d+(\.\d+)*([.-]?[a-z0-9]+)*$", re.IGNORECASE)


def _png_size(path: Path) -> tuple[int, int] | None:
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check(root: Path = ROOT) -> list[str]:
    """Every failed check as `name: what is wrong` (empty when HACS would accept it)."""
    failures: list[str] = []

    hacs_path = root / "hacs.json"
    try:
        hacs = json.loads(hacs_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        failures.append(f"hacsjson: hacs.json is missing or not JSON ({err})")
        hacs = {}
    if not isinstance(hacs, dict):
        failures.append("hacsjson: hacs.json must hold an object")
        hacs = {}
    for key, value in hacs.items():
        if key not in HACS_KEYS:
            failures.append(f"hacsjson: extra key {key!r} is not allowed")
        elif not isinstance(value, HACS_KEYS[key]):
            failures.append(f"hacsjson: {key!r} has the wrong type")
    if hacs_path.exists() and not isinstance(hacs.get("name"), str):
        failures.append("hacsjson: 'name' is required")
    if hacs.get("zip_release") and not hacs.get("filename"):
        failures.append("hacsjson: zip_release is true, but filename is not set")

    integrations = sorted(p for p in (root / "custom_components").glob("*/manifest.json"))
    if len(integrations) != 1:
        failures.append(
            f"integration_manifest: expected one integration in custom_components, found "
            f"{len(integrations)}"
        )
        return failures
    folder = integrations[0].parent
    manifest = json.loads(integrations[0].read_text(encoding="utf-8"))
    failures.extend(
        f"integration_manifest: {key!r} is required"
        for key in ("domain", "name", "version")
        if not isinstance(manifest.get(key), str) or not manifest[key]
    )
    if not isinstance(manifest.get("codeowners"), list):
        failures.append("integration_manifest: 'codeowners' must be a list")
    failures.extend(
        f"integration_manifest: {key!r} must be an http(s) URL"
        for key in ("documentation", "issue_tracker")
        if not _url(manifest.get(key))
    )
    if isinstance(manifest.get("version"), str) and not VERSION.match(manifest["version"]):
        failures.append(f"integration_manifest: version {manifest['version']!r} is not valid")
    if manifest.get("domain") != folder.name:
        failures.append("integration_manifest: the domain must be the folder's name")

    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        path = folder / "brand" / name
        if not path.exists():
            if name == "icon.png":
                failures.append(f"brands: {path.relative_to(root)} is missing")
            continue
        found = _png_size(path)
        if found is None:
            failures.append(f"brands: {path.relative_to(root)} is not a PNG")
        elif found != (size, size):
            failures.append(f"brands: {path.relative_to(root)} is {found}, not {size}x{size}")

    names = {p.name.lower() for p in root.iterdir()}
    if not names & {"readme", "readme.md", "info", "info.md"}:
        failures.append("information: the repository has no README or info file")

    license_path = next(
        (p for p in root.iterdir() if p.name.lower() in ("license", "license.md", "license.txt")),
        None,
    )
    if license_path is None:
        failures.append("license: the repository has no LICENSE file")
    else:
        text = license_path.read_text(encoding="utf-8", errors="replace")
        spdx = next((k for k, phrase in LICENSES.items() if re.search(phrase, text)), None)
        declared = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("license")
        if spdx is None:
            failures.append("license: the LICENSE text is not a licence GitHub identifies")
        elif declared not in (spdx, {"text": spdx}):
            failures.append(f"license: LICENSE is {spdx} but pyproject.toml says {declared!r}")
    return failures


def main() -> int:
    """Print the failures; exit status 1 when there are any."""
    failures = check()
    for line in failures:
        print(f"HACS check failed: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
