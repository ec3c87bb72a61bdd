"""The calendar API: availability, appointments with RFC 8288 ``Link`` pagination.

Webhooks (Standard Webhooks): ``appointment.booked`` and ``appointment.cancelled``, ``data``
the appointment (``status`` "cancelled" in the latter).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from ._base import Route, SandboxApi
from ._fake import TOPICS, iso, now_iso, person
from ._responses import (
    ApiError,
    FieldErrors,
    int_param,
    json_response,
    not_found,
    read_json_object,
    validation_error,
)
from ._webhooks import NO_EVENTS, ApiEvents

OPEN = time(9, 0)
CLOSE = time(17, 0)
"""Business hours, UTC, Monday to Friday: bookings outside them are refused (422)."""
SLOT_STEP = timedelta(minutes=30)
MIN_DURATION, MAX_DURATION = 15, 240


def _parse_date(raw: str | None, field: str) -> date:
    if not raw:
        raise validation_error(field, "is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise validation_error(field, "must be a date like 2025-01-31") from None


class CalendarApi(SandboxApi):
    name = "calendar"
    events: ApiEvents = NO_EVENTS

    def __init__(self, seed: int, anchor: date | None = None) -> None:
        self.anchor = anchor
        super().__init__(seed)

    def reset(self, seed: int) -> None:
        rng = random.Random(f"calendar:{seed}")
        # Seeded bookings sit around "today" so the demo's "book me tomorrow" meets a
        # realistically busy calendar; pass ``anchor`` for date-independent tests.
        today = self.anchor or datetime.now(UTC).date()
        self.appointments: dict[str, dict[str, Any]] = {}
        self._next = 1
        day = today - timedelta(days=3)
        while day <= today + timedelta(days=14):
            if day.weekday() < 5:
                for start_slot in sorted(rng.sample(range(16), rng.randint(2, 5))):
                    start = datetime.combine(day, OPEN, UTC) + start_slot * SLOT_STEP
                    duration = rng.choice((30, 30, 30, 60))
                    if start + timedelta(minutes=duration) > datetime.combine(day, CLOSE, UTC):
                        continue
                    if self._overlapping(start, duration) is not None:
                        continue
                    _, email = person(rng, self._next)
                    created = iso(
                        start - timedelta(days=rng.randint(1, 20), minutes=rng.randrange(600))
                    )
                    self._store(start, duration, email, rng.choice(TOPICS), created)
            day += timedelta(days=1)

    def _store(
        self, start: datetime, duration: int, email: str, topic: str, created: str
    ) -> dict[str, Any]:
        aid = f"apt_{self._next:04d}"
        self._next += 1
        appointment = {
            "id": aid,
            "start": iso(start),
            "end": iso(start + timedelta(minutes=duration)),
            "duration_minutes": duration,
            "attendee_email": email,
            "topic": topic,
            "status": "confirmed",
            "created_at": created,
            "_start": start,
        }
        self.appointments[aid] = appointment
        return appointment

    @staticmethod
    def _public(appointment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in appointment.items() if not k.startswith("_")}

    def _overlapping(self, start: datetime, duration: int) -> dict[str, Any] | None:
        end = start + timedelta(minutes=duration)
        for appointment in self.appointments.values():
            other = appointment["_start"]
            other_end = other + timedelta(minutes=appointment["duration_minutes"])
            if other < end and start < other_end:
                return appointment
        return None

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/availability", self.availability),
            Route("GET", "/appointments", self.list_appointments),
            Route("POST", "/appointments", self.book),
            Route("GET", "/appointments/{appointment_id}", self.get_appointment),
            Route("DELETE", "/appointments/{appointment_id}", self.cancel),
        ]

    async def availability(self, request: web.Request) -> web.StreamResponse:
        day = _parse_date(request.query.get("date"), "date")
        duration = int_param(
            request.query, "duration", 30, minimum=MIN_DURATION, maximum=MAX_DURATION
        )
        slots = []
        if day.weekday() < 5:
            start = datetime.combine(day, OPEN, UTC)
            close = datetime.combine(day, CLOSE, UTC)
            while start + timedelta(minutes=duration) <= close:
                if self._overlapping(start, duration) is None:
                    slots.append(
                        {"start": iso(start), "end": iso(start + timedelta(minutes=duration))}
                    )
                start += SLOT_STEP
        return json_response(
            {
                "date": day.isoformat(),
                "timezone": "UTC",
                "duration_minutes": duration,
                "slots": slots,
            }
        )

    async def list_appointments(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        page = int_param(query, "page", 1, minimum=1, maximum=1_000_000)
        per_page = int_param(query, "per_page", 20, minimum=1, maximum=100)
        items = sorted(self.appointments.values(), key=lambda a: (a["_start"], a["id"]))
        if "date" in query:
            day = _parse_date(query["date"], "date")
            items = [a for a in items if a["_start"].date() == day]
        if "attendee_email" in query:
            items = [a for a in items if a["attendee_email"] == query["attendee_email"].lower()]
        last = max(1, math.ceil(len(items) / per_page))
        start = (page - 1) * per_page

        def link(target: int, rel: str) -> str:
            url = request.url.update_query(page=str(target), per_page=str(per_page))
            return f'<{url}>; rel="{rel}"'

        links = [link(1, "first")]
        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
        return json_response(
            [self._public(a) for a in items[start : start + per_page]],
            headers={"Link": ", ".join(links), "X-Total-Count": str(len(items))},
        )

    async def book(self, request: web.Request) -> web.StreamResponse:
        payload = await read_json_object(request)
        errors = FieldErrors()
        start: datetime | None = None
        raw_start = payload.get("start")
        if not isinstance(raw_start, str):
            errors.add("start", "is required (ISO 8601 date-time with offset)")
        else:
            try:
                start = datetime.fromisoformat(raw_start)
            except ValueError:
                errors.add("start", "must be an ISO 8601 date-time like 2025-01-31T10:00:00Z")
            else:
                if start.tzinfo is None:
                    errors.add("start", "must include a UTC offset or Z")
                    start = None
        duration = payload.get("duration_minutes", 30)
        if (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or not MIN_DURATION <= duration <= MAX_DURATION
        ):
            errors.add(
                "duration_minutes", f"must be an integer from {MIN_DURATION} to {MAX_DURATION}"
            )
            duration = None
        email = payload.get("attendee_email")
        if not isinstance(email, str) or "@" not in email.strip("@"):
            errors.add("attendee_email", "must be an email address")
        topic = payload.get("topic", "")
        if not isinstance(topic, str) or len(topic) > 200:
            errors.add("topic", "must be a string of at most 200 characters")
        if start is not None and duration is not None:
            start = start.astimezone(UTC)
            end = start + timedelta(minutes=duration)
            if (
                start.weekday() >= 5
                or start.time() < OPEN
                or end > datetime.combine(start.date(), CLOSE, UTC)
            ):
                errors.add("start", "must fall within business hours, Mon-Fri 09:00-17:00 UTC")
        errors.raise_if_any()
        assert start is not None and isinstance(duration, int) and isinstance(email, str)
        clash = self._overlapping(start, duration)
        if clash is not None:
            raise ApiError(
                409,
                "slot_unavailable",
                f"the slot overlaps appointment {clash['id']} ({clash['start']}-{clash['end']})",
                conflicting_appointment_id=clash["id"],
            )
        appointment = self._store(start, duration, email.strip().lower(), str(topic), now_iso())
        public = self._public(appointment)
        self.events.emit("appointment.booked", public)
        return json_response(public, 201, {"Location": f"{request.path}/{appointment['id']}"})

    def _find(self, request: web.Request) -> dict[str, Any]:
        aid = request.match_info["appointment_id"]
        appointment = self.appointments.get(aid)
        if appointment is None:
            raise not_found("appointment", aid)
        return appointment

    async def get_appointment(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._public(self._find(request)))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        appointment = self.appointments.pop(self._find(request)["id"])
        cancelled = {**self._public(appointment), "status": "cancelled"}
        self.events.emit("appointment.cancelled", cancelled)
        return web.Response(status=204)
