"""Tool search: the tools that fit a request in a person's words, ranked locally.

A model facing hundreds of tools cannot be given every definition; it asks
``search_tools("refund the customer's last payment")`` instead and gets the best few.
The ranking needs no model and no network: BM25F (BM25 over weighted fields) in pure
Python over an inverted index built once per catalog.

    tool → fields (action name, summary, description, tags, argument names and their
           descriptions, connector name and title, the catalog's synonyms and categories)
         → words → light stems (plural, -ing, -ed) → weighted term frequencies per tool
    query → words (an address, URL, phone number or issue key stands for its kind; an
           id's prefix is searched as an id) → stems, stopwords dropped → + synonyms
           (_search_words) at a lower weight; words that only narrow ("tomorrow") and
           the words of a message the request dictates ("...that the table is ready")
           count for less; a connector's everyday-word name ("square", "front") counts
           as the connector only when written like a name
         → Σ idf · saturated term frequency over the tools holding each term
         → times the share of the query's words a tool matches
         → times a lift when the action's verb does what the request asks (read, find,
           make, change, remove, refund) and when two of its words in a row name the
           action; a tool reading one thing by its id yields when no id is quoted
         → the tools of a connector the request names ("in Jira") first

Why not SQLite FTS5: its bm25() weights columns but cannot weigh query terms (a synonym
must count less than the word the person wrote), and every query would have to be turned
into FTS5 syntax from a model's text. Here the query is only ever split into words, so
nothing in it is syntax: quotes, ``NEAR``, ``*``, ``OR`` and column filters are words or
nothing. Queries are cut to :data:`MAX_QUERY_CHARS` characters and
:data:`MAX_QUERY_TERMS` distinct words; a query with no words finds nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Final

from patchwire.connectors.spec import ConnectorSpec
from patchwire.tools._catalog import Tool, ToolCatalog
from patchwire.tools._search_words import (
    EVERYDAY_NAMES,
    FIND_CUES,
    INTENTS,
    IRREGULAR,
    MENTION_CUES,
    MESSAGE_CUES,
    MESSAGE_VERBS,
    MODIFIERS,
    NEGATIONS,
    NEVER_A_NAME,
    OPENING_VERBS,
    PREFACE,
    QUESTION_WORDS,
    READ_OBJECTS,
    SENDING_VERBS,
    STOPWORDS,
    SYNONYM_GROUPS,
)

__all__ = ["MAX_QUERY_CHARS", "MAX_QUERY_TERMS", "ToolHit", "ToolIndex", "catalog_tool_index",
           "query_concepts"]

#: a longer query is cut here: a request for a tool is a sentence, not a document
MAX_QUERY_CHARS: Final = 500
#: distinct words of a query that count (the first ones)
MAX_QUERY_TERMS: Final = 32
#: the most tools one search returns
MAX_LIMIT: Final = 50

#: how much a word in each field counts, how much a long field dilutes it (BM25F's b),
#: and its group. Group 0 says what the tool is: the action's own name and summary, its
#: tags, its connector's name and title (they lift every action of a connector the person
#: names), the id prefixes it takes. Group 1 is what is said about it: descriptions,
#: argument names, the catalog's synonyms. Each group's words saturate on their own and
#: group 1 counts for less (_SAID), so a rare word said in a long description (a colour,
#: "fixed", "confirmation") cannot outweigh the request's words found in a tool's name.
_FIELDS: Final[Mapping[str, tuple[float, float, int]]] = {
    "name": (3.0, 0.3, 0),
    "title": (2.5, 0.5, 0),
    "tags": (1.5, 0.3, 0),
    "connector": (2.0, 0.0, 0),
    "ids": (1.5, 0.0, 0),
    "description": (1.0, 0.75, 1),
    "arguments": (0.4, 0.75, 1),
    "synonyms": (0.6, 0.3, 1),
    "connector_text": (0.2, 0.75, 1),
}
#: what group 1's words count for against group 0's
_SAID: Final = 0.5
#: how strongly the share of a query's words a tool matches scales its score
_COORD: Final = 1.0
#: BM25's term-frequency saturation (high: a word in a tool's name counts clearly more
#: than the same word once in its description)
_K1: Final = 2.0
#: the most one word's rarity counts: a word found in one tool's long description (a
#: colour, a name) must not outweigh the request's other words found in names
_MAX_IDF: Final = 4.0
#: what a synonym of a word the person wrote counts for (the word itself: 1)
_SYNONYM_WEIGHT: Final = 0.35
#: what a synonym group's first word counts for when the query holds one of its phrases
#: ("money back": the person named the thing, refund, in other words), and what its
#: other words count for then
_PHRASE_WEIGHT: Final = 0.9
_PHRASE_MEMBER_WEIGHT: Final = 0.5

#: what a word that only narrows what is asked ("last", "tomorrow", "twice") counts for
#: against one that names it: it filters the answer, it does not pick the tool
_MODIFIER_WEIGHT: Final = 0.4
#: what a connector's name that is also an everyday word ("square", "box", "team") counts
#: for, as a name, when the request does not use it like one (:data:`EVERYDAY_NAMES`)
_EVERYDAY_NAME_WEIGHT: Final = 0.3
#: what a tool that reads one thing by its id counts for when the request quotes no id
_READS_ONE: Final = 0.8
#: what the "send" a request opening with a channel as its verb says counts for
_SENDING_WEIGHT: Final = 0.5
_SEND: Final = "send"  # its own stem
#: what a word of the message a request dictates counts for (:func:`_message_starts`)
_MESSAGE_WEIGHT: Final = 0.3
#: the prefix a term for a connector's everyday-word name and for an id's prefix takes
#: in the index: neither is ever matched by the plain word
_VENDOR: Final = "@"
_ID: Final = "#"

#: what a tool whose action does what the request asks (reads, makes, changes, removes,
#: refunds: :data:`_search_words.INTENTS`) counts for against one that does not
_INTENT: Final = 0.5
#: what a tool that reads counts for against one that finds (searches) and back: both look
#: things up, but "look for the NDA" wants the search and "show me order 42" the read
_NEAR_INTENT: Final = 0.25
#: intents that are near each other (:data:`_NEAR_INTENT`)
_NEAR: Final = frozenset({frozenset({"read", "find"})})

#: what every tool of a connector the request names scores on top of its match, lifted
#: like a match when its action does what is asked: in "what's on my Google Calendar
#: tomorrow?" nothing but the intent tells the calendar's tools apart
_UNMATCHED: Final = 3.0

#: what a tool gains when two words of the request, in order and close together, are two
#: words of its action's name in a row ("add a comment" and ``add_comment``)
_PAIR: Final = 0.6
#: how far apart (in words that count) the request's two words may stand
_PAIR_SPAN: Final = 2

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[A-Za-z0-9]+")
_APOSTROPHE = re.compile(r"(?<=[A-Za-z])['\u2019](?=[A-Za-z])")
_PARENS = re.compile(r"\(([^)]*)\)")
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
#: the literal prefix of an id an argument's pattern asks for (``^cus_[A-Za-z0-9]+$``):
#: a request that quotes such an id names the tools that take it
_ID_PREFIX = re.compile(r"^\^([A-Za-z][A-Za-z0-9]{0,11})[_-]")
#: an id as written in a request (``sub_1Mow``, ``PAY-311``): its prefix, then at least
#: one digit among what follows
_WRITTEN_ID = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,11})[_-](?=[A-Za-z]*[0-9])")
_WRITTEN_ID_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]{0,11}[_-][A-Za-z]*[0-9][A-Za-z0-9_-]*")
#: a phone number as people paste it: a + and digits, or ten to fifteen digits in a row
#: (an order number is shorter, or split by dashes)
_PHONE = re.compile(r"(?<![A-Za-z0-9])(?:\+[0-9]{7,15}|[0-9]{10,15})(?![A-Za-z0-9])")
#: an issue key as trackers write it: a project's capitals, a hyphen, a number
_ISSUE_KEY = re.compile(r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]{1,9}-[0-9]+(?![A-Za-z0-9_-])")


def _cased_words(text: str) -> list[str]:
    """Words as written; ``snake_case``, ``camelCase`` and ``kebab-case`` split, an
    apostrophe inside a word dropped ("who's" is ``whos``, "customer's" ``customers``)."""
    return _WORD.findall(_CAMEL.sub(r"\1 \2", _APOSTROPHE.sub("", text)))


def _words(text: str) -> list[str]:
    """Lower-case words; ``snake_case``, ``camelCase`` and ``kebab-case`` split."""
    return [w.lower() for w in _cased_words(text)]


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """A light stem: plurals, -ing, -ed, a final -e or -y and a doubled last consonant go,
    so "invoices" and "invoice", "cancelled" and "cancel", "replies" and "reply" meet.
    Not a linguist's stem: the same rules on both sides is what matters."""
    w = IRREGULAR.get(word, word)
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) >= 6:
        w = w[:-3]
    elif (w.endswith("ed") and len(w) >= 5) or (w.endswith("ly") and len(w) >= 6) or (
            w.endswith("es") and len(w) >= 5
            and (w[-3] in "sxz" or w.endswith(("ches", "shes")))):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w.endswith("y"):
        w = w[:-1] + "i"
    elif len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]
    return w


