"""The helpdesk API: tickets, comments (form bodies) and attachments (multipart).

Webhooks (GitHub-style, the type in ``X-GitHub-Event``): ``ticket.created``,
``ticket.updated`` (``data`` the ticket) and ``comment.created`` (``data`` the comment).
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

from aiohttp import BodyPartReader, web

from ._base import Route, SandboxApi
from ._fake import EPOCH, iso, now_iso, person
from ._responses import (
    ApiError,
    FieldErrors,
    int_param,
    json_response,
    not_found,
    read_form,
    read_json_object,
    validation_error,
)
from ._webhooks import NO_EVENTS, ApiEvents

PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "solved", "closed")
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
SEED_TICKETS = 60
SUBJECTS = (
    "Where is my order #{order}?",
    "Refund request for order #{order}",
    "Wrong item in order #{order}",
    "Package arrived damaged (order #{order})",
    "Change shipping address for order #{order}",
    "Cannot log in to my account",
    "Invoice needed for my company",
    "Question about the burr grinder warranty",
    "Discount code not applied",
    "Cancel my subscription",
)
TAG_POOL = ("shipping", "refund", "billing", "account", "vip", "damaged", "warranty")
AGENTS = ("agent@example.com", "sam.support@example.com", "lee.support@example.com")


class HelpdeskApi(SandboxApi):
    name = "helpdesk"
    events: ApiEvents = NO_EVENTS

    def __init__(self, seed: int, agent_email: str = AGENTS[0]) -> None:
        self.agent_email = agent_email
        super().__init__(seed)

    def reset(self, seed: int) -> None:
        rng = random.Random(f"helpdesk:{seed}")
        self.tickets: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.attachments: dict[int, list[dict[str, Any]]] = {}
        self._next_comment = 1
        for number in range(1, SEED_TICKETS + 1):
            _, email = person(rng, number)
            order = rng.randint(1, 200)
            subject = rng.choice(SUBJECTS)
            created = EPOCH + timedelta(hours=number * 11, minutes=rng.randrange(60))
            ticket: dict[str, Any] = {
                "id": number,
                "subject": subject.format(order=order),
                "description": f"Hello, {subject.format(order=order).lower()} Thanks.",
                "status": rng.choices(STATUSES, weights=(2, 4, 2, 3, 2))[0],
                "priority": rng.choices(PRIORITIES, weights=(2, 6, 3, 1))[0],
                "requester_email": email,
                "assignee_email": rng.choice((*AGENTS, None)),
                "order_id": str(order) if "{order}" in subject else None,
                "tags": sorted(rng.sample(TAG_POOL, rng.randint(0, 2))),
                "created_at": iso(created),
                "updated_at": iso(created + timedelta(hours=rng.randint(1, 48))),
                "comment_count": 0,
            }
            self.tickets[number] = ticket
            self.comments[number] = []
            self.attachments[number] = []
            for _ in range(rng.randint(0, 3)):
                self._add_comment(
                    ticket,
                    rng.choice(("Thanks, looking into it.", "Any update?", "Resolved now.")),
                    public=rng.random() > 0.2,
                    author=rng.choice((email, *AGENTS)),
                    at=ticket["updated_at"],
                )
        self._next_ticket = SEED_TICKETS + 1

    def _add_comment(
        self, ticket: dict[str, Any], body: str, *, public: bool, author: str, at: str
    ) -> dict[str, Any]:
        comment = {
            "id": self._next_comment,
            "ticket_id": ticket["id"],
            "body": body,
            "public": public,
            "author_email": author,
            "created_at": at,
        }
        self._next_comment += 1
        self.comments[ticket["id"]].append(comment)
        ticket["comment_count"] += 1
        return comment

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/tickets", self.list_tickets),
            Route("POST", "/tickets", self.create_ticket),
            Route("GET", "/tickets/{ticket_id}", self.get_ticket),
            Route("PATCH", "/tickets/{ticket_id}", self.update_ticket),
            Route("GET", "/tickets/{ticket_id}/comments", self.list_comments),
            Route("POST", "/tickets/{ticket_id}/comments", self.add_comment),
            Route("POST", "/tickets/{ticket_id}/attachments", self.upload_attachment),
        ]

    def _ticket(self, request: web.Request) -> dict[str, Any]:
        raw = request.match_info["ticket_id"]
        ticket = self.tickets.get(int(raw)) if raw.isdigit() else None
        if ticket is None:
            raise not_found("ticket", raw)
        return ticket

    async def list_tickets(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        page = int_param(query, "page", 1, minimum=1, maximum=1_000_000)
        per_page = int_param(query, "per_page", 25, minimum=1, maximum=100)
        items = list(self.tickets.values())
        status = query.get("status")
        if status is not None:
            if status not in STATUSES:
                raise validation_error("status", f"must be one of {list(STATUSES)}")
            items = [t for t in items if t["status"] == status]
        requester = query.get("requester_email")
        if requester is not None:
            items = [t for t in items if t["requester_email"] == requester.lower()]
        start = (page - 1) * per_page
        return json_response(
            {
                "tickets": items[start : start + per_page],
                "page": page,
                "per_page": per_page,
                "total_pages": max(1, math.ceil(len(items) / per_page)),
                "total": len(items),
            }
        )

    async def get_ticket(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._ticket(request))

    def _check_fields(self, payload: dict[str, Any], errors: FieldErrors, *, create: bool) -> None:
        def text(name: str, required: bool, max_len: int) -> None:
            value = payload.get(name)
            if value is None:
                if required:
                    errors.add(name, "is required")
            elif not isinstance(value, str) or not value.strip():
                errors.add(name, "must be a non-empty string")
            elif len(value) > max_len:
                errors.add(name, f"must be at most {max_len} characters")

        text("subject", create, 200)
        text("description", create, 20_000)
        email = payload.get("requester_email")
        if (create or "requester_email" in payload) and (
            not isinstance(email, str) or "@" not in email.strip("@")
        ):
            errors.add("requester_email", "must be an email address")
        assignee = payload.get("assignee_email")
        if assignee is not None and (not isinstance(assignee, str) or "@" not in assignee):
            errors.add("assignee_email", "must be an email address or null")
        priority = payload.get("priority")
        if priority is not None and priority not in PRIORITIES:
            errors.add("priority", f"must be one of {list(PRIORITIES)}")
        order_id = payload.get("order_id")
        if order_id is not None and (
            isinstance(order_id, bool) or not isinstance(order_id, str | int)
        ):
            errors.add("order_id", "must be a string or integer")
        tags = payload.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
        ):
            errors.add("tags", "must be an array of non-empty strings")

    async def create_ticket(self, request: web.Request) -> web.StreamResponse:
        payload = await read_json_object(request)
        errors = FieldErrors()
        for name in sorted(
            set(payload)
            - {
                "subject",
                "description",
                "requester_email",
                "priority",
                "order_id",
                "tags",
                "assignee_email",
            }
        ):
            errors.add(name, "is not a known field")
        self._check_fields(payload, errors, create=True)
        errors.raise_if_any()
        now = now_iso()
        order_id = payload.get("order_id")
        ticket = {
            "id": self._next_ticket,
            "subject": payload["subject"].strip(),
            "description": payload["description"],
            "status": "new",
            "priority": payload.get("priority") or "normal",
            "requester_email": payload["requester_email"].strip().lower(),
            "assignee_email": payload.get("assignee_email"),
            "order_id": None if order_id is None else str(order_id),
            "tags": sorted(set(payload.get("tags") or [])),
            "created_at": now,
            "updated_at": now,
            "comment_count": 0,
        }
        self._next_ticket += 1
        self.tickets[ticket["id"]] = ticket
        self.comments[ticket["id"]] = []
        self.attachments[ticket["id"]] = []
        self.events.emit("ticket.created", ticket)
        return json_response(ticket, 201, {"Location": f"{request.path}/{ticket['id']}"})

    async def update_ticket(self, request: web.Request) -> web.StreamResponse:
        ticket = self._ticket(request)
        payload = await read_json_object(request)
        errors = FieldErrors()
        editable = {"subject", "status", "priority", "assignee_email", "tags"}
        for name in sorted(set(payload) - editable):
            errors.add(name, "is not a field that can be changed")
        self._check_fields(payload, errors, create=False)
        status = payload.get("status")
        if status is not None and status not in STATUSES:
            errors.add("status", f"must be one of {list(STATUSES)}")
        errors.raise_if_any()
        if ticket["status"] == "closed":
            raise ApiError(
                409, "ticket_closed", "a closed ticket cannot be changed; open a new one"
            )
        for name in editable & set(payload):
            value = payload[name]
            ticket[name] = sorted(set(value)) if name == "tags" else value
        ticket["updated_at"] = now_iso()
        self.events.emit("ticket.updated", ticket)
        return json_response(ticket)

    async def list_comments(self, request: web.Request) -> web.StreamResponse:
        ticket = self._ticket(request)
        return json_response({"comments": self.comments[ticket["id"]]})

    async def add_comment(self, request: web.Request) -> web.StreamResponse:
        ticket = self._ticket(request)
        form = await read_form(request)
        errors = FieldErrors()
        body = form.get("body")
        if not isinstance(body, str) or not body.strip():
            errors.add("body", "is required")
        public_raw = form.get("public", "true")
        public = str(public_raw).lower()
        if public not in ("true", "false", "1", "0"):
            errors.add("public", "must be true or false")
        errors.raise_if_any()
        if ticket["status"] == "closed":
            raise ApiError(409, "ticket_closed", "a closed ticket cannot take comments")
        comment = self._add_comment(
            ticket,
            str(body),
            public=public in ("true", "1"),
            author=self.agent_email,
            at=now_iso(),
        )
        ticket["updated_at"] = comment["created_at"]
        self.events.emit("comment.created", comment)
        return json_response(comment, 201)

    async def upload_attachment(self, request: web.Request) -> web.StreamResponse:
        ticket = self._ticket(request)
        if request.content_type != "multipart/form-data":
            raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data")
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise validation_error("file", "a part named 'file' is required")
            if isinstance(part, BodyPartReader) and part.name == "file":
                break
            await part.release()
        size = 0
        while chunk := await part.read_chunk():
            size += len(chunk)
            if size > MAX_ATTACHMENT_BYTES:
                raise ApiError(413, "file_too_large", "attachments are limited to 10 MiB")
        attachment = {
            "id": len(self.attachments[ticket["id"]]) + 1,
            "ticket_id": ticket["id"],
            "filename": part.filename or "upload.bin",
            "size": size,
            "content_type": part.headers.get("Content-Type", "application/octet-stream"),
            "created_at": now_iso(),
        }
        self.attachments[ticket["id"]].append(attachment)
        return json_response(attachment, 201)
