"""Who may use the server, and from where: API keys with scopes declared by each route,
the dashboard's login cookie, the failed-authentication limit, and the one same-origin rule
(SiteGuard) in front of every route. The server (``patchwire.server``) and the dashboard
(``patchwire.dashboard``) both build on it; it knows neither."""

from __future__ import annotations

from ._end_user_ring import EndUserTokenRing
from ._limiter import FailedAuthLimiter
from ._login import COOKIE_MAX_AGE, auth_routes, safe_next
from ._middleware import (
    KEY_COOKIE,
    AccessPolicy,
    ApiKeyMiddleware,
    admin_key_exists,
    presented_key,
)
from ._ring import TOUCH_INTERVAL, KeyRing
from ._scopes import (
    END_USER_SCOPES,
    PUBLIC,
    Access,
    Requires,
    RouteScope,
    access_of,
    declarations,
    declare,
    declared_scope,
    end_user_of,
    every_route,
    required_access,
    required_scope,
    requires,
    serves_end_users,
)
from ._site import SiteGuard, cross_site, is_loopback, own_origin

__all__ = [
    "COOKIE_MAX_AGE",
    "END_USER_SCOPES",
    "KEY_COOKIE",
    "PUBLIC",
    "TOUCH_INTERVAL",
    "Access",
    "AccessPolicy",
    "ApiKeyMiddleware",
    "EndUserTokenRing",
    "FailedAuthLimiter",
    "KeyRing",
    "Requires",
    "RouteScope",
    "SiteGuard",
    "access_of",
    "admin_key_exists",
    "auth_routes",
    "cross_site",
    "declarations",
    "declare",
    "declared_scope",
    "end_user_of",
    "every_route",
    "is_loopback",
    "own_origin",
    "presented_key",
    "required_access",
    "required_scope",
    "requires",
    "safe_next",
    "serves_end_users",
]
