from __future__ import annotations

from datetime import date, timedelta

import aiohttp

from patchwire.sandbox import Sandbox, auth_headers

ANCHOR = date(2025, 3, 5)  # matches the calendar_anchor of the conftest fixture


async def test_order_42_has_line_items_and_a_customer(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async with http.get(sandbox.api_url("shop") + "/orders/42", headers=auth_headers("shop")) as r:
        order = await r.json()
    assert order["id"] == "42"
    assert order["customer_id"].startswith("cus_")
    assert order["total"] == sum(item["total"] for item in order["line_items"])


async def test_unknown_ids_and_routes_are_404_in_the_error_shape(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    for api, path in [
        ("shop", "/orders/9999"),
        ("shop", "/customers/cus_nope"),
        ("helpdesk", "/tickets/99999"),
        ("calendar", "/appointments/apt_9999"),
        ("payments", "/charges/ch_missing"),
        ("payments", "/no-such-route"),
    ]:
        async with http.get(sandbox.api_url(api) + path, headers=auth_headers(api)) as resp:
            assert resp.status == 404, (api, path)
            assert (await resp.json())["error"]["code"] == "not_found"


async def test_creating_an_order_validates_fields_with_422(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.api_url("shop") + "/orders"
    bad = {"customer_id": "cus_nope", "line_items": [{"product_id": "prod_001", "quantity": 0}]}
    async with http.post(url, json=bad, headers=auth_headers("shop")) as resp:
        assert resp.status == 422
        fields = {f["field"] for f in (await resp.json())["error"]["fields"]}
        assert fields == {"customer_id", "line_items[0].quantity"}
    good = {"customer_id": "cus_0001", "line_items": [{"product_id": "prod_002", "quantity": 2}]}
    async with http.post(url, json=good, headers=auth_headers("shop")) as resp:
        assert resp.status == 201
        order = await resp.json()
        assert order["id"] == "201" and order["total"] == 7800 and order["status"] == "pending"


async def test_cancelling_a_shipped_order_is_a_409(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    headers = auth_headers("shop")
    base = sandbox.api_url("shop")
    async with http.get(base + "/orders", params={"status": "shipped"}, headers=headers) as r:
        shipped = (await r.json())["data"][0]["id"]
    async with http.patch(
        f"{base}/orders/{shipped}", json={"status": "cancelled"}, headers=headers
    ) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "invalid_transition"
    async with http.patch(
        f"{base}/orders/{shipped}", json={"status": "delivered"}, headers=headers
    ) as resp:
        assert resp.status == 200
    async with http.get(f"{base}/orders/{shipped}", headers=headers) as resp:
        assert (await resp.json())["status"] == "delivered"


async def test_helpdesk_tickets_take_json_form_comments_and_multipart_files(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.api_url("helpdesk")
    headers = auth_headers("helpdesk")
    ticket = {
        "subject": "Where is order 42?",
        "description": "It has been a week.",
        "requester_email": "ada@example.com",
        "priority": "high",
        "order_id": 42,
        "tags": ["shipping"],
    }
    async with http.post(base + "/tickets", json=ticket, headers=headers) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created["order_id"] == "42" and created["status"] == "new"
    tid = created["id"]
    async with http.post(
        f"{base}/tickets/{tid}/comments",
        data={"body": "On its way", "public": "false"},
        headers=headers,
    ) as resp:
        assert resp.status == 201
        comment = await resp.json()
        assert comment["public"] is False and comment["author_email"] == "agent@example.com"
    async with http.post(
        f"{base}/tickets/{tid}/comments", json={"body": "json"}, headers=headers
    ) as resp:
        assert resp.status == 415
    form = aiohttp.FormData()
    form.add_field("file", b"x" * 1234, filename="label.pdf", content_type="application/pdf")
    async with http.post(f"{base}/tickets/{tid}/attachments", data=form, headers=headers) as resp:
        assert resp.status == 201
        body = await resp.json()
        assert (body["filename"], body["size"], body["content_type"]) == (
            "label.pdf",
            1234,
            "application/pdf",
        )
    async with http.get(f"{base}/tickets/{tid}/comments", headers=headers) as resp:
        assert [c["body"] for c in (await resp.json())["comments"]] == ["On its way"]


async def test_helpdesk_rejects_an_invalid_priority_with_422(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    bad = {"subject": "x", "description": "y", "requester_email": "nope", "priority": "asap"}
    async with http.post(
        sandbox.api_url("helpdesk") + "/tickets", json=bad, headers=auth_headers("helpdesk")
    ) as resp:
        assert resp.status == 422
        fields = {f["field"] for f in (await resp.json())["error"]["fields"]}
        assert fields == {"requester_email", "priority"}


async def test_booking_an_overlapping_slot_is_a_409_and_cancelling_frees_it(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.api_url("calendar")
    headers = auth_headers("calendar")
    day = ANCHOR + timedelta(days=1)
    async with http.get(
        base + "/availability",
        params={"date": day.isoformat(), "duration": "60"},
        headers=headers,
    ) as resp:
        slots = (await resp.json())["slots"]
    assert slots
    booking = {
        "start": slots[0]["start"],
        "duration_minutes": 60,
        "attendee_email": "ada@example.com",
        "topic": "Demo",
    }
    async with http.post(base + "/appointments", json=booking, headers=headers) as resp:
        assert resp.status == 201
        aid = (await resp.json())["id"]
    async with http.post(base + "/appointments", json=booking, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["conflicting_appointment_id"] == aid
    async with http.delete(f"{base}/appointments/{aid}", headers=headers) as resp:
        assert resp.status == 204
    async with http.get(f"{base}/appointments/{aid}", headers=headers) as resp:
        assert resp.status == 404
    async with http.post(base + "/appointments", json=booking, headers=headers) as resp:
        assert resp.status == 201


async def test_calendar_rejects_bad_bookings_and_has_no_weekend_slots(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.api_url("calendar")
    headers = auth_headers("calendar")
    saturday = date(2025, 3, 8)
    async with http.get(
        base + "/availability", params={"date": saturday.isoformat()}, headers=headers
    ) as resp:
        assert (await resp.json())["slots"] == []
    async with http.get(base + "/availability", params={"date": "soon"}, headers=headers) as resp:
        assert resp.status == 422
    bad = {"start": "2025-03-08T10:00:00Z", "attendee_email": "ada@example.com"}
    async with http.post(base + "/appointments", json=bad, headers=headers) as resp:
        assert resp.status == 422


async def test_payments_idempotency_replays_and_detects_mismatch(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.api_url("payments") + "/charges"
    headers = {**auth_headers("payments"), "Idempotency-Key": "order-42-attempt"}
    form = {"amount": "2500", "currency": "usd", "customer": "cus_0001", "description": "x"}
    async with http.post(url, data=form, headers=headers) as resp:
        assert resp.status == 201
        assert "Idempotent-Replayed" not in resp.headers
        first = await resp.read()
    async with http.post(url, data=form, headers=headers) as resp:
        assert resp.status == 201
        assert resp.headers["Idempotent-Replayed"] == "true"
        assert await resp.read() == first
    async with http.post(url, data={**form, "amount": "2600"}, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "idempotency_key_reused"
    async with http.get(
        url, params={"customer": "cus_0001", "limit": "100"}, headers=auth_headers("payments")
    ) as resp:
        matching = [c for c in (await resp.json())["data"] if c["description"] == "x"]
    assert len(matching) == 1


async def test_payments_take_form_bodies_only(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.api_url("payments") + "/charges"
    async with http.post(
        url, json={"amount": 100, "currency": "usd"}, headers=auth_headers("payments")
    ) as resp:
        assert resp.status == 415
    async with http.post(
        url, data={"amount": "ten", "currency": "xyz"}, headers=auth_headers("payments")
    ) as resp:
        assert resp.status == 422
        fields = {f["field"] for f in (await resp.json())["error"]["fields"]}
        assert fields == {"amount", "currency"}


async def test_refunds_are_bounded_by_what_remains(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    base = sandbox.api_url("payments")
    headers = auth_headers("payments")
    async with http.post(
        base + "/charges", data={"amount": "1000", "currency": "eur"}, headers=headers
    ) as resp:
        charge = await resp.json()
    refunds = f"{base}/charges/{charge['id']}/refunds"
    async with http.post(refunds, data={"amount": "400"}, headers=headers) as resp:
        assert resp.status == 201
    async with http.post(refunds, data={"amount": "601"}, headers=headers) as resp:
        assert resp.status == 422
    async with http.post(refunds, data={}, headers=headers) as resp:
        assert resp.status == 201
        assert (await resp.json())["amount"] == 600
    async with http.post(refunds, data={}, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "charge_already_refunded"
    async with http.get(f"{base}/charges/{charge['id']}", headers=headers) as resp:
        body = await resp.json()
        assert body["refunded"] is True and body["amount_refunded"] == 1000


async def test_reset_reseeds_the_data(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    url = sandbox.api_url("shop") + "/orders/42"
    headers = auth_headers("shop")
    async with http.get(url, headers=headers) as resp:
        before = await resp.json()
    async with http.patch(url, json={"note": "changed"}, headers=headers) as resp:
        assert resp.status == 200
    async with http.post(sandbox.url + "/_sandbox/reset") as resp:
        assert resp.status == 200
    async with http.get(url, headers=headers) as resp:
        assert await resp.json() == before
    assert sandbox.stats.requests["shop"] == 1