def _terms(text: str) -> list[str]:
    """A field's stems, stopwords dropped."""
    return [stem(w) for w in _words(text) if w not in STOPWORDS]


def _synonyms() -> tuple[dict[str, list[int]], list[tuple[tuple[str, ...], int]],
                         list[list[tuple[str, ...]]]]:
    """Each group's members as stems: single words → groups, phrases → group, and per
    group the stems each member contributes to a query."""
    by_word: dict[str, list[int]] = {}
    phrases: list[tuple[tuple[str, ...], int]] = []
    members: list[list[tuple[str, ...]]] = []
    for gid, group in enumerate(SYNONYM_GROUPS):
        members.append([])
        for member in group:
            raw = tuple(stem(w) for w in _words(member))
            kept = tuple(stem(w) for w in _words(member) if w not in STOPWORDS)
            if len(raw) == 1:
                by_word.setdefault(raw[0], []).append(gid)
            elif raw:
                phrases.append((raw, gid))
            if len(kept) == 1:  # tool texts hold words, not phrases
                members[gid].append(kept)
    return by_word, phrases, members


_BY_WORD, _PHRASES, _MEMBERS = _synonyms()


def _query_words(query: str) -> list[str]:
    """A request's words as written (cut at :data:`MAX_QUERY_CHARS`); an e-mail address
    or a URL in it stands for the word "email" or "url" (tools that take one), a phone
    number (``+14155550100``, ten digits or more) for "phone", an issue
    key (``PAY-311``, ``ENG-412``) for "issue", and an id with a prefix (``sub_1Mow``)
    for nothing: its prefix is searched as an id (:func:`_written_ids`), not as a word
    ("pay", "sub")."""
    text = _PHONE.sub(" phone ", _ISSUE_KEY.sub(" issue ", _URL.sub(" url ", _EMAIL.sub(
        " email ", query[:MAX_QUERY_CHARS]))))
    return _cased_words(_WRITTEN_ID_TOKEN.sub(" ", text))


