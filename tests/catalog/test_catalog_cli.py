"""`patchwire catalog list|search|show` and `patchwire connector add`: what scripts rely
on (`catalog list --json`), and enabling a catalog connector in a deployment."""

from __future__ import annotations

from patchwire.catalog import load_catalog
from tests.support.cli import Cli

REQUIRED_FIELDS = {"name", "title", "auth", "actions", "source", "licence", "docs_url",
                   "verified_at"}


async def test_catalog_list_json_gives_every_connector_with_the_fields_scripts_rely_on(
        cli: Cli) -> None:
    result = await cli("catalog", "list", "--json")
    assert result.code == 0, result
    rows = result.json()
    assert [r["name"] for r in rows] == [e.name for e in load_catalog()]
    for row in rows:
        assert set(row) >= REQUIRED_FIELDS, row["name"]
        assert isinstance(row["actions"], list) and row["actions"]
        assert row["enabled"] is False


async def test_catalog_search_ranks_the_connector_people_mean_first(cli: Cli) -> None:
    result = await cli("catalog", "search", "stripe refund", "--json")
    assert result.code == 0, result
    assert result.json()[0]["name"] == "stripe"


async def test_catalog_show_tells_the_auth_facts_settings_and_each_actions_marks(
        cli: Cli) -> None:
    result = await cli("catalog", "show", "stripe", "--json")
    assert result.code == 0, result
    shown = result.json()
    assert shown["auth_facts"]["type"] == "bearer"
    assert shown["docs_url"].startswith("https://")
    marks = {a["name"]: a["marks"] for a in shown["actions"]}
    assert marks["refund_payment"] == ["destructive", "confirm"]
    assert marks["get_customer"] == ["read-only"]
    assert [s["name"] for s in shown["settings"] if s["secret"]] == ["secret_key"]


async def test_connector_add_enables_a_catalog_connector_and_keeps_an_edited_file(
        cli: Cli) -> None:
    added = await cli("connector", "add", "stripe")
    assert added.code == 0, added
    target = cli.connectors / "stripe.yaml"
    assert target.is_file()
    listed = await cli("connector", "list", "--json")
    assert "stripe" in {r["name"] for r in listed.json()}
    assert (await cli("catalog", "list", "--json")).json()[
        [e.name for e in load_catalog()].index("stripe")]["enabled"] is True

    target.write_text(target.read_text() + "\n# the deployment's own edit\n")
    again = await cli("connector", "add", "stripe")
    assert again.code == 1
    assert "already exists" in again.flat_err and "--force" in again.flat_err
    assert "the deployment's own edit" in target.read_text()

    forced = await cli("connector", "add", "stripe", "--force")
    assert forced.code == 0, forced
    assert "the deployment's own edit" not in target.read_text()


async def test_a_name_the_catalog_does_not_hold_writes_nothing_and_suggests_near_names(
        cli: Cli) -> None:
    for name in ("strpe", "../../etc/passwd", "stripe/../../x"):
        result = await cli("connector", "add", name)
        assert result.code == 1, result
        assert "the catalog has no connector" in result.flat_err
        assert "Traceback" not in result.err
    assert "did you mean stripe" in (await cli("catalog", "show", "strpe")).flat_err
    assert list(cli.connectors.iterdir()) == []
    assert not any(cli.workdir.parent.glob("**/passwd"))


async def test_an_unknown_category_says_which_exist(cli: Cli) -> None:
    result = await cli("catalog", "list", "--category", "astrology")
    assert result.code == 1
    assert "categories:" in result.flat_err and "payments" in result.flat_err
