"""What the sound level sensor costs Home Assistant's recorder, measured with the real
recorder (SQLite) over a simulated hour of levels as the service sends them (two a second)."""

from __future__ import annotations

from datetime import timedelta
import random
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder, get_instance
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from .conftest import FakeService, handshake

LEVEL = "sensor.kitchen_sound_level"
SECONDS = 3600


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """The package's fixture of this name, with the recorder set up before `hass`."""


@pytest.fixture(autouse=True)
def only_sensors() -> None:
    """Load the sensor platform only."""
    with patch("custom_components.midasheng.PLATFORMS", [Platform.SENSOR]):
        yield


def _rows_and_bytes(hass: HomeAssistant) -> tuple[int, int]:
    with get_instance(hass).get_session() as session:
        conn = session.connection().connection.driver_connection
        rows = conn.execute(
            "SELECT COUNT(*) FROM states JOIN states_meta USING (metadata_id) "
            "WHERE states_meta.entity_id = ?",
            (LEVEL,),
        ).fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return rows, (pages - free) * size


async def test_sound_level_recorder_cost(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    freezer: FrozenDateTimeFactory,
    entity_registry: er.EntityRegistry,
) -> None:
    """An hour of room levels (small drift, and a loud sound every few minutes): the
    throttle keeps it to one state a minute plus the loud sounds' onsets and ends, and the
    figures per day are printed."""
    # Disabled by default (see the sensor's description); the user who enables it:
    entity_registry.async_update_entity(LEVEL, disabled_by=None)
    await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    rows_before, bytes_before = await get_instance(hass).async_add_executor_job(
        _rows_and_bytes, hass
    )
    rng = random.Random(7)
    level = -50.0
    for tick in range(SECONDS * 2):
        level = max(-70.0, min(-30.0, level + rng.gauss(0, 0.7)))
        loud = tick % 400 < 6  # a door, a voice: 3 s of a 25 dB jump every 200 s
        await fake_service.send(
            {"type": "level", "source": "kitchen", "dbfs": level + (25 if loud else 0)}
        )
        freezer.tick(timedelta(seconds=0.5))
        if tick % 200 == 0:
            await hass.async_block_till_done()
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    rows_after, bytes_after = await get_instance(hass).async_add_executor_job(_rows_and_bytes, hass)
    rows = rows_after - rows_before
    per_row = (bytes_after - bytes_before) / rows
    per_day = rows * 24
    print(
        f"sound level, one source: {rows} states an hour from 7200 level messages; "
        f"{per_row:.0f} bytes each in SQLite; {per_day} states and "
        f"{per_day * per_row / 1e6:.1f} MB a day, {10 * per_day * per_row / 1e6:.0f} MB over "
        "the recorder's default 10 days"
    )
    # 60 by the interval, two for each of the 18 loud sounds (onset and end), and the room's
    # own drifts of 6 dB; at a 10 s interval the same hour wrote about 380.
    assert 60 + 2 * 18 <= rows <= 160
