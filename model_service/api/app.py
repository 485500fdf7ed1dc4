"""HTTP API of the service (aiohttp): auth, limits, errors, metrics and the core endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
import hmac
import logging
import time
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from model_service import __version__, audio, categories, metrics
from model_service.api.asr import setup_asr
from model_service.api.common import (
    ADMISSION_KEY,
    GUARD_KEY,
    SERVICE_KEY,
    STORE_KEY,
    STREAMS_KEY,
    UPLOAD_ROUTES,
    Admission,
    expect_upload,
    json_error,
    read_audio_body,
)
from model_service.api.connections import ConnectionGuard, connection_limit
from model_service.api.live import setup_live
from model_service.api.lm import setup_lm
from model_service.api.openapi import PATHS as OPENAPI_PATHS, build_openapi
from model_service.api.sounds import setup_sounds
from model_service.api.speech import setup_speech
from model_service.config import is_loopback
from model_service.detection.service import Service
from model_service.live.runtime import LIVE_CATEGORIES
from model_service.models.batcher import BatcherClosedError, QueueFullError
from model_service.sensitivity import Sensitivity

_LOGGER = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/v1/health"})
API_VERSION = 1

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _endpoint(request: web.Request) -> str:
    # Label metrics by route template, not raw path, so ids don't explode cardinality.
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests and time them by endpoint, method and status."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        endpoint = _endpoint(request)
        metrics.REQUESTS.labels(endpoint=endpoint, method=request.method, status=str(status)).inc()
        metrics.REQUEST_SECONDS.labels(endpoint=endpoint, method=request.method).observe(
            time.perf_counter() - started
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; nothing a client sends crashes the server."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        # Keep headers such as Allow or Retry-After, but not the body's own.
        headers = {
            k: v
            for k, v in exc.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return json_error(exc.status, exc.text or exc.reason or "error", headers)
    except HttpProcessingError as err:
        # A malformed part of the request (a multipart part's headers, say): the client's.
        return json_error(400, f"malformed request: {err.message or err}")
    except audio.FFmpegNotFoundError as err:
        # The server's installation is at fault, not the client's audio.
        _LOGGER.error("%s", err)
        return json_error(500, str(err))
    except audio.AudioTooLargeError as err:
        return json_error(413, str(err))
    except audio.AudioError as err:
        return json_error(400, str(err))
    except QueueFullError as err:
        return json_error(503, str(err), {"Retry-After": str(int(err.retry_after))})
    except BatcherClosedError:
        return json_error(503, "the service is shutting down", {"Retry-After": "5"})
    except Exception:
        _LOGGER.exception("Unexpected error handling %s %s", request.method, request.path)
        return json_error(500, "internal error; see the service log")


def _host_name(host: str) -> str:
    """The name or address of a Host header or an origin's netloc, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def browser_middleware(
    bind_host: str, token: str | None, allowed_hosts: Sequence[str]
) -> Middleware:
    """What a web page in the user's browser must not be able to do with the service.

    Without a token the service trusts whatever reaches its loopback port, and a browser on
    the same machine reaches it too. So, without a token, a request must name the service by
    a loopback address, the bound address or a name in `allowed_hosts` (a page on a name it
    controls that resolves to 127.0.0.1, DNS rebinding, is refused). Whatever the mode, a
    request a page sends from another origin (its `Origin` header) may not change anything
    and may not open the WebSocket; clients that are not browsers send no `Origin`.
    """
    names = {bind_host.lower(), *(name.lower() for name in allowed_hosts)}

    def known(name: str) -> bool:
        return name in names or is_loopback(name)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        served = _host_name(request.host or "")
        if not token and not known(served):
            return json_error(
                403,
                f"this service is not served as {served!r}: use 127.0.0.1, or add the name to "
                "allowed_hosts in the config file",
            )
        origin = request.headers.get(hdrs.ORIGIN)
        changes = request.method not in ("GET", "HEAD", "OPTIONS")
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if origin is not None and (changes or upgrade):
            parts = urlsplit(origin)
            same = parts.netloc.lower() == (request.host or "").lower()
            if not same:
                return json_error(403, f"requests from web pages of {origin} are refused")
        return await handler(request)

    return guard


def admission_middleware(limit: int) -> Middleware:
    """Refuse an upload with 503 before its body is read when `limit` are in progress.

    Reading, decoding and queueing a request that the model queue will refuse anyway costs
    the CPU and memory that the admitted requests need. Refused clients get `Retry-After`.
    (A client that sends `Expect: 100-continue` is refused before it even sends the body:
    see `expect_upload`.)
    """

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not limit or request.method != "POST" or _endpoint(request) not in UPLOAD_ROUTES:
            return await handler(request)
        state = request.app[ADMISSION_KEY]
        refused = state.refusal(limit)
        if refused is not None:
            return refused
        state.in_progress += 1
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            state.in_progress -= 1
            state.took(time.perf_counter() - started)

    return admit


