"""Load connector documents and report every problem with file, line and field path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from patchwire.connectors._hosts import host_setting_problem, url_templates
from patchwire.connectors._schemas import input_schema_problem
from patchwire.connectors._signing_checks import signing_problems
from patchwire.connectors._template import placeholders_in
from patchwire.connectors._yaml import LineMap, load_yaml_with_lines
from patchwire.connectors.spec import ActionSpec, ConnectorSpec, OAuth2Auth, TokenExchangeAuth
from patchwire.errors import SpecError, SpecProblem
from patchwire.expressions import ExpressionError, compile_expression

__all__ = [
    "check_connector",
    "dedupe_problems",
    "load_connector_file",
    "load_connector_text",
    "parse_connector",
    "pydantic_problems",
]

_Loc = tuple[str | int, ...]
#: pydantic's location of an error + the raw document -> the path as written in YAML
CleanLoc = Callable[[tuple[Any, ...], Any], _Loc]
#: a document-specific wording of one error: (path, message), or None for the default one
Explain = Callable[[ErrorDetails, _Loc], tuple[_Loc, str] | None]


def load_connector_file(path: str | FsPath) -> ConnectorSpec:
    p = FsPath(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(str(p), None, "", f"cannot read file: {exc}")]) from exc
    return load_connector_text(text, str(p))


def load_connector_text(text: str, file: str = "<connector>") -> ConnectorSpec:
    data, lines, problems = load_yaml_with_lines(text, file)
    if data is None:
        raise SpecError(problems)
    if not file.startswith("<"):
        _anchor_files(data, FsPath(file).parent)
    return parse_connector(data, lines, problems)


#: (section, key) of the connector format's references to files beside the connector
FILE_REFERENCES = (("soap", "wsdl"), ("graphql", "schema"))


def _anchor_files(data: Any, directory: FsPath) -> None:
    """A WSDL or GraphQL schema named relative to the connector is read from beside it,
    wherever the process runs: the reference becomes an absolute path before validation."""
    if not isinstance(data, dict):
        return
    for section, key in FILE_REFERENCES:
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            ref = part[key]
            if "://" not in ref and not FsPath(ref).is_absolute():
                part[key] = str((directory / ref).resolve())


def parse_connector(
    data: Any, lines: LineMap, problems: list[SpecProblem] | None = None
) -> ConnectorSpec:
    problems = list(problems or [])
    if not isinstance(data, dict):
        problems.append(lines.problem((), "a connector must be a mapping at the top level"))
        raise SpecError(problems)
    try:
        spec = ConnectorSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, data, lines))
        # Semantic checks still run on the parts that parsed, so one pass shows everything.
        problems.extend(_raw_semantic_problems(data, lines))
        raise SpecError(dedupe_problems(problems)) from None
    problems.extend(lines.problem(loc, msg) for loc, msg in check_connector(spec))
    if problems:
        raise SpecError(dedupe_problems(problems))
    return spec


def dedupe_problems(problems: list[SpecProblem]) -> list[SpecProblem]:
    """Each problem once, in document order."""
    seen: set[SpecProblem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0, p.path))


def pydantic_problems(
    exc: ValidationError, data: Any, lines: LineMap, *,
    clean_loc: CleanLoc | None = None, explain: Explain | None = None,
) -> list[SpecProblem]:
    """pydantic's errors as problems at YAML paths, worded for a person writing YAML.

    ``clean_loc`` maps pydantic's locations (with union tags) to YAML paths; ``explain``
    lets a document kind word its own errors (flows explain their step kinds).
    """
    out = []
    for err in exc.errors(include_url=False):
        loc = (clean_loc or _clean_loc)(err["loc"], data)
        msg = err["msg"]
        explained = explain(err, loc) if explain is not None else None
        if explained is not None:
            loc, msg = explained
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        elif err["type"] == "string_pattern_mismatch" and loc[-1:] == ("[key]",):
            # a dict key failed its pattern (an action name)
            loc = loc[:-1]
            msg = f"name {loc[-1]!r} must be lower snake_case (a-z, 0-9, _)"
        elif err["type"] == "missing":
            msg = f"missing required field {loc[-1]!r}" if loc else "missing required field"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(lines.problem(loc, msg))
    return out


def _clean_loc(loc: tuple[Any, ...], data: Any) -> _Loc:
    """Drop pydantic's union-tag segments (``api_key`` in ``auth.api_key.name``)."""
    out: list[str | int] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            out.append(part)
            current = current[part]
        elif isinstance(current, dict) and part == "in_":
            out.append("in")
        elif isinstance(current, dict) and current.get("type") == part:
            continue  # discriminator tag
        elif isinstance(part, str) and not isinstance(current, dict | list):
            continue
        else:
            out.append(part)
            current = None
    return tuple(out)


