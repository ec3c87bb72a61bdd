"""`patchwire demo`'s second end user: many end users on one deployment.

The walkthrough's connections belong to end user ``acme``. Here ``maya``, another user of
the same chatbot, asks the bot to book a call while she has no calendar connection: the
bot's tool call (her tools: ``ToolInvoker.for_end_user``) answers ``connection_required``
with the words to give her and a single-use connect link. The demo then does what she
would do in her browser — opens the link on the demo server, picks the calendar and
submits its credentials form, over real HTTP — and the backend's view follows: the link's
session reads ``connected`` (``GET /api/v1/connect-sessions/{token}``), the same tool call
books the call through her new connection, and ``acme``'s end-user token still sees only
``acme``'s connections.

The connect pages build their links and check their form posts against the deployment's
public URL, so the demo sets ``public_url`` to its own server's address; and a connector
setting with a default (the sandbox's URL) is the deployment's, not asked on the form, so
the demo's connectors default to the running sandbox (:func:`sandbox_connectors`).

Its requests go through Patchwire's own HTTP core (``HttpCore.exchange``), like the demo's
other requests to its server; the core's SSRF guard admits the loopback only when told.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import aiohttp
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from patchwire import Patchwire
from patchwire.connect import ConnectSessions
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import CallError
from patchwire.http import HttpCore, Limits, PreparedRequest, RawResponse
from patchwire.sandbox import API_NAMES, SANDBOX_CREDENTIALS
from patchwire.tools import ToolInvoker, ToolResult

__all__ = ["FIRST_END_USER", "SECOND_END_USER", "SceneFailed", "SecondEndUser",
           "sandbox_connectors"]

#: the end user the walkthrough's connections belong to
FIRST_END_USER: Final = "acme"
#: the end user who connects her calendar from the chat
SECOND_END_USER: Final = "maya"
SESSION: Final = "demo-maya"
BOOK_TOOL: Final = "calendar_book_appointment"
#: one page or API exchange with the demo server (its pages and answers are small)
_LIMITS: Final = Limits(aiohttp.ClientTimeout(total=10), max_body=1 << 20)
#: the demo server listens on the loopback, which the SSRF guard admits only when told
_LOOPBACK: Final = ("127.0.0.0/8", "::1/128")
#: the whole scene, however the server answers
SCENE_TIMEOUT_S: Final = 60.0
#: how long the backend's long poll waits for the link to be used (it already was)
_WAIT_S: Final = 5
#: the words the tool's answer asks the model to give the user
_WORDS = re.compile(r'Give the user these words: "(?P<words>[^"]+)"')

MAYA_MESSAGE = ("Hi, it's Maya. Could you book me a 30-minute intro call on {day} at "
                "{time} UTC?")


def sandbox_connectors(sandbox_url: str) -> ConnectorRegistry:
    """The built-in connectors, those of the sandbox's APIs defaulting to ``sandbox_url``.

    A setting with a default is the deployment's: the connect form does not ask for it,
    so a connection made there uses the default — which must be where this demo's sandbox
    listens (any free port in tests), not the published 8765."""
    registry = ConnectorRegistry.load(())
    for api in API_NAMES:
        spec = registry.get(api)
        setting = spec.settings["sandbox_url"].model_copy(update={"default": sandbox_url})
        registry.add(spec.model_copy(update={"settings": {**spec.settings,
                                                          "sandbox_url": setting}}),
                     source=registry.source_of(api))
    return registry


class SceneFailed(Exception):
    """A step of the scene did not go as a person would see it go (said on the console,
    the demo goes on)."""


class _Page(HTMLParser):
    """What a person sees on a connect page: its links (by id: href and text), the form's
    inputs and the status or alert text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, tuple[str, str]] = {}
        self.inputs: list[tuple[str, str]] = []  # (name, type)
        self.messages: list[str] = []
        self._text: list[str] | None = None
        self._link: tuple[str, str] | None = None  # (id, href) of the link being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("id") and a.get("href"):
            self._link, self._text = (a["id"], a["href"]), []
        elif tag in ("input", "select") and a.get("name"):
            self.inputs.append((a["name"], a.get("type", "text")))
        elif tag == "p" and a.get("role") in ("status", "alert"):
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text is None:
            return
        text = " ".join("".join(self._text).split())
        if tag == "a" and self._link is not None:
            self.links[self._link[0]] = (self._link[1], text)
            self._link, self._text = None, None
        elif tag == "p" and self._link is None:
            self.messages.append(text)
            self._text = None