def auth_middleware(token: str | None) -> Middleware:
    """Bearer-token check for every endpoint except the health probe."""
    expected = f"Bearer {token}".encode() if token else b""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization", "").encode()
            # compare_digest: the time taken must not reveal how much of the token matched.
            if not hmac.compare_digest(given, expected):
                return json_error(
                    401,
                    "missing or wrong token: send Authorization: Bearer <token>",
                    {"WWW-Authenticate": 'Bearer realm="midasheng"'},
                )
        return await handler(request)

    return check


async def health(request: web.Request) -> web.Response:
    """Liveness probe (no auth); `degraded` when events cannot be stored right now."""
    storage = request.app[STORE_KEY].storage
    return web.json_response({"status": "ok" if storage["ok"] else "degraded", "storage": storage})


def info_payload(service: Service) -> dict[str, object]:
    """The `/v1/info` document."""
    tagger = service.tagger.info
    lm_info = service.lm.info.as_dict() if service.lm is not None else None
    asr_info = service.asr.info.as_dict() if service.asr is not None else None
    tts_info = (
        service.tts.info.as_dict()
        if service.tts is not None
        else {"available": False, "reason": service.tts_reason or "no speech model is loaded"}
    )
    return {
        "id": service.service_id,
        "name": "MiDasheng Audio",
        "version": __version__,
        "api": API_VERSION,
        "sample_rate": 16000,
        "categories": categories.describe((*tagger.categories, *LIVE_CATEGORIES)),
        "models": {"tagger": tagger.as_dict(), "lm": lm_info, "asr": asr_info, "tts": tts_info},
        "capabilities": service.capabilities,
    }


async def info(request: web.Request) -> web.Response:
    """What the service is, which categories it detects and which models are loaded."""
    payload = info_payload(request.app[SERVICE_KEY])
    streams = request.app.get(STREAMS_KEY)
    if streams is not None:
        # Taught sounds are categories too, once they have enough examples.
        payload["categories"] = [*payload["categories"], *streams.sounds.categories()]  # type: ignore[misc]
    return web.json_response(payload)


async def classify(request: web.Request) -> web.Response:
    """Detect sound events in an uploaded clip."""
    service = request.app[SERVICE_KEY]
    sensitivity: Sensitivity | None = None
    if "sensitivity" in request.query:
        try:
            sensitivity = Sensitivity.parse(request.query["sensitivity"])
        except ValueError as err:
            return json_error(400, str(err))
    decoded = await read_audio_body(request, service)
    events, level = await service.classify(decoded.samples, sensitivity=sensitivity)
    return web.json_response(
        {
            "duration": round(decoded.duration, 3),
            "level_dbfs": round(level, 1),
            "events": [e.as_dict() for e in events],
        }
    )


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of this API."""
    served = {r.canonical for r in request.app.router.resources() if r.canonical in OPENAPI_PATHS}
    return web.json_response(build_openapi(__version__, served))


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus metrics."""
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")


def create_app(service: Service) -> web.Application:
    """Build the aiohttp application around a loaded service."""
    guard = ConnectionGuard(limit=connection_limit(service.config.max_connections))
    app = web.Application(
        middlewares=[
            guard.middleware(),
            metrics_middleware,
            error_middleware,
            browser_middleware(
                service.config.host, service.config.token, service.config.allowed_hosts
            ),
            auth_middleware(service.config.token),
            # After auth: a client without the token is told so, not "busy".
            admission_middleware(service.config.max_pending_uploads),
        ],
        # Audio bodies are read as streams with their own limit; this caps everything else
        # (JSON, multipart fields) at the same size.
        client_max_size=service.config.max_upload_bytes,
    )
    app[SERVICE_KEY] = service
    app[GUARD_KEY] = guard
    app[ADMISSION_KEY] = Admission()
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/info", info)
    app.router.add_post("/v1/classify", classify, expect_handler=expect_upload)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics_endpoint)

    async def on_startup(app: web.Application) -> None:
        await app[SERVICE_KEY].start()

    async def on_cleanup(app: web.Application) -> None:
        await app[SERVICE_KEY].stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    setup_live(app)
    setup_sounds(app)
    setup_lm(app)
    setup_asr(app)
    setup_speech(app)
    return app