def _raw_semantic_problems(data: dict[str, Any], lines: LineMap) -> list[SpecProblem]:
    """Checks on a document that failed validation: each action that parses on its own is
    checked fully, the others for their expressions and schema (best effort)."""
    found: list[tuple[_Loc, str]] = []
    settings = data.get("settings", {})
    if isinstance(settings, dict):
        declared = {str(k) for k in settings}
        for key in ("base_url", "headers", "query"):
            found.extend(_settings_problems((key,), data.get(key), declared))
    actions = data.get("actions")
    if isinstance(actions, dict):
        for name, raw in actions.items():
            if not isinstance(raw, dict):
                continue
            base: _Loc = ("actions", str(name))
            try:
                action = ActionSpec.model_validate(raw)
            except ValidationError:
                found.extend(_action_expression_problems(base, raw))
                if isinstance(raw.get("input"), dict):
                    found.extend(_schema_problems((*base, "input"), raw["input"]))
            else:
                found.extend(_check_action(base, action))
    return [lines.problem(loc, msg) for loc, msg in found]


def _settings_problems(loc: _Loc, value: Any, declared: set[str]) -> list[tuple[_Loc, str]]:
    return [
        (loc, f"placeholder {{{name}}} names no setting; declare it under settings")
        for name in sorted(placeholders_in(value))
        if name.split(".")[0] not in declared
    ]


_AUTH_TEMPLATE_FIELDS = ("value", "username", "password", "token", "headers",
                         "client_id", "client_secret",
                         # request signing (oauth1, aws_sigv4, hmac_signature)
                         "consumer_key", "consumer_secret", "token_secret", "rsa_key",
                         "access_key_id", "secret_access_key", "session_token", "service",
                         "region", "key")


def _kept_token_problems(spec: ConnectorSpec, declared: set[str]) -> list[tuple[_Loc, str]]:
    """The templates and JSONata of a JWT assertion, a token exchange and a client
    certificate: placeholders name settings (``{token}``, the exchanged token, too where
    the token is placed), expressions compile."""
    found: list[tuple[_Loc, str]] = []
    auth = spec.auth
    if isinstance(auth, OAuth2Auth) and auth.assertion is not None:
        for key, value in auth.assertion.model_dump().items():
            if isinstance(value, str | dict) and key != "algorithm" and key != "scope_in":
                found.extend(_settings_problems(("auth", "assertion", key), value, declared))
    if isinstance(auth, TokenExchangeAuth):
        request = auth.request.model_dump()
        for key in ("url", "headers", "body"):
            found.extend(_settings_problems(("auth", "request", key), request[key], declared))
        with_token = declared | {"token"}
        for key in ("headers", "query"):
            found.extend(_settings_problems(("auth", key), getattr(auth, key), with_token))
        for key in ("token", "expires_in", "expires_at"):
            expression = getattr(auth.response, key)
            if expression is not None:
                found.extend(_expr_problem(("auth", "response", key), expression))
        if auth.refresh_on_body is not None:
            found.extend(_expr_problem(("auth", "refresh_on_body"), auth.refresh_on_body))
    if spec.client_certificate is not None:
        for key, value in spec.client_certificate.model_dump().items():
            found.extend(_settings_problems(("client_certificate", key), value, declared))
    # keys and passwords only from secret settings: encrypted at rest, never shown back
    credentials: list[tuple[_Loc, str | None]] = []
    if isinstance(auth, OAuth2Auth):
        credentials.append((("auth", "password"), auth.password))
        if auth.assertion is not None:
            credentials += [(("auth", "assertion", "private_key"), auth.assertion.private_key),
                            (("auth", "assertion", "service_account"),
                             auth.assertion.service_account)]
    if spec.client_certificate is not None:
        credentials += [(("client_certificate", "key"), spec.client_certificate.key),
                        (("client_certificate", "password"), spec.client_certificate.password)]
    for loc, template in credentials:
        for name in sorted(placeholders_in(template)):
            setting = spec.settings.get(name.split(".")[0])
            if setting is not None and not setting.secret:
                found.append((loc, f"{{{name}}} is a credential: declare setting "
                                   f"{name.split('.')[0]!r} with secret: true"))
    return found


