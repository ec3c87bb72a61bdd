"""Connection settings that fill part of a URL's scheme, host or port.

``base_url: https://{subdomain}.vendor.com`` trusts the connection to give a subdomain; a
value like ``127.0.0.1:8080/steal?`` would make it a different URL and send the
connection's credentials there. So a placeholder in the scheme or authority of a URL
template (``base_url``, OAuth2 ``token_url`` and ``authorize_url``) takes only a DNS label
(RFC 1123: letters, digits and ``-``, 1 to 63 characters, no ``-`` at either end), or,
when the setting declares an ``enum``, exactly one of its values. A placeholder that is
the whole host (``https://{host}/api``) takes a host name: dot-separated DNS labels.

A template starting with a placeholder before any ``://`` (``{url}/api``) takes scheme and
host from one setting that is the whole URL: the connector asked for a URL there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from patchwire.connectors._template import placeholder_parts
from patchwire.connectors.spec import ConnectorSpec, OAuth2Auth, SettingSpec

__all__ = ["host_setting_problem", "setting_value_problems", "url_templates"]

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: characters that end a URL's authority (RFC 3986 §3.2)
_AUTHORITY_END = re.compile(r"[/?#]")
#: how much of a refused value an error shows (they are settings, not secrets, but long)
_SHOWN = 80


def _is_label(text: str) -> bool:
    return _LABEL.fullmatch(text) is not None


def _is_hostname(text: str) -> bool:
    return len(text) <= 253 and all(_is_label(label) for label in text.split("."))


def host_placeholders(template: str) -> dict[str, bool]:
    """The placeholders in the scheme or authority of a URL template, each with whether
    it is the whole host. Empty for a template whose URL is one setting (``{url}/api``)."""
    parts = placeholder_parts(template)
    found: dict[str, bool] = {}
    in_scheme = True
    for index, (is_name, text) in enumerate(parts):
        if not is_name:
            if not in_scheme:
                if _AUTHORITY_END.search(text):
                    break  # the path starts: placeholders from here on are not the host
                continue
            sep = text.find("://")
            cut = _AUTHORITY_END.search(text)
            if sep < 0 or (cut is not None and cut.start() < sep):
                if cut is not None:
                    return {}  # `{url}/api`: scheme and host are one setting, a whole URL
                continue
            in_scheme = False
            if _AUTHORITY_END.search(text, sep + 3):
                break
            continue
        if in_scheme:
            found[text] = False  # `{scheme}://...`
            continue
        before = parts[index - 1][1] if index else ""
        after = parts[index + 1][1] if index + 1 < len(parts) else ""
        whole = before.endswith(("://", "@")) and (after == "" or after[0] in ":/?#")
        found[text] = found.get(text, True) and whole
    return {} if in_scheme else found


def host_setting_problem(
    template: str, values: Mapping[str, Any], settings: Mapping[str, SettingSpec], *,
    where: str,
) -> tuple[str, str] | None:
    """(setting, message) for the first setting whose value would move ``template``'s
    scheme, host or port elsewhere, or None. ``where`` names the URL in the message."""
    for name, whole_host in host_placeholders(template).items():
        root = name.split(".", 1)[0]
        value = values.get(root)
        if value is None:
            continue  # a missing value is reported by whoever renders the template
        text = _text(value)
        spec = settings.get(root)
        if spec is not None and spec.enum is not None:
            if text not in spec.enum:
                return root, _not_in_enum(root, spec, text)
            continue
        if (whole_host and _is_hostname(text)) or _is_label(text):
            continue
        kind = ("a host name (DNS labels joined by '.')" if whole_host else
                "a DNS label (letters, digits and '-', 1 to 63 characters, not starting or "
                "ending with '-')")
        shown = "a value that is not" if spec is not None and spec.secret else repr(
            text[:_SHOWN])
        return root, (f"setting {root!r} fills part of the host of {where}, so it must be "
                      f"{kind}; got {shown}")
    return None


def url_templates(spec: ConnectorSpec) -> Iterator[tuple[str, str]]:
    """(template, what it is) for every URL of a connector filled from settings."""
    yield spec.base_url, f"{spec.name}'s base_url"
    if isinstance(spec.auth, OAuth2Auth):
        yield spec.auth.token_url, f"{spec.name}'s token_url"
        if spec.auth.authorize_url:
            yield spec.auth.authorize_url, f"{spec.name}'s authorize_url"


def setting_value_problems(spec: ConnectorSpec, values: Mapping[str, Any]) -> list[str]:
    """What is wrong with a connection's values beyond presence: a value outside its
    setting's ``enum``, a setting that would move a URL's host. One message each."""
    problems: dict[str, str] = {}
    for name, setting in spec.settings.items():
        value = values.get(name)
        if setting.enum is not None and value is not None and _text(value) not in setting.enum:
            problems[name] = _not_in_enum(name, setting, _text(value))
    for template, where in url_templates(spec):
        found = host_setting_problem(template, values, spec.settings, where=where)
        if found is not None and found[0] not in problems:
            problems[found[0]] = found[1]
    return list(problems.values())


def _not_in_enum(name: str, spec: SettingSpec, text: str) -> str:
    allowed = ", ".join(repr(v) for v in spec.enum or ())
    shown = "" if spec.secret else f"; got {text[:_SHOWN]!r}"
    return f"setting {name!r} must be one of {allowed}{shown}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