def _written_ids(query: str) -> list[str]:
    """The prefixes of the ids a request quotes (``sub_1Mow``: ``sub``), as index terms:
    they find the tools whose arguments ask for an id with that prefix."""
    text = _ISSUE_KEY.sub(" ", _URL.sub(" ", _EMAIL.sub(" ", query[:MAX_QUERY_CHARS])))
    return list(dict.fromkeys(_ID + m.lower() for m in _WRITTEN_ID.findall(text)))


def query_concepts(query: str) -> list[dict[str, float]]:
    """What a query searches for: one concept per word it holds (stopwords aside), each
    the word's stem (1.0) or any of its synonyms (less), and one per synonym phrase it
    holds ("money back"). A tool scores a concept's best term only, so a tool whose text
    holds many synonyms of one word does not outrank the tool that holds the word.

    The query is only ever split into words: no character of it is syntax."""
    written = _query_words(query)
    return _concepts([w.lower() for w in written], frozenset(), _written_as_names(written))


def _written_as_names(written: list[str]) -> frozenset[int]:
    """Where a request's words are written like a name: capitalised after its first word
    ("a Teams link"), or after a word that says where ("on wise")."""
    return frozenset(i for i in range(1, len(written)) if (
        written[i][:1].isupper() and not written[i].isupper())
        or written[i - 1].lower() in MENTION_CUES)


