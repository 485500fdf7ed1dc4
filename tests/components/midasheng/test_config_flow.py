"""Tests for the MiDasheng Audio config and options flows."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigEntryState,
)
from homeassistant.const import CONF_NAME, CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.midasheng.api import (
    MidashengAuthError,
    MidashengConnectionError,
    MidashengResponseError,
    Source,
)
from custom_components.midasheng.const import (
    CONF_CAMERA,
    CONF_CATEGORIES,
    CONF_REPAIR_AFTER,
    CONF_SENSITIVITY,
    CONF_SOURCE_ID,
    DOMAIN,
    SUBENTRY_SOURCE,
)

from .conftest import SERVICE_ID, TOKEN, URL, FakeService, get_device, source_message

ZEROCONF_INFO = ZeroconfServiceInfo(
    ip_address=ip_address("192.168.1.20"),
    ip_addresses=[ip_address("192.168.1.20")],
    hostname="midasheng.local.",
    name="MiDasheng Audio._midasheng._tcp.local.",
    port=8765,
    properties={"id": SERVICE_ID, "version": "0.1.0", "api": "1"},
    type="_midasheng._tcp.local.",
)
DISCOVERED_URL = "http://192.168.1.20:8765"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """The user enters a URL and token; the entry is keyed by the service id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "127.0.0.1", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "MiDasheng Audio"
    assert result["data"] == {CONF_URL: URL, CONF_TOKEN: TOKEN}
    assert result["result"].unique_id == SERVICE_ID


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow_without_token(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """A service on loopback may have no token."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://localhost:8765/"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: "http://localhost:8765", CONF_TOKEN: ""}


@pytest.mark.usefixtures("mock_setup_entry")
@pytest.mark.parametrize(
    ("side_effect", "url", "errors"),
    [
        (MidashengConnectionError("refused"), URL, {"base": "cannot_connect"}),
        (MidashengAuthError("wrong token"), URL, {CONF_TOKEN: "invalid_auth"}),
        (MidashengResponseError("not found", 404), URL, {CONF_URL: "invalid_url"}),
        (None, "ftp://nas.local", {CONF_URL: "invalid_url"}),
        (RuntimeError("boom"), URL, {"base": "unknown"}),
    ],
)
async def test_user_flow_errors(
    hass: HomeAssistant,
    mock_client: MagicMock,
    side_effect: Exception | None,
    url: str,
    errors: dict[str, str],
) -> None:
    """Errors are shown in the form, and the flow recovers once they are fixed."""
    info = mock_client.info.return_value
    mock_client.info.side_effect = side_effect
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: url, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors

    mock_client.info.side_effect = None
    mock_client.info.return_value = info
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: URL, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow_incompatible(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """A service speaking another API version is refused in the form."""
    mock_client.info.return_value = replace(mock_client.info.return_value, api=2)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: URL, CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "incompatible_version"}


@pytest.mark.usefixtures("mock_setup_entry")
async def test_user_flow_already_configured(
    hass: HomeAssistant, mock_client: MagicMock, mock_config_entry: MockConfigEntry
) -> None:
    """The same service (by its id, whatever the URL) cannot be added twice."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://midasheng.local:8765", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_zeroconf_flow(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """A discovered service without a token is added after confirmation."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=ZEROCONF_INFO
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {
        "name": "MiDasheng Audio",
        "url": DISCOVERED_URL,
    }
    assert list(result["data_schema"].schema) == []

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: DISCOVERED_URL, CONF_TOKEN: ""}
    assert result["result"].unique_id == SERVICE_ID


@pytest.mark.usefixtures("mock_setup_entry")
async def test_zeroconf_flow_with_token(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """A discovered service that needs a token asks for it, and checks it."""
    info = mock_client.info.return_value
    mock_client.info.side_effect = MidashengAuthError("token needed")
    discovery = replace(
        ZEROCONF_INFO, properties={"path": "audio/"}, name="midasheng._midasheng._tcp.local."
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"]["name"] == "midasheng"
    assert CONF_TOKEN in result["data_schema"].schema

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    mock_client.info.side_effect = None
    mock_client.info.return_value = info
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_URL: f"{DISCOVERED_URL}/audio", CONF_TOKEN: TOKEN}
    assert result["result"].unique_id == SERVICE_ID


@pytest.mark.parametrize("properties", [{"id": SERVICE_ID}, {}])
async def test_zeroconf_already_configured_updates_url(
    hass: HomeAssistant,
    mock_client: MagicMock,
    mock_config_entry: MockConfigEntry,
    properties: dict[str, str],
) -> None:
    """Rediscovering a configured service updates its URL (by TXT id or by asking it)."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=replace(ZEROCONF_INFO, properties=properties),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert mock_config_entry.data[CONF_URL] == DISCOVERED_URL


@pytest.mark.parametrize(
    ("side_effect", "api", "reason"),
    [
        (MidashengConnectionError("refused"), 1, "cannot_connect"),
        (None, 2, "incompatible_version"),
    ],
)
async def test_zeroconf_abort(
    hass: HomeAssistant,
    mock_client: MagicMock,
    side_effect: Exception | None,
    api: int,
    reason: str,
) -> None:
    """A discovered service that cannot be used aborts the discovery."""
    mock_client.info.side_effect = side_effect
    mock_client.info.return_value = replace(mock_client.info.return_value, api=api)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=ZEROCONF_INFO
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reauth_flow(
    hass: HomeAssistant, mock_client: MagicMock, mock_config_entry: MockConfigEntry
) -> None:
    """A rejected token is replaced through reauthentication."""
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"

    mock_client.info.side_effect = MidashengAuthError("wrong token")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    mock_client.info.side_effect = MidashengConnectionError("refused")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "new-token"}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    mock_client.info.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "new-token"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert mock_config_entry.data == {CONF_URL: URL, CONF_TOKEN: "new-token"}


async def test_reauth_flow_wrong_service(
    hass: HomeAssistant, mock_client: MagicMock, mock_config_entry: MockConfigEntry
) -> None:
    """Reauthentication against a different service is refused."""
    mock_config_entry.add_to_hass(hass)
    mock_client.info.return_value = replace(mock_client.info.return_value, id="other")
    result = await mock_config_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_TOKEN: TOKEN})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_service"


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reconfigure_flow(
    hass: HomeAssistant, mock_client: MagicMock, mock_config_entry: MockConfigEntry
) -> None:
    """URL and token can be changed; errors are shown in the form."""
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "gopher://nas", CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {CONF_URL: "invalid_url"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "nas.local", CONF_TOKEN: "new-token"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.data == {
        CONF_URL: "http://nas.local:8765",
        CONF_TOKEN: "new-token",
    }


async def test_reconfigure_flow_wrong_service(
    hass: HomeAssistant, mock_client: MagicMock, mock_config_entry: MockConfigEntry
) -> None:
    """Reconfiguring to another service's URL is refused."""
    mock_config_entry.add_to_hass(hass)
    mock_client.info.return_value = replace(mock_client.info.return_value, id="other")
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://other:8765"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_service"
    assert mock_config_entry.data[CONF_URL] == URL


async def test_options_not_loaded(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> None:
    """Options need a connected service."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(mock_config_entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_options_settings(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """Settings apply without a restart: fewer sensors. The sensitivity is for sources added
    from Home Assistant; the sources the service has keep their own."""
    assert hass.states.get("binary_sensor.kitchen_cough")
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["settings", "sounds"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "settings"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "settings"

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_CATEGORIES: ["smoke_alarm", "co_alarm"], CONF_SENSITIVITY: "high"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == {
        CONF_CATEGORIES: ["smoke_alarm", "co_alarm"],
        CONF_SENSITIVITY: "high",
        CONF_REPAIR_AFTER: {"hours": 0, "minutes": 5, "seconds": 0},
    }
    assert init_integration.state is ConfigEntryState.LOADED
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm")
    assert hass.states.get("binary_sensor.kitchen_cough") is None
    mock_client.update_source.assert_not_awaited()


async def _open_source_step(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SOURCE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["camera", "url"]
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


def _source_subentries(entry: MockConfigEntry) -> dict[str, str]:
    """Source id -> subentry title."""
    return {
        subentry.data[CONF_SOURCE_ID]: subentry.title
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_SOURCE
    }


async def test_source_flow_not_loaded(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Adding a source needs a connected service."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.subentries.async_init(
        (mock_config_entry.entry_id, SUBENTRY_SOURCE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


async def test_source_flow_camera(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A camera's stream URL is sent to the service under the camera's name; the new source
    is a subentry, and its device and entities belong to it."""
    hass.states.async_set("camera.front_door", "idle", {"friendly_name": "Front door"})
    created = Source(
        id="front_door", name="Front door", kind="ffmpeg", url="rtsp://cam", persistent=True
    )
    mock_client.create_source.return_value = created
    result = await _open_source_step(hass, init_integration, "camera")
    assert result["step_id"] == "camera"
    with patch(
        "custom_components.midasheng.config_flow.async_get_stream_source",
        return_value="rtsp://cam",
    ):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_CAMERA: "camera.front_door"}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Front door"
    assert result["data"] == {CONF_SOURCE_ID: "front_door"}
    mock_client.create_source.assert_awaited_once_with(
        "Front door", url="rtsp://cam", sensitivity=None
    )
    assert init_integration.options == {}
    assert _source_subentries(init_integration)["front_door"] == "Front door"

    # The service reports the source; its entities go into the subentry.
    await fake_service.send(source_message(created.as_dict()))
    await hass.async_block_till_done()
    subentry_id = next(
        s.subentry_id for s in init_integration.subentries.values() if s.unique_id == "front_door"
    )
    entity = er.async_get(hass).async_get("binary_sensor.front_door_smoke_alarm")
    assert entity is not None
    assert entity.config_subentry_id == subentry_id
    assert len(_source_subentries(init_integration)) == 3


async def test_source_flow_after_the_websocket(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """When the service reports the new source before it answers the flow, the source has
    its subentry already: the flow says it was added and makes no second one."""
    created = Source(id="garage", name="Garage", kind="ffmpeg", url="rtsp://g", persistent=True)

    async def create(*args: object, **kwargs: object) -> Source:
        await fake_service.send(source_message(created.as_dict()))
        await hass.async_block_till_done()
        return created

    mock_client.create_source.side_effect = create
    result = await _open_source_step(hass, init_integration, "url")
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Garage", CONF_URL: "rtsp://g"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "source_added"
    assert result["description_placeholders"] == {"name": "Garage"}
    assert list(_source_subentries(init_integration)).count("garage") == 1
    assert hass.states.get("binary_sensor.garage_smoke_alarm")


@pytest.mark.parametrize(
    ("stream", "create_error", "errors"),
    [
        (AsyncMock(return_value=None), None, {CONF_CAMERA: "no_stream_source"}),
        (
            AsyncMock(side_effect=HomeAssistantError("no camera")),
            None,
            {CONF_CAMERA: "no_stream_source"},
        ),
        (
            AsyncMock(return_value="rtsp://cam"),
            MidashengResponseError("bad scheme", 400),
            {"base": "invalid_source"},
        ),
        (
            AsyncMock(return_value="rtsp://cam"),
            MidashengConnectionError("refused"),
            {"base": "cannot_connect"},
        ),
    ],
)
async def test_source_flow_camera_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    stream: AsyncMock,
    create_error: Exception | None,
    errors: dict[str, str],
) -> None:
    """Cameras without a stream and refused sources are reported in the form."""
    mock_client.create_source.side_effect = create_error
    hass.states.async_set("camera.front_door", "idle")
    result = await _open_source_step(hass, init_integration, "camera")
    with patch("custom_components.midasheng.config_flow.async_get_stream_source", stream):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_CAMERA: "camera.gone"}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert len(_source_subentries(init_integration)) == 2


