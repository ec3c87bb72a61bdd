"""JSONata expressions: compiled once, evaluated many times, bounded in time and depth.

The evaluator is ``jsonata-python`` (a pure-Python port of the reference implementation).
Plain field paths (``data``, ``meta.next_cursor``, ``$``) are the most common mappings in
connectors and sit on the hot call path, so they are evaluated directly when every step
lands on an object; anything else — or a path that meets an array, where JSONata's
mapping semantics apply — goes through the full evaluator.

Bounds (:class:`ExpressionLimits`): ``max_depth`` counts how deeply evaluation is nested
right now — entered and left, so mapping 100,000 items or an object's 10,000 keys stays
shallow while a function calling itself goes deeper at every call — and ``timeout`` is
the wall time of one evaluation. Process defaults come from the settings
(:func:`set_default_limits`); flows override them per flow and per step.

Every failure is an :class:`ExpressionError` with JSONata's error code and the position
in the expression: the library's own errors keep their code, and what escapes it as a
Python exception (``float division by zero``) is translated where it happens.
"""

from __future__ import annotations

import copy
import decimal
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonata
from jsonata import parser as _jparser
from jsonata.functions import Functions
from jsonata.jexception import JException
from jsonata.utils import Utils

from patchwire.errors import (
    ExpressionError,
    )

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_TIMEOUT",
    "Expression",
    "ExpressionError",
    "ExpressionLimits",
    "compile_expression",
    "default_limits",
    "set_default_limits",
    "truthy",
]