def _concepts(raw_words: list[str], skip: frozenset[int], as_names: frozenset[int] = frozenset()
              ) -> list[dict[str, float]]:
    """:func:`query_concepts` of lower-case words, but for the words at ``skip`` (a
    connector's name: it says where, not what); a connector's everyday-word name counts
    as a name in full only at ``as_names`` (where it is written like one)."""
    raw = [stem(w) for w in raw_words]
    said = _message_starts(raw_words)
    concepts: dict[str, dict[str, float]] = {}
    # phrases first: their words mean the phrase, not each word alone
    consumed: set[int] = set(skip)
    for phrase, gid in _PHRASES:
        n = len(phrase)
        for i in range(len(raw) - n + 1):
            if tuple(raw[i:i + n]) == phrase and not skip.intersection(range(i, i + n)):
                concepts.setdefault(" ".join(phrase), {})
                # the group's first word is what the phrase names ("look for": find);
                # its other words are only near it
                _expand(concepts[" ".join(phrase)], (gid,), _PHRASE_MEMBER_WEIGHT)
                _expand(concepts[" ".join(phrase)], (gid,), _PHRASE_WEIGHT, first_only=True)
                consumed.update(range(i, i + n))
    for i, (word, term) in enumerate(zip(raw_words, raw, strict=True)):
        if i in consumed or word in STOPWORDS or term in concepts:
            continue
        if len(concepts) >= MAX_QUERY_TERMS:
            break
        concept = _expand({term: 1.0}, _BY_WORD.get(term, ()), _SYNONYM_WEIGHT)
        if term in _EVERYDAY_STEMS:
            # a service's everyday-word name that named no connector by itself ("a Teams
            # link": Microsoft Teams) counts as its name when written like one; else the
            # everyday word, naming the service only a little ("the square reader")
            concept[_VENDOR + term] = 1.0 if i in as_names else _EVERYDAY_NAME_WEIGHT
        if word in MODIFIERS or term in _MODIFIER_STEMS:
            concept = {t: w * _MODIFIER_WEIGHT for t, w in concept.items()}
        elif i >= said:
            concept = {t: w * _MESSAGE_WEIGHT for t, w in concept.items()}
        concepts[term] = concept
    return list(concepts.values())


def _one_of_many(written: list[str], query: str) -> bool:
    """Whether a request quotes something that picks one thing: a number, an id, an
    address, a URL."""
    return (any(c.isdigit() for w in written for c in w)
            or _EMAIL.search(query) is not None or _URL.search(query) is not None
            or bool(_written_ids(query)) or _ISSUE_KEY.search(query) is not None)


def _message_starts(raw_words: list[str]) -> int:
    """Where the words of a message the request dictates start ("text Ana *that the
    table is ready*", "post in #general *saying the build is fixed*"): after a word that
    introduces what is said, once a verb that sends something was written; past the end
    when there is none. The message is what the tool sends, not which tool sends it."""
    sends = False
    for i, word in enumerate(raw_words):
        if sends and word in MESSAGE_CUES:
            return i + 1
        sends = sends or word in MESSAGE_VERBS
    return len(raw_words)


_EVERYDAY_STEMS: Final = frozenset(stem(w) for w in EVERYDAY_NAMES)
_MODIFIER_STEMS: Final = frozenset(stem(w) for w in MODIFIERS)


def _intent_table() -> tuple[dict[tuple[str, ...], str], int]:
    """Each intent's words and phrases as stems → the intent, and the longest phrase."""
    table: dict[tuple[str, ...], str] = {}
    for intent, members in INTENTS.items():
        for member in members:
            table.setdefault(tuple(stem(w) for w in _words(member)), intent)
    return table, max(map(len, table))