async def test_source_flow_camera_without_cameras(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """With no camera in Home Assistant the step says so and what to do instead."""
    result = await _open_source_step(hass, init_integration, "camera")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_cameras"


async def test_source_flow_url(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """A stream URL is added under the given name, with the configured sensitivity."""
    hass.config_entries.async_update_entry(init_integration, options={CONF_SENSITIVITY: "low"})
    await hass.async_block_till_done()
    mock_client.create_source.side_effect = [
        MidashengResponseError("unsupported URL scheme", 400),
        Source(id="garage", name="Garage", kind="ffmpeg", url="rtsp://garage", persistent=True),
    ]
    result = await _open_source_step(hass, init_integration, "url")
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Garage", CONF_URL: "gopher://garage"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_source"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Garage", CONF_URL: "rtsp://garage"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    mock_client.create_source.assert_awaited_with("Garage", url="rtsp://garage", sensitivity="low")
    assert _source_subentries(init_integration)["garage"] == "Garage"


async def test_source_reconfigure(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """A source is renamed and its sensitivity changed on the service; the subentry, the
    device and the entities follow at once."""
    subentry = next(s for s in init_integration.subentries.values() if s.unique_id == "kitchen")
    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_SOURCE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    mock_client.update_source.side_effect = None
    mock_client.update_source.return_value = Source(
        id="kitchen", name="Scullery", kind="ffmpeg", sensitivity="high", persistent=True
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Scullery", CONF_SENSITIVITY: "high"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    mock_client.update_source.assert_awaited_once_with(
        "kitchen", name="Scullery", sensitivity="high"
    )
    await hass.async_block_till_done()
    assert init_integration.subentries[subentry.subentry_id].title == "Scullery"
    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    assert device is not None
    assert device.name == "Scullery"
    assert hass.states.get("select.kitchen_sensitivity").state == "high"
    assert init_integration.state is ConfigEntryState.LOADED


async def test_source_reconfigure_error(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """A service that cannot be reached is reported in the form."""
    subentry = next(s for s in init_integration.subentries.values() if s.unique_id == "hall")
    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_SOURCE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    mock_client.update_source.side_effect = MidashengConnectionError("refused")
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_NAME: "Hallway", CONF_SENSITIVITY: "low"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert init_integration.subentries[subentry.subentry_id].title == "Hall"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        # http: only host and port follow the discovery; a path is kept.
        ("http://old-host:9000/audio", "http://192.168.1.20:8765/audio"),
        # https (a reverse proxy with TLS): never rewritten, the token must not go in clear.
        ("https://audio.example.org/midasheng", "https://audio.example.org/midasheng"),
        ("https://192.168.1.5:8443", "https://192.168.1.5:8443"),
    ],
)
async def test_zeroconf_never_downgrades_a_configured_url(
    hass: HomeAssistant, mock_client: MagicMock, configured: str, expected: str
) -> None:
    """Rediscovery updates the host and port of an http URL and leaves https alone."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="MiDasheng Audio",
        unique_id=SERVICE_ID,
        data={CONF_URL: configured, CONF_TOKEN: TOKEN},
    )
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=ZEROCONF_INFO
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_URL] == expected


async def _open_sounds(hass: HomeAssistant, entry: MockConfigEntry) -> dict:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "sounds"}
    )


async def test_options_manage_taught_sounds(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """The options list the taught sounds: rename one, teach one again, delete one; the
    entry's own options do not change. Errors keep the form; no sounds or no service abort."""
    from custom_components.midasheng.api import TaughtSound

    chime = TaughtSound(id="custom:chime", name="Chime", examples=4, ready=True)
    mock_client.sounds.return_value = [chime]
    mock_client.rename_sound.return_value = chime
    options = dict(init_integration.options)

    result = await _open_sounds(hass, init_integration)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "sounds"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"sound": "custom:chime", "action": "rename"}
    )
    assert result["errors"] == {"name": "name_required"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"sound": "custom:chime", "action": "rename", "name": " Doorbell "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    mock_client.rename_sound.assert_awaited_once_with("custom:chime", "Doorbell")
    assert dict(init_integration.options) == options

    for action, method in (("teach_again", "clear_sound_examples"), ("delete", "delete_sound")):
        result = await _open_sounds(hass, init_integration)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"sound": "custom:chime", "action": action}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        getattr(mock_client, method).assert_awaited_once_with("custom:chime")

    result = await _open_sounds(hass, init_integration)
    mock_client.delete_sound.side_effect = MidashengConnectionError("down")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"sound": "custom:chime", "action": "delete"}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    mock_client.sounds.return_value = []
    result = await _open_sounds(hass, init_integration)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_sounds"
    mock_client.sounds.side_effect = MidashengConnectionError("down")
    result = await _open_sounds(hass, init_integration)
    assert result["reason"] == "cannot_connect"
