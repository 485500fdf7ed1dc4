"""The wire contract (docs/api.md) as OpenAPI 3.1, limited to the routes served.

The one description of the API: REST operations under `paths`, and the JSON messages of the
`/v1/ws` WebSocket in both directions as JSON Schemas under `components.schemas`
(`WsClientMessage`, `WsServerMessage`), named from the `/v1/ws` operation's `x-websocket`.
Schemas list every field the service sends as required and allow no others, so the service's
tests, which validate every response and message they receive against this document, fail
when a payload and the contract drift apart. Served at `/openapi.json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, get_args

from model_service.live.sources import State
from model_service.modes import MODE_CHOICES
from model_service.sensitivity import CHOICES as SENSITIVITY_CHOICES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Any], *, optional: tuple[str, ...] = (), extra: bool = False
) -> dict[str, Any]:
    """An object schema whose properties are all required unless named in `optional`."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": extra,
    }
    return schema


_NULLABLE_NUMBER = {"type": ["number", "null"]}
_SENSITIVITY_OR_DEFAULT = {
    "enum": [*SENSITIVITY_CHOICES, None],
    "description": "null: the service's default",
}
_MODE_OR_DEFAULT = {
    "enum": [*MODE_CHOICES, None],
    "description": "home, away or night; null: the service's default",
}
_NAME = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_UNAUTHORIZED = {"401": _err("Missing or wrong bearer token")}


_AUDIO_CONTENT: dict[str, Any] = {
    "audio/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}
_AUDIO_BODY = {
    "required": True,
    "description": "An audio file (WAV, FLAC, OGG, MP3, anything ffmpeg decodes) or raw PCM "
    "as audio/L16;rate=N;channels=C (big-endian).",
    "content": _AUDIO_CONTENT,
}

# Requests from a web page of another origin, or (without a token) naming the service by a
# host it is not served as (DNS rebinding).
_BROWSER_REFUSED = {"403": _err("Refused: a foreign web page's Origin, or an unknown Host")}

_AUDIO_ERRORS = {
    "400": _err("Undecodable, empty or all-NaN audio"),
    "413": _err("Upload over the size limit"),
    "503": _err("Queue full; retry after the Retry-After header"),
}

_LM_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "audio": {"type": "string", "format": "binary"},
                    "question": {"type": "string"},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "source": {"type": "string", "description": "live source id"},
                    "seconds": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 30,
                        "description": "last N seconds of it (default 10)",
                    },
                    "event": {"type": "integer", "description": "a stored event's seq"},
                    "question": {"type": "string"},
                },
            }
        },
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
    },
}

_TEXT = _json({"$ref": "#/components/schemas/Text"})
_NOT_LOADED = _err("No model for this capability is loaded")
_LM_ERRORS = {
    "404": _err("No such live source or event (or its clip expired)"),
    "409": _err("The live source has no audio yet"),
    "502": _err("The remote language model server failed"),
    "504": _err("The language model did not answer in time"),
}
_UNSAVED = {"503": _err("The change could not be saved (the data folder is unwritable or full)")}