@dataclass
class SecondEndUser:
    """The scene, on ``pw`` (in this process: the bot's tools) and the demo server at
    ``base_url`` (the connect pages and the REST API a platform's backend uses)."""

    pw: Patchwire
    base_url: str
    console: Console
    #: what the scene found: the connection maya made, the appointment it booked
    connection: str | None = None
    appointment: dict[str, Any] | None = field(default=None)

    async def run(self) -> bool:
        """The scene; False (said on the console) when a step did not work."""
        self.console.print()
        self.console.rule("[bold]Many end users[/]: each one acts on their own accounts")
        self.console.print(
            f"The connections above belong to end user [bold]{FIRST_END_USER}[/]. End user "
            f"[bold]{SECOND_END_USER}[/], another user of the same chatbot, has connected "
            "nothing yet.")
        http = HttpCore(allow_networks=_LOOPBACK)
        try:
            async with asyncio.timeout(SCENE_TIMEOUT_S):
                await self._scene(http)
        except (SceneFailed, CallError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            self.console.print(f"  [red]✗[/] the second end user's scene stopped: "
                               f"{escape(why)}", highlight=False)
            return False
        finally:
            await http.close()
        return True

    async def _scene(self, http: HttpCore) -> None:
        links = ConnectSessions(self.pw.runtime)
        # maya's tools, as the bot's backend gets them for her: her connections only, and
        # a connect link where she has none
        bot = ToolInvoker(self.pw, links=links).for_end_user(SECOND_END_USER)
        day, start = await self._free_slot()
        message = MAYA_MESSAGE.format(day=f"{day:%A} {day.isoformat()}", time=start[11:16])
        self.console.print(Panel(message, title=f"{SECOND_END_USER} → bot",
                                 border_style="blue"))
        arguments = {"start": start, "duration_minutes": 30,
                     "attendee_email": "maya@example.com", "topic": "Intro call"}

        first = await bot.invoke(BOOK_TOOL, arguments, session_id=SESSION)
        url = self._connect_link(first)
        self.console.print(Panel(first.text, title=f"model calls {BOOK_TOOL} for "
                                 f"{SECOND_END_USER} → what it reads",
                                 border_style="yellow"), highlight=False)
        found = _WORDS.search(first.text)
        words = found["words"] if found else f"Open this link to connect your calendar: {url}"
        self.console.print(Panel(words, title=f"bot → {SECOND_END_USER}",
                                 border_style="green"), highlight=False)

        await self._connect_as_a_person(http, url)
        token = urlsplit(url).path.rsplit("/", 1)[-1]
        session = await _json(http, "GET", f"{self.base_url}/api/v1/connect-sessions/{token}"
                              f"?wait={_WAIT_S}")
        if session.get("status") != "connected" or not session.get("connection"):
            raise SceneFailed(f"the connect link is {session.get('status')!r}, not connected")
        self.connection = str(session["connection"])
        self.console.print(
            f"  [green]✓[/] the platform's backend asks [bold]GET /api/v1/connect-sessions/"
            f"{token[:6]}…[/]: status [bold]{session['status']}[/], connection "
            f"{self.connection} of end user {session['end_user']}", highlight=False)

        again = await bot.invoke(BOOK_TOOL, arguments, session_id=SESSION)
        if again.status != "ok" or not isinstance(again.data, dict):
            raise SceneFailed(f"the booking after connecting answered {again.status}: "
                              f"{again.text[:200]}")
        self.appointment = again.data
        self.console.print(
            f"  [green]✓[/] the bot calls {BOOK_TOOL} again with the same arguments: "
            f"{again.status} — appointment {again.data.get('id')} at "
            f"{again.data.get('start')}, through {SECOND_END_USER}'s connection "
            f"{self.connection}", highlight=False)
        self.console.print(Panel(
            f"You're booked, Maya: intro call on {day:%A} at {start[11:16]} UTC "
            f"(appointment {again.data.get('id')}).", title=f"bot → {SECOND_END_USER}",
            border_style="green"), highlight=False)
        await self._isolation(http)

    async def _free_slot(self) -> tuple[dt.date, str]:
        """A free half hour for maya to ask for, two business days ahead (the walkthrough
        books tomorrow's first): the demo looks it up with acme's connection, as the
        person writing the script — not as the bot."""
        day = dt.datetime.now(dt.UTC).date()
        for _ in range(2):
            day += dt.timedelta(days=1)
            while day.weekday() >= 5:
                day += dt.timedelta(days=1)
        found = await self.pw.call("calendar.get_availability",
                                   {"date": day.isoformat(), "duration": 30},
                                   connection="demo-calendar")
        slots = found.get("slots") if isinstance(found, dict) else found
        if not isinstance(slots, list) or not slots:
            raise SceneFailed(f"the sandbox calendar has no free slot on {day}")
        last = slots[-1]
        return day, str(last["start"] if isinstance(last, dict) else last)

    def _connect_link(self, result: ToolResult) -> str:
        data = result.data if isinstance(result.data, dict) else {}
        url = data.get("connect_url")
        if result.status != "connection_required" or not isinstance(url, str):
            raise SceneFailed(f"{BOOK_TOOL} for {SECOND_END_USER} answered {result.status}, "
                              "not a connect link")
        if not url.startswith(f"{self.base_url}/connect/"):
            raise SceneFailed(f"the connect link {url} is not on the demo server")
        return url

    async def _connect_as_a_person(self, http: HttpCore, url: str) -> None:
        """Open the link, choose the calendar, fill in its form and send it — as a browser
        would, from the page's own origin."""
        # the link on a line of its own, never wrapped: it is opened as it is
        self.console.print(f"  {SECOND_END_USER} opens {url}", soft_wrap=True,
                           highlight=False)
        offer = await _page(http, "GET", url)
        found = offer.links.get("connect-calendar")
        if found is None:
            raise SceneFailed("the connect page does not offer the calendar")
        href, button = found
        form_url = urljoin(url, href)
        form = await _page(http, "GET", form_url)
        values: dict[str, str] = {}
        shown = []
        for name, kind in form.inputs:
            credential = SANDBOX_CREDENTIALS["calendar"].get(name)
            if credential is None:
                raise SceneFailed(f"the calendar's form asks for {name!r}, which the demo "
                                  "does not know")
            values[name] = credential
            shown.append(f"{name} ({'masked' if kind == 'password' else kind})")
        offered = sum(1 for key in offer.links if key.startswith("connect-"))
        self.console.print(f"  the page offers {offered} account{'s' if offered > 1 else ''}"
                           f" to connect; she clicks “{button}”, and its form asks for "
                           f"{', '.join(shown) or 'nothing'}", highlight=False)
        done = await _page(http, "POST", form_url, data=values,
                           headers={"Origin": self.base_url})
        said = " ".join(done.messages) or "(no message)"
        if "Connected" not in said:
            raise SceneFailed(f"the connect page answered: {said}")
        self.console.print(f"  [green]✓[/] she sends the form over HTTP to {self.base_url}: "
                           "the token is proved with one call to the calendar, then saved "
                           f"(encrypted) as her connection — the page says “{said}”",
                           highlight=False)

    async def _isolation(self, http: HttpCore) -> None:
        """acme's end-user token lists acme's connections, and maya's is not there for it."""
        created = await _json(http, "POST", f"{self.base_url}/api/v1/end-users/"
                              f"{FIRST_END_USER}/tokens", json={"ttl_seconds": 300})
        bearer = {"Authorization": f"Bearer {created['token']}"}
        listed = await _json(http, "GET", f"{self.base_url}/api/v1/connections",
                             headers=bearer)
        names = sorted(str(c["name"]) for c in listed)
        status = (await _send(http, "GET", f"{self.base_url}/api/v1/connections/"
                              f"{self.connection}", headers=bearer)).status
        if self.connection in names or status != 404:
            raise SceneFailed(f"{FIRST_END_USER}'s token sees {SECOND_END_USER}'s "
                              "connection")
        self.console.print(
            f"  [green]✓[/] {FIRST_END_USER}'s end-user token lists {', '.join(names)} — "
            f"not {SECOND_END_USER}'s {self.connection} (GET /api/v1/connections/"
            f"{self.connection} → {status})", highlight=False)
        self.console.print("How a platform's backend does this (end-user tokens, the MCP URL, "
                           "connect links, lifecycle events): [bold]docs/end-users.md[/]")


async def _send(http: HttpCore, method: str, url: str, *,
                headers: dict[str, str] | None = None, **body: Any) -> RawResponse:
    """One request to the demo server, its redirects followed (as a browser would)."""
    return await http.exchange(PreparedRequest(method, url, dict(headers or {}),
                                               idempotent=method == "GET", **body), _LIMITS)


async def _page(http: HttpCore, method: str, url: str, **kwargs: Any) -> _Page:
    raw = await _send(http, method, url, **kwargs)
    page = _Page()
    page.feed(raw.body.decode("utf-8", "replace"))
    if raw.status != 200:
        said = " ".join(page.messages) or "no message"
        raise SceneFailed(f"the connect page answered {raw.status} ({said})")
    return page


async def _json(http: HttpCore, method: str, url: str, **kwargs: Any) -> Any:
    raw = await _send(http, method, url, **kwargs)
    if raw.status not in (200, 201):
        raise SceneFailed(f"{method} {urlsplit(url).path} answered {raw.status}: "
                          f"{raw.body.decode('utf-8', 'replace')[:200]}")
    try:
        return json.loads(raw.body)
    except ValueError:
        raise SceneFailed(f"{method} {urlsplit(url).path} answered {raw.status} with no "
                          "JSON") from None
