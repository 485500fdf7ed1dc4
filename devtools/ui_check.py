"""What a user sees in Home Assistant's web UI, checked in a headless Chromium.

Home Assistant runs in the user's language (German here): its core language is switched and
the integration reloaded, as for a user who set it in Settings > System > General, and the
browser's UI language is set as the user's profile does. Then, as a user:

- logs in with the login form;
- opens the source's device page: every enabled entity of the source shows its translated
  name (from the integration's translations) and a displayed value, never a raw state
  ("on", "smoke_alarm") where a translated one belongs;
- starts adding a service: the config flow's form shows its translated title and labels;
- starts adding a source (the entry's subentry button): the menu and the stream URL form
  show their translated texts.

Screenshots of each page go to a folder for when a step fails.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any

import aiohttp

from devtools.browser import Browser, BrowserError, Page
from devtools.harness import DOMAIN, INTEGRATION, HomeAssistantClient, wait_for

# States that must never reach the screen of a translated UI as they are.
RAW_STATES = {"on", "off", "unknown", "unavailable", "none", ""}


class UICheckError(Exception):
    """The UI did not show what it should; the message says what and where."""


@dataclass
class Shown:
    """One entity row of the device page."""

    entity_id: str
    name: str
    value: str


def translations(language: str) -> dict[str, Any]:
    """The integration's UI strings in a language."""
    path = INTEGRATION / "translations" / f"{language}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


async def set_language(ha: HomeAssistantClient, language: str, entry_id: str) -> None:
    """Switch Home Assistant's language and reload the entry, so its entities take their
    names in that language (names are given when entities are added)."""
    async with ha.websocket() as ws:
        await ws.call("config/core/update", language=language)
    await ha.request("POST", f"/api/config/config_entries/entry/{entry_id}/reload", ok=(200,))


