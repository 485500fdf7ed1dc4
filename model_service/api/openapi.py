"""OpenAPI 3 description of the wire contract (docs/api.md), limited to the routes served."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from model_service.sensitivity import CHOICES as SENSITIVITY_CHOICES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


_AUDIO_BODY = {
    "required": True,
    "description": "An audio file (WAV, FLAC, OGG, MP3, anything ffmpeg decodes) or raw PCM "
    "as audio/L16;rate=N;channels=C (big-endian).",
    "content": {
        "audio/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}

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
                    "seconds": {"type": "number", "description": "last N seconds of it"},
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

PATHS: dict[str, dict[str, Any]] = {
    "/v1/health": {
        "get": {
            "summary": "Liveness probe",
            "security": [],
            "responses": {
                "200": _json({"type": "object", "properties": {"status": {"type": "string"}}})
            },
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
            "responses": {"200": _TEXT, **_AUDIO_ERRORS, "501": _NOT_LOADED},
        }
    },
    "/v1/ask": {
        "post": {
            "summary": "Answer a question about audio",
            "requestBody": _LM_BODY,
            "responses": {"200": _TEXT, **_AUDIO_ERRORS, "501": _NOT_LOADED},
        }
    },
    "/v1/transcribe": {
        "post": {
            "summary": "Speech to text",
            "requestBody": {
                "required": True,
                "content": {
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
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"text": {"type": "string"}, "language": {"type": "string"}},
                    }
                ),
                **_AUDIO_ERRORS,
                "501": _NOT_LOADED,
            },
        }
    },
    "/v1/sources": {
        "get": {
            "summary": "List live sources",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "sources": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Source"},
                            }
                        },
                    }
                )
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
            "summary": "Change a source's sensitivity or name",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "sensitivity": {
                                    "type": "string",
                                    "enum": list(SENSITIVITY_CHOICES),
                                },
                                "name": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Source"}),
                "404": _err("No such source"),
            },
        },
        "delete": {
            "summary": "Stop and remove a source",
            "responses": {"204": {"description": "Removed"}, "404": _err("No such source")},
        },
    },
    "/v1/events": {
        "get": {
            "summary": "Stored events after a seq, ordered by seq",
            "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}},
                {"name": "source", "in": "query", "schema": {"type": "string"}},
                {"name": "category", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "events": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Event"},
                            },
                            "last_seq": {"type": "integer"},
                        },
                    }
                ),
                "400": _err("Bad query"),
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
                "404": _err("No such event or clip expired"),
            },
        }
    },
    "/v1/ws": {
        "get": {
            "summary": "WebSocket: subscribe to events/levels/sources (JSON), push PCM (binary)",
            "responses": {"101": {"description": "Switching protocols"}},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"})},
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

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Text": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
    "Category": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Info": {
        "type": "object",
        "required": ["id", "version", "sample_rate", "categories", "models", "capabilities"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "string"},
            "api": {"type": "integer"},
            "sample_rate": {"type": "integer"},
            "categories": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}},
            "models": {
                "type": "object",
                "properties": {
                    "tagger": {"type": "object"},
                    "lm": {"type": "object", "nullable": True},
                    "asr": {"type": "object", "nullable": True},
                },
            },
            "capabilities": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ClipEvent": {
        "type": "object",
        "properties": {
            "category": {"type": "string"},
            "label": {"type": "string"},
            "score": {"type": "number"},
            "start": {"type": "number", "description": "seconds from the clip's start"},
            "end": {"type": "number"},
            "level_dbfs": {"type": "number"},
        },
    },
    "Classification": {
        "type": "object",
        "properties": {
            "duration": {"type": "number"},
            "level_dbfs": {"type": "number"},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/ClipEvent"}},
        },
    },
    "SourceCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string"},
            "kind": {"type": "string", "enum": ["ffmpeg", "push"]},
            "sensitivity": {"type": "string", "enum": list(SENSITIVITY_CHOICES)},
        },
    },
    "Source": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["ffmpeg", "push", "device"]},
            "url": {"type": "string", "nullable": True},
            "state": {
                "type": "string",
                "enum": ["connecting", "streaming", "retrying", "stopped", "idle"],
            },
            "error": {"type": "string", "nullable": True},
            "level_dbfs": {"type": "number", "nullable": True},
            "sensitivity": {"type": "string"},
        },
    },
    "Event": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "category": {"type": "string"},
            "label": {"type": "string"},
            "score": {"type": "number"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time", "nullable": True},
            "level_dbfs": {"type": "number"},
            "has_clip": {"type": "boolean"},
        },
    },
}


def build_openapi(version: str, served: Iterable[str] | None = None) -> dict[str, Any]:
    """The OpenAPI document; with `served`, only the paths this process actually serves."""
    wanted = set(served) if served is not None else set(PATHS)
    return {
        "openapi": "3.0.3",
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
        "paths": {path: spec for path, spec in PATHS.items() if path in wanted},
    }