_INTENT_OF, _LONGEST_INTENT = _intent_table()


def _intent_at(terms: list[str], i: int) -> str | None:
    for n in range(min(_LONGEST_INTENT, len(terms) - i), 0, -1):
        found = _INTENT_OF.get(tuple(terms[i:i + n]))
        if found is not None:
            return found
    return None


def _opened_to_read(raw_words: list[str]) -> int | None:
    """Where a request opens with "open" meaning read ("open that email", "open the
    attachment"; "open a ticket" makes one), if it does."""
    i = 0
    while i < len(raw_words) and raw_words[i] in PREFACE:
        i += 1
    if i < len(raw_words) and raw_words[i] == "open" and READ_OBJECTS.intersection(
            raw_words[i + 1:i + 4]):
        return i
    return None


def request_intent(raw_words: list[str], *, quotes_address: bool = False) -> str | None:
    """What a request (lower-case words) asks done: the intent of the verb it opens with
    past "can you please"; a question ("which...", "is...") reads, or finds when it
    asks whether something is anywhere ("is there already...") or about an address it
    quotes (``quotes_address``: "is dana@globex.com in HubSpot?"); otherwise the first
    verb later on ("the client wants to unsubscribe")."""
    terms = [stem(w) for w in raw_words]
    i = 0
    while i < len(raw_words) and raw_words[i] in PREFACE:
        i += 1
    if i == len(raw_words):
        return None
    found = OPENING_VERBS.get(raw_words[i]) or _intent_at(terms, i)
    if _opened_to_read(raw_words) == i:
        return "read"
    if found is not None:
        return found
    if raw_words[i] in QUESTION_WORDS:
        # "is there already an issue about...", "is it somewhere": a search
        return "find" if quotes_address or FIND_CUES.intersection(raw_words) else "read"
    # later on: the verb after "please" ("I can't make it, please cancel"), else the
    # first verb not denied ("I can't make my booking")
    first: str | None = None
    for j in range(i + 1, len(terms)):
        found = _intent_at(terms, j)
        if found is None or raw_words[j - 1] in NEGATIONS:
            continue
        if raw_words[j - 1] in ("please", "pls"):
            return found
        first = first or found
    return first


def intent_fit(asked: str | None, done: str | None) -> float:
    """How much an action doing ``done`` is lifted for a request asking ``asked``."""
    if asked is None or done is None:
        return 1.0
    if asked == done:
        return 1.0 + _INTENT
    return 1.0 + _NEAR_INTENT if frozenset((asked, done)) in _NEAR else 1.0


def action_intent(action: str) -> str | None:
    """What an action does, by the verb its name starts with (``quick_add_event``: add)."""
    words = [stem(w) for w in _words(action)][:2]
    for word in words:
        found = _INTENT_OF.get((word,))
        if found is not None:
            return found
    return None


def _expand(terms: dict[str, float], groups: Iterable[int], weight_each: float, *,
            first_only: bool = False) -> dict[str, float]:
    """``terms`` with every member of ``groups`` (a phrase's words share its weight), or
    only each group's first word."""
    for gid in groups:
        for member in _MEMBERS[gid][:1] if first_only else _MEMBERS[gid]:
            weight = weight_each / len(member)
            for term in member:
                if terms.get(term, 0.0) < weight:
                    terms[term] = weight
    return terms


@dataclass(frozen=True, slots=True)
class ToolHit:
    """A tool a search found, and how well it fits (higher is better; only comparable
    within one search)."""

    tool: Tool
    score: float


def _schema_words(schema: Mapping[str, Any], ids: list[str], depth: int = 0) -> list[str]:
    """Argument names and their descriptions, nested objects included (bounded); the id
    prefixes their patterns ask for go to ``ids``."""
    out: list[str] = []
    props = schema.get("properties")
    if not isinstance(props, Mapping) or depth > 3:
        return out
    for name, sub in list(props.items())[:100]:
        out.append(str(name))
        if isinstance(sub, Mapping):
            for key in ("description", "title"):
                text = sub.get(key)
                if isinstance(text, str):
                    out.append(text[:300])
            pattern = sub.get("pattern")
            found = _ID_PREFIX.match(pattern) if isinstance(pattern, str) else None
            if found:
                ids.append(found.group(1))
            out.extend(_schema_words(sub, ids, depth + 1))
            items = sub.get("items")
            if isinstance(items, Mapping):
                out.extend(_schema_words(items, ids, depth + 1))
    return out


