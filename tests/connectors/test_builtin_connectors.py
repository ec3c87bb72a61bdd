"""Every built-in connector action against the sandbox APIs, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from patchwire import (
    AuthError,
    ConflictError,
    InputValidationError,
    NotFoundError,
    Patchwire,
    UpstreamValidationError,
)
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.support.settings import local_settings

CANARY = "canary-shop-key-51f0c2d9e7"


@pytest.fixture
async def pw(store_url: str, tmp_path: Path) -> AsyncIterator[Patchwire]:
    credentials = {**SANDBOX_CREDENTIALS, "shop": {"api_key": CANARY}}
    async with Sandbox(credentials=credentials) as sandbox:
        settings = local_settings(tmp_path / "home", database_url=store_url)
        async with Patchwire(settings) as pw:
            for api, values in credentials.items():
                await pw.add_connection(api, f"acme-{api}", {"sandbox_url": sandbox.url, **values},
                                        end_user="acme")
            yield pw


async def call(pw: Patchwire, action: str, **arguments: Any) -> Any:
    return await pw.call(action, arguments, connection=f"acme-{action.split('.')[0]}")


async def test_the_shop_connector_reads_and_writes_orders(pw: Patchwire) -> None:
    order = await call(pw, "shop.get_order", order_id="42")
    assert order["id"] == "42" and order["line_items"]
    customer = await call(pw, "shop.get_customer", customer_id=order["customer_id"])
    found = await call(pw, "shop.find_customer_by_email", email=customer["email"])
    assert found["id"] == customer["id"]
    assert await call(pw, "shop.list_orders", customer_id=customer["id"], limit=5)
    assert await call(pw, "shop.list_customers", limit=3)
    products = await call(pw, "shop.list_products")
    product = (products["data"] if isinstance(products, dict) else products)[0]
    created = await call(pw, "shop.create_order", customer_id=customer["id"],
                         line_items=[{"product_id": product["id"], "quantity": 2}])
    updated = await call(pw, "shop.update_order_status", order_id=str(created["id"]),
                         status="paid")
    assert updated["status"] == "paid"


async def test_the_helpdesk_connector_uses_json_form_and_multipart_bodies(pw: Patchwire) -> None:
    ticket = await call(pw, "helpdesk.create_ticket", subject="Broken mug",
                        description="It arrived in pieces", requester_email="a@example.com",
                        priority="high", order_id="42", tags=["damaged"])
    assert ticket["priority"] == "high"
    comment = await call(pw, "helpdesk.add_comment", ticket_id=ticket["id"], body="On it",
                         public=False)
    assert comment["body"] == "On it"
    comments = await call(pw, "helpdesk.list_comments", ticket_id=ticket["id"])
    assert "On it" in str(comments)
    attachment = await call(pw, "helpdesk.upload_attachment", ticket_id=ticket["id"],
                            file={"filename": "photo.txt", "content": "pixels",
                                  "content_type": "text/plain"})
    assert attachment["filename"] == "photo.txt" and attachment["size"] == 6
    assert (await call(pw, "helpdesk.get_ticket", ticket_id=ticket["id"]))["id"] == ticket["id"]
    await call(pw, "helpdesk.update_ticket", ticket_id=ticket["id"], status="solved")
    assert await call(pw, "helpdesk.list_tickets", per_page=5)


async def test_the_calendar_connector_books_and_reports_conflicts(pw: Patchwire) -> None:
    listed = await call(pw, "calendar.list_appointments", per_page=50)
    taken = {a["start"] for a in (listed if isinstance(listed, list) else listed["data"])}
    booked = None
    for day in range(1, 15):  # the first weekday slot that is free
        import datetime as dt

        date = (dt.date.today() + dt.timedelta(days=day)).isoformat()
        slots = await call(pw, "calendar.get_availability", date=date, duration=30)
        free = [s for s in (slots["slots"] if isinstance(slots, dict) else slots)
                if (s["start"] if isinstance(s, dict) else s) not in taken]
        if free:
            start = free[0]["start"] if isinstance(free[0], dict) else free[0]
            booked = await call(pw, "calendar.book_appointment", start=start,
                                duration_minutes=30, attendee_email="b@example.com",
                                topic="call-back")
            break
    assert booked is not None
    with pytest.raises(ConflictError) as info:
        await call(pw, "calendar.book_appointment", start=booked["start"], duration_minutes=30,
                   attendee_email="c@example.com")
    assert info.value.status == 409
    assert (await call(pw, "calendar.get_appointment",
                       appointment_id=booked["id"]))["id"] == booked["id"]
    await call(pw, "calendar.cancel_appointment", appointment_id=booked["id"])
    with pytest.raises(NotFoundError):
        await call(pw, "calendar.get_appointment", appointment_id="apt_missing")


async def test_the_payments_connector_charges_once_per_idempotency_key(pw: Patchwire) -> None:
    args = {"amount": 1250, "currency": "eur", "customer": "cus_0007",
            "description": "test", "idempotency_key": "key-1"}
    first = await call(pw, "payments.create_charge", **args)
    again = await call(pw, "payments.create_charge", **args)
    assert again["id"] == first["id"]
    refund = await call(pw, "payments.refund_charge", charge_id=first["id"], amount=250)
    assert refund["amount"] == 250
    with pytest.raises(UpstreamValidationError):
        await call(pw, "payments.refund_charge", charge_id=first["id"], amount=5000)
    assert (await call(pw, "payments.get_charge", charge_id=first["id"]))["amount_refunded"] == 250
    assert await call(pw, "payments.list_charges", customer="cus_0007", limit=5)


async def test_bad_arguments_never_reach_the_upstream(pw: Patchwire) -> None:
    with pytest.raises(InputValidationError) as info:
        await call(pw, "payments.create_charge", amount=10, currency="xyz", surprise=True)
    assert {p.path for p in info.value.problems} == {"$.amount", "$.currency", "$"}


async def test_wrong_credentials_raise_an_auth_error_without_the_secret(pw: Patchwire) -> None:
    await pw.update_connection("acme-shop", {"api_key": CANARY + "-wrong"})
    with pytest.raises(AuthError) as info:
        await call(pw, "shop.get_order", order_id="42")
    assert CANARY not in str(info.value) and CANARY not in str(info.value.to_dict())


async def test_no_secret_is_stored_in_plain_text(pw: Patchwire, store_url: str,
                                                 tmp_path: Path) -> None:
    await call(pw, "shop.get_order", order_id="42")
    with pytest.raises(NotFoundError):
        await call(pw, "shop.get_order", order_id="999999")
    await pw.flush()
    needles = [CANARY.encode(), base64.b64encode(CANARY.encode()).rstrip(b"=")]
    if store_url.startswith("sqlite"):
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(f.name == "patchwire.db" for f in files)
        for file in files:
            data = file.read_bytes()
            assert not any(n in data for n in needles), file
    else:
        engine = create_async_engine(store_url)
        try:
            async with engine.connect() as conn:
                for table in ("connections", "calls"):
                    rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
                    assert rows
                    dump = repr(rows).encode()
                    assert not any(n in dump for n in needles), table
        finally:
            await engine.dispose()
    assert (await pw.get_connection("acme-shop")).secrets_set == ["api_key"]