#: JSONata's literals look like field names but are not paths
_NOT_LITERAL = r"(?!(?:true|false|null)\b)"
_SIMPLE_PATH = re.compile(
    rf"^\s*(?:\$|{_NOT_LITERAL}[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
_PATH_SRC = rf"(?:\$|{_NOT_LITERAL})[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_KEY_SRC = r"(?:'[^'\\]*'|\"[^\"\\]*\")"
#: ``{'id': $steps.order.id, 'email': customer.email}``: an object of paths (flows' most
#: common transform), evaluated field by field without the full evaluator
_OBJECT_OF_PATHS = re.compile(
    rf"^\s*\{{\s*(?:{_KEY_SRC}\s*:\s*{_PATH_SRC}\s*(?:,\s*{_KEY_SRC}\s*:\s*{_PATH_SRC}\s*)*)?\}}\s*$")
_OBJECT_FIELD = re.compile(rf"({_KEY_SRC})\s*:\s*({_PATH_SRC})")
#: ``$steps.lookup.id``: a path from a bound variable (flows use these all the time)
_VARIABLE_PATH = re.compile(r"^\s*\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
_MISSING = object()
_JList = Utils.JList
_NULL = Utils.NULL_VALUE

#: seconds one evaluation may take. Mapping 100,000 array items takes seconds in the pure-
#: Python evaluator, which 1 s did not allow; evaluation holds its thread (the event loop),
#: so a runaway expression stalls the process this long at most. Raise it per flow or step.
DEFAULT_TIMEOUT = 5.0
#: how deeply evaluation may nest: each call of a user function nests ~3 levels, so 1000
#: allows ~330 levels of real recursion and stays clear of Python's own stack limit (the
#: library sets 10,000 frames, ~6 per level), which would end it with the same D1011.
DEFAULT_MAX_DEPTH = 1000


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """Bounds of an evaluation; a ``None`` field takes the next default (the step's
    limits over the flow's over the settings')."""

    #: seconds
    timeout: float | None = None
    max_depth: int | None = None

    def over(self, base: ExpressionLimits) -> ExpressionLimits:
        """These limits, with ``base``'s where these leave a field ``None``."""
        return ExpressionLimits(
            self.timeout if self.timeout is not None else base.timeout,
            self.max_depth if self.max_depth is not None else base.max_depth)


_defaults = ExpressionLimits(DEFAULT_TIMEOUT, DEFAULT_MAX_DEPTH)


def set_default_limits(timeout: float | None = None, max_depth: int | None = None) -> None:
    """The process-wide bounds (from the settings ``expression_timeout`` and
    ``expression_max_depth``); ``None`` restores the built-in default."""
    global _defaults
    if timeout is not None and not 0 < timeout < math.inf:
        raise ValueError(f"an expression timeout is a positive number of seconds, not {timeout!r}")
    if max_depth is not None and (isinstance(max_depth, bool) or max_depth < 1):
        raise ValueError(f"an expression depth limit is a positive integer, not {max_depth!r}")
    _defaults = ExpressionLimits(DEFAULT_TIMEOUT if timeout is None else float(timeout),
                                 DEFAULT_MAX_DEPTH if max_depth is None else int(max_depth))


def default_limits() -> ExpressionLimits:
    return _defaults



# -- errors, in JSONata's terms ---------------------------------------------------------------

#: the library's messages say "Object" where JSONata says "function"
_TEMPLATES = {code: text.replace("Object", "function")
              for code, text in JException.error_codes.items()}
#: the library raises these with a message and no code; JSONata has one for each
_UNCODED = {
    "Second argument of replace function cannot be an empty string": "D3010",
    "Fourth argument of replace function must evaluate to a positive number": "D3011",
    "both integer and fractional parts are empty": "D3085",
}
#: for a failure JSONata has no code for (the library's "Unexpected", a Python error
#: inside a function, such as a date past year 9999): a generic evaluation error
GENERIC_CODE = "D1000"
_PLACEHOLDER = re.compile(r"\{\{\{?\w+\}\}\}?")
#: functions whose failures on a bad argument JSONata reports with their own code
_FUNCTION_CODES = {
    "number": ("D3030", "Unable to cast value to a number"),
    "toMillis": ("D3110", "The argument of the toMillis function must be an ISO 8601 "
                          "formatted timestamp"),
    "encodeUrl": ("D3140", "Malformed URL passed to $encodeUrl()"),
    "encodeUrlComponent": ("D3140", "Malformed URL passed to $encodeUrlComponent()"),
    "decodeUrl": ("D3140", "Malformed URL passed to $decodeUrl()"),
    "decodeUrlComponent": ("D3140", "Malformed URL passed to $decodeUrlComponent()"),
}


class _HostError(JException):  # type: ignore[misc]
    """A Python error raised inside the library, translated where it happened (so the
    library adds the function's position as it does for its own errors)."""

    def __init__(self, code: str, position: int, message: str) -> None:
        super().__init__(code, position)
        self.args = (message,)
        self.message = message


def _shown(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return "undefined" if value is None else str(value)


def _code_and_message(exc: JException) -> tuple[str, str]:
    if isinstance(exc, _HostError):
        return exc.error, exc.message
    code = str(exc.error)
    template = _TEMPLATES.get(code)
    if template is None:  # raised with a message instead of a code
        return _UNCODED.get(code, GENERIC_CODE), code
    if template == "{{{message}}}":
        return code, "" if exc.current is None else str(exc.current)
    args = [exc.current, exc.expected] + ([] if exc.extra is None else [exc.extra])
    try:
        return code, _PLACEHOLDER.sub("{}", template).format(*map(_shown, args))
    except (IndexError, KeyError, ValueError):
        return code, _PLACEHOLDER.sub("", template).rstrip(": ")


def _function_name(expr: Any) -> str | None:
    if getattr(expr, "type", None) not in ("function", "partial"):
        return None
    procedure = getattr(expr, "procedure", None)
    name = getattr(procedure, "value", None)
    return name if isinstance(name, str) else None


def _translate(exc: Exception, expr: Any) -> JException:
    """The JSONata error for a Python exception raised while evaluating ``expr``."""
    position = getattr(expr, "position", -1)
    position = position if isinstance(position, int) else -1
    if isinstance(exc, RecursionError):
        return JException("D1011", position)
    if isinstance(exc, ZeroDivisionError):
        return _HostError("D1001", position, "Number out of range: division by zero")
    if isinstance(exc, OverflowError):
        return _HostError("D1001", position,
                          "Number out of range: the result cannot be represented as a number")
    name = _function_name(expr)
    if isinstance(exc, MemoryError):
        return _HostError(GENERIC_CODE, position, f"{'$' + name if name else 'The expression'} "
                                                  "would build a value too large to hold")
    if name in _FUNCTION_CODES and isinstance(exc, ValueError | TypeError | KeyError):
        code, message = _FUNCTION_CODES[name]
        return _HostError(code, position, message)
    if name is not None:
        return _HostError(GENERIC_CODE, position,
                          f"${name} cannot be applied to these arguments")
    return _HostError(GENERIC_CODE, position, "The expression cannot be evaluated on this input")


# -- the bounded evaluator ----------------------------------------------------------------------


class _Evaluator(jsonata.Jsonata):  # type: ignore[misc]
    """The library's evaluator with Patchwire's bounds and error translation.

    The library's own time box counts depth with callbacks it skips for "parallel"
    evaluations (array and object constructors, the items of a map), flagged on a frame
    that the next evaluation in that frame sees too: every item raised the count without
    lowering it, so mapping an object of 200 keys was a stack overflow. Here every
    evaluation that enters also leaves, in ``finally``.

    One instance is compiled and shared; each evaluation runs on a shallow copy holding
    its own counters (``_bounded``).
    """

    # class defaults: unbounded, for the compiled instance should the library evaluate on it
    _depth = 0
    _max_depth = math.inf
    _deadline = math.inf
    _timeout_ms = 0
    _tripped: JException | None = None

    def _bounded(self, limits: ExpressionLimits) -> _Evaluator:
        run = copy.copy(self)
        assert limits.timeout is not None and limits.max_depth is not None
        run._depth = 0
        run._max_depth = limits.max_depth
        run._deadline = time.monotonic() + limits.timeout
        run._timeout_ms = round(limits.timeout * 1000)
        run._tripped = None
        return run

    def _eval(self, expr: Any, input: Any, environment: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                raise self._trip(JException("D1011", getattr(expr, "position", -1)))
            if time.monotonic() > self._deadline:
                raise self._trip(JException("D1012", getattr(expr, "position", -1),
                                            self._timeout_ms))
            return super()._eval(expr, input, environment)
        except JException:
            raise
        except RecursionError as exc:  # Python's stack ran out before max_depth
            raise self._trip(_translate(exc, expr)) from None
        except Exception as exc:  # only the innermost evaluation sees a Python error
            raise _translate(exc, expr) from exc
        finally:
            self._depth -= 1

    def _trip(self, exc: JException) -> JException:
        # $eval turns any error inside it into D3121: the limit hit is what is reported
        if self._tripped is None:
            self._tripped = exc
        return exc

    def evaluate_numeric_expression(self, lhs: Any, rhs: Any, op: Any) -> Any:
        if (op == "%" and lhs is not None and rhs is not None and Utils.is_numeric(lhs)
                and Utils.is_numeric(rhs)):
            # the library truncated the remainder to an integer: 5.5 % 2 gave 1
            if float(rhs) == 0:
                raise ZeroDivisionError("modulo by zero")
            return Utils.convert_number(math.fmod(float(lhs), float(rhs)))
        return super().evaluate_numeric_expression(lhs, rhs, op)

    def evaluate_string_concat(self, lhs: Any, rhs: Any) -> str:
        # `&` writes numbers as $string does
        return (_Functions.string(lhs, None) or "") + (_Functions.string(rhs, None) or "")


# -- fixes of library bugs that reach users --------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Parser(_jparser.Parser):  # type: ignore[misc]
    def process_ast(self, expr: Any) -> Any:
        kind = getattr(expr, "type", None)
        if (kind == "unary" and str(expr.value) == "-"
                and getattr(expr.expression, "type", None) == "number"):
            # The library folds `-5` by negating the literal's node in place, and `?:` and
            # `??` process their left operand twice (as condition and as result): `-5 ?: 99`
            # gave 5. Fold a copy.
            expr = copy.copy(expr)
            expr.expression = copy.copy(expr.expression)
        elif kind in ("string", "name") and isinstance(expr.value, str) \
                and _SURROGATE.search(expr.value):
            # "\uD83D\uDE00" is one character in JSONata (a UTF-16 pair), two lone
            # surrogates in the library: $length gave 2
            expr.value = expr.value.encode("utf-16", "surrogatepass").decode(
                "utf-16", "surrogatepass")
        return super().process_ast(expr)


def _js_number(value: float) -> str:
    """A number as JSONata writes it in text: a fraction to 15 significant digits (so
    0.1 + 0.2 is 0.3), then JavaScript's Number-to-String (plain digits below 1e21, an
    exponent from there)."""
    if -1e15 < value < 1e15 and (isinstance(value, int) or value.is_integer()):
        return str(int(value))
    number = float(value)
    if not number.is_integer():
        number = float(f"{number:.15g}")
    sign, digits, exponent = decimal.Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    k, n = len(text), len(text) + exponent  # value = 0.<text> x 10^n
    if k <= n <= 21:
        out = text + "0" * (n - k)
    elif 0 < n <= 21:
        out = f"{text[:n]}.{text[n:]}"
    elif -6 < n <= 0:
        out = "0." + "0" * -n + text
    else:
        mantissa = text[0] + (f".{text[1:]}" if k > 1 else "")
        out = f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
    return ("-" if sign else "") + out


def _json(value: Any, indent: str | None, level: int = 0) -> str:
    """``JSON.stringify`` as JSONata calls it: its numbers, non-ASCII text as is,
    functions as ``""``."""
    if value is None or value is _NULL:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, jsonata.Jsonata.JFunction | _jparser.Parser.Symbol):
        return '""'  # JSONata writes a function inside a value as an empty string
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise JException("D3001", -1)
        return _js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | dict):
        items = ([_json(v, indent, level + 1) for v in value] if isinstance(value, list) else
                 [json.dumps(str(k), ensure_ascii=False) + (": " if indent else ":")
                  + _json(v, indent, level + 1) for k, v in value.items()])
        ends = "[]" if isinstance(value, list) else "{}"
        if not items:
            return ends
        if indent is None:
            return ends[0] + ",".join(items) + ends[1]
        inner, outer = "\n" + indent * (level + 1), "\n" + indent * level
        return ends[0] + inner + ("," + inner).join(items) + outer + ends[1]
    return json.dumps(value, cls=Functions.Encoder, ensure_ascii=False)


class _Functions:
    """Built-in functions Patchwire replaces, bound in every compiled expression."""

    @staticmethod
    def string(arg: Any, prettify: Any) -> str | None:
        """``$string``: the library wrote 1e20 as ``1e+20`` (JSONata:
        ``100000000000000000000``) and escaped non-ASCII characters."""
        if isinstance(arg, _JList) and arg.outer_wrapper:
            arg = arg[0]
        if arg is None:
            return None
        if isinstance(arg, str):
            return arg
        if isinstance(arg, jsonata.Jsonata.JFunction | _jparser.Parser.Symbol):
            return ""
        return _json(arg, "  " if prettify else None)

    @staticmethod
    def contains(string: Any, token: Any) -> bool | None:
        """``$contains``: an undefined pattern gives undefined (the library raised)."""
        return None if token is None else Functions.contains(string, token)


_OVERRIDES = {name: jsonata.Jsonata.JNativeFunction(name, signature, _Functions, name)
              for name, signature in (("string", "<x-b?:s>"), ("contains", "<s-(sf):b>"))}


def _install_parser() -> None:
    """Parse with :class:`_Parser` in this thread (the library keeps one parser per
    thread; ``$eval`` parses with it too)."""
    if not isinstance(getattr(jsonata.Jsonata.PARSER, "parser", None), _Parser):
        jsonata.Jsonata.PARSER.parser = _Parser()


# -- expressions ----------------------------------------------------------------------------


class Expression:
    """A compiled JSONata expression."""

    __slots__ = ("_compiled", "_fields", "_path", "_variable", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._path: tuple[str, ...] | None = None
        self._variable: tuple[str, tuple[str, ...]] | None = None
        stripped = source.strip()
        if _SIMPLE_PATH.match(stripped):
            self._path = () if stripped == "$" else tuple(stripped.split("."))
        elif (m := _VARIABLE_PATH.match(stripped)) is not None:
            self._variable = (m.group(1), tuple(m.group(2).split(".")[1:]))
        self._fields: list[tuple[str, str | None, tuple[str, ...]]] | None = None
        if _OBJECT_OF_PATHS.match(stripped):
            self._fields = []
            for key, path in _OBJECT_FIELD.findall(stripped):
                parts = path.split(".")
                variable = parts[0][1:] if parts[0].startswith("$") else None
                self._fields.append((key[1:-1], variable,
                                     tuple(parts[1:] if variable is not None else parts)))
        _install_parser()
        current = jsonata.Jsonata.CURRENT
        previous = getattr(current, "jsonata", None)
        try:
            self._compiled = _Evaluator(source)
        except JException as exc:
            raise self._error("invalid JSONata", exc) from None
        except Exception as exc:  # RecursionError on deep nesting, the parser's own bugs
            raise self._error("invalid JSONata", _translate(exc, None)) from None
        finally:
            current.jsonata = previous  # the library's constructor makes itself "current"
        for name, function in _OVERRIDES.items():
            self._compiled.environment.bind(name, function)

    def evaluate(self, data: Any, bindings: Mapping[str, Any] | None = None, *,
                 limits: ExpressionLimits | None = None) -> Any:
        """The value of the expression over ``data``, with ``$name`` variables from
        ``bindings``; ``limits`` (over the process defaults) bound the full evaluator.
        Raises :class:`ExpressionError`."""
        if self._fields is not None:
            built = self._object(data, bindings or {})
            if built is not _MISSING:
                return built
        if self._path is not None and not bindings:
            value = _walk(data, self._path)
            if value is not _MISSING:
                return value
        elif self._variable is not None and bindings:
            name, path = self._variable
            if name in bindings:
                value = _walk(bindings[name], path) if path else bindings[name]
                if value is not _MISSING and not (not path and isinstance(value, list)):
                    return value
        return self._evaluate(data, bindings, _defaults if limits is None
                              else limits.over(_defaults))

    def _evaluate(self, data: Any, bindings: Mapping[str, Any] | None,
                  limits: ExpressionLimits) -> Any:
        _install_parser()
        run = self._compiled._bounded(limits)
        # Always a frame of our own (the library binds `$` in the shared one otherwise);
        # the callback names bound to None end the library's per-step lookups of its own
        # time box here instead of at the root.
        frame = {"__evaluate_entry": None, "__evaluate_exit": None, **(bindings or {})}
        current = jsonata.Jsonata.CURRENT
        previous = getattr(current, "jsonata", None)
        # the library evaluates on the thread's "current" instance: this evaluation's
        current.jsonata = run
        try:
            return run.evaluate(data, frame)
        except JException as exc:
            raise self._error("JSONata", run._tripped or exc) from None
        except Exception as exc:  # outside any step: checking the input, its conversion
            raise self._error("JSONata", run._tripped or _translate(exc, None)) from None
        finally:
            current.jsonata = previous

    def _error(self, what: str, exc: JException) -> ExpressionError:
        code, message = _code_and_message(exc)
        location = exc.location
        # some library errors pass an argument where the position goes
        position = location if isinstance(location, int) and 0 <= location <= len(
            self.source) else None
        at = f" at position {position}" if position is not None else ""
        failed = "" if what.startswith("invalid") else " failed"
        return ExpressionError(f"{what} {self.source!r}{failed}: {message} ({code}{at})",
                               jsonata_code=code, position=position)

    def _object(self, data: Any, bindings: Mapping[str, Any]) -> Any:
        assert self._fields is not None
        out: dict[str, Any] = {}
        for key, variable, path in self._fields:
            if variable is not None:
                if variable == "" or variable not in bindings:
                    return _MISSING  # `$` alone, or an unknown variable: the evaluator decides
                value = _walk_defined(bindings[variable], path)
            else:
                value = _walk_defined(data, path)
            if value is _MISSING:
                return _MISSING
            if value is not _UNDEFINED:  # JSONata leaves out fields whose value is undefined
                out[key] = value
        return out

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _walk(data: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through objects; ``_MISSING`` means 'let JSONata decide'."""
    current = data
    for key in path:
        if not isinstance(current, dict):
            return _MISSING
        current = current.get(key)
        if current is None:
            return None
    # A list at the end is returned whole by JSONata too, except singletons and nested
    # arrays, which JSONata flattens: defer those to the evaluator.
    if isinstance(current, list) and path and (len(current) <= 1 or _has_list(current)):
        return _MISSING
    return current


_UNDEFINED = object()


def _walk_defined(data: Any, path: tuple[str, ...]) -> Any:
    """Like ``_walk``, telling a missing field (``_UNDEFINED``) from a JSON null."""
    current = data
    for key in path:
        if not isinstance(current, dict):
            return _MISSING if isinstance(current, list) else _UNDEFINED
        if key not in current:
            return _UNDEFINED
        current = current[key]
    if isinstance(current, list) and (len(current) <= 1 or _has_list(current)):
        return _MISSING
    return current


def _has_list(items: list[Any]) -> bool:
    return any(isinstance(i, list) for i in items)


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile (and cache) an expression; raises :class:`ExpressionError`."""
    return Expression(source)


def truthy(value: Any) -> bool:
    """JSONata's boolean cast (``$boolean``), what ``if``, ``when`` and filters test:
    empty strings, arrays and objects, 0 and null are false; an array is true when a
    member is."""
    return bool(Functions.to_boolean(value))