async def _login(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(f"{url}/")
    await page.wait_for(
        "window.__deep('input[name=username]').filter(window.__visible).length",
        "the login form",
    )
    await page.type_into("input[name=username]", username)
    await page.type_into("input[type=password]", password)
    await page.press_enter()
    await page.wait_for(
        "document.querySelector('home-assistant')?.hass?.user", "the logged-in frontend"
    )


async def _rows(page: Page, entity_ids: list[str]) -> dict[str, Shown]:
    found = await page.evaluate(
        "window.__deep('hui-generic-entity-row').filter(window.__visible)"
        ".map((row) => [row.config && row.config.entity,"
        " window.__text(row).replace(/\\s+/g, ' ').trim()])"
    )
    rows: dict[str, Shown] = {}
    for entity_id, text in found or []:
        if entity_id in entity_ids:
            rows[entity_id] = Shown(entity_id, "", str(text))
    return rows


async def _labels(page: Page) -> list[str]:
    labels = await page.evaluate(
        "window.__deep('ha-input, ha-textfield').filter(window.__visible)"
        ".map((el) => el.label || '')"
    )
    return [str(label) for label in labels or []]


async def _wait_labels(page: Page, wanted: list[str]) -> list[str]:
    """The form's field labels once it shows `wanted` (or what it shows after 10 s)."""
    with contextlib.suppress(BrowserError):
        await page.wait_for(
            "window.__deep('ha-input, ha-textfield').filter(window.__visible)"
            f".map((el) => el.label || '').join('|') === {json.dumps('|'.join(wanted))}",
            f"the labels {wanted}",
            timeout=10,
        )
    return await _labels(page)


async def check_ui(
    ha: HomeAssistantClient,
    session: aiohttp.ClientSession,
    *,
    username: str,
    password: str,
    device_id: str,
    language: str,
    screenshots: Path,
) -> list[str]:
    """Run the checks; what was seen, one line each. UICheckError when a check fails."""
    strings = translations(language)
    entries = await ha.config_entries()
    if not entries:
        raise UICheckError("Home Assistant has no MiDasheng Audio entry")
    await set_language(ha, language, entries[0]["entry_id"])

    async with ha.websocket() as ws:
        registry = [
            e
            for e in await ws.entity_registry()
            if e.get("platform") == DOMAIN
            and e.get("device_id") == device_id
            and not e.get("disabled_by")
        ]
    expected: dict[str, str] = {}
    for entity in registry:
        domain = entity["entity_id"].split(".")[0]
        key = entity.get("translation_key")
        name = ((strings["entity"].get(domain) or {}).get(key) or {}).get("name") if key else None
        if not name:
            raise UICheckError(f"{entity['entity_id']} has no {language} name to show")
        expected[entity["entity_id"]] = name

    # The entities take the new language's names once the entry is reloaded.
    probe = next(iter(expected))

    async def renamed() -> bool:
        state = await ha.state(probe)
        return bool(
            state and str(state["attributes"].get("friendly_name", "")).endswith(expected[probe])
        )

    await wait_for(renamed, f"{probe} to be named {expected[probe]!r}", timeout=60)

    seen: list[str] = []
    screenshots.mkdir(parents=True, exist_ok=True)
    async with Browser(session) as browser:
        page = await browser.new_page()
        try:
            await _login(page, ha.url, username, password)
            seen.append(f"logged in as {username!r} with the login form")
            # The user's UI language, as the profile page sets it.
            await page.evaluate(
                f"localStorage.setItem('selectedLanguage', JSON.stringify({json.dumps(language)}))"
            )

            # The source's device page.
            await page.goto(f"{ha.url}/config/devices/device/{device_id}")
            ids = list(expected)
            try:
                await page.wait_for(
                    "window.__deep('hui-generic-entity-row').filter(window.__visible)"
                    f".filter((row) => {json.dumps(ids)}.includes(row.config && row.config.entity))"
                    f".length >= {len(ids)}",
                    f"the device page to show {len(ids)} entities",
                )
            except BrowserError as err:
                shown = await _rows(page, ids)
                missing = sorted(set(ids) - set(shown))
                raise UICheckError(f"{err}; not shown: {missing}") from err
            rows = await _rows(page, ids)
            for entity_id, name in expected.items():
                row = rows[entity_id]
                if not row.value.startswith(f"{name} "):
                    raise UICheckError(
                        f"{entity_id} is shown as {row.value!r}, not with its {language} name "
                        f"{name!r}"
                    )
                value = row.value[len(name) :].strip()
                first = value.split(" ")[0]
                if first.lower() in RAW_STATES or "_" in first:
                    raise UICheckError(
                        f"{entity_id} shows the raw value {value!r} instead of a translated one"
                    )
                row.name, row.value = name, value
            seen.append(
                f"the device page shows all {len(rows)} entities with {language} names and "
                "values: " + "; ".join(f"{row.name} = {row.value}" for row in rows.values())
            )
            await page.screenshot(screenshots / "device.png")

            # Adding a service: the config flow's first form.
            user = strings["config"]["step"]["user"]
            await page.goto(f"{ha.url}/config/integrations/dashboard/add?domain={DOMAIN}")
            # The frontend first asks whether to set the integration up.
            await page.wait_for(
                f"window.__text().includes({json.dumps(user['title'])})"
                " || window.__deep('ha-dialog, ha-md-dialog, ha-wa-dialog').length",
                "the add-integration dialog",
            )
            if not await page.evaluate(f"window.__text().includes({json.dumps(user['title'])})"):
                await page.click_text("OK")
            await page.wait_for(
                f"window.__text().includes({json.dumps(user['title'])})",
                f"the config flow titled {user['title']!r}",
            )
            wanted = [user["data"]["url"], user["data"]["token"]]
            labels = await _wait_labels(page, wanted)
            if labels != wanted:
                raise UICheckError(f"the config flow's labels are {labels}, not {wanted}")
            seen.append(f"the config flow shows {user['title']!r} with the labels {labels}")
            await page.screenshot(screenshots / "config_flow.png")

            # Adding a source: the subentry flow's menu, then the stream URL form.
            source = strings["config_subentries"]["source"]
            await page.goto(f"{ha.url}/config/integrations/integration/{DOMAIN}")
            add = source["initiate_flow"]["user"]
            await page.wait_for(
                f"window.__text().includes({json.dumps(add)})", f"the {add!r} button"
            )
            await page.click_text(add)
            menu = source["step"]["user"]
            for text in (menu["title"], *menu["menu_options"].values()):
                await page.wait_for(
                    f"window.__text().includes({json.dumps(text)})", f"{text!r} in the menu"
                )
            await page.screenshot(screenshots / "source_menu.png")
            await page.click_text(menu["menu_options"]["url"])
            form = source["step"]["url"]
            await page.wait_for(
                f"window.__text().includes({json.dumps(form['title'])})",
                f"the form titled {form['title']!r}",
            )
            wanted = [form["data"]["name"], form["data"]["url"]]
            labels = await _wait_labels(page, wanted)
            if labels != wanted:
                raise UICheckError(f"the add-source form's labels are {labels}, not {wanted}")
            seen.append(
                f"{add!r} offers {list(menu['menu_options'].values())}, and the stream form "
                f"shows {form['title']!r} with the labels {labels}"
            )
            await page.screenshot(screenshots / "source_form.png")
        except (BrowserError, UICheckError) as err:
            await page.screenshot(screenshots / "failed.png")
            raise UICheckError(f"{err} (screenshot: {screenshots / 'failed.png'})") from err
    return seen