def check_connector(spec: ConnectorSpec) -> list[tuple[_Loc, str]]:
    """Whole-document checks the models cannot express. Returns (location, message)."""
    declared = set(spec.settings)
    found = _settings_problems(("base_url",), spec.base_url, declared)
    auth = spec.auth.model_dump(by_alias=True)
    for key in _AUTH_TEMPLATE_FIELDS:
        if key in auth and not isinstance(spec.auth, TokenExchangeAuth) and not (
                # its headers also name {signature}...: signing_problems checks them
                key == "headers" and spec.auth.type == "hmac_signature"):
            found.extend(_settings_problems(("auth", key), auth[key], declared))
    found.extend(_kept_token_problems(spec, declared))
    found.extend(signing_problems(spec))
    for key, value in spec.headers.items():
        found.extend(_settings_problems(("headers", key), value, declared))
    secret = spec.secret_settings()
    for key, value in spec.query.items():
        found.extend(_settings_problems(("query", key), value, declared))
        # a URL's query is written to logs and proxies: a credential there is auth's to
        # place (an api_key scheme with `in: query`), which redacts it
        found.extend((("query", key), f"{{{name}}} is a secret setting: a credential in the "
                      "query belongs in auth (type: api_key, in: query)")
                     for name in sorted(placeholders_in(value))
                     if name.split(".")[0] in secret)
    defaults = {k: s.default for k, s in spec.settings.items() if s.default is not None}
    for template, where in url_templates(spec):
        problem = host_setting_problem(template, defaults, spec.settings, where=where)
        if problem is not None:
            found.append((("settings", problem[0], "default"), problem[1]))
    if isinstance(spec.auth, OAuth2Auth) and spec.auth.refresh_on_body is not None:
        found.extend(_expr_problem(("auth", "refresh_on_body"), spec.auth.refresh_on_body))
    if isinstance(spec.auth, OAuth2Auth):
        found.extend(_oauth_quirk_problems(spec, spec.auth, declared))
    for rule_i, rule in enumerate(spec.errors):
        found.extend(_rule_problems(("errors", rule_i), rule.when, rule.message))
    for name, action in spec.actions.items():
        found.extend(_check_action(("actions", name), action))
    if spec.protocol == "graphql":
        # imported here: graphql-core is loaded only for GraphQL connectors
        from patchwire.connectors.graphql import graphql_problems

        found.extend(graphql_problems(spec))
    if spec.protocol == "soap":
        # imported here: zeep is loaded only for SOAP connectors
        from patchwire.connectors.wsdl import soap_problems

        found.extend(soap_problems(spec))
    if spec.test is not None and spec.test.action not in spec.actions:
        known = ", ".join(sorted(spec.actions)) or "none"
        found.append((("test", "action"),
                      f"no action {spec.test.action!r} to test with (actions: {known})"))
    return found


