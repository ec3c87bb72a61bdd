"""REST routes for outbound webhooks: subscriptions (``/api/v1/subscriptions``) and the
delivery log (``/api/v1/deliveries``). Errors are RFC 9457 problems through the app's
handlers: an unknown id is 404, an unacceptable URL, filter or secret 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from patchwire.access import requires
from patchwire.webhooks import WebhookOutbox

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["deliveries_router"]

DeliveryStatus = Literal["pending", "succeeded", "failed"]


class SubscriptionRequest(BaseModel):
    url: str = Field(..., min_length=1, max_length=2000,
                     description="the endpoint (https:// recommended)")
    event_types: list[str] = Field(
        ..., min_length=1, max_length=100,
        description="event type filters: exact types, 'order.*' or '*' for every event")
    description: str | None = Field(None, max_length=500)
    secret: str | None = Field(
        None, description="a whsec_ secret to use instead of a generated one")


class DisableRequest(BaseModel):
    reason: str = Field("disabled through the API", max_length=500)


def deliveries_router(pw: Patchwire) -> APIRouter:
    """``pw``: opened by the app's lifespan before the first request."""
    router = APIRouter(prefix="/api/v1")
    cache: list[WebhookOutbox] = []

    def outbox() -> WebhookOutbox:
        if not cache or cache[0].store is not pw.store:
            cache[:] = [WebhookOutbox.of(pw)]
        return cache[0]

    @router.post("/subscriptions", dependencies=[requires("admin")], status_code=201)
    async def create_subscription(body: SubscriptionRequest, request: Request,
                                  response: Response) -> dict[str, Any]:
        created = await outbox().create_subscription(
            body.url, body.event_types, description=body.description, secret=body.secret)
        response.headers["Location"] = str(request.url_for(
            "get_subscription", subscription_id=created.subscription.id).path)
        # the secret is in this answer only: it is stored encrypted and never shown again
        return created.to_dict()

    @router.get("/subscriptions", dependencies=[requires("read")])
    async def list_subscriptions(
        status: Literal["active", "disabled"] | None = None,
    ) -> list[dict[str, Any]]:
        return [s.to_dict() for s in await outbox().list_subscriptions(status=status)]

    @router.get("/subscriptions/{subscription_id}",
                dependencies=[requires("read")], name="get_subscription")
    async def get_subscription(subscription_id: str) -> dict[str, Any]:
        return (await outbox().get_subscription(subscription_id)).to_dict()

    @router.delete("/subscriptions/{subscription_id}",
                   dependencies=[requires("admin")], status_code=204)
    async def remove_subscription(subscription_id: str) -> Response:
        await outbox().remove_subscription(subscription_id)
        return Response(status_code=204)

    @router.post("/subscriptions/{subscription_id}/enable", dependencies=[requires("admin")])
    async def enable(subscription_id: str) -> dict[str, Any]:
        return (await outbox().enable(subscription_id)).to_dict()

    @router.post("/subscriptions/{subscription_id}/disable", dependencies=[requires("admin")])
    async def disable(subscription_id: str,
                      body: DisableRequest | None = None) -> dict[str, Any]:
        reason = body.reason if body is not None else DisableRequest().reason
        return (await outbox().disable(subscription_id, reason=reason)).to_dict()

    @router.post("/subscriptions/{subscription_id}/redeliver-failed",
                 dependencies=[requires("admin")])
    async def redeliver_failed(subscription_id: str) -> dict[str, Any]:
        return {"redelivered": await outbox().redeliver_failed(subscription_id)}

    @router.get("/deliveries", dependencies=[requires("read")])
    async def list_deliveries(
        request: Request, response: Response,
        subscription: str | None = None,
        status: DeliveryStatus | None = None,
        before: Annotated[str | None, Query(description="a delivery id: older ones")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        records = await outbox().list_deliveries(subscription_id=subscription, status=status,
                                                 before=before, limit=limit)
        if len(records) == limit:  # a full page: there may be older deliveries
            query = {k: v for k, v in request.query_params.items() if k != "before"}
            query["before"] = records[-1].id
            response.headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        return [d.to_dict() for d in records]

    @router.get("/deliveries/{delivery_id}", dependencies=[requires("read")])
    async def get_delivery(delivery_id: str) -> dict[str, Any]:
        box = outbox()
        delivery = await box.get_delivery(delivery_id)
        return {**delivery.to_dict(),
                "attempt_log": [a.to_dict() for a in await box.attempts(delivery_id)]}

    @router.post("/deliveries/{delivery_id}/redeliver", dependencies=[requires("run")])
    async def redeliver(delivery_id: str) -> dict[str, Any]:
        return (await outbox().redeliver(delivery_id)).to_dict()

    return router