def _connector_fields(spec: ConnectorSpec | None, tool: Tool) -> dict[str, str]:
    if spec is None:
        return {"connector": tool.connector.replace("_", " ")}
    info = spec.catalog
    synonyms = [*info.synonyms, *info.categories] if info is not None else []
    return {
        "connector": f"{spec.name} {spec.title}",
        "synonyms": " ".join(str(s) for s in synonyms),
        "connector_text": spec.description,
    }


def _fields(tool: Tool, spec: ConnectorSpec | None) -> dict[str, str]:
    action = tool.target.split(".", 1)[1] if tool.kind == "action" else tool.target
    name = f"{action} {tool.name}" if tool.name not in (action, f"{tool.connector}_{action}") \
        else action
    ids: list[str] = []
    arguments = " ".join(_schema_words(tool.input_schema, ids))
    return {
        "name": name.replace("flow:", ""),
        "title": tool.title,
        "description": tool.description,
        "tags": " ".join(tool.tags),
        "arguments": arguments,
        "ids": " ".join(ids),
        **_connector_fields(spec, tool),
    }


def _mention_keys(titles: Mapping[str, str]) -> dict[tuple[str, ...], frozenset[str]]:
    """The words that name each connector in a request → the connectors they name: its
    name and its title (``google calendar``, ``Google Calendar``, ``GitHub`` written whole
    or split as ``git hub``) and a title's parenthesis (``X (Twitter)``: ``twitter``);
    and the first word of each, naming every connector of that vendor (``google``,
    ``zoho``, ``outlook``) unless it is a connector's whole name (``dropbox`` names
    Dropbox, not Dropbox Sign too)."""
    whole: dict[tuple[str, ...], set[str]] = {}
    family: dict[tuple[str, ...], set[str]] = {}
    for connector, title in titles.items():
        for form in (connector.replace("_", " "), _PARENS.sub(" ", title),
                     *_PARENS.findall(title)):
            written = _WORD.findall(form)
            if not written:
                continue
            for key in (tuple(w.lower() for w in written), tuple(_words(form))):
                whole.setdefault(key, set()).add(connector)
            for key in ((written[0].lower(),), tuple(_words(written[0]))):
                family.setdefault(key, set()).add(connector)
    keys = {**family, **whole}
    return {key: frozenset(names) for key, names in keys.items()
            if key and not (len(key) == 1 and (key[0] in STOPWORDS or key[0].isdigit()))}


def _reads_one(tool: Tool) -> bool:
    """Whether ``tool`` reads one particular thing its name names, by an id it requires
    (``get_event`` and ``event_id``): a request that quotes no id wants a list instead."""
    required = tool.input_schema.get("required")
    if not isinstance(required, list):
        return False
    named = {stem(w) for w in _words(tool.target.split(".", 1)[-1])}
    for argument in required:
        words = _words(str(argument))
        if len(words) >= 2 and words[-1] == "id" and stem(words[-2]) in named:
            return True
    return False


