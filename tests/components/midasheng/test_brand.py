"""The integration's own brand icon, as Home Assistant 2026.3+ serves it (the `brands`
component reads `brand/` of a custom integration before it would ask the brands CDN)."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from custom_components.midasheng.const import DOMAIN

BRAND = Path(__file__).resolve().parents[3] / "custom_components" / DOMAIN / "brand"


async def test_home_assistant_serves_the_brand_icon(hass: HomeAssistant, hass_client) -> None:
    """Home Assistant's brands view answers with our icon, and our 2x icon, no CDN asked."""
    pytest.importorskip(
        "homeassistant.components.brands", reason="Home Assistant before 2026.3 has no brands"
    )
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    for name in ("icon.png", "icon@2x.png"):
        resp = await client.get(f"/api/brands/integration/{DOMAIN}/{name}")
        assert resp.status == 200, name
        assert await resp.read() == (BRAND / name).read_bytes()