def _oauth_quirk_problems(spec: ConnectorSpec, auth: OAuth2Auth, declared: set[str]
                          ) -> list[tuple[_Loc, str]]:
    """A provider's OAuth quirks: their templates name settings, their JSONata compiles,
    and a setting the provider tells (from the token response or the callback) is a
    declared one a connection can be made without, and not the client's credentials."""
    found: list[tuple[_Loc, str]] = []
    for key in ("authorize_params", "token_params"):
        found.extend(_settings_problems(("auth", key), getattr(auth, key), declared))
    if auth.token_fields is not None:
        for key, expression in auth.token_fields.model_dump().items():
            if expression is not None:
                found.extend(_expr_problem(("auth", "token_fields", key), expression))
    client = {n.split(".")[0] for n in (*placeholders_in(auth.client_id),
                                        *placeholders_in(auth.client_secret))}
    for key in ("settings_from_token", "settings_from_callback"):
        for name, expression in getattr(auth, key).items():
            loc: _Loc = ("auth", key, name)
            setting = spec.settings.get(name)
            if setting is None:
                found.append((loc, f"{name!r} names no setting; declare it under settings "
                                   "(required: false: the provider tells it)"))
            elif name in client:
                found.append((loc, f"{name!r} is the client's credential: a provider "
                                   "cannot set it"))
            elif setting.required and setting.default is None:
                found.append((loc, f"setting {name!r} is told by the provider, after the "
                                   "connection exists: declare it required: false"))
            found.extend(_expr_problem(loc, expression))
    return found


def _check_action(base: _Loc, action: ActionSpec) -> list[tuple[_Loc, str]]:
    found = _schema_problems((*base, "input"), action.input)
    props = action.input.get("properties", {})
    if not isinstance(props, dict):
        props = {}
    req = action.request
    if req is None:
        # GraphQL, SOAP and code actions are checked by their own loaders
        found.extend(_action_expression_problems(base, action.model_dump(exclude_none=True)))
        return found
    for where, value in (("path", req.path), ("query", req.query),
                         ("headers", req.headers), ("body", req.body)):
        for ph in sorted(placeholders_in(value)):
            if ph.split(".")[0] not in props:
                found.append(((*base, "request", where),
                              f"placeholder {{{ph}}} is not a property of the input schema"))
    required = set(action.input.get("required", []) or [])
    for ph in sorted(placeholders_in(req.path)):
        root = ph.split(".")[0]
        if root in props and root not in required:
            found.append(((*base, "request", "path"),
                          f"path placeholder {{{ph}}} must be listed in input.required"))
    if req.body is not None and req.method in ("GET", "HEAD"):
        found.append(((*base, "request", "body"), f"a {req.method} request cannot have a body"))
    if req.body_type in ("form", "multipart") and req.body is not None and not isinstance(
        req.body, dict
    ):
        found.append(((*base, "request", "body"),
                      f"a {req.body_type} body must be a mapping of fields"))
    found.extend(_action_expression_problems(base, action.model_dump(exclude_none=True)))
    return found


def _action_expression_problems(base: _Loc, action: dict[str, Any]) -> list[tuple[_Loc, str]]:
    found: list[tuple[_Loc, str]] = []
    if isinstance(action.get("response"), str):
        found.extend(_expr_problem((*base, "response"), action["response"]))
    errors = action.get("errors")
    if isinstance(errors, list):
        for i, rule in enumerate(errors):
            if isinstance(rule, dict):
                found.extend(_rule_problems((*base, "errors", i), rule.get("when"),
                                            rule.get("message")))
    pagination = action.get("pagination")
    if isinstance(pagination, dict):
        for key in ("items", "next_cursor", "total_pages", "has_more", "next_url",
                    "connection"):
            if isinstance(pagination.get(key), str):
                found.extend(_expr_problem((*base, "pagination", key), pagination[key]))
    tool = action.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("result"), str):
        found.extend(_expr_problem((*base, "tool", "result"), tool["result"]))
    return found


def _rule_problems(loc: _Loc, when: Any, message: Any) -> list[tuple[_Loc, str]]:
    found = []
    if isinstance(when, str):
        found.extend(_expr_problem((*loc, "when"), when))
    if isinstance(message, str):
        found.extend(_expr_problem((*loc, "message"), message))
    return found


def _expr_problem(loc: _Loc, source: str) -> list[tuple[_Loc, str]]:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        return [(loc, str(exc))]
    return []


def _schema_problems(loc: _Loc, schema: Any) -> list[tuple[_Loc, str]]:
    problem = input_schema_problem(schema)
    return [] if problem is None else [((*loc, *problem[0]), problem[1])]
