"""The payments API: Stripe-like charges and refunds with form bodies and idempotency.

Webhooks (Stripe-style): ``charge.succeeded`` and ``charge.refunded``, ``data`` the charge.
A request replayed under its Idempotency-Key sends nothing again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from ._base import CREDENTIAL_KEY, Route, SandboxApi
from ._fake import EPOCH, token
from ._responses import (
    ApiError,
    FieldErrors,
    int_param,
    json_response,
    not_found,
    read_form,
)
from ._webhooks import NO_EVENTS, ApiEvents

CURRENCIES = frozenset({"usd", "eur", "gbp", "cad", "aud", "jpy", "chf", "sek"})
MIN_AMOUNT, MAX_AMOUNT = 50, 99_999_999
DECLINED_SOURCE = "tok_chargeDeclined"
SEED_CHARGES = 120


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: tuple[Any, ...]
    status: int
    body: bytes


def _form_int(form: MultiDictProxy[Any], name: str, errors: FieldErrors) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError:
        errors.add(name, "must be an integer number of the currency's smallest unit")
        return None


class PaymentsApi(SandboxApi):
    name = "payments"
    events: ApiEvents = NO_EVENTS

    def reset(self, seed: int) -> None:
        rng = random.Random(f"payments:{seed}")
        self._rng = rng
        self.charges: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[tuple[str, str], StoredResponse] = {}
        base = int(EPOCH.timestamp())
        for number in range(1, SEED_CHARGES + 1):
            amount = rng.randrange(500, 40_000, 50)
            charge = self._new_charge(
                amount=amount,
                currency=rng.choice(("usd", "usd", "eur", "gbp")),
                customer=f"cus_{rng.randint(1, 50):04d}",
                description=f"Order #{rng.randint(1, 200)}",
                metadata={},
                created=base + number * 3_600 + rng.randrange(3_600),
            )
            if rng.random() < 0.15:
                refund_amount = amount if rng.random() < 0.5 else amount // 2
                self._refund(charge, refund_amount, "requested_by_customer", charge["created"])
        self._ordered: list[dict[str, Any]] | None = None

    def _new_charge(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        description: str | None,
        metadata: dict[str, str],
        created: int,
    ) -> dict[str, Any]:
        charge: dict[str, Any] = {
            "id": f"ch_{token(self._rng)}",
            "object": "charge",
            "amount": amount,
            "amount_refunded": 0,
            "currency": currency,
            "customer": customer,
            "description": description,
            "metadata": metadata,
            "status": "succeeded",
            "paid": True,
            "refunded": False,
            "created": created,
            "refunds": [],
        }
        self.charges[charge["id"]] = charge
        self._ordered = None
        return charge

    def _refund(
        self, charge: dict[str, Any], amount: int, reason: str | None, created: int
    ) -> dict[str, Any]:
        refund = {
            "id": f"re_{token(self._rng)}",
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "reason": reason,
            "status": "succeeded",
            "created": created,
        }
        charge["refunds"].append(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return refund

    def _newest_first(self) -> list[dict[str, Any]]:
        if self._ordered is None:
            self._ordered = sorted(
                self.charges.values(), key=lambda c: (c["created"], c["id"]), reverse=True
            )
        return self._ordered

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/charges", self.create_charge),
            Route("GET", "/charges", self.list_charges),
            Route("GET", "/charges/{charge_id}", self.get_charge),
            Route("POST", "/charges/{charge_id}/refunds", self.refund_charge),
        ]

    async def _idempotent(
        self,
        request: web.Request,
        produce: Callable[[MultiDictProxy[Any]], Awaitable[web.Response]],
    ) -> web.Response:
        """Runs ``produce`` once per Idempotency-Key and replays its stored answer after."""
        form = await read_form(request)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return await produce(form)
        scope = (request.get(CREDENTIAL_KEY, ""), key)
        fingerprint = (request.method, request.path, tuple(sorted(form.items())))
        stored = self._idempotency.get(scope)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request",
                )
            return web.Response(
                body=stored.body,
                status=stored.status,
                content_type="application/json",
                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        try:
            response = await produce(form)
        except ApiError as exc:
            response = exc.response()
        # Like Stripe, only server failures are left retryable under the same key.
        if response.status < 500 and isinstance(response.body, bytes):
            self._idempotency[scope] = StoredResponse(fingerprint, response.status, response.body)
        response.headers["Idempotency-Key"] = key
        return response

    async def create_charge(self, request: web.Request) -> web.StreamResponse:
        return await self._idempotent(request, self._create_charge)

    async def _create_charge(self, form: MultiDictProxy[Any]) -> web.Response:
        errors = FieldErrors()
        amount = _form_int(form, "amount", errors)
        if amount is None:
            if "amount" not in [f["field"] for f in errors.fields]:
                errors.add("amount", "is required")
        elif not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            errors.add("amount", f"must be between {MIN_AMOUNT} and {MAX_AMOUNT}")
        currency = str(form.get("currency", "")).lower()
        if currency not in CURRENCIES:
            errors.add("currency", f"must be one of {sorted(CURRENCIES)}")
        customer = form.get("customer") or None
        description = form.get("description") or None
        if description is not None and len(str(description)) > 500:
            errors.add("description", "must be at most 500 characters")
        metadata: dict[str, str] = {}
        for name, value in form.items():
            if name.startswith("metadata[") and name.endswith("]"):
                metadata[name[9:-1]] = str(value)
        errors.raise_if_any()
        assert amount is not None
        if form.get("source") == DECLINED_SOURCE:
            raise ApiError(402, "card_declined", "the card was declined", decline_code="generic")
        charge = self._new_charge(
            amount=amount,
            currency=currency,
            customer=None if customer is None else str(customer),
            description=None if description is None else str(description),
            metadata=metadata,
            created=int(time.time()),
        )
        self.events.emit("charge.succeeded", charge)
        return json_response(charge, 201)

    def _charge(self, request: web.Request) -> dict[str, Any]:
        cid = request.match_info["charge_id"]
        charge = self.charges.get(cid)
        if charge is None:
            raise not_found("charge", cid)
        return charge

    async def get_charge(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._charge(request))

    async def list_charges(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        offset = int_param(query, "offset", 0, minimum=0, maximum=10_000_000)
        limit = int_param(query, "limit", 10, minimum=1, maximum=100)
        items = self._newest_first()
        customer = query.get("customer")
        if customer is not None:
            items = [c for c in items if c["customer"] == customer]
        return json_response(
            {
                "object": "list",
                "data": items[offset : offset + limit],
                "has_more": offset + limit < len(items),
                "offset": offset,
            }
        )

    async def refund_charge(self, request: web.Request) -> web.StreamResponse:
        charge = self._charge(request)

        async def produce(form: MultiDictProxy[Any]) -> web.Response:
            errors = FieldErrors()
            amount = _form_int(form, "amount", errors)
            errors.raise_if_any()
            remaining = charge["amount"] - charge["amount_refunded"]
            if remaining <= 0:
                raise ApiError(
                    409, "charge_already_refunded", f"charge {charge['id']} is fully refunded"
                )
            if amount is None:
                amount = remaining
            if amount <= 0:
                errors.add("amount", "must be positive")
            elif amount > remaining:
                errors.add("amount", f"must not exceed the refundable {remaining}")
            errors.raise_if_any()
            reason = form.get("reason")
            refund = self._refund(
                charge, amount, None if reason is None else str(reason), int(time.time())
            )
            self.events.emit("charge.refunded", charge)  # like Stripe: the charge object
            return json_response(refund, 201)

        return await self._idempotent(request, produce)
