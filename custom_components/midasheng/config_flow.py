"""Config flow for MiDasheng Audio: user, zeroconf, reauth, reconfigure and options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.camera import async_get_stream_source
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME, CONF_TOKEN, CONF_URL
from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    DurationSelector,
    DurationSelectorConfig,
    EntitySelector,
    EntitySelectorConfig,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

try:
    from homeassistant.config_entries import OptionsFlowWithReload as _OptionsFlow
except ImportError:  # Older releases: the entry's update listener reloads it (see __init__).
    from homeassistant.config_entries import OptionsFlow as _OptionsFlow  # type: ignore[assignment]
import voluptuous as vol
from yarl import URL

from .api import (
    DEFAULT_PORT,
    SENSITIVITIES,
    MidashengAuthError,
    MidashengClient,
    MidashengConnectionError,
    MidashengError,
    MidashengInvalidURLError,
    MidashengResponseError,
    ServiceInfo,
    normalize_url,
)
from .const import (
    CONF_CAMERA,
    CONF_CATEGORIES,
    CONF_REPAIR_AFTER,
    CONF_SENSITIVITY,
    CONF_SOURCE_ID,
    DEFAULT_REPAIR_AFTER,
    DEFAULT_SENSITIVITY,
    DOMAIN,
    LOGGER,
    SUBENTRY_SOURCE,
    TAUGHT_KIND,
)
from .coordinator import MidashengConfigEntry

CONF_SOUND = "sound"
CONF_SOUND_ACTION = "action"
SOUND_ACTIONS = ("rename", "teach_again", "delete")

TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))


def _txt_path(value: Any) -> str:
    """The base path a service advertises in its TXT record (behind a reverse proxy)."""
    path = str(value or "").strip("/")
    return f"/{path}" if path else ""


class IncompatibleServiceError(MidashengError):
    """The service speaks another API version."""


class MidashengConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a MiDasheng Audio service."""

    VERSION = 1

    _discovered_url: str
    _discovered_name: str
    _discovery_needs_token: bool = False

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: MidashengConfigEntry) -> MidashengOptionsFlow:
        """Options: watched categories, sensitivity of new sources, repair delay."""
        return MidashengOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Sources are subentries: added, renamed and deleted from the entry's page."""
        return {SUBENTRY_SOURCE: SourceSubentryFlow}

    async def _async_get_info(self, url: str, token: str | None) -> ServiceInfo:
        client = MidashengClient(url, session=async_get_clientsession(self.hass), token=token)
        info = await client.info()
        if not info.compatible:
            raise IncompatibleServiceError(info.version)
        return info

    async def _async_validate(
        self, user_input: dict[str, Any], errors: dict[str, str]
    ) -> tuple[str, ServiceInfo] | None:
        """Check URL and token against /v1/info; fill `errors` and return None on failure."""
        try:
            url = normalize_url(user_input[CONF_URL])
        except MidashengInvalidURLError:
            errors[CONF_URL] = "invalid_url"
            return None
        try:
            info = await self._async_get_info(url, user_input.get(CONF_TOKEN))
        except MidashengAuthError:
            errors[CONF_TOKEN] = "invalid_auth"
        except MidashengConnectionError:
            errors["base"] = "cannot_connect"
        except IncompatibleServiceError:
            errors["base"] = "incompatible_version"
        except MidashengResponseError:
            # Something answered, but not the MiDasheng Audio API.
            errors[CONF_URL] = "invalid_url"
        except Exception:  # noqa: BLE001
            LOGGER.exception("Unexpected exception")
            errors["base"] = "unknown"
        else:
            return url, info
        return None

    @staticmethod
    def _entry_data(url: str, user_input: Mapping[str, Any]) -> dict[str, Any]:
        return {CONF_URL: url, CONF_TOKEN: user_input.get(CONF_TOKEN) or ""}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the service URL and token."""
        errors: dict[str, str] = {}
        if user_input is not None and (result := await self._async_validate(user_input, errors)):
            url, info = result
            await self.async_set_unique_id(info.id, raise_on_progress=False)
            self._abort_if_unique_id_configured()
            return self.async_create_entry(title=info.name, data=self._entry_data(url, user_input))

        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Required(CONF_URL): URL_SELECTOR,
                        vol.Optional(CONF_TOKEN): TOKEN_SELECTOR,
                    }
                ),
                {CONF_URL: user_input[CONF_URL]} if user_input else {},
            ),
            errors=errors,
            description_placeholders={"port": str(DEFAULT_PORT)},
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """Handle a service found on the network."""
        url = str(
            URL.build(
                scheme="http",
                host=discovery_info.host,
                port=discovery_info.port or DEFAULT_PORT,
                path=_txt_path(discovery_info.properties.get("path")),
            )
        )
        name = discovery_info.name.removesuffix(f".{discovery_info.type}")
        port = discovery_info.port or DEFAULT_PORT
        if service_id := discovery_info.properties.get("id"):
            await self.async_set_unique_id(str(service_id))
            self._abort_if_unique_id_configured(
                updates=self._rediscovered(str(service_id), discovery_info.host, port)
            )
        try:
            info = await self._async_get_info(url, None)
        except MidashengAuthError:
            # The service has a token; the user gives it in the confirmation step.
            self._discovery_needs_token = True
        except IncompatibleServiceError:
            return self.async_abort(reason="incompatible_version")
        except MidashengError:
            return self.async_abort(reason="cannot_connect")
        else:
            await self.async_set_unique_id(info.id)
            self._abort_if_unique_id_configured(
                updates=self._rediscovered(info.id, discovery_info.host, port)
            )
            name = info.name

        self._discovered_url = url
        self._discovered_name = name
        self.context["title_placeholders"] = {"name": name}
        return await self.async_step_zeroconf_confirm()

    def _rediscovered(self, unique_id: str, host: str, port: int) -> dict[str, Any] | None:
        """What a rediscovery may change in a configured entry's URL: the host and port of
        an http URL. An https URL (or one behind a proxy path) was chosen by the user and is
        never rewritten: the token would then travel in clear text, or miss the proxy."""
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
        if entry is None:
            return None
        current = URL(entry.data[CONF_URL])
        if current.scheme != "http":
            return None
        updated = current.with_host(host).with_port(port)
        return {CONF_URL: str(updated)} if updated != current else None

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm adding a discovered service (with its token when it needs one)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            result = await self._async_validate(
                {**user_input, CONF_URL: self._discovered_url}, errors
            )
            if result:
                url, info = result
                await self.async_set_unique_id(info.id, raise_on_progress=False)
                self._abort_if_unique_id_configured(updates={CONF_URL: url})
                return self.async_create_entry(
                    title=info.name, data=self._entry_data(url, user_input)
                )

        schema = (
            vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR})
            if self._discovery_needs_token
            else vol.Schema({})
        )
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=schema,
            errors=errors,
            description_placeholders={"name": self._discovered_name, "url": self._discovered_url},
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication after the service rejected the token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new token."""
        errors: dict[str, str] = {}
        entry = self._get_reauth_entry()
        if user_input is not None and (
            result := await self._async_validate(
                {**user_input, CONF_URL: entry.data[CONF_URL]}, errors
            )
        ):
            _, info = result
            await self.async_set_unique_id(info.id)
            self._abort_if_unique_id_mismatch(reason="wrong_service")
            return self.async_update_reload_and_abort(
                entry, data_updates={CONF_TOKEN: user_input.get(CONF_TOKEN) or ""}
            )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): TOKEN_SELECTOR}),
            errors=errors,
            description_placeholders={"title": entry.title, "url": entry.data[CONF_URL]},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the URL or token of a configured service."""
        errors: dict[str, str] = {}
        entry = self._get_reconfigure_entry()
        if user_input is not None and (result := await self._async_validate(user_input, errors)):
            url, info = result
            await self.async_set_unique_id(info.id)
            self._abort_if_unique_id_mismatch(reason="wrong_service")
            return self.async_update_reload_and_abort(
                entry, data_updates=self._entry_data(url, user_input)
            )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Required(CONF_URL): URL_SELECTOR,
                        vol.Optional(CONF_TOKEN): TOKEN_SELECTOR,
                    }
                ),
                {CONF_URL: (user_input or entry.data)[CONF_URL]},
            ),
            errors=errors,
        )


class MidashengOptionsFlow(_OptionsFlow):
    """Watched categories, the sensitivity of new sources and the repair delay.

    Changed options reload the entry. Current Home Assistant does that for the flow itself
    (OptionsFlowWithReload) and reports integrations that still reload from an update
    listener, which stops working in 2026.12. Sources are subentries (`SourceSubentryFlow`).
    """

    @property
    def _entry(self) -> MidashengConfigEntry:
        entry: MidashengConfigEntry = self.config_entry
        return entry

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Settings, or the sounds taught by example."""
        if self._entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_loaded")
        return self.async_show_menu(step_id="init", menu_options=["settings", "sounds"])

    async def async_step_sounds(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Rename a taught sound, teach it again (its examples are forgotten) or delete it.

        Teaching happens where the sound is heard: the action `midasheng.teach_sound`."""
        client = self._entry.runtime_data.client
        errors: dict[str, str] = {}
        try:
            sounds = await client.sounds()
        except MidashengError as err:
            LOGGER.debug("Cannot list the taught sounds: %s", err)
            return self.async_abort(reason="cannot_connect")
        if not sounds:
            return self.async_abort(reason="no_sounds")
        if user_input is not None:
            sound_id = user_input[CONF_SOUND]
            action = user_input[CONF_SOUND_ACTION]
            name = str(user_input.get(CONF_NAME) or "").strip()
            if sound_id not in {s.id for s in sounds}:
                errors[CONF_SOUND] = "unknown_sound"
            elif action == "rename" and not name:
                errors[CONF_NAME] = "name_required"
            else:
                try:
                    if action == "rename":
                        await client.rename_sound(sound_id, name)
                    elif action == "teach_again":
                        await client.clear_sound_examples(sound_id)
                    else:
                        await client.delete_sound(sound_id)
                except MidashengError as err:
                    LOGGER.debug("Changing taught sound %s failed: %s", sound_id, err)
                    errors["base"] = "cannot_connect"
                else:
                    # Nothing of the entry's options changed; the service announces the
                    # change and the entry follows it.
                    return self.async_create_entry(data=dict(self._entry.options))
        return self.async_show_form(
            step_id="sounds",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_SOUND): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(value=s.id, label=f"{s.name} ({s.examples}/3+)")
                                for s in sounds
                            ],
                            mode=SelectSelectorMode.LIST,
                        )
                    ),
                    vol.Required(CONF_SOUND_ACTION, default="rename"): SelectSelector(
                        SelectSelectorConfig(
                            options=list(SOUND_ACTIONS),
                            mode=SelectSelectorMode.LIST,
                            translation_key="sound_action",
                        )
                    ),
                    vol.Optional(CONF_NAME): TextSelector(),
                }
            ),
            errors=errors,
        )

    async def async_step_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the categories to watch, the sensitivity and the repair delay."""
        if user_input is not None:
            return self.async_create_entry(data={**self._entry.options, **user_input})

        info = self._entry.runtime_data.coordinator.info
        options = self._entry.options
        # Taught sounds are always watched: teaching one is asking for its sensor.
        offered = [c for c in info.categories if c.kind != TAUGHT_KIND]
        offered_ids = {c.id for c in offered}
        return self.async_show_form(
            step_id="settings",
            data_schema=vol.Schema(
                {
                    vol.Required(
                        CONF_CATEGORIES,
                        default=[
                            category
                            for category in options.get(CONF_CATEGORIES, info.category_ids)
                            if category in offered_ids
                        ],
                    ): SelectSelector(
                        SelectSelectorConfig(
                            options=[
                                SelectOptionDict(value=category.id, label=category.name)
                                for category in offered
                            ],
                            multiple=True,
                            mode=SelectSelectorMode.LIST,
                            translation_key=CONF_CATEGORIES,
                        )
                    ),
                    vol.Required(
                        CONF_SENSITIVITY,
                        default=options.get(CONF_SENSITIVITY, DEFAULT_SENSITIVITY),
                    ): SelectSelector(
                        SelectSelectorConfig(
                            options=list(SENSITIVITIES),
                            mode=SelectSelectorMode.LIST,
                            translation_key=CONF_SENSITIVITY,
                        )
                    ),
                    vol.Required(
                        CONF_REPAIR_AFTER,
                        default=options.get(CONF_REPAIR_AFTER, DEFAULT_REPAIR_AFTER),
                    ): DurationSelector(DurationSelectorConfig(enable_day=False)),
                }
            ),
        )


class SourceSubentryFlow(ConfigSubentryFlow):
    """Add a source (a camera's stream or a stream URL) to the service, or rename one.

    The service opens the stream, so the source is made there; its subentry records which
    source it is. Deleting the subentry deletes the source (`subentries.py`).
    """

    def _loaded_entry(self) -> MidashengConfigEntry | None:
        entry: MidashengConfigEntry = self._get_entry()
        return entry if entry.state is ConfigEntryState.LOADED else None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Offer the kinds of source."""
        if self._loaded_entry() is None:
            return self.async_abort(reason="not_loaded")
        return self.async_show_menu(step_id="user", menu_options=["camera", "url"])

    async def _async_add(
        self, name: str, url: str, errors: dict[str, str]
    ) -> SubentryFlowResult | None:
        entry = self._loaded_entry()
        if entry is None:
            return self.async_abort(reason="not_loaded")
        try:
            source = await entry.runtime_data.client.create_source(
                name, url=url, sensitivity=entry.options.get(CONF_SENSITIVITY)
            )
        except MidashengResponseError as err:
            LOGGER.debug("The service refused source %s: %s", name, err)
            errors["base"] = "invalid_source"
            return None
        except MidashengError:
            errors["base"] = "cannot_connect"
            return None
        if entry.runtime_data.coordinator.subentries.subentry_id(source.id) is not None:
            # The service reported the new source over the WebSocket before it answered
            # here, and it has its subentry already.
            return self.async_abort(
                reason="source_added", description_placeholders={"name": source.name}
            )
        return self.async_create_entry(
            title=source.name, data={CONF_SOURCE_ID: source.id}, unique_id=source.id
        )

    async def async_step_camera(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Let the service listen to a camera's stream."""
        errors: dict[str, str] = {}
        if user_input is None and not self.hass.states.async_entity_ids("camera"):
            return self.async_abort(reason="no_cameras")
        if user_input is not None:
            entity_id = user_input[CONF_CAMERA]
            try:
                stream_url = await async_get_stream_source(self.hass, entity_id)
            except HomeAssistantError:
                stream_url = None
            if not stream_url:
                errors[CONF_CAMERA] = "no_stream_source"
            else:
                state = self.hass.states.get(entity_id)
                name = state.name if state else entity_id
                if result := await self._async_add(name, stream_url, errors):
                    return result

        return self.async_show_form(
            step_id="camera",
            data_schema=vol.Schema(
                {vol.Required(CONF_CAMERA): EntitySelector(EntitySelectorConfig(domain="camera"))}
            ),
            errors=errors,
        )

    async def async_step_url(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Let the service listen to a stream URL (rtsp(s) or http(s))."""
        errors: dict[str, str] = {}
        if user_input is not None and (
            result := await self._async_add(user_input[CONF_NAME], user_input[CONF_URL], errors)
        ):
            return result
        return self.async_show_form(
            step_id="url",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Required(CONF_NAME): TextSelector(),
                        vol.Required(CONF_URL): TextSelector(),
                    }
                ),
                user_input or {},
            ),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename a source or change its sensitivity (on the service, which keeps both)."""
        entry = self._loaded_entry()
        if entry is None:
            return self.async_abort(reason="not_loaded")
        subentry = self._get_reconfigure_subentry()
        source_id = str(subentry.data[CONF_SOURCE_ID])
        coordinator = entry.runtime_data.coordinator
        if (current := coordinator.sources.get(source_id)) is None:
            return self.async_abort(reason="source_gone")
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                source = await coordinator.async_update_source(
                    source_id,
                    name=user_input[CONF_NAME],
                    sensitivity=user_input[CONF_SENSITIVITY],
                )
            except MidashengResponseError as err:
                LOGGER.debug("The service refused changing source %s: %s", source_id, err)
                errors["base"] = "invalid_source"
            except MidashengError:
                errors["base"] = "cannot_connect"
            else:
                return self.async_update_and_abort(entry, subentry, title=source.name)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Required(CONF_NAME): TextSelector(),
                        vol.Required(CONF_SENSITIVITY): SelectSelector(
                            SelectSelectorConfig(
                                options=list(SENSITIVITIES),
                                mode=SelectSelectorMode.LIST,
                                translation_key=CONF_SENSITIVITY,
                            )
                        ),
                    }
                ),
                user_input or {CONF_NAME: current.name, CONF_SENSITIVITY: current.sensitivity},
            ),
            errors=errors,
            description_placeholders={"name": current.name},
        )
