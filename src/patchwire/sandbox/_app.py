"""Composes the four APIs, auth, rate limits, chaos and control routes into one app."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

from ._auth import Authenticator, build_authenticators, merged_credentials
from ._base import CREDENTIAL_KEY, Handler, SandboxApi
from ._calendar import CalendarApi
from ._chaos import ChaosControl, ChaosSettings
from ._helpdesk import HelpdeskApi
from ._oauth import OAuthServer
from ._openapi import openapi_handlers
from ._payments import PaymentsApi
from ._ratelimit import RateLimiter
from ._responses import ApiError, error_body, json_response
from ._shop import ShopApi
from ._stats import SandboxStats
from ._webhooks import SANDBOX_WEBHOOK_SCHEMES, WebhookSender

API_NAMES = ("shop", "helpdesk", "calendar", "payments")
CONTROL_PREFIX = "/_sandbox"


class SandboxState:
    """Everything mutable behind one sandbox app: data, chaos, limits, counters."""

    def __init__(
        self,
        *,
        seed: int = 0,
        chaos: ChaosSettings | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        calendar_anchor: date | None = None,
        webhook_url: str | None = None,
        webhook_secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.seed = seed
        self.credentials = merged_credentials(credentials)
        self.authenticators: dict[str, Authenticator] = build_authenticators(self.credentials)
        self.webhooks = WebhookSender(webhook_url, webhook_secrets)
        shop = ShopApi(seed)
        helpdesk = HelpdeskApi(seed, agent_email=self.credentials["helpdesk"]["username"])
        calendar = CalendarApi(seed, anchor=calendar_anchor)
        payments = PaymentsApi(seed)
        # Each API announces its own events (order refunded...) through this hook.
        shop.events = self.webhooks.events_for("shop")
        helpdesk.events = self.webhooks.events_for("helpdesk")
        calendar.events = self.webhooks.events_for("calendar")
        payments.events = self.webhooks.events_for("payments")
        self.apis: dict[str, SandboxApi] = {
            "shop": shop,
            "helpdesk": helpdesk,
            "calendar": calendar,
            "payments": payments,
        }
        self.chaos = ChaosControl(global_settings=chaos or ChaosSettings(), seed=seed)
        self.limiter = RateLimiter()
        self.stats = SandboxStats()
        # not one of API_NAMES: the authorization server has no API credential of its own
        self.oauth = OAuthServer()

    def reset(self, seed: int | None = None) -> None:
        """Re-seeds every API's data and forgets rate-limit windows, stats and chaos dice."""
        if seed is not None:
            self.seed = seed
        for api in self.apis.values():
            api.reset(self.seed)
        self.limiter.reset()
        self.stats.clear()
        self.webhooks.counters.clear()
        self.oauth.reset()
        self.chaos.reseed(self.chaos.seed)

    def set_chaos(self, api: str | None = None, *, seed: int | None = None, **fields: Any) -> None:
        if api is not None and api not in self.apis:
            raise ValueError(f"unknown sandbox API {api!r}; expected one of {list(self.apis)}")
        self.chaos.update(api, fields)
        if seed is not None:
            self.chaos.reseed(seed)


STATE_KEY = web.AppKey("patchwire_sandbox_state", SandboxState)


def state_of(app: web.Application) -> SandboxState:
    """The state behind an app from :func:`build_app`, for in-process tests."""
    return app[STATE_KEY]


