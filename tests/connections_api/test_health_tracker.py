"""The health tracker: a connection's last outcomes and the two thresholds, with
hysteresis so alternating outcomes never flap it."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchwire.config import load_settings
from patchwire.errors import ConfigError
from patchwire.runtime import HealthPolicy, HealthTracker, health_policy

POLICY = HealthPolicy(window=20, min_calls=10, unhealthy_below=0.5, recovered_at=0.8,
                      recover_streak=5)


def feed(tracker: HealthTracker, outcomes: list[str | None]) -> list[tuple[int, str]]:
    """(index, state) of every change the outcomes make."""
    changes: list[tuple[int, str]] = []
    for i, outcome in enumerate(outcomes):
        change = tracker.observe("acme", outcome)
        if change is not None:
            changes.append((i, change.state))
    return changes


def test_ten_failures_make_a_connection_unhealthy_and_sixteen_successes_recover_it() -> None:
    tracker = HealthTracker(POLICY)
    changes = feed(tracker, ["upstream_error"] * 10 + [None] * 20)
    # failing 10 of 10: unhealthy; recovered once at most 4 of the last 20 failed
    assert changes == [(9, "unhealthy"), (25, "healthy")]


def test_any_error_but_a_refused_request_counts_as_failing() -> None:
    for error in ("request_render_error", "blocked_destination", "some_new_error"):
        assert feed(HealthTracker(POLICY), [error] * 10) == [(9, "unhealthy")], error


def test_fewer_than_min_calls_never_make_it_unhealthy() -> None:
    assert feed(HealthTracker(POLICY), ["timeout"] * 9) == []


def test_alternating_outcomes_do_not_flap_either_way() -> None:
    tracker = HealthTracker(POLICY)
    assert feed(tracker, [None, "connection_error"] * 30) == []  # 50%: not below
    assert feed(tracker, ["auth_error"] * 10) == [(0, "unhealthy")]  # 9 of 20 ok
    assert feed(tracker, [None, "upstream_error"] * 30) == []  # no streak of five


def test_an_open_breaker_makes_it_unhealthy_at_once_and_five_successes_recover_it() -> None:
    tracker = HealthTracker(POLICY)
    assert feed(tracker, [None] * 3 + ["circuit_open"] * 4) == [(3, "unhealthy")]
    assert feed(tracker, [None] * 5) == [(4, "healthy")]


def test_client_errors_count_as_working_and_429s_count_neither_way() -> None:
    tracker = HealthTracker(POLICY)
    assert feed(tracker, ["not_found", "conflict", "upstream_validation_error"] * 10) == [
        (4, "healthy")]  # first sight of it working: noted once
    assert feed(tracker, ["rate_limited"] * 50) == []
    assert feed(tracker, ["upstream_error"] * 11) == [(10, "unhealthy")]  # 9 of 20 ok


def test_a_first_streak_of_successes_notes_the_connection_healthy_once() -> None:
    tracker = HealthTracker(POLICY)
    assert feed(tracker, [None] * 12) == [(4, "healthy")]


@pytest.mark.parametrize("bad", [
    {"min_calls": 0}, {"min_calls": 30}, {"recover_streak": 0},
    {"unhealthy_below": 0.9, "recovered_at": 0.8}, {"recovered_at": 1.5}])
def test_a_policy_that_cannot_work_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="health"):
        HealthPolicy(**{**POLICY.__dict__, **bad})


def test_the_thresholds_come_from_the_settings_and_unusable_ones_are_refused(
        tmp_path: Path) -> None:
    assert health_policy(load_settings(environ={}, toml_path=tmp_path / "none")) == POLICY
    toml = tmp_path / "patchwire.toml"
    toml.write_text("[patchwire]\nhealth_window = 8\nhealth_recovered_at = 0.9\n")
    policy = health_policy(load_settings(
        environ={"PATCHWIRE_HEALTH_MIN_CALLS": "4", "PATCHWIRE_HEALTH_WINDOW": "6"},
        toml_path=toml, health_recover_streak=2))
    assert (policy.window, policy.min_calls, policy.recovered_at, policy.recover_streak) == (
        6, 4, 0.9, 2)  # the environment over the file, arguments over both
    tracker = HealthTracker(policy)
    assert feed(tracker, ["timeout"] * 4) == [(3, "unhealthy")]
    for bad in ({"PATCHWIRE_HEALTH_WINDOW": "0"}, {"PATCHWIRE_HEALTH_RECOVERED_AT": "1.5"},
                {"PATCHWIRE_HEALTH_UNHEALTHY_BELOW": "half"}):
        with pytest.raises(ConfigError, match="health_"):
            load_settings(environ=bad, toml_path=tmp_path / "none")
    with pytest.raises(ConfigError, match="health_"):
        health_policy(load_settings(environ={"PATCHWIRE_HEALTH_MIN_CALLS": "50"},
                                    toml_path=tmp_path / "none"))