class ToolIndex:
    """Tools ranked for a request (see the module docstring). Built once per catalog;
    searching reads only, so one index serves concurrent searches."""

    def __init__(self, tools: list[Tool], postings: dict[str, list[tuple[int, float]]],
                 titles: Mapping[str, str] | None = None) -> None:
        self._tools = tools
        self._postings = postings
        self._mentions = _mention_keys(
            titles if titles is not None else {t.connector: t.connector for t in tools})
        self._longest_mention = max(map(len, self._mentions), default=0)
        self._intents = [action_intent(t.target.split(".", 1)[-1]) for t in tools]
        self._reads_one = frozenset(doc for doc, tool in enumerate(tools)
                                    if self._intents[doc] == "read" and _reads_one(tool))
        self._pairs: dict[tuple[str, str], list[int]] = {}
        for doc, tool in enumerate(tools):
            name = _terms(tool.target.split(".", 1)[-1])
            for pair in set(pairwise(name)):
                self._pairs.setdefault(pair, []).append(doc)
        n = len(tools)
        self._idf = {term: min(_MAX_IDF, math.log(1.0 + (n - len(p) + 0.5) / (len(p) + 0.5)))
                     for term, p in postings.items()}

    @classmethod
    def build(cls, tools: ToolCatalog | Iterable[Tool], *,
              connectors: Iterable[ConnectorSpec] = ()) -> ToolIndex:
        """An index over ``tools``; ``connectors`` (a registry, or specs) lends each
        tool its connector's title, description, catalog synonyms and categories."""
        specs = {spec.name: spec for spec in connectors}
        listed = list(tools)
        per_tool: list[dict[str, list[str]]] = []
        totals = dict.fromkeys(_FIELDS, 0)
        for tool in listed:
            texts = _fields(tool, specs.get(tool.connector))
            fields = {f: _terms(text) for f, text in texts.items()}
            # an id prefix is matched by an id the request quotes, never by the word
            # ("team_" and "who on the team"); a connector's everyday-word name by the
            # word at a lower weight unless it is written as a name (_concepts)
            fields["ids"] = [_ID + w for w in _words(texts.get("ids", ""))]
            fields["connector"] = [_VENDOR + t if t in _EVERYDAY_STEMS else t
                                   for t in fields.get("connector", [])]
            per_tool.append(fields)
            for f, terms in fields.items():
                totals[f] += len(terms)
        average = {f: (totals[f] / len(listed)) or 1.0 if listed else 1.0 for f in _FIELDS}
        postings: dict[str, list[tuple[int, float]]] = {}
        for doc, fields in enumerate(per_tool):
            weighted: dict[str, list[float]] = {}
            for f, terms in fields.items():
                if not terms:
                    continue
                weight, b, group = _FIELDS[f]
                norm = weight / (1.0 - b + b * len(terms) / average[f])
                for term in terms:
                    weighted.setdefault(term, [0.0, 0.0])[group] += norm
            for term, (tf_is, tf_said) in weighted.items():
                # saturated once here, per group, so a search only multiplies
                value = (tf_is * (_K1 + 1.0) / (tf_is + _K1)
                         + _SAID * tf_said * (_K1 + 1.0) / (tf_said + _K1))
                postings.setdefault(term, []).append((doc, value))
        titles = {tool.connector: specs[tool.connector].title if tool.connector in specs
                  else tool.connector for tool in listed}
        return cls(listed, postings, titles)

    def __len__(self) -> int:
        return len(self._tools)

    def mentioned_connectors(self, query: str) -> frozenset[str]:
        """The connectors ``query`` names ("in Jira", "my Zoom call", "google sheet")."""
        return self._mentioned(_query_words(query))[0]

    def _mentioned(self, written: list[str]) -> tuple[frozenset[str], frozenset[int]]:
        """The connectors named in a request's words, and where their names stand.

        A name that is also an everyday word ("close", "square", "notion", "linear")
        names its connector only when written as a name: capitalised after the first
        word ("the deal in Close") or after a word that says where ("on wise"); a day or
        month ("monday") never alone."""
        lowered = [w.lower() for w in written]
        as_names = _written_as_names(written)
        found: set[str] = set()
        at: set[int] = set()
        i = 0
        while i < len(lowered):
            for n in range(min(self._longest_mention, len(lowered) - i), 0, -1):
                names = self._mentions.get(tuple(lowered[i:i + n]))
                if names is None:
                    continue
                word = lowered[i]
                as_name = i in as_names
                if n == 1 and (word in NEVER_A_NAME or (word in EVERYDAY_NAMES
                                                        and not as_name)):
                    continue
                found.update(names)
                at.update(range(i, i + n))
                i += n - 1
                break
            i += 1
        return frozenset(found), frozenset(at)

    def search(self, query: str, *, connector: str | None = None, limit: int = 5
               ) -> list[ToolHit]:
        """The ``limit`` tools (at most :data:`MAX_LIMIT`) that best fit ``query``, best
        first; only tools of ``connector`` when given. No words in the query, no hits."""
        limit = max(0, min(limit, MAX_LIMIT))
        if limit == 0:
            return []
        scores: dict[int, float] = {}
        matched: dict[int, float] = {}
        written = _query_words(query)
        named, where = self._mentioned(written)
        lowered = [w.lower() for w in written]
        # "open" that reads says nothing more than the intent does: its words (create,
        # start, new) would pull the tools that make things
        opened = _opened_to_read(lowered)
        concepts = _concepts(lowered, where if opened is None else where | {opened},
                             _written_as_names(written))
        concepts.extend({term: 1.0} for term in _written_ids(query)
                        if len(concepts) < MAX_QUERY_TERMS)
        head = next((w for w in lowered if w not in PREFACE), "")
        if head in SENDING_VERBS and "send" not in lowered:
            # "email the invoice", "text Ana": a channel used as a verb means "send by it"
            concepts.append({_SEND: _SENDING_WEIGHT})
        intent = request_intent(lowered, quotes_address=_EMAIL.search(query) is not None)
        for concept in concepts:
            best: dict[int, float] = {}
            for term, q_weight in concept.items():
                found = self._postings.get(term)
                if not found:
                    continue
                idf = self._idf[term] * q_weight
                for doc, saturated in found:
                    score = idf * saturated
                    if score > best.get(doc, 0.0):
                        best[doc] = score
            weight = max(concept.values(), default=0.0)
            for doc, score in best.items():
                scores[doc] = scores.get(doc, 0.0) + score
                matched[doc] = matched.get(doc, 0.0) + weight
        # coordination: a tool that answers more of the request's words beats one that
        # holds a single rare word of it ("last", "half") many times over; a word that
        # only narrows ("tomorrow") counts for less here too
        total = sum(max(concept.values(), default=0.0) for concept in concepts) or 1.0
        tools = self._tools
        intents = self._intents
        # a request that quotes no id (no digits, address, key) asks about many things or
        # one it describes: a tool that reads one thing by its id fits it less
        one = _one_of_many(written, query)
        for doc in scores:
            scores[doc] *= (matched[doc] / total) ** _COORD
            scores[doc] *= intent_fit(intent, intents[doc])
            if not one and doc in self._reads_one:
                scores[doc] *= _READS_ONE
        said = [stem(w) for i, w in enumerate(lowered) if i not in where and w not in STOPWORDS]
        paired: set[int] = set()
        for i, first in enumerate(said):
            for second in said[i + 1:i + 1 + _PAIR_SPAN]:
                paired.update(self._pairs.get((first, second), ()))
        for doc in paired:
            if doc in scores:
                scores[doc] *= 1.0 + _PAIR
        if named:
            # the named connectors' tools come first, found even when nothing else of the
            # request matches ("anything new in Zendesk?"); the rest of the request ranks
            # them. A person who writes "in Jira" or "my Zoom call" has said where.
            above = max((score for doc, score in scores.items()
                         if tools[doc].connector not in named), default=0.0)
            for doc, tool in enumerate(tools):
                if tool.connector in named:
                    lift = _UNMATCHED * intent_fit(intent, intents[doc])
                    if not one and doc in self._reads_one:
                        lift *= _READS_ONE
                    scores[doc] = above + scores.get(doc, 0.0) + lift
        ranked = sorted(
            ((score, doc) for doc, score in scores.items()
             if connector is None or tools[doc].connector == connector),
            key=lambda pair: (-pair[0], tools[pair[1]].name))
        return [ToolHit(tools[doc], round(score, 4)) for score, doc in ranked[:limit]]


@lru_cache(maxsize=1)
def catalog_tool_index() -> ToolIndex:
    """An index over every action of every connector in the Patchwire catalog (what
    ``patchwire tools search --catalog`` searches); built once per process."""
    from patchwire.catalog import load_catalog

    registry = load_catalog().registry()
    return ToolIndex.build(ToolCatalog.build(registry, every_action=True),
                           connectors=registry)
