"""The shop API: customers, products and orders behind an ``X-API-Key`` header.

Webhooks (Shopify-style, see ``_webhooks.py``): ``order.created``; ``order.refunded`` when
an order becomes refunded, its ``data`` the order plus ``reason`` (the ``note`` sent with
the refund, when there is one); ``order.updated`` for any other change.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web

from ._base import Route, SandboxApi
from ._fake import COMPANIES, COUNTRIES, EPOCH, iso, moment_after, now_iso, person
from ._responses import (
    ApiError,
    FieldErrors,
    dumps,
    int_param,
    json_bytes_response,
    json_response,
    not_found,
    read_json_object,
)
from ._webhooks import NO_EVENTS, ApiEvents

PRODUCTS = (
    ("Espresso Beans 1kg", 2490),
    ("Ceramic Pour-Over Set", 3900),
    ("Oat Milk 6-pack", 1299),
    ("Gooseneck Kettle", 6900),
    ("Burr Grinder", 14900),
    ("Travel Mug 350ml", 2200),
    ("Cold Brew Bottle", 2750),
    ("Paper Filters x100", 650),
    ("Milk Frother", 4500),
    ("Digital Scale", 3499),
    ("Decaf Beans 500g", 1450),
    ("Matcha Tin 100g", 2100),
    ("Chai Concentrate", 899),
    ("Linen Apron", 3200),
    ("Espresso Cups x4", 2800),
    ("Knock Box", 2599),
    ("Tamper 58mm", 3800),
    ("Cleaning Tablets", 1199),
    ("Descaler 500ml", 999),
    ("Barista Jug 600ml", 2400),
    ("Aeropress Go", 3995),
    ("Moka Pot 6-cup", 4200),
    ("French Press 1L", 3600),
    ("Hand Grinder", 8900),
    ("Gift Card 25", 2500),
    ("Gift Card 50", 5000),
    ("Syrup Vanilla", 799),
    ("Syrup Caramel", 799),
    ("Storage Canister", 2999),
    ("Tasting Flight Box", 4800),
)
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled", "refunded"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset({"refunded"}),
    "cancelled": frozenset(),
    "refunded": frozenset(),
}
CURRENCIES = ("USD", "EUR", "GBP")
SEED_CUSTOMERS = 50
SEED_ORDERS = 200
MAX_LIMIT = 100


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "pos":
            raise ValueError(raw)
        position = int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued") from None
    if position < 0:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued")
    return position


def cursor_page(items: Sequence[dict[str, Any]], query: Any) -> dict[str, Any]:
    limit = int_param(query, "limit", 20, minimum=1, maximum=MAX_LIMIT)
    cursor = query.get("cursor")
    start = decode_cursor(cursor) if cursor else 0
    end = start + limit
    return {
        "data": list(items[start:end]),
        "next_cursor": encode_cursor(end) if end < len(items) else None,
    }


class ShopApi(SandboxApi):
    name = "shop"
    events: ApiEvents = NO_EVENTS

    def reset(self, seed: int) -> None:
        rng = random.Random(f"shop:{seed}")
        self.products: dict[str, dict[str, Any]] = {}
        for index, (title, price) in enumerate(PRODUCTS, start=1):
            pid = f"prod_{index:03d}"
            self.products[pid] = {
                "id": pid,
                "name": title,
                "sku": f"SKU-{1000 + index}",
                "price": price,
                "currency": "USD",
                "in_stock": rng.random() > 0.1,
            }
        self.customers: dict[str, dict[str, Any]] = {}
        self.customer_by_email: dict[str, str] = {}
        for index in range(1, SEED_CUSTOMERS + 1):
            name, email = person(rng, index)
            country, currency = rng.choice(COUNTRIES)
            cid = f"cus_{index:04d}"
            self.customers[cid] = {
                "id": cid,
                "name": name,
                "email": email,
                "company": rng.choice(COMPANIES),
                "country": country,
                "currency": currency,
                "created_at": iso(moment_after(rng, EPOCH - timedelta(days=400), 365)),
            }
            self.customer_by_email[email] = cid
        self.orders: dict[str, dict[str, Any]] = {}
        customer_ids = list(self.customers)
        product_ids = list(self.products)
        for number in range(1, SEED_ORDERS + 1):
            customer = self.customers[rng.choice(customer_ids)]
            items = [(pid, rng.randint(1, 3)) for pid in rng.sample(product_ids, rng.randint(1, 4))]
            created = EPOCH + timedelta(hours=number * 7, minutes=rng.randrange(60))
            order = self._make_order(str(number), customer, items, iso(created))
            order["status"] = rng.choices(ORDER_STATUSES, weights=(2, 4, 3, 6, 1, 1))[0]
            order["updated_at"] = iso(created + timedelta(hours=rng.randint(1, 96)))
            self.orders[order["id"]] = order
        self._next_order = SEED_ORDERS + 1
        # Single-resource GETs dominate benchmarks; their JSON is cached until a write.
        self._order_json: dict[str, bytes] = {}
        self._customer_json: dict[str, bytes] = {}
        self._products_json = dumps({"data": list(self.products.values())})

    def _make_order(
        self,
        order_id: str,
        customer: dict[str, Any],
        items: list[tuple[str, int]],
        created_at: str,
    ) -> dict[str, Any]:
        currency = customer["currency"]
        line_items = []
        for pid, quantity in items:
            product = self.products[pid]
            line_items.append(
                {
                    "product_id": pid,
                    "name": product["name"],
                    "quantity": quantity,
                    "unit_price": product["price"],
                    "total": product["price"] * quantity,
                }
            )
        return {
            "id": order_id,
            "customer_id": customer["id"],
            "status": "pending",
            "currency": currency,
            "line_items": line_items,
            "total": sum(item["total"] for item in line_items),
            "shipping_address": None,
            "note": None,
            "created_at": created_at,
            "updated_at": created_at,
        }

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/customers", self.list_customers),
            Route("GET", "/customers/{customer_id}", self.get_customer),
            Route("GET", "/orders", self.list_orders),
            Route("POST", "/orders", self.create_order),
            Route("GET", "/orders/{order_id}", self.get_order),
            Route("PATCH", "/orders/{order_id}", self.update_order),
            Route("GET", "/products", self.list_products),
        ]

    async def list_customers(self, request: web.Request) -> web.StreamResponse:
        email = request.query.get("email")
        if email is not None:
            cid = self.customer_by_email.get(email.strip().lower())
            items = [self.customers[cid]] if cid else []
        else:
            items = list(self.customers.values())
        return json_response(cursor_page(items, request.query))

    async def get_customer(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["customer_id"]
        body = self._customer_json.get(cid)
        if body is None:
            customer = self.customers.get(cid)
            if customer is None:
                raise not_found("customer", cid)
            body = self._customer_json[cid] = dumps(customer)
        return json_bytes_response(body)

    async def list_orders(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        customer_id = query.get("customer_id")
        status = query.get("status")
        if status is not None and status not in TRANSITIONS:
            raise ApiError(
                422,
                "validation_failed",
                "the request has invalid fields",
                fields=[{"field": "status", "message": f"must be one of {list(ORDER_STATUSES)}"}],
            )
        items: Sequence[dict[str, Any]] = list(self.orders.values())
        if customer_id is not None:
            items = [o for o in items if o["customer_id"] == customer_id]
        if status is not None:
            items = [o for o in items if o["status"] == status]
        since = query.get("updated_since")
        if since is not None:
            # Incremental sync: changes since a watermark, oldest change first, so a
            # client that stops after some pages can resume from the last one it read.
            items = sorted((o for o in items if o["updated_at"] >= since),
                           key=lambda o: (o["updated_at"], int(o["id"])))
        return json_response(cursor_page(items, query))

    async def get_order(self, request: web.Request) -> web.StreamResponse:
        oid = request.match_info["order_id"]
        body = self._order_json.get(oid)
        if body is None:
            order = self.orders.get(oid)
            if order is None:
                raise not_found("order", oid)
            body = self._order_json[oid] = dumps(order)
        return json_bytes_response(body)

    async def create_order(self, request: web.Request) -> web.StreamResponse:
        payload = await read_json_object(request)
        errors = FieldErrors()
        for name in sorted(
            set(payload) - {"customer_id", "line_items", "shipping_address", "note"}
        ):
            errors.add(name, "is not a known field")
        customer = None
        cid = payload.get("customer_id")
        if not isinstance(cid, str) or not cid:
            errors.add("customer_id", "is required and must be a string")
        else:
            customer = self.customers.get(cid)
            if customer is None:
                errors.add("customer_id", f"customer {cid!r} does not exist")
        raw_items = payload.get("line_items")
        items: list[tuple[str, int]] = []
        if not isinstance(raw_items, list) or not raw_items:
            errors.add("line_items", "must be a non-empty array")
        else:
            for i, item in enumerate(raw_items):
                if not isinstance(item, dict):
                    errors.add(f"line_items[{i}]", "must be an object")
                    continue
                pid, qty = item.get("product_id"), item.get("quantity", 1)
                if pid not in self.products:
                    errors.add(f"line_items[{i}].product_id", f"unknown product {pid!r}")
                if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= 99:
                    errors.add(f"line_items[{i}].quantity", "must be an integer from 1 to 99")
                if isinstance(pid, str) and isinstance(qty, int):
                    items.append((pid, qty))
        address = payload.get("shipping_address")
        if address is not None and not isinstance(address, str):
            errors.add("shipping_address", "must be a string")
        note = payload.get("note")
        if note is not None and not isinstance(note, str):
            errors.add("note", "must be a string")
        errors.raise_if_any()
        assert customer is not None
        oid = str(self._next_order)
        self._next_order += 1
        order = self._make_order(oid, customer, items, now_iso())
        order["shipping_address"] = address
        order["note"] = note
        self.orders[oid] = order
        self.events.emit("order.created", order)
        return json_response(order, 201, {"Location": f"{request.path}/{oid}"})

    async def update_order(self, request: web.Request) -> web.StreamResponse:
        oid = request.match_info["order_id"]
        order = self.orders.get(oid)
        if order is None:
            raise not_found("order", oid)
        payload = await read_json_object(request)
        errors = FieldErrors()
        unknown = set(payload) - {"status", "shipping_address", "note"}
        for name in sorted(unknown):
            errors.add(name, "is not a field that can be changed")
        status = payload.get("status")
        if status is not None and status not in TRANSITIONS:
            errors.add("status", f"must be one of {list(ORDER_STATUSES)}")
        for name in ("shipping_address", "note"):
            if name in payload and payload[name] is not None and not isinstance(payload[name], str):
                errors.add(name, "must be a string or null")
        errors.raise_if_any()
        refunded = False
        if status is not None and status != order["status"]:
            if status not in TRANSITIONS[order["status"]]:
                raise ApiError(
                    409,
                    "invalid_transition",
                    f"an order that is {order['status']} cannot become {status}",
                    current_status=order["status"],
                )
            order["status"] = status
            refunded = status == "refunded"
        for name in ("shipping_address", "note"):
            if name in payload:
                order[name] = payload[name]
        order["updated_at"] = now_iso()
        self._order_json.pop(oid, None)
        if refunded:
            # The API has no refund-reason field; the note sent with the refund is the
            # merchant's reason. Omitted when unknown so that mappings like
            # {"reason": data.reason} leave it out rather than pass null.
            reason = payload.get("note")
            data = {**order, "reason": reason} if reason else order
            self.events.emit("order.refunded", data)
        else:
            self.events.emit("order.updated", order)
        return json_response(order)

    async def list_products(self, request: web.Request) -> web.StreamResponse:
        return json_bytes_response(self._products_json)