PATHS: dict[str, dict[str, Any]] = {
    "/v1/health": {
        "get": {
            "summary": "Liveness probe, and whether events can be stored",
            "description": "200 while the service runs. `status` is `degraded` when the data "
            "dir's disk is full or failing: events are still detected and delivered live, and "
            "kept in memory until they can be written (`storage`).",
            "security": [],
            "responses": {"200": _json(_ref("Health"))},
        }
    },
    "/v1/info": {
        "get": {
            "summary": "Service id, version, detectable categories, loaded models, capabilities",
            "responses": {"200": _json({"$ref": "#/components/schemas/Info"})},
        }
    },
    "/v1/classify": {
        "post": {
            "summary": "Detect sound events in an uploaded clip",
            "parameters": [
                {
                    "name": "sensitivity",
                    "in": "query",
                    "schema": {"type": "string", "enum": list(SENSITIVITY_CHOICES)},
                }
            ],
            "requestBody": _AUDIO_BODY,
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Classification"}),
                **_AUDIO_ERRORS,
            },
        }
    },
    "/v1/describe": {
        "post": {
            "summary": "Caption audio (an upload, a live source's last seconds, or an event clip)",
            "requestBody": _LM_BODY,
            "responses": {"200": _TEXT, **_AUDIO_ERRORS, "501": _NOT_LOADED, **_LM_ERRORS},
        }
    },
    "/v1/ask": {
        "post": {
            "summary": "Answer a question about audio",
            "requestBody": _LM_BODY,
            "responses": {"200": _TEXT, **_AUDIO_ERRORS, "501": _NOT_LOADED, **_LM_ERRORS},
        }
    },
    "/v1/transcribe": {
        "post": {
            "summary": "Speech to text",
            "parameters": [
                {"name": "language", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "phrases",
                    "in": "query",
                    "description": "with a raw audio body: JSON list of expected sentences",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "description": "Multipart (audio, phrases, language) or a raw audio body as "
                "for /v1/classify, with language and phrases in the query.",
                "content": {
                    **_AUDIO_CONTENT,
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "audio": {"type": "string", "format": "binary"},
                                "phrases": {
                                    "type": "string",
                                    "description": "JSON list of expected sentences",
                                },
                                "language": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "200": _json(_ref("Transcription")),
                **_AUDIO_ERRORS,
                "501": _NOT_LOADED,
                "502": _err("The remote transcription server failed"),
                "504": _err("The remote transcription server did not answer in time"),
            },
        }
    },
    "/v1/speak": {
        "post": {
            "summary": "Text to speech",
            "description": "Speech by the speech model (MiMo-Audio) as 16-bit mono WAV. "
            "Without `stream` one file with exact sizes once the speech is made; with it the "
            "header at once (sizes 0xFFFFFFFF) and each piece of speech as it is made.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["text"],
                            "properties": {
                                "text": {"type": "string", "maxLength": 1000},
                                "language": {
                                    "type": "string",
                                    "description": "BCP 47 tag; the primary subtag counts",
                                },
                                "voice": {
                                    "type": "string",
                                    "description": "a voice id from /v1/info models.tts.voices",
                                },
                                "instruction": {
                                    "type": "string",
                                    "maxLength": 300,
                                    "description": "how to speak, e.g. 'slowly and calmly'",
                                },
                                "reference": {
                                    "type": "string",
                                    "description": "base64 audio (1-30 s) of the voice to speak in",
                                },
                                "reference_event": {
                                    "type": "integer",
                                    "description": "an event whose stored clip is the voice",
                                },
                                "stream": {"type": "boolean", "default": False},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The speech",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                },
                "400": _err("Missing or too long text, unknown voice or language, bad reference"),
                "415": _err("The body is not sent as application/json"),
                "501": _err("No speech model is loaded; the message says why"),
                "502": _err("The speech server failed"),
                "503": _err("Too many requests waiting; retry after the Retry-After header"),
                "504": _err("The speech server did not answer in time"),
            },
        }
    },
    "/v1/sounds": {
        "get": {
            "summary": "List taught sounds",
            "responses": {
                "200": _json(_object({"sounds": {"type": "array", "items": _ref("Sound")}}))
            },
        },
        "post": {
            "summary": "Make a sound to teach by example",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": _NAME},
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Sound"), "Created"),
                "400": _err("Bad body"),
                **_BROWSER_REFUSED,
                "409": _err("There are already 32 taught sounds"),
                "415": _err("The body is not sent as application/json"),
                **_UNSAVED,
            },
        },
    },
    "/v1/sounds/{id}": {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "patch": {
            "summary": "Rename a taught sound",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": _NAME},
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("Sound")),
                "400": _err("Bad body"),
                **_BROWSER_REFUSED,
                "404": _err("No such taught sound"),
                "415": _err("The body is not sent as application/json"),
                **_UNSAVED,
            },
        },
        "delete": {
            "summary": "Forget a taught sound and its examples",
            "responses": {
                "204": {"description": "Deleted"},
                **_BROWSER_REFUSED,
                "404": _err("No such taught sound"),
                **_UNSAVED,
            },
        },
    },
    "/v1/sounds/{id}/examples": {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "post": {
            "summary": "Teach a sound one more example (a source's last seconds, an event's "
            "clip, or an uploaded file)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "source": {"type": "string", "description": "live source id"},
                                "seconds": {
                                    "type": "number",
                                    "minimum": 0.2,
                                    "maximum": 10,
                                    "description": "its last N seconds (default 5)",
                                },
                                "event": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "description": "a stored event's seq",
                                },
                            },
                            "additionalProperties": False,
                        }
                    },
                    **_AUDIO_CONTENT,
                },
            },
            "responses": {
                "201": _json(_ref("Sound"), "Taught"),
                "400": _err("Bad body, undecodable audio, or an example that cannot be used"),
                **_BROWSER_REFUSED,
                "404": _err("No such taught sound, live source or event clip"),
                "409": _err("The sound has 10 examples, or the source has no audio yet"),
                "413": _err("Upload over the size limit"),
                **_UNSAVED,
            },
        },
        "delete": {
            "summary": "Forget a sound's examples, to teach it again",
            "responses": {
                "200": _json(_ref("Sound")),
                **_BROWSER_REFUSED,
                "404": _err("No such taught sound"),
                **_UNSAVED,
            },
        },
    },
    "/v1/sources": {
        "get": {
            "summary": "List live sources",
            "responses": {
                "200": _json(_object({"sources": {"type": "array", "items": _ref("Source")}}))
            },
        },
        "post": {
            "summary": "Create an ffmpeg source (url) or a push source (kind: push)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/SourceCreate"}}
                },
            },
            "responses": {
                "201": _json({"$ref": "#/components/schemas/Source"}, "Created"),
                "400": _err("Bad body or URL scheme"),
                **_BROWSER_REFUSED,
                "415": _err("The body is not sent as application/json"),
                **_UNSAVED,
            },
        },
    },
    "/v1/sources/{id}": {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "get": {
            "summary": "One source",
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Source"}),
                "404": _err("No such source"),
            },
        },
        "patch": {
            "summary": "Change a source's sensitivity, mode or name",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "sensitivity": _SENSITIVITY_OR_DEFAULT,
                                "mode": _MODE_OR_DEFAULT,
                                "name": _NAME,
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Source"}),
                "400": _err("Bad body"),
                **_BROWSER_REFUSED,
                "404": _err("No such source"),
                "415": _err("The body is not sent as application/json"),
                **_UNSAVED,
            },
        },
        "delete": {
            "summary": "Stop and remove a source",
            "responses": {
                "204": {"description": "Removed"},
                "404": _err("No such source"),
                "409": _err("A source from the config file cannot be removed here"),
                **_UNSAVED,
            },
        },
    },
    "/v1/events": {
        "get": {
            "summary": "Stored events that started or changed after a rev, in the order they "
            "last changed (by rev)",
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "description": "the highest rev already seen (0: from the start)",
                    "schema": {"type": "integer", "default": 0, "minimum": 0, "maximum": 2**62},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "default": 100, "minimum": 1, "maximum": 1000},
                },
                {"name": "source", "in": "query", "schema": {"type": "string"}},
                {"name": "category", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(_ref("EventPage")),
                "400": _err("Bad query"),
                "503": _err("The event log is unavailable"),
            },
        }
    },
    "/v1/events/{seq}/clip": {
        "get": {
            "summary": "The WAV clip kept for an event",
            "parameters": [
                {"name": "seq", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": {
                    "description": "WAV",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                },
                "400": _err("seq is not a whole number"),
                "404": _err("No such event or clip expired"),
                "503": _err("The event log is unavailable"),
            },
        }
    },
    "/v1/ws": {
        "get": {
            "summary": "WebSocket: subscribe to events/levels/sources (JSON), push PCM (binary)",
            "description": "Text frames are JSON messages: `WsClientMessage` from the client, "
            "`WsServerMessage` from the service. Binary frames from the client are 16-bit "
            "little-endian mono PCM at 16 kHz for the source named by its `push_start`.",
            "x-websocket": {"client": _ref("WsClientMessage"), "server": _ref("WsServerMessage")},
            "responses": {
                "101": {"description": "Switching protocols"},
                "400": _err("Not a WebSocket upgrade request"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document (needs the token when the service has one)",
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]})},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "text/plain exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}

