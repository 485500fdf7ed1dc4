"""Answers to questions about sounds: the service's event log turned into sentences.

Shared by the conversation agent, the intent handlers (and so the Assist LLM API), the
conversation triggers registered with Home Assistant's own agent and the actions.

How a time span is chosen (documented in docs/voice.md):

- nothing said: the last 24 hours;
- "while I was out": from the moment the last person left home (every `person` away, or
  `zone.home` dropping to 0 people) until someone came back; when Home Assistant has not
  seen everyone leave, the last `AWAY_FALLBACK_HOURS` hours;
- "today", "last night" (20:00 to 08:00), "this morning" (from 05:00), "in the last N
  minutes/hours", "since 8 am" (the latest past 8 o'clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from hassil.intents import Intents, TextSlotList
from hassil.recognize import RecognizeResult, recognize_best
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_HOME
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util import dt as dt_util, yaml as yaml_util
from homeassistant.util.hass_dict import HassKey

from .api import MidashengError, MidashengNotSupportedError, SoundEvent
from .const import DOMAIN, LOGGER
from .coordinator import MidashengConfigEntry, MidashengCoordinator

SENTENCES_DIR = Path(__file__).parent / "sentences"
DEFAULT_LANGUAGE = "en"

DEFAULT_SPAN = timedelta(hours=24)
AWAY_FALLBACK_HOURS = 8
NIGHT_START_HOUR = 20
NIGHT_END_HOUR = 8
MORNING_START_HOUR = 5
# How many recent event changes are read from each service per question, in pages.
EVENT_WINDOW = 1000
EVENT_PAGES = 3
# Seconds of live audio a source's description is made from.
DESCRIBE_SECONDS = 10.0
MAX_DESCRIBED_SOURCES = 4
SHORT_EVENT_SECONDS = 2.0

INTENT_WHAT_DID_YOU_HEAR = "MidashengWhatDidYouHear"
INTENT_IS_SOUND_ACTIVE = "MidashengIsSoundActive"
INTENT_DESCRIBE = "MidashengDescribe"
INTENT_WHAT_WAS_THAT = "MidashengWhatWasThat"
INTENT_EARLIER = "MidashengEarlier"
# Intents answered the same way by every agent; INTENT_EARLIER needs a conversation's memory.
PUBLIC_INTENTS = (
    INTENT_WHAT_DID_YOU_HEAR,
    INTENT_IS_SOUND_ACTIVE,
    INTENT_DESCRIBE,
    INTENT_WHAT_WAS_THAT,
)
PERIODS = ("away", "today", "night", "morning", "recent", "hour", "day", "week")

DATA_SOUNDS: HassKey[SoundAssistant] = HassKey(f"{DOMAIN}_sounds")


class SoundQueryError(Exception):
    """A question that cannot be answered; the message is a translated sentence."""


@dataclass(frozen=True, slots=True)
class Language:
    """The sentences, lists and answers of one language."""

    code: str
    intents: Intents
    data: Mapping[str, Any]

    def r(self, key: str, **values: Any) -> str:
        """Render an answer template."""
        return str(self.data["responses"][key]).format(**values)

    def sound(self, category: str, fallback: str | None = None) -> str:
        """Spoken name of a category ("a smoke alarm")."""
        return str(self.data.get("sounds", {}).get(category) or fallback or category)

    @property
    def lowercase_places(self) -> bool:
        """Whether "Kitchen" is spoken as "the kitchen"."""
        return bool(self.data.get("settings", {}).get("lowercase_places"))

    def category_from_text(self, text: str) -> str | None:
        """The category id a spoken or written name stands for (id, name or list entry).

        Blocking (hassil matching): call it through `SoundAssistant.async_category`."""
        wanted = " ".join(text.casefold().replace("_", " ").split())
        for category, name in self.data.get("sounds", {}).items():
            if wanted in (category.replace("_", " "), str(name).casefold()):
                return str(category)
        template = str(self.data.get("settings", {}).get("category_probe", "did you hear {text}"))
        probe = recognize_best(
            template.format(text=wanted),
            self.intents,
            slot_lists={"place": TextSlotList.from_tuples((), name="place")},
            language=self.code,
        )
        if probe is not None and "category" in probe.entities:
            return str(probe.entities["category"].value)
        return None


def available_languages() -> list[str]:
    """Languages with a sentences folder (blocking: reads the folder)."""
    return sorted(p.name for p in SENTENCES_DIR.iterdir() if p.is_dir())


def language_code(language: str | None, available: Iterable[str]) -> str:
    """The sentences folder for a language tag ("en-US" -> "en"); English by default."""
    available = set(available)
    if language:
        for candidate in (language, language.split("-")[0].split("_")[0]):
            if candidate in available:
                return candidate
    return DEFAULT_LANGUAGE


def _load_language(code: str) -> Language:
    """Read and merge a language's YAML files (blocking)."""
    data: dict[str, Any] = {}
    for path in sorted((SENTENCES_DIR / code).glob("*.yaml")):
        content = yaml_util.load_yaml_dict(path)
        for key, value in content.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
    data["language"] = code
    return Language(code=code, intents=Intents.from_dict(data), data=data)


