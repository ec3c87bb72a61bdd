"""Deterministic, realistic-looking seed data (names, emails, timestamps)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

FIRST_NAMES = (
    "Ada",
    "Alan",
    "Amara",
    "Ben",
    "Carla",
    "Chen",
    "Dario",
    "Elena",
    "Farah",
    "Felix",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Lucas",
    "Maya",
    "Mateo",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Sofia",
    "Tomas",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Schmidt",
    "Rossi",
    "Kowalski",
    "Haddad",
    "Fernandez",
    "Oliveira",
    "Novak",
    "Jensen",
    "Patel",
    "Kim",
    "Dubois",
    "Andersen",
    "Costa",
    "Weber",
    "Ivanova",
    "Murphy",
    "Tanaka",
    "Silva",
    "Berg",
    "Khan",
)
COMPANIES = (
    "Northwind Traders",
    "Bluebird Studio",
    "Acme Logistics",
    "Fjord Analytics",
    "Cedar & Pine",
    "Lumen Health",
    "Orbit Foods",
    "Harbor Legal",
    None,
    None,
    None,
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
COUNTRIES = (
    ("US", "USD"),
    ("GB", "GBP"),
    ("DE", "EUR"),
    ("FR", "EUR"),
    ("NL", "EUR"),
    ("US", "USD"),
    ("CA", "USD"),
    ("ES", "EUR"),
)

EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""Seed timestamps count from here, so data never depends on when the sandbox started."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def person(rng: random.Random, index: int) -> tuple[str, str]:
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    # The index keeps emails unique, which the shop's ?email= lookup relies on.
    email = f"{first}.{last}{index}@{rng.choice(DOMAINS)}".lower()
    return f"{first} {last}", email


def moment_after(rng: random.Random, start: datetime, max_days: int) -> datetime:
    return start + timedelta(seconds=rng.randrange(max_days * 86_400))


def token(rng: random.Random, length: int = 24) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(length))


TOPICS = (
    "Onboarding call",
    "Product demo",
    "Quarterly review",
    "Support follow-up",
    "Wholesale enquiry",
    "Barista training",
    "Contract renewal",
    "Technical deep-dive",
)