_SOURCE = _object(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["ffmpeg", "push", "device"]},
        "url": {**_NULLABLE_STRING, "description": "credentials redacted"},
        "state": {
            "type": "string",
            "enum": list(get_args(State)),
        },
        "error": _NULLABLE_STRING,
        "level_dbfs": _NULLABLE_NUMBER,
        "sensitivity": {"type": "string", "enum": list(SENSITIVITY_CHOICES)},
        "mode": {
            "type": "string",
            "enum": list(MODE_CHOICES),
            "description": "the source's own, or the service's default mode",
        },
        "persistent": {
            "type": "boolean",
            "description": "made through the API and kept in the data folder (config-file "
            "sources are not, and cannot be removed through the API)",
        },
        "learned_hours": {
            "type": "integer",
            "minimum": 0,
            "maximum": 24,
            "description": "hours of the day whose usual sound is learned well enough to "
            "report unusual sounds",
        },
        "device": {"type": "string", "description": "device sources: format:device"},
    },
    optional=("device",),
)

_EVENT = _object(
    {
        "seq": {"type": "integer", "minimum": 1, "description": "the event's number"},
        "rev": {
            "type": "integer",
            "minimum": 1,
            "description": "increases with every stored change (a start, an end); resume "
            "with subscribe.after = the highest rev seen",
        },
        "id": {"type": "string"},
        "source": {"type": "string"},
        "category": {"type": "string"},
        "label": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": ["string", "null"], "format": "date-time"},
        "duration": {**_NULLABLE_NUMBER, "description": "seconds; null while ongoing"},
        "level_dbfs": {"type": "number"},
        "has_clip": {"type": "boolean"},
        "mode": {
            "type": "string",
            "enum": list(MODE_CHOICES),
            "description": "the source's mode when the event started",
        },
        "intrusion": {
            "type": "boolean",
            "description": "heard in away mode, and a sound an intruder makes",
        },
    }
)