@dataclass(frozen=True, slots=True)
class Place:
    """A room or a source a question is about."""

    name: str
    sources: frozenset[tuple[str, str]]  # (config entry id, source id)


@dataclass(frozen=True, slots=True)
class Span:
    """A time span a question is about; `end` None means up to now."""

    start: datetime
    end: datetime | None
    phrase: str


@dataclass(slots=True, kw_only=True)
class Query:
    """A question about past sounds; `exclude` and `before` page through older events."""

    place: Place | None = None
    category: str | None = None
    span: Span
    before: datetime | None = None
    exclude: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class FoundEvent:
    """An event with the entry it comes from and where it was heard."""

    entry_id: str
    event: SoundEvent
    place: str

    @property
    def key(self) -> tuple[str, int]:
        """Identity across services."""
        return (self.entry_id, self.event.seq)

    def as_dict(self) -> dict[str, Any]:
        """Response data of the event."""
        return {**self.event.as_dict(), "config_entry_id": self.entry_id, "place": self.place}


@dataclass(slots=True, kw_only=True)
class Answer:
    """A sentence for the user, the events behind it and how to go on from it."""

    text: str
    events: list[FoundEvent] = field(default_factory=list)
    follow_up: Query | None = None


def _sources_of(hass: HomeAssistant) -> Iterable[tuple[MidashengConfigEntry, str]]:
    for entry in loaded_entries(hass):
        for source_id in entry.runtime_data.coordinator.sources:
            yield entry, source_id


