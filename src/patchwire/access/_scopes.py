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

End users. A route that serves end users declares it — ``requires("read", end_users=True)``
— and then filters what it answers by :func:`end_user_of`. A request carrying an end-user
token (``pwu_...``) reaches only such routes, and only for ``read``, ``run`` and
``approve``; every other route answers it 404, as if it did not exist (no enumeration).
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
    "END_USER_SCOPES",
    "PUBLIC",
    "Access",
    "Requires",
    "RouteScope",
    "access_of",
    "declarations",
    "declare",
    "declared_scope",
    "end_user_of",
    "every_route",
    "required_access",
    "required_scope",
    "requires",
    "serves_end_users",
]

#: the "scope" of routes that need no key (verified by their own means, or needed before
#: there is a key)
PUBLIC: Final = "public"
RouteScope = ScopeName | Literal["public"]
#: where a Starlette route or mount carries its declaration
_ATTRIBUTE: Final = "patchwire_scope"
#: where a Starlette route or mount says it serves end users
_END_USERS: Final = "patchwire_end_users"
#: what an end-user token may do, on routes that serve end users
END_USER_SCOPES: Final = frozenset({"read", "run", "approve"})
_READS: Final = frozenset({"GET", "HEAD"})

R = TypeVar("R", bound=BaseRoute)


@dataclass(frozen=True)
class Access:
    """What the key check let through, in ``request.state.access``: ``key`` is the key that
    authenticated the request, None where keys are not checked (loopback, none created);
    ``end_user`` the end user whose token it carried (then ``key`` is None)."""

    key: ApiKeyRecord | None
    end_user: str | None = None
    #: the id of the end-user token, for the record of who did what
    token_id: str | None = None

    def allows(self, scope: str, *, end_users: bool = False) -> bool:
        if scope == PUBLIC:
            return True
        if self.end_user is not None:
            return end_users and scope in END_USER_SCOPES
        return self.key is None or self.key.allows(scope)

    @property
    def identity(self) -> str:
        """Who acts, for records (approvals' ``decided_by``): ``key:<id> (<name>)``,
        ``end_user:<id>``, or ``local`` (loopback without keys)."""
        if self.end_user is not None:
            return f"end_user:{self.end_user}"
        if self.key is not None:
            return f"key:{self.key.id} ({self.key.name})"
        return "local"


class Requires:
    """A route's scope, as a FastAPI dependency (:func:`requires`)."""

    def __init__(self, scope: RouteScope, *, end_users: bool = False) -> None:
        if scope not in (*SCOPES, PUBLIC):
            raise ValueError(f"unknown scope {scope!r}: use {', '.join((*SCOPES, PUBLIC))}")
        if end_users and scope not in END_USER_SCOPES:
            raise ValueError(f"end users never get the {scope!r} scope")
        self.scope: RouteScope = scope
        self.end_users = end_users

    async def __call__(self, request: Request) -> None:
        if self.scope == PUBLIC:
            return
        access = getattr(request.state, "access", None)
        if isinstance(access, Access) and access.end_user is not None and not self.end_users:
            raise HTTPException(404, "Not Found")  # as if the route did not exist
        if not (isinstance(access, Access) and access.allows(self.scope,
                                                              end_users=self.end_users)):
            # only without the key check in front (an app assembled by hand): fail closed
            raise HTTPException(403, f"{request.method} {request.url.path} needs the "
                                     f"{self.scope!r} scope, and no key check ran")

    def __repr__(self) -> str:
        return f"requires({self.scope!r}{', end_users=True' if self.end_users else ''})"


def requires(scope: RouteScope, *, end_users: bool = False) -> Any:
    """``dependencies=[requires("run")]``: the route needs a key with the ``run`` scope
    (or ``admin``), ``PUBLIC`` for none. ``end_users``: end-user tokens may use it too
    (the route then answers only what is that end user's: :func:`end_user_of`)."""
    return Depends(Requires(scope, end_users=end_users))


def declare(route: R, scope: RouteScope, *, end_users: bool = False) -> R:
    """Declare the scope of a Starlette route or mount (what has no FastAPI dependencies);
    returns it."""
    Requires(scope, end_users=end_users)  # the same check of the name
    setattr(route, _ATTRIBUTE, scope)
    setattr(route, _END_USERS, end_users)
    return route


def serves_end_users(route: BaseRoute) -> bool:
    """Whether ``route`` declares that end-user tokens may use it."""
    if getattr(route, _END_USERS, False):
        return True
    for dependency in getattr(route, "dependencies", None) or ():
        if (isinstance(dependency, DependsParam)
                and isinstance(dependency.dependency, Requires)
                and dependency.dependency.end_users):
            return True
    return False


def end_user_of(request: Request) -> str | None:
    """The end user a request acts as (its end-user token's), None for an operator's."""
    access = getattr(request.state, "access", None)
    return access.end_user if isinstance(access, Access) else None


def access_of(request: Request) -> Access:
    """What the key check let through for ``request`` (an operator's ``Access(None)``
    where no check ran)."""
    access = getattr(request.state, "access", None)
    return access if isinstance(access, Access) else Access(None)


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
    return required_access(routes, scope)[0]


def required_access(routes: Iterable[BaseRoute],
                    scope: MutableMapping[str, Any]) -> tuple[str, bool]:
    """(:func:`required_scope`, whether that route serves end users)."""
    for route in every_route(routes):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return declared_scope(route) or "admin", serves_end_users(route)
    return ("read" if scope.get("method", "GET") in _READS else "admin"), False