_MODEL = {"name": {"type": "string"}, "backend": {"type": "string"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "languages": {
                "type": "array",
                "items": {"type": "string"},
                "description": "transcribe: the languages the recognizer supports",
            },
        },
        "additionalProperties": False,
    },
    "Text": _object({"text": {"type": "string"}}),
    "Transcription": _object({"text": {"type": "string"}, "language": _NULLABLE_STRING}),
    "Category": _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "kind": {
                "type": "string",
                "enum": ["sound", "gesture", "taught"],
                "description": "sound: heard while it lasts (an event with a start and an "
                "end); gesture: a sound pattern made on purpose (double_clap, triple_clap, "
                "double_snap), a momentary trigger; taught: a sound taught by example "
                "(custom:<slug>), heard while it lasts",
            },
        }
    ),
    "TaggerInfo": _object(
        {
            **_MODEL,
            "device": {"type": "string"},
            "window_seconds": {"type": "number"},
            "hop_seconds": {"type": "number"},
            "categories": {"type": "array", "items": {"type": "string"}},
        },
        extra=True,
    ),
    "LMInfo": _object(
        {
            **_MODEL,
            "family": {"type": "string"},
            "device": _NULLABLE_STRING,
            "max_new_tokens": {"type": "integer"},
        },
        extra=True,
    ),
    "AsrInfo": _object(
        {
            **_MODEL,
            "languages": {"type": "array", "items": {"type": "string"}},
            "device": _NULLABLE_STRING,
            "phrases": {"type": "boolean"},
        },
        extra=True,
    ),
    "TtsInfo": {
        "oneOf": [
            _object(
                {
                    "available": {"const": True},
                    **_MODEL,
                    "languages": {"type": "array", "items": {"type": "string"}},
                    "voices": {
                        "type": "array",
                        "items": _object(
                            {
                                "id": {"type": "string"},
                                "name": {"type": "string"},
                                "instruction": _NULLABLE_STRING,
                            }
                        ),
                    },
                    "reference_voice": {"type": "boolean"},
                },
                extra=True,
            ),
            _object({"available": {"const": False}, "reason": {"type": "string"}}),
        ]
    },
    "Storage": _object(
        {
            "ok": {"type": "boolean"},
            "problem": {
                **_NULLABLE_STRING,
                "description": "what is wrong and what to do, when not ok",
            },
            "free_mb": {**_NULLABLE_NUMBER, "description": "free space on the data dir's disk"},
            "unsaved_events": {
                "type": "integer",
                "description": "events delivered live but not written yet",
            },
        }
    ),
    "Health": _object(
        {"status": {"enum": ["ok", "degraded"]}, "storage": _ref("Storage")},
    ),
    "Info": _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "string"},
            "api": {"type": "integer"},
            "sample_rate": {"type": "integer"},
            "categories": {"type": "array", "items": _ref("Category")},
            "models": _object(
                {
                    "tagger": _ref("TaggerInfo"),
                    "lm": {"oneOf": [_ref("LMInfo"), {"type": "null"}]},
                    "asr": {"oneOf": [_ref("AsrInfo"), {"type": "null"}]},
                    "tts": _ref("TtsInfo"),
                },
                optional=("tts",),
            ),
            "capabilities": {
                "type": "array",
                "items": {"enum": ["classify", "stream", "describe", "ask", "transcribe", "speak"]},
            },
        }
    ),
    "ClipEvent": _object(
        {
            "category": {"type": "string"},
            "label": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "start": {"type": "number", "description": "seconds from the clip's start"},
            "end": _NULLABLE_NUMBER,
            "level_dbfs": {"type": "number"},
        }
    ),
    "Classification": _object(
        {
            "duration": {"type": "number"},
            "level_dbfs": {"type": "number"},
            "events": {"type": "array", "items": _ref("ClipEvent")},
        }
    ),
    "SourceCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _NAME,
            "url": {"type": ["string", "null"], "minLength": 1, "maxLength": 2048},
            "kind": {"type": "string", "enum": ["ffmpeg", "push"]},
            "sensitivity": _SENSITIVITY_OR_DEFAULT,
            "mode": _MODE_OR_DEFAULT,
        },
        "additionalProperties": False,
    },
    "Source": _SOURCE,
    "Sound": _object(
        {
            "id": {"type": "string", "description": "the category id: custom:<slug>"},
            "name": {"type": "string"},
            "examples": {"type": "integer", "minimum": 0, "maximum": 10},
            "ready": {
                "type": "boolean",
                "description": "taught with at least 3 examples: sources detect it",
            },
        }
    ),
    "Event": _EVENT,
    "EventPage": _object(
        {
            "events": {"type": "array", "items": _ref("Event")},
            "last_seq": {"type": "integer", "description": "the highest rev stored"},
        }
    ),
    # -- WebSocket messages, client to service --
    "WsSubscribe": _object(
        {
            "type": {"const": "subscribe"},
            "after": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "replay stored changes with a higher rev first",
            },
        },
        optional=("after",),
    ),
    "WsPushStart": _object(
        {
            "type": {"const": "push_start"},
            "source": {"type": "string"},
            "rate": {"const": 16000},
        },
        optional=("rate",),
    ),
    "WsPushStop": _object(
        {"type": {"const": "push_stop"}, "source": {"type": "string"}}, optional=("source",)
    ),
    "WsClientMessage": {
        "oneOf": [_ref("WsSubscribe"), _ref("WsPushStart"), _ref("WsPushStop")],
        "discriminator": {"propertyName": "type"},
    },
    # -- WebSocket messages, service to client --
    "WsEvent": _object(
        {
            "type": {"const": "event"},
            "event": _ref("Event"),
            "replay": {"const": True, "description": "sent by a subscribe's replay"},
        },
        optional=("replay",),
    ),
    "WsSource": _object({"type": {"const": "source"}, "source": _ref("Source")}),
    "WsSounds": _object(
        {"type": {"const": "sounds"}, "sounds": {"type": "array", "items": _ref("Sound")}}
    ),
    "WsSourceRemoved": _object(
        {"type": {"const": "source_removed"}, "source": _object({"id": {"type": "string"}})}
    ),
    "WsLevel": _object(
        {"type": {"const": "level"}, "source": {"type": "string"}, "dbfs": {"type": "number"}}
    ),
    "WsSubscribed": _object(
        {
            "type": {"const": "subscribed"},
            "last_seq": {"type": "integer", "description": "the highest rev the replay covered"},
        }
    ),
    "WsOverflow": _object({"type": {"const": "overflow"}}),
    "WsStorage": _object({"type": {"const": "storage"}, "storage": _ref("Storage")}),
    "WsError": _object({"type": {"const": "error"}, "error": {"type": "string"}}),
    "WsServerMessage": {
        "oneOf": [
            _ref("WsEvent"),
            _ref("WsSource"),
            _ref("WsSounds"),
            _ref("WsSourceRemoved"),
            _ref("WsLevel"),
            _ref("WsSubscribed"),
            _ref("WsOverflow"),
            _ref("WsStorage"),
            _ref("WsError"),
        ],
        "discriminator": {"propertyName": "type"},
    },
}


def _with_auth_errors(operation: Any) -> Any:
    """Every operation that needs the token can answer 401."""
    if not isinstance(operation, dict) or "responses" not in operation:
        return operation
    if operation.get("security") == []:
        return operation
    return {**operation, "responses": {**operation["responses"], **_UNAUTHORIZED}}


def build_openapi(version: str, served: Iterable[str] | None = None) -> dict[str, Any]:
    """The OpenAPI document; with `served`, only the paths this process actually serves."""
    wanted = set(served) if served is not None else set(PATHS)
    paths = {
        path: {key: _with_auth_errors(value) for key, value in item.items()}
        for path, item in PATHS.items()
        if path in wanted
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "MiDasheng Audio model service",
            "version": version,
            "description": "Sound event detection and audio understanding for Home Assistant.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