def _http_exception_response(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        raise exc
    code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
    message = "no such route" if exc.status == 404 else exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return json_response(error_body(code, message), exc.status, headers)


def _make_middleware(state: SandboxState, public: set[Handler]) -> Any:
    apis = {name: state.authenticators[name] for name in state.apis}
    stats = state.stats
    chaos = state.chaos
    limiter = state.limiter
    request_ids = itertools.count(1)

    @web.middleware
    async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        end = path.find("/", 1)
        name = path[1:end] if end > 0 else path[1:]
        auth = apis.get(name)
        if auth is None:
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except web.HTTPException as exc:
                return _http_exception_response(exc)
        stats.requests[name] += 1
        if request.match_info.handler in public:
            return await handler(request)
        settings = chaos.effective(name)
        if settings.disruptive:
            disrupted = await chaos.disrupt(request, settings, stats.chaos)
            if disrupted is not None:
                transport = request.transport
                if transport is not None and not transport.is_closing():
                    stats.statuses[disrupted.status] += 1
                return disrupted
        presented = auth.presented(request)
        decision = limiter.hit((name, presented), settings.rate_limit_per_minute)
        response: web.StreamResponse
        if not decision.allowed:
            stats.rate_limited += 1
            response = json_response(
                error_body(
                    "rate_limited",
                    f"more than {decision.limit} requests per minute for this credential",
                ),
                429,
                {"Retry-After": str(decision.retry_after)},
            )
        elif not auth.accepts(presented):
            stats.unauthorized += 1
            response = json_response(
                error_body(
                    "unauthorized",
                    "missing credentials" if not presented else "invalid credentials",
                ),
                401,
                {"WWW-Authenticate": auth.challenge_for(presented)},
            )
        else:
            request[CREDENTIAL_KEY] = presented
            try:
                response = await handler(request)
            except ApiError as exc:
                response = exc.response()
            except web.HTTPException as exc:
                response = _http_exception_response(exc)
        headers = response.headers
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        headers["X-RateLimit-Reset"] = str(decision.reset_epoch)
        headers["X-Request-Id"] = f"req_{next(request_ids):08d}"
        stats.statuses[response.status] += 1
        return response

    return sandbox_middleware


def _control_routes(state: SandboxState) -> list[web.RouteDef]:
    async def index(request: web.Request) -> web.StreamResponse:
        origin = f"{request.scheme}://{request.host}"
        return json_response(
            {
                "sandbox": "patchwire",
                "apis": {
                    name: {
                        "url": f"{origin}/{name}",
                        "openapi": f"{origin}/{name}/openapi.yaml",
                    }
                    for name in state.apis
                },
                "control": {
                    "chaos": f"{origin}{CONTROL_PREFIX}/chaos",
                    "reset": f"{origin}{CONTROL_PREFIX}/reset",
                    "stats": f"{origin}{CONTROL_PREFIX}/stats",
                    "webhooks": f"{origin}{CONTROL_PREFIX}/webhooks",
                },
            }
        )

    async def get_chaos(request: web.Request) -> web.StreamResponse:
        return json_response(state.chaos.to_json())

    async def put_chaos(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        fields = dict(body)
        api = fields.pop("api", None)
        seed = fields.pop("seed", None)
        clear = fields.pop("clear", False)
        if api is not None and not isinstance(api, str):
            raise ApiError(422, "validation_failed", "api must be a string or null")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ApiError(422, "validation_failed", "seed must be an integer")
        try:
            if clear:
                if api is not None and api not in state.apis:
                    raise ValueError(f"unknown sandbox API {api!r}")
                state.chaos.clear(api)
            state.set_chaos(api, seed=seed, **fields)
        except ValueError as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        return json_response(state.chaos.to_json())

    async def delete_chaos(request: web.Request) -> web.StreamResponse:
        state.chaos.clear()
        return json_response(state.chaos.to_json())

    async def reset(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ApiError(422, "validation_failed", "seed must be an integer")
        state.reset(seed)
        return json_response({"reset": True, "seed": state.seed})

    async def stats(request: web.Request) -> web.StreamResponse:
        # SandboxStats covers requests; the webhook counters live with their sender.
        return json_response(
            {**state.stats.to_json(), "webhooks": state.webhooks.counters.to_json()}
        )

    def webhooks_json() -> dict[str, Any]:
        # Secrets are published defaults or the caller's own, but still not echoed here.
        return {
            "url": state.webhooks.url,
            "schemes": {api: s.scheme for api, s in SANDBOX_WEBHOOK_SCHEMES.items()},
            "counters": state.webhooks.counters.to_json(),
        }

    async def get_webhooks(request: web.Request) -> web.StreamResponse:
        return json_response(webhooks_json())

    async def put_webhooks(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        url = body.get("url")
        if set(body) != {"url"} or (url is not None and not isinstance(url, str)):
            raise ApiError(422, "validation_failed", 'send {"url": "http://..."} or {"url": null}')
        try:
            state.webhooks.set_url(url)
        except ValueError as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        return json_response(webhooks_json())

    return [
        web.get("/", index),
        web.get(f"{CONTROL_PREFIX}/chaos", get_chaos),
        web.put(f"{CONTROL_PREFIX}/chaos", put_chaos),
        web.delete(f"{CONTROL_PREFIX}/chaos", delete_chaos),
        web.post(f"{CONTROL_PREFIX}/reset", reset),
        web.get(f"{CONTROL_PREFIX}/stats", stats),
        web.get(f"{CONTROL_PREFIX}/webhooks", get_webhooks),
        web.put(f"{CONTROL_PREFIX}/webhooks", put_webhooks),
    ]


async def _optional_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return value


def build_app(
    state: SandboxState | None = None,
    *,
    seed: int = 0,
    chaos: ChaosSettings | None = None,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
) -> web.Application:
    """The whole sandbox as one aiohttp app; ``state_of(app)`` reaches its controls."""
    if state is None:
        state = SandboxState(seed=seed, chaos=chaos, credentials=credentials)
    public: set[Handler] = set()
    app = web.Application(middlewares=[_make_middleware(state, public)])
    app[STATE_KEY] = state
    for name, api in state.apis.items():
        yaml_handler, json_handler = openapi_handlers(name)
        public.update((yaml_handler, json_handler))
        app.router.add_get(f"/{name}/openapi.yaml", yaml_handler)
        app.router.add_get(f"/{name}/openapi.json", json_handler)
        for route in api.routes():
            app.router.add_route(route.method, f"/{name}{route.path}", route.handler)
    app.add_routes(_control_routes(state))
    app.add_routes(state.oauth.routes())

    async def on_startup(app: web.Application) -> None:
        state.chaos.release = asyncio.Event()

    async def on_shutdown(app: web.Application) -> None:
        # Held (timeout-chaos) requests would otherwise keep shutdown waiting a minute.
        if state.chaos.release is not None:
            state.chaos.release.set()

    async def on_cleanup(app: web.Application) -> None:
        # Lets queued events go out (briefly) and stops the delivery workers.
        await state.webhooks.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
