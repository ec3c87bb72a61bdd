"""Which scope a route needs, declared where the route is defined.

A FastAPI route declares it as a dependency — ``@router.post("/runs/{run_id}/retry",
dependencies=[requires("run")])`` — and a plain Starlette route or mount (an ASGI endpoint
such as ``/mcp``, static files) with :func:`declare`. The key check in front of the app
(:class:`~patchwire.access.ApiKeyMiddleware`) finds the route a request goes to, as the
router will, and asks for the scope that route declares — before the route reads a byte of
the body. A route declaring nothing needs ``admin``; a request no route takes needs ``read``
to read and ``admin`` to change something (it gets a 404 or 405 once allowed).

The dependency itself checks again, at the route, what the key check let through: a route
mounted on an app without that check refuses rather than opens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from starlette.routing import BaseRoute, Match

from patchwire.store.keys import SCOPES, ApiKeyRecord, ScopeName

__all__ = [
    "PUBLIC",
    "Access",
    "Requires",
    "RouteScope",
    "declarations",
    "declare",
    "declared_scope",
    "every_route",
    "required_scope",
    "requires",
]

#: the "scope" of routes that need no key (verified by their own means, or needed before
#: there is a key)
PUBLIC: Final = "public"
RouteScope = ScopeName | Literal["public"]
#: where a Starlette route or mount carries its declaration
_ATTRIBUTE: Final = "patchwire_scope"
_READS: Final = frozenset({"GET", "HEAD"})

R = TypeVar("R", bound=BaseRoute)


@dataclass(frozen=True)
class Access:
    """What the key check let through, in ``request.state.access``: ``key`` is the key that
    authenticated the request, None where keys are not checked (loopback, none created)."""

    key: ApiKeyRecord | None

    def allows(self, scope: str) -> bool:
        return scope == PUBLIC or self.key is None or self.key.allows(scope)


class Requires:
    """A route's scope, as a FastAPI dependency (:func:`requires`)."""

    def __init__(self, scope: RouteScope) -> None:
        if scope not in (*SCOPES, PUBLIC):
            raise ValueError(f"unknown scope {scope!r}: use {', '.join((*SCOPES, PUBLIC))}")
        self.scope: RouteScope = scope

    async def __call__(self, request: Request) -> None:
        if self.scope == PUBLIC:
            return
        access = getattr(request.state, "access", None)
        if not (isinstance(access, Access) and access.allows(self.scope)):
            # only without the key check in front (an app assembled by hand): fail closed
            raise HTTPException(403, f"{request.method} {request.url.path} needs the "
                                     f"{self.scope!r} scope, and no key check ran")

    def __repr__(self) -> str:
        return f"requires({self.scope!r})"


def requires(scope: RouteScope) -> Any:
    """``dependencies=[requires("run")]``: the route needs a key with the ``run`` scope
    (or ``admin``), ``PUBLIC`` for none."""
    return Depends(Requires(scope))


def declare(route: R, scope: RouteScope) -> R:
    """Declare the scope of a Starlette route or mount (what has no FastAPI dependencies);
    returns it."""
    Requires(scope)  # the same check of the name
    setattr(route, _ATTRIBUTE, scope)
    return route


def declared_scope(route: BaseRoute) -> RouteScope | None:
    """The scope ``route`` declares, or None. A route with several :func:`requires` (a
    router's and its own) has its own, the last."""
    found: RouteScope | None = getattr(route, _ATTRIBUTE, None)
    for dependency in getattr(route, "dependencies", None) or ():
        if isinstance(dependency, DependsParam) and isinstance(dependency.dependency,
                                                                 Requires):
            found = dependency.dependency.scope
    return found


def declarations(route: BaseRoute) -> list[RouteScope]:
    """Every scope ``route`` declares (a test checks there is exactly one)."""
    found: list[RouteScope] = []
    if getattr(route, _ATTRIBUTE, None) is not None:
        found.append(getattr(route, _ATTRIBUTE))
    for dependency in getattr(route, "dependencies", None) or ():
        if isinstance(dependency, DependsParam) and isinstance(dependency.dependency,
                                                                 Requires):
            found.append(dependency.dependency.scope)
    return found


def every_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes in the order the router tries them, those of included routers in their
    place. (FastAPI keeps an included router whole, as one route; this app includes its
    routers without a prefix or dependencies of their own, so their routes match as they
    are.)"""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from every_route(inner.routes)
        else:
            yield route


def required_scope(routes: Iterable[BaseRoute], scope: MutableMapping[str, Any]) -> str:
    """The scope a request (an ASGI scope) needs: the declaration of the route the router
    will give it to (the first full match, as Starlette's router picks), ``admin`` for a
    route declaring none; without a full match, ``read`` for GET and HEAD, else ``admin``."""
    for route in every_route(routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return declared_scope(route) or "admin"
    return "read" if scope.get("method", "GET") in _READS else "admin"