def loaded_entries(hass: HomeAssistant) -> list[MidashengConfigEntry]:
    """Config entries of the integration that are set up."""
    entries: list[MidashengConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    return entries


class AwayTracker:
    """Remembers when everyone last left home and came back (from `zone.home`)."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing seen yet."""
        self.hass = hass
        self.left_at: datetime | None = None
        self.returned_at: datetime | None = None

    @callback
    def async_start(self) -> Any:
        """Follow the number of people at home; returns the unsubscribe callback."""
        return async_track_state_change_event(self.hass, "zone.home", self._changed)

    @callback
    def _changed(self, event: Event[EventStateChangedData]) -> None:
        old, new = event.data["old_state"], event.data["new_state"]
        if new is None:
            return
        if new.state == "0" and (old is None or old.state != "0"):
            self.left_at = new.last_changed
            self.returned_at = None
        elif old is not None and old.state == "0" and new.state != "0":
            self.returned_at = new.last_changed

    def away(self) -> tuple[datetime, datetime | None] | None:
        """When the latest time everyone was out began and ended (None: still out)."""
        persons = self.hass.states.async_all("person")
        if persons and all(state.state != STATE_HOME for state in persons):
            return max(state.last_changed for state in persons), None
        if self.left_at is not None:
            return self.left_at, self.returned_at
        return None


class SoundAssistant:
    """Answers questions about sounds for every loaded MiDasheng Audio entry."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Languages load on first use."""
        self.hass = hass
        self.away = AwayTracker(hass)
        self._languages: dict[str, Language] = {}
        self._available: list[str] | None = None
        self._lock = asyncio.Lock()

    async def async_language(self, language: str | None) -> Language:
        """The loaded sentences for a language tag (files are read in the executor)."""
        if self._available is None:
            self._available = await self.hass.async_add_executor_job(available_languages)
        code = language_code(language, self._available)
        if (lang := self._languages.get(code)) is None:
            async with self._lock:
                if (lang := self._languages.get(code)) is None:
                    lang = await self.hass.async_add_executor_job(_load_language, code)
                    self._languages[code] = lang
        return lang

    # Places

    def source_place(self, entry: MidashengConfigEntry, source_id: str) -> str:
        """Where a source is: its device's area, else the source's own name."""
        coordinator = entry.runtime_data.coordinator
        device = coordinator.async_get_device(source_id)
        if (
            device is not None
            and device.area_id
            and (area := ar.async_get(self.hass).async_get_area(device.area_id))
        ):
            return area.name
        source = coordinator.sources.get(source_id)
        return source.name if source else source_id

    def place_list(self) -> TextSlotList:
        """The `{place}` list: area names and aliases, then source names."""
        values: list[tuple[str, str]] = []
        for area in ar.async_get(self.hass).async_list_areas():
            # An area with no source in it is no place this agent hears: "the kitchen" must
            # be the source called Kitchen, not an empty Kitchen area that says "no".
            if self._area_place(area).sources:
                values.extend((name, f"area:{area.id}") for name in (area.name, *area.aliases))
        for entry, source_id in _sources_of(self.hass):
            source = entry.runtime_data.coordinator.sources[source_id]
            values.append((source.name, f"source:{entry.entry_id}:{source_id}"))
        return TextSlotList.from_tuples(values, allow_template=False, name="place")

    def _area_place(self, area: ar.AreaEntry) -> Place:
        sources = set()
        for entry, source_id in _sources_of(self.hass):
            device = entry.runtime_data.coordinator.async_get_device(source_id)
            if device is not None and device.area_id == area.id:
                sources.add((entry.entry_id, source_id))
        return Place(name=area.name, sources=frozenset(sources))

    def place_from_value(self, value: str) -> Place | None:
        """A place from a `{place}` list value."""
        kind, _, rest = value.partition(":")
        if kind == "area":
            area = ar.async_get(self.hass).async_get_area(rest)
            return None if area is None else self._area_place(area)
        entry_id, _, source_id = rest.partition(":")
        entry = self.hass.config_entries.async_get_entry(entry_id)
        if (
            kind != "source"
            or entry is None
            or entry.state is not ConfigEntryState.LOADED
            or source_id not in entry.runtime_data.coordinator.sources
        ):
            return None
        name = entry.runtime_data.coordinator.sources[source_id].name
        return Place(name=name, sources=frozenset({(entry.entry_id, source_id)}))

    def place_from_name(self, name: str) -> Place | None:
        """A place from free text: an area (name or alias), a source name or id, or an area id."""
        wanted = " ".join(name.casefold().split())
        wanted = wanted.removeprefix("the ")
        for area in ar.async_get(self.hass).async_list_areas():
            names = {n.casefold() for n in (area.name, *area.aliases)} | {area.id}
            if wanted in names and (found := self._area_place(area)).sources:
                return found
        for entry, source_id in _sources_of(self.hass):
            source = entry.runtime_data.coordinator.sources[source_id]
            if wanted in (source.name.casefold(), source_id.casefold()):
                return Place(name=source.name, sources=frozenset({(entry.entry_id, source_id)}))
        return None

    def place_phrase(self, lang: Language, name: str | None) -> str:
        """ " in the kitchen" (empty without a place)."""
        if not name:
            return ""
        if lang.lowercase_places and name[:1].isupper() and name[1:] == name[1:].lower():
            return lang.r("place", name=name.lower())
        return lang.r("place_named", name=name)

    # Times

    def span(
        self,
        lang: Language,
        *,
        period: str | None = None,
        minutes: int | None = None,
        hours: int | None = None,
        since: datetime | None = None,
    ) -> Span:
        """The time span of a question (see the module docstring)."""
        now = dt_util.now()
        if since is not None:
            since = dt_util.as_local(since)
            return Span(since, None, lang.r("span_since", time=since.strftime("%H:%M")))
        if minutes:
            return Span(now - timedelta(minutes=minutes), None, lang.r("span_minutes", n=minutes))
        if hours:
            if hours == 1:
                return Span(now - timedelta(hours=1), None, lang.r("span_hour"))
            return Span(now - timedelta(hours=hours), None, lang.r("span_hours", n=hours))
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        match period:
            case "away":
                if (away := self.away.away()) is not None:
                    return Span(away[0], away[1], lang.r("span_away"))
                return self.span(lang, hours=AWAY_FALLBACK_HOURS)
            case "today":
                return Span(today, None, lang.r("span_today"))
            case "night":
                end = today + timedelta(hours=NIGHT_END_HOUR)
                if now < end:
                    end -= timedelta(days=1)
                start = end - timedelta(hours=24 - NIGHT_START_HOUR + NIGHT_END_HOUR)
                return Span(start, end, lang.r("span_night"))
            case "morning":
                start = today + timedelta(hours=MORNING_START_HOUR)
                return Span(min(start, now), None, lang.r("span_morning"))
            case "recent" | "hour":
                return self.span(lang, hours=1)
            case "week":
                return Span(now - timedelta(days=7), None, lang.r("span_week"))
        return Span(now - DEFAULT_SPAN, None, lang.r("span_day"))

    @staticmethod
    def clock_time(clock_hour: int, ampm: str | None) -> datetime:
        """The latest past moment at a clock hour ("since 8" picks 8:00 or 20:00)."""
        now = dt_util.now()
        hour = clock_hour % 12
        hours = [hour + 12] if ampm == "pm" else [hour] if ampm == "am" else [hour, hour + 12]
        candidates = []
        for value in hours:
            moment = now.replace(hour=value, minute=0, second=0, microsecond=0)
            if moment > now:
                moment -= timedelta(days=1)
            candidates.append(moment)
        return max(candidates)

    def ago(self, lang: Language, moment: datetime | None) -> str:
        """ "2 minutes ago"."""
        if moment is None:
            return lang.r("just_now")
        seconds = max(0, int((dt_util.utcnow() - moment).total_seconds()))
        if seconds < 10:
            return lang.r("just_now")
        if seconds < 60:
            return lang.r("seconds_ago", n=seconds)
        if seconds < 3600:
            n = round(seconds / 60)
            return lang.r("minute_ago") if n == 1 else lang.r("minutes_ago", n=n)
        if seconds < 86400:
            n = round(seconds / 3600)
            return lang.r("hour_ago") if n == 1 else lang.r("hours_ago", n=n)
        n = round(seconds / 86400)
        return lang.r("day_ago") if n == 1 else lang.r("days_ago", n=n)

    def duration(self, lang: Language, seconds: float) -> str:
        """ "40 seconds"."""
        value = round(seconds)
        if value < 60:
            return lang.r("second") if value <= 1 else lang.r("seconds", n=value)
        if value < 3600:
            n = round(value / 60)
            return lang.r("minute") if n == 1 else lang.r("minutes", n=n)
        n = round(value / 3600)
        return lang.r("hour") if n == 1 else lang.r("hours", n=n)

    # Events

    def sound_name(self, lang: Language, category: str) -> str:
        """Spoken name of a category, from the sentences or else the service's name."""
        fallback = None
        for entry in loaded_entries(self.hass):
            for cat in entry.runtime_data.coordinator.info.categories:
                if cat.id == category:
                    fallback = cat.name.lower()
        return lang.sound(category, fallback)

    async def async_events(self, query: Query) -> list[FoundEvent]:
        """Events of the query's place, category and span, newest first."""
        entries = loaded_entries(self.hass)
        if query.place is not None:
            wanted = {entry_id for entry_id, _ in query.place.sources}
            entries = [entry for entry in entries if entry.entry_id in wanted]
        results = await asyncio.gather(
            *(self._async_entry_events(entry, query) for entry in entries),
            return_exceptions=True,
        )
        found: list[FoundEvent] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                found.extend(result)
        if errors and not found and len(errors) == len(results):
            raise errors[0]
        for error in errors:
            LOGGER.warning("Could not read events from a service: %s", error)
        found.sort(key=lambda f: (f.event.start or dt_util.utcnow(), f.event.seq), reverse=True)
        return found

    async def _async_entry_events(
        self, entry: MidashengConfigEntry, query: Query
    ) -> list[FoundEvent]:
        coordinator: MidashengCoordinator = entry.runtime_data.coordinator
        sources: set[str] | None = None
        if query.place is not None:
            sources = {sid for eid, sid in query.place.sources if eid == entry.entry_id}
            if not sources:
                return []
        source_param = next(iter(sources)) if sources and len(sources) == 1 else None
        after = max(0, (coordinator.resume.last_seq or 0) - EVENT_WINDOW)
        events: dict[int, SoundEvent] = {}
        for _ in range(EVENT_PAGES):
            page = await coordinator.client.events(
                after=after, limit=EVENT_WINDOW, source=source_param, category=query.category
            )
            for event in page.events:
                events[event.seq] = event
            if len(page.events) < EVENT_WINDOW or page.last_seq <= after:
                break
            after = page.last_seq
        now = dt_util.utcnow()
        end = query.span.end or now
        if query.before is not None:
            end = min(end, query.before)
        found = []
        for event in events.values():
            if event.start is None or (entry.entry_id, event.seq) in query.exclude:
                continue
            if sources is not None and event.source not in sources:
                continue
            if query.category is not None and event.category != query.category:
                continue
            if event.start > end or (event.end or now) < query.span.start:
                continue
            found.append(
                FoundEvent(
                    entry_id=entry.entry_id,
                    event=event,
                    place=self.source_place(entry, event.source),
                )
            )
        return found

    def event_phrase(self, lang: Language, found: FoundEvent) -> str:
        """ "a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds"."""
        event = found.event
        values = {
            "sound": self.sound_name(lang, event.category),
            "place": self.place_phrase(lang, found.place),
            "ago": self.ago(lang, event.start),
        }
        if event.ongoing:
            return lang.r("event_ongoing", **values)
        seconds = event.duration
        if seconds is None and event.start is not None and event.end is not None:
            seconds = (event.end - event.start).total_seconds()
        if seconds is None or seconds < SHORT_EVENT_SECONDS:
            return lang.r("event_short", **values)
        return lang.r("event_ended", **values, duration=self.duration(lang, seconds))

    def join(self, lang: Language, items: list[str]) -> str:
        """ "a, b and c"."""
        if len(items) <= 1:
            return "".join(items)
        separator = lang.r("list_separator")
        return separator.join(items[:-1]) + lang.r("list_last_separator") + items[-1]

    # Questions

    async def async_heard(self, lang: Language, query: Query) -> Answer:
        """What was heard in a place and span, grouped by sound and place, newest first."""
        found = await self.async_events(query)
        place = self.place_phrase(lang, query.place.name if query.place else None)
        if not found:
            if query.before is not None or query.exclude:
                return Answer(text=lang.r("nothing_before", place=place, span=query.span.phrase))
            if query.category is not None:
                sound = self.sound_name(lang, query.category)
                text = lang.r(
                    "heard_none_category", sound=sound, place=place, span=query.span.phrase
                )
            else:
                text = lang.r("heard_none", place=place, span=query.span.phrase)
            return Answer(text=text, follow_up=query)
        # Short enough to be spoken: the newest sound, then how many there were in all;
        # "and before that?" goes on one sound at a time.
        newest = found[0]
        text = lang.r("heard_last", event=self.event_phrase(lang, newest))
        if len(found) > 1 and not query.exclude:
            key = "heard_count" if query.category is None else "heard_count_category"
            text = f"{text} {lang.r(key, count=len(found), span=query.span.phrase)}"
        follow_up = Query(
            place=query.place,
            category=query.category,
            span=query.span,
            before=query.before,
            exclude=query.exclude | {newest.key},
        )
        return Answer(text=text, events=[newest], follow_up=follow_up)

    def _active(self, place: Place | None, category: str | None) -> list[FoundEvent]:
        found: list[FoundEvent] = []
        for entry, source_id in _sources_of(self.hass):
            if place is not None and (entry.entry_id, source_id) not in place.sources:
                continue
            found.extend(
                FoundEvent(
                    entry_id=entry.entry_id,
                    event=event,
                    place=self.source_place(entry, source_id),
                )
                for event in entry.runtime_data.coordinator.active_events()
                if event.source == source_id and category in (None, event.category)
            )
        return found

    def _require_connected(self, lang: Language) -> list[MidashengConfigEntry]:
        entries = loaded_entries(self.hass)
        if not entries:
            raise SoundQueryError(lang.r("no_service"))
        if not any(entry.runtime_data.coordinator.connected for entry in entries):
            raise SoundQueryError(lang.r("not_connected"))
        return entries

    async def async_is_active(self, lang: Language, category: str, place: Place | None) -> Answer:
        """Whether a category is going off now (in a place), else when it was last heard."""
        entries = self._require_connected(lang)
        sound = self.sound_name(lang, category)
        place_text = self.place_phrase(lang, place.name if place else None)
        if active := self._active(place, category):
            newest = max(active, key=lambda f: f.event.start or dt_util.utcnow())
            return Answer(
                text=lang.r(
                    "active_yes",
                    sound=sound,
                    place=self.place_phrase(lang, newest.place),
                    ago=self.ago(lang, newest.event.start),
                ),
                events=active,
            )
        # A source that is not heard cannot say "no": its detectors are unavailable, and the
        # answer says what the entities show.
        scope = [
            (entry, source_id)
            for entry, source_id in _sources_of(self.hass)
            if place is None or (entry.entry_id, source_id) in place.sources
        ]
        not_heard = [
            (entry, source_id)
            for entry, source_id in scope
            if not entry.runtime_data.coordinator.hears(source_id)
        ]
        deaf = sorted({self.source_place(entry, source_id) for entry, source_id in not_heard})
        deaf_places = self.join(lang, [self.place_phrase(lang, name).strip() for name in deaf])
        if scope and len(not_heard) == len(scope):
            return Answer(text=lang.r("active_deaf", sound=sound, places=deaf_places))
        last: FoundEvent | None = None
        for entry in entries:
            for (source_id, cat), event in entry.runtime_data.coordinator.latest.items():
                if cat != category or event.start is None:
                    continue
                if place is not None and (entry.entry_id, source_id) not in place.sources:
                    continue
                if last is None or event.start > (last.event.start or event.start):
                    last = FoundEvent(
                        entry_id=entry.entry_id,
                        event=event,
                        place=self.source_place(entry, source_id),
                    )
        caveat = f" {lang.r('active_partly_deaf', places=deaf_places)}" if deaf else ""
        if last is None:
            return Answer(text=lang.r("active_no", sound=sound, place=place_text) + caveat)
        return Answer(
            text=lang.r(
                "active_no_last",
                sound=sound,
                place=place_text,
                ago=self.ago(lang, last.event.start),
                last_place="" if place else self.place_phrase(lang, last.place),
            )
            + caveat,
            events=[last],
        )

    async def async_describe(self, lang: Language, place: Place | None) -> Answer:
        """What is happening now: the audio LM's caption of live audio, else what is active."""
        entries = self._require_connected(lang)
        targets = [
            (entry, source_id)
            for entry in entries
            for source_id in entry.runtime_data.coordinator.sources
            if place is None or (entry.entry_id, source_id) in place.sources
        ]
        with_lm = [
            (entry, source_id)
            for entry, source_id in targets
            if entry.runtime_data.coordinator.info.supports("describe")
        ][:MAX_DESCRIBED_SOURCES]
        if not with_lm:
            active = self._active(place, None)
            if active:
                sounds = self.join(
                    lang,
                    [
                        lang.r(
                            "sound_at",
                            sound=self.sound_name(lang, f.event.category),
                            place=self.place_phrase(lang, f.place),
                        )
                        for f in active
                    ],
                )
                state = lang.r("describe_hearing", sounds=sounds)
            else:
                state = lang.r(
                    "describe_quiet", place=self.place_phrase(lang, place.name if place else None)
                )
            return Answer(text=f"{lang.r('describe_no_lm')} {state}", events=active)
        results = await asyncio.gather(
            *(
                entry.runtime_data.client.describe(source=source_id, seconds=DESCRIBE_SECONDS)
                for entry, source_id in with_lm
            ),
            return_exceptions=True,
        )
        parts = []
        for (entry, source_id), result in zip(with_lm, results, strict=True):
            if isinstance(result, MidashengNotSupportedError):
                text = lang.r("describe_no_lm")
            elif isinstance(result, MidashengError):
                text = lang.r("lm_failed", error=result)
            elif isinstance(result, BaseException):
                raise result
            else:
                text = result
            if len(with_lm) == 1 and place is not None:
                parts.append(text)
                continue
            title = self.place_phrase(lang, self.source_place(entry, source_id)).strip()
            parts.append(lang.r("describe", place_title=title[:1].upper() + title[1:], text=text))
        return Answer(text=" ".join(parts))

    async def async_what_was_that(
        self, lang: Language, place: Place | None, category: str | None
    ) -> Answer:
        """The latest sound (in a place), and with an audio LM what it sounded like."""
        query = Query(place=place, category=category, span=self.span(lang, period="day"))
        found = await self.async_events(query)
        if not found:
            place_text = self.place_phrase(lang, place.name if place else None)
            return Answer(text=lang.r("was_that_none", place=place_text, span=query.span.phrase))
        latest = found[0]
        text = lang.r("was_that", event=self.event_phrase(lang, latest))
        entry = self.hass.config_entries.async_get_entry(latest.entry_id)
        assert entry is not None
        if latest.event.has_clip and entry.runtime_data.coordinator.info.supports("describe"):
            try:
                caption = await entry.runtime_data.client.describe(event=latest.event.seq)
            except MidashengError as err:
                LOGGER.debug("Could not describe event %s: %s", latest.event.seq, err)
            else:
                text = f"{text} {lang.r('sounded_like', text=caption)}"
        return Answer(
            text=text,
            events=[latest],
            follow_up=Query(
                place=place, category=category, span=query.span, exclude=frozenset({latest.key})
            ),
        )

    # Sentences

    async def async_recognize(self, text: str, lang: Language) -> RecognizeResult | None:
        """Match a sentence against this integration's questions.

        hassil's matching is CPU work that grows with the sentences and places, so it runs in
        the executor, as Home Assistant's own agent does; the place list is built here, on
        the loop, from the registries.
        """
        return await self.hass.async_add_executor_job(
            partial(
                recognize_best,
                text,
                lang.intents,
                slot_lists={"place": self.place_list()},
                language=lang.code,
            )
        )

    async def async_category(self, lang: Language, text: str) -> str | None:
        """`Language.category_from_text`, in the executor (it may run hassil)."""
        return await self.hass.async_add_executor_job(lang.category_from_text, text)

    async def async_answer_result(
        self, lang: Language, result: RecognizeResult, previous: Query | None = None
    ) -> Answer | None:
        """Answer a recognized sentence; None for a follow-up without a previous question."""
        entities = {name: entity.value for name, entity in result.entities.items()}
        place: Place | None = None
        if "place" in entities:
            place = self.place_from_value(str(entities["place"]))
            if place is None:
                raise SoundQueryError(lang.r("unknown_place", name=result.entities["place"].text))
        category = entities.get("category")
        match result.intent.name:
            case "MidashengEarlier":
                if previous is None:
                    return None
                return await self.async_heard(lang, previous)
            case "MidashengIsSoundActive":
                return await self.async_is_active(lang, str(category), place)
            case "MidashengDescribe":
                return await self.async_describe(lang, place)
            case "MidashengWhatWasThat":
                return await self.async_what_was_that(lang, place, category)
        since = None
        if "clock_hour" in entities:
            since = self.clock_time(int(entities["clock_hour"]), entities.get("ampm"))
        period = entities.get("period") or entities.get("period_last")
        span = self.span(
            lang,
            period=period,
            minutes=int(entities["minutes"]) if "minutes" in entities else None,
            hours=int(entities["hours"]) if "hours" in entities else None,
            since=since,
        )
        if not loaded_entries(self.hass):
            raise SoundQueryError(lang.r("no_service"))
        return await self.async_heard(lang, Query(place=place, category=category, span=span))

    async def async_answer_text(
        self, text: str, language: str | None, previous: Query | None = None
    ) -> Answer | None:
        """Answer a sentence when it is a question about sounds; None otherwise."""
        lang = await self.async_language(language)
        if (result := await self.async_recognize(text, lang)) is None:
            return None
        try:
            return await self.async_answer_result(lang, result, previous)
        except SoundQueryError as err:
            return Answer(text=str(err))
        except MidashengError as err:
            LOGGER.debug("Could not answer %r: %s", text, err)
            return Answer(text=lang.r("not_connected"))
