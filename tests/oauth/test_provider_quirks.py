"""Real providers' OAuth quirks, carried as connector data, each against oauth2-mock-server
(npm, not ours) set up to behave like that provider (tests/support/oauth_provider.mjs):
Google's extra authorize parameters, Slack's nested user token, Salesforce's instance_url,
QuickBooks' realmId and Shopify's shop in the callback, Microsoft's tenant and Zendesk's
subdomain in the OAuth URLs, comma-separated scopes, rotating refresh tokens, tokens that
never expire, client credentials in the body, and the attackers: a hostile token endpoint,
a forged callback."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from patchwire.auth import (
    OAuth2Client,
    TokenKeeper,
    TokenSet,
    TokenStates,
    Vault,
    connection_aad,
    consent_via_loopback,
    new_authorization,
)
from patchwire.catalog import load_catalog
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.connectors.spec import OAuth2Auth
from patchwire.errors import OAuthError, SpecError
from patchwire.http import HttpCore
from patchwire.store import ConnectionRecord, Store
from tests.support.clocks import FakeClock
from tests.support.oauth import EPOCH
from tests.support.oauth_provider import MockProvider, follow_authorize, mock_provider

#: slow (node and the npm oauth2-mock-server): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

REDIRECT = "http://127.0.0.1:1/callback"
CLIENT_ID = "pw-client"
CLIENT_SECRET = "pw-client-secret-3f9a1c"  # looked for in every error below
YEAR = 365 * 24 * 3600.0


@pytest.fixture
async def provider() -> AsyncIterator[MockProvider]:
    async with mock_provider() as running:
        yield running


def connector(url: str, *, base_url: str | None = None, settings: Mapping[str, Any] | None
              = None, **auth: Any) -> ConnectorSpec:
    """A connector whose OAuth2 endpoints are the mock's, with ``auth`` quirks."""
    return ConnectorSpec.model_validate({
        "name": "quirky",
        "base_url": base_url or f"{url}/api",
        "settings": {"client_id": {}, "client_secret": {"secret": True},
                     **(settings or {})},
        "auth": {"type": "oauth2", "authorize_url": f"{url}/authorize",
                 "token_url": f"{url}/token", "scopes": ["read", "write"], **auth},
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/me"}}},
    })


def client(spec: ConnectorSpec, http: HttpCore, **values: Any) -> OAuth2Client:
    assert isinstance(spec.auth, OAuth2Auth)
    return OAuth2Client(spec.auth, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                    **values},
                        http=http, clock=FakeClock(EPOCH), connection="acme",
                        settings=spec.settings, base_url=spec.base_url)


async def code_flow(c: OAuth2Client) -> tuple[TokenSet, dict[str, str]]:
    """Authorize at the mock (it approves at once), trade the code: (tokens, callback)."""
    url, state, pkce = new_authorization(c, REDIRECT)
    answer = await follow_authorize(url)
    assert answer["state"] == state and pkce is not None
    c = c.with_values(c.callback_settings(answer))
    tokens = await c.exchange_code(answer["code"], redirect_uri=REDIRECT,
                                   code_verifier=pkce.verifier)
    return tokens, answer


def no_secret_in(err: BaseException, *secrets: str) -> None:
    text = f"{err} {err!r}"
    for secret in (CLIENT_SECRET, *secrets):
        assert secret not in text


# -- 1. authorize_params ---------------------------------------------------------------


async def test_google_s_offline_access_and_consent_prompt_reach_the_authorize_endpoint(
        provider: MockProvider, http: HttpCore) -> None:
    spec = connector(provider.url, settings={"email": {"required": False}},
                     authorize_params={"access_type": "offline", "prompt": "consent",
                                       "login_hint": "{email}"})
    tokens, _ = await code_flow(client(spec, http, email="ann@example.com"))
    assert tokens.refresh_token
    [asked] = await provider.seen("authorize")
    query = asked["query"]
    assert (query["access_type"], query["prompt"]) == ("offline", "consent")
    assert query["login_hint"] == "ann@example.com"
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == REDIRECT


@pytest.mark.parametrize("param", ["redirect_uri", "state", "client_id", "scope",
                                   "response_type", "code_challenge", "Redirect_URI"])
def test_an_authorize_param_overriding_the_flow_s_own_is_refused_at_load_with_its_line(
        param: str) -> None:
    text = ("name: quirky\nbase_url: https://api.example.com\nauth:\n  type: oauth2\n"
            "  authorize_url: https://example.com/authorize\n"
            "  token_url: https://example.com/token\n  authorize_params:\n"
            f"    {param}: https://evil.example/steal\nactions: {{}}\n")
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "quirky.yaml")
    assert "quirky.yaml:7" in str(err.value) and "set by the OAuth flow itself" in str(
        err.value)


def test_a_token_param_overriding_the_grant_is_refused_at_load() -> None:
    text = ("name: quirky\nbase_url: https://api.example.com\nauth:\n  type: oauth2\n"
            "  authorize_url: https://example.com/authorize\n"
            "  token_url: https://example.com/token\n  token_params:\n"
            "    grant_type: password\nactions: {}\n")
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "quirky.yaml")
    assert "quirky.yaml:7" in str(err.value) and "grant_type" in str(err.value)


# -- 2. token_fields (Slack) ------------------------------------------------------------

#: as docs/connectors/oauth-quirks.md writes them (a refresh may answer at the top level)
SLACK_FIELDS = {name: f"authed_user ? authed_user.{name} : {name}"
                for name in ("access_token", "refresh_token", "expires_in", "scope")}


async def test_slack_s_user_token_is_read_from_authed_user_not_the_bot_token(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(nest="authed_user")
    c = client(connector(provider.url, token_fields=SLACK_FIELDS), http)
    tokens, _ = await code_flow(c)
    assert tokens.access_token.count(".") == 2  # the mock's JWT, the user's
    assert tokens.refresh_token and tokens.expires_at == EPOCH + 3600
    renewed = await c.refresh(tokens)  # the refresh answer is nested the same way
    assert renewed.access_token.count(".") == 2 and renewed.refresh_token
    assert renewed.refresh_token != tokens.refresh_token


async def test_an_error_answered_with_http_200_as_slack_does_is_an_oauth_error(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(raw={"status": 200, "body": '{"ok": false, "error": "invalid_code"}'})
    c = client(connector(provider.url, token_fields=SLACK_FIELDS), http)
    with pytest.raises(OAuthError) as err:
        await c.exchange_code("some-code", redirect_uri=REDIRECT, code_verifier=None)
    assert err.value.error == "invalid_code"
    no_secret_in(err.value, "some-code")


# -- 3. settings_from_token (Salesforce) and the hostile token endpoint ------------------

SALESFORCE = {"settings_from_token": {"instance_url": "instance_url"}}
INSTANCE = {"instance_url": {"required": False}}


def salesforce(url: str) -> ConnectorSpec:
    return connector(url, base_url="{instance_url}/services/data/v61.0", settings=INSTANCE,
                     **SALESFORCE)


async def test_salesforce_s_instance_url_comes_from_the_token_response(
        provider: MockProvider, http: HttpCore) -> None:
    host = provider.url.replace("http://", "")
    await provider.behave(token_extra={"instance_url": f"http://{host}"})
    tokens, _ = await code_flow(client(salesforce(provider.url), http))
    assert tokens.settings == {"instance_url": provider.url}


@pytest.mark.parametrize("instance_url", [
    "https://169.254.169.254",          # the cloud metadata service
    "http://evil",                      # another site
    "https://evil.example",
    "http://USER@127.0.0.1:1",          # userinfo: a host that is not the one it looks like
    "http://127.0.0.1:1?x=",            # the base URL's path would become a query
    "http://127.0.0.1:1\r\nX-Evil: 1",  # a header smuggled in
    "javascript:alert(1)",
    "",
])
async def test_a_hostile_instance_url_from_the_token_endpoint_is_refused(
        provider: MockProvider, http: HttpCore, instance_url: str) -> None:
    await provider.behave(token_extra={"instance_url": instance_url})
    with pytest.raises(OAuthError) as err:
        await code_flow(client(salesforce(provider.url), http))
    assert err.value.error == "invalid_setting" and "instance_url" in str(err.value)
    no_secret_in(err.value)


async def test_an_instance_url_outside_the_site_passes_when_the_setting_s_enum_lists_it(
        provider: MockProvider, http: HttpCore) -> None:
    # Zoho's api_domain is another site than its accounts server: the connector lists them
    await provider.behave(token_extra={"api_domain": "https://www.zohoapis.eu"})
    spec = connector(provider.url, base_url="{api_domain}/crm/v6",
                     settings={"api_domain": {"required": False, "enum": [
                         "https://www.zohoapis.com", "https://www.zohoapis.eu"]}},
                     settings_from_token={"api_domain": "api_domain"})
    tokens, _ = await code_flow(client(spec, http))
    assert tokens.settings == {"api_domain": "https://www.zohoapis.eu"}


async def test_a_huge_token_answer_is_cut_off_with_a_typed_error(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(huge=3 * 1024 * 1024)
    c = client(connector(provider.url, flow="client_credentials"), http)
    with pytest.raises(OAuthError) as err:
        await c.client_credentials()
    no_secret_in(err.value)


@pytest.mark.parametrize(("ctype", "body"), [
    ("text/html", "<html>Gateway</html>"),
    ("application/json", "[1, 2]"),
    ("application/json", '{"access_token": {"nested": true}}'),
    ("application/json", '{"access_token": "a\\r\\nb"}'),
])
async def test_a_token_answer_that_is_no_token_response_is_a_typed_error(
        provider: MockProvider, http: HttpCore, ctype: str, body: str) -> None:
    await provider.behave(raw={"status": 200, "type": ctype, "body": body})
    c = client(connector(provider.url, flow="client_credentials"), http)
    with pytest.raises(OAuthError) as err:
        await c.client_credentials()
    assert err.value.error in ("invalid_response", "http_200")
    no_secret_in(err.value)


# -- 4. settings_from_callback (QuickBooks, Shopify) ------------------------------------

SHOPIFY = {"base_url": "https://{shop}.myshopify.com/admin/api/2024-10",
           "settings": {"shop": {"required": False}},
           "settings_from_callback": {"shop": "$substringBefore(shop, '.myshopify.com')"}}


def shopify(url: str) -> ConnectorSpec:
    return connector(url, base_url=SHOPIFY["base_url"], settings=SHOPIFY["settings"],
                     settings_from_callback=SHOPIFY["settings_from_callback"])


async def test_quickbooks_realm_id_comes_from_the_callback_query(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(callback_extra={"realmId": "9130357766900"})
    spec = connector(provider.url,
                     base_url="https://quickbooks.api.intuit.com/v3/company/{realm_id}",
                     settings={"realm_id": {"required": False}},
                     settings_from_callback={"realm_id": "realmId"})
    tokens, answer = await code_flow(client(spec, http))
    assert answer["realmId"] == "9130357766900"
    assert client(spec, http).callback_settings(answer) == {"realm_id": "9130357766900"}
    assert tokens.access_token


async def test_shopify_s_shop_from_the_callback_becomes_the_host_label(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(callback_extra={"shop": "acme-store.myshopify.com"})
    _, answer = await code_flow(client(shopify(provider.url), http))
    assert client(shopify(provider.url), http).callback_settings(answer) == {
        "shop": "acme-store"}


@pytest.mark.parametrize("shop", ["evil.com", "evil.com/", "x@evil.com",
                                  "acme\r\nSet-Cookie: a=b", "127.0.0.1:8080/steal?"])
async def test_a_forged_shop_in_the_callback_is_refused_by_the_setting_s_host_rules(
        provider: MockProvider, http: HttpCore, shop: str) -> None:
    await provider.behave(callback_extra={"shop": shop})
    with pytest.raises(OAuthError) as err:
        await code_flow(client(shopify(provider.url), http))
    assert err.value.error == "invalid_setting" and "'shop'" in str(err.value)
    assert await provider.seen("token") == []  # nothing was exchanged


async def test_crlf_in_a_callback_value_is_refused(
        provider: MockProvider, http: HttpCore) -> None:
    spec = connector(provider.url, base_url="https://qb.example.com/v3/company/{realm_id}",
                     settings={"realm_id": {"required": False}},
                     settings_from_callback={"realm_id": "realmId"})
    with pytest.raises(OAuthError) as err:
        client(spec, http).callback_settings({"realmId": "1\r\nX-Evil: 1", "code": "c"})
    assert err.value.error == "invalid_setting"
    with pytest.raises(OAuthError):
        client(spec, http).callback_settings({"realmId": "../../admin"})


async def test_the_cli_s_loopback_consent_saves_settings_from_the_callback(
        provider: MockProvider, http: HttpCore) -> None:
    """`patchwire connection connect`'s path: the redirect lands on the loopback
    listener, which reads realmId from the query."""
    await provider.behave(callback_extra={"realmId": "4620816365"})
    spec = connector(provider.url, base_url="https://qb.example.com/v3/company/{realm_id}",
                     settings={"realm_id": {"required": False}},
                     settings_from_callback={"realm_id": "realmId"})
    opened: list[asyncio.Task[None]] = []

    async def browser(url: str) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
                s.get(url) as resp:  # follows the mock's redirect to the listener
            assert resp.status == 200, await resp.text()

    tokens = await consent_via_loopback(
        client(spec, http), on_url=lambda url: opened.append(asyncio.create_task(
            browser(url))), consent_timeout=20)
    await asyncio.gather(*opened)
    assert tokens.settings == {"realm_id": "4620816365"} and tokens.refresh_token


async def test_the_loopback_listener_refuses_a_forged_shop_and_says_so(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(callback_extra={"shop": "evil.com"})
    pages: list[str] = []

    async def browser(url: str) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
                s.get(url) as resp:
            pages.append(await resp.text())

    opened: list[asyncio.Task[None]] = []
    with pytest.raises(OAuthError) as err:
        await consent_via_loopback(
            client(shopify(provider.url), http),
            on_url=lambda url: opened.append(asyncio.create_task(browser(url))),
            consent_timeout=20)
    await asyncio.gather(*opened)
    assert err.value.error == "invalid_setting"
    assert "Authorization failed: invalid_setting" in pages[0]
    assert await provider.seen("token") == []


# -- 5. placeholders in the OAuth URLs (Microsoft's tenant, Zendesk's subdomain) ---------


def microsoft(url: str) -> ConnectorSpec:
    return connector(url, settings={"tenant": {"default": "common"}},
                     authorize_url=f"{url}/tenants/{{tenant}}/authorize",
                     token_url=f"{url}/tenants/{{tenant}}/token")


async def test_microsoft_s_tenant_fills_the_token_url_s_path(
        provider: MockProvider, http: HttpCore) -> None:
    c = client(microsoft(provider.url), http,
               tenant="8eaef023-2b34-4da1-9baa-8bc8c9d6a490")
    await code_flow(c)
    [token] = await provider.seen("token")
    assert token["tenant"] == "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"


@pytest.mark.parametrize("tenant", ["..", "common/../../evil", "a?x=1", "a#b", "%2e%2e",
                                    "a\r\nb"])
async def test_a_tenant_that_would_change_the_token_url_s_path_is_refused(
        provider: MockProvider, http: HttpCore, tenant: str) -> None:
    with pytest.raises(OAuthError) as err:
        client(microsoft(provider.url), http, tenant=tenant)
    assert err.value.error == "invalid_setting" and "'tenant'" in str(err.value)


def zendesk(sub: str) -> OAuth2Client:
    spec = ConnectorSpec.model_validate({
        "name": "zendesk", "base_url": "https://{subdomain}.zendesk.com/api/v2",
        "settings": {"subdomain": {}, "client_id": {}, "client_secret": {"secret": True}},
        "auth": {"type": "oauth2", "authorize_url": "https://{subdomain}.zendesk.com/oauth/"
                 "authorizations/new", "token_url": "https://{subdomain}.zendesk.com/oauth/"
                 "tokens", "scopes": ["read"]},
        "actions": {}})
    assert isinstance(spec.auth, OAuth2Auth)
    return OAuth2Client(spec.auth, {"subdomain": sub, "client_id": CLIENT_ID,
                                    "client_secret": CLIENT_SECRET},
                        http=HttpCore(), settings=spec.settings, base_url=spec.base_url)


def test_zendesk_s_subdomain_is_the_token_url_s_first_label() -> None:
    assert zendesk("acme").token_url == "https://acme.zendesk.com/oauth/tokens"


@pytest.mark.parametrize("sub", ["evil.com/", "x@evil.com", "127.0.0.1:8080/steal?",
                                 "evil.com#", "-acme"])
def test_a_subdomain_that_would_move_the_token_request_elsewhere_is_refused(sub: str) -> None:
    with pytest.raises(OAuthError) as err:
        zendesk(sub)
    assert err.value.error == "invalid_setting"
    no_secret_in(err.value)


# -- 6. scope_separator ------------------------------------------------------------------


async def test_comma_separated_scopes_reach_the_provider_as_one_comma_list(
        provider: MockProvider, http: HttpCore) -> None:
    c = client(connector(provider.url, scope_separator=","), http)
    await code_flow(c)
    [asked] = await provider.seen("authorize")
    assert asked["query"]["scope"] == "read,write"
    spaced = client(connector(provider.url, flow="client_credentials"), http)
    await spaced.client_credentials()
    assert (await provider.seen("token"))[-1]["form"]["scope"] == "read write"


# -- 7, 8. rotating refresh tokens, tokens that never expire (the keeper) ----------------


@pytest.fixture
def vault() -> Vault:
    import base64

    return Vault({"test": base64.urlsafe_b64decode(Vault.generate_key())}, "test")


async def kept(store: Store, vault: Vault, http: HttpCore, spec: ConnectorSpec,
               tokens: TokenSet, clock: FakeClock) -> TokenKeeper:
    rec = ConnectionRecord.new("acme", spec.name, settings={"client_id": CLIENT_ID})
    secrets = tokens.merged_into({"client_secret": CLIENT_SECRET})
    await store.add_connection(dataclasses.replace(
        rec, secrets=vault.encrypt_json(secrets, aad=connection_aad(rec.id))))
    keeper = TokenKeeper(store, vault, ConnectorRegistry([spec]), http, clock=clock)
    await keeper.store_tokens("acme", tokens)
    return keeper


def stored(store_rec: ConnectionRecord, vault: Vault) -> dict[str, Any]:
    return vault.decrypt_json(store_rec.secrets, aad=connection_aad(store_rec.id))


async def test_a_rotated_refresh_token_replaces_the_old_one_and_a_missing_one_keeps_it(
        provider: MockProvider, http: HttpCore, store: Store, vault: Vault) -> None:
    clock = FakeClock(EPOCH)
    spec = connector(provider.url)
    first, _ = await code_flow(client(spec, http))
    keeper = await kept(store, vault, http, spec, first, clock)
    rotated = await keeper.refresh("acme", rejected=first.access_token)
    assert rotated.refresh_token and rotated.refresh_token != first.refresh_token
    assert stored(await store.get_connection("acme"), vault)["refresh_token"] == \
        rotated.refresh_token
    assert (await provider.seen("token"))[-1]["form"]["refresh_token"] == first.refresh_token
    await provider.behave(keep_refresh=True)  # this answer carries no refresh token
    again = await keeper.refresh("acme", rejected=rotated.access_token)
    assert again.access_token != rotated.access_token
    assert stored(await store.get_connection("acme"), vault)["refresh_token"] == \
        rotated.refresh_token


async def test_a_token_without_expiry_is_never_renewed_ahead_but_once_after_a_401(
        provider: MockProvider, http: HttpCore, store: Store, vault: Vault) -> None:
    await provider.behave(no_expiry=True)
    clock = FakeClock(EPOCH)
    spec = connector(provider.url)
    first, _ = await code_flow(client(spec, http))
    assert first.expires_at is None and first.refresh_token
    keeper = await kept(store, vault, http, spec, first, clock)
    requests = len(await provider.seen("token"))
    clock.advance(YEAR)
    keeper.forget("acme")
    assert (await keeper.tokens("acme")).access_token == first.access_token
    assert await keeper.refresh_due(max_age=2 * YEAR) == []
    assert len(await provider.seen("token")) == requests  # nothing renewed ahead
    state = TokenStates(lambda: store, lambda: vault).of_record(
        await store.get_connection("acme"))
    assert not state.expires and state.summary == "valid, does not expire"
    renewed = await keeper.refresh("acme", rejected=first.access_token)  # the 401
    assert renewed.access_token != first.access_token
    assert len(await provider.seen("token")) == requests + 1


async def test_a_later_token_answer_moves_the_saved_instance_url_and_one_without_keeps_it(
        provider: MockProvider, http: HttpCore, store: Store, vault: Vault) -> None:
    clock = FakeClock(EPOCH)
    spec = salesforce(provider.url)
    await provider.behave(token_extra={"instance_url": "http://127.0.0.1:1001"})
    first, _ = await code_flow(client(spec, http))
    keeper = await kept(store, vault, http, spec, first, clock)
    assert (await store.get_connection("acme")).settings["instance_url"] == \
        "http://127.0.0.1:1001"
    await provider.behave(token_extra={"instance_url": "http://127.0.0.1:1002"})
    await keeper.refresh("acme", rejected=first.access_token)
    rec = await store.get_connection("acme")
    assert rec.settings["instance_url"] == "http://127.0.0.1:1002"
    assert rec.settings["client_id"] == CLIENT_ID  # the others kept
    await provider.behave()
    await keeper.refresh("acme", rejected=(await keeper.tokens("acme")).access_token)
    assert (await store.get_connection("acme")).settings["instance_url"] == \
        "http://127.0.0.1:1002"


async def test_a_secret_setting_from_the_token_answer_is_sealed_with_the_secrets(
        provider: MockProvider, http: HttpCore, store: Store, vault: Vault) -> None:
    await provider.behave(token_extra={"signing_key": "sk-live-5b1e"})
    spec = connector(provider.url, settings={"signing_key": {"secret": True,
                                                             "required": False}},
                     settings_from_token={"signing_key": "signing_key"})
    first, _ = await code_flow(client(spec, http))
    await kept(store, vault, http, spec, first, FakeClock(EPOCH))
    rec = await store.get_connection("acme")
    assert "signing_key" not in rec.settings and "sk-live-5b1e" not in str(rec)
    assert stored(rec, vault)["signing_key"] == "sk-live-5b1e"


# -- 9. client_auth: body, token_params --------------------------------------------------


async def test_client_credentials_go_in_the_body_when_the_provider_wants_them_there(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(client_auth="body")
    c = client(connector(provider.url, client_auth="body"), http)
    tokens, _ = await code_flow(c)
    await c.refresh(tokens)
    for sent in await provider.seen("token"):
        assert sent["authorization"] is None
        assert (sent["form"]["client_id"], sent["form"]["client_secret"]) == (
            CLIENT_ID, CLIENT_SECRET)


async def test_basic_auth_stays_the_default_and_a_body_only_provider_refuses_it(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(client_auth="body")
    c = client(connector(provider.url, flow="client_credentials"), http)
    with pytest.raises(OAuthError) as err:
        await c.client_credentials()
    assert err.value.error == "invalid_client"
    no_secret_in(err.value)
    [sent] = await provider.seen("token")
    assert sent["authorization"].startswith("Basic ") and "client_secret" not in sent["form"]


async def test_token_params_go_with_every_token_request(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave(require_form={"api_version": "2", "resource": "https://graph"})
    spec = connector(provider.url, settings={"resource": {"default": "https://graph"}},
                     token_params={"api_version": "2", "resource": "{resource}"})
    c = client(spec, http, resource="https://graph")
    tokens, _ = await code_flow(c)
    await c.refresh(tokens)
    grants = [s["form"]["grant_type"] for s in await provider.seen("token")]
    assert grants == ["authorization_code", "refresh_token"]


async def test_a_hostile_refresh_answer_is_refused_and_no_secret_reaches_errors_or_logs(
        provider: MockProvider, http: HttpCore, store: Store, vault: Vault,
        caplog: pytest.LogCaptureFixture) -> None:
    spec = salesforce(provider.url)
    await provider.behave(token_extra={"instance_url": "http://127.0.0.1:1001"})
    first, _ = await code_flow(client(spec, http))
    keeper = await kept(store, vault, http, spec, first, FakeClock(EPOCH))
    await provider.behave(token_extra={"instance_url": "http://169.254.169.254"})
    caplog.set_level("DEBUG")
    with pytest.raises(OAuthError) as err:
        await keeper.refresh("acme", rejected=first.access_token)
    assert err.value.error == "invalid_setting"
    no_secret_in(err.value, first.access_token, first.refresh_token or "")
    for secret in (CLIENT_SECRET, first.access_token, first.refresh_token or ""):
        assert secret not in caplog.text
    rec = await store.get_connection("acme")
    assert rec.settings["instance_url"] == "http://127.0.0.1:1001"  # nothing written
    assert stored(rec, vault)["access_token"] == first.access_token


def surveymonkey(url: str) -> ConnectorSpec:
    """The catalog's SurveyMonkey data-centre rules, with the mock as its OAuth server."""
    shipped = load_catalog().get("surveymonkey").spec
    assert isinstance(shipped.auth, OAuth2Auth)
    return connector(url, base_url=shipped.base_url,
                     settings={"api_host": shipped.settings["api_host"].model_dump(
                         exclude_unset=True)},
                     settings_from_token=shipped.auth.settings_from_token)


@pytest.mark.parametrize(("access_url", "host"), [
    ("https://api.eu.surveymonkey.com", "api.eu.surveymonkey.com"),
    ("https://api.surveymonkey.ca/", "api.surveymonkey.ca"),
])
async def test_surveymonkey_s_data_centre_comes_from_the_token_response_s_access_url(
        provider: MockProvider, http: HttpCore, access_url: str, host: str) -> None:
    await provider.behave(token_extra={"access_url": access_url})
    tokens, _ = await code_flow(client(surveymonkey(provider.url), http))
    assert tokens.settings == {"api_host": host}


async def test_a_surveymonkey_token_without_access_url_keeps_the_us_data_centre(
        provider: MockProvider, http: HttpCore) -> None:
    await provider.behave()
    tokens, _ = await code_flow(client(surveymonkey(provider.url), http))
    assert tokens.settings == {}


@pytest.mark.parametrize("access_url", [
    "https://api.surveymonkey.com.evil.example", "https://evil.example/api.surveymonkey.com",
    "https://169.254.169.254", "https://api.eu.surveymonkey.com\r\nX-Evil: 1"])
async def test_an_access_url_outside_surveymonkey_s_data_centres_is_refused(
        provider: MockProvider, http: HttpCore, access_url: str) -> None:
    await provider.behave(token_extra={"access_url": access_url})
    with pytest.raises(OAuthError) as err:
        await code_flow(client(surveymonkey(provider.url), http))
    assert err.value.error == "invalid_setting" and "api_host" in str(err.value)
    no_secret_in(err.value)


def zoho(url: str, name: str = "zoho_books") -> ConnectorSpec:
    """The catalog's Zoho multi-DC rules (the callback's location and accounts-server), with
    the mock as the OAuth server."""
    shipped = load_catalog().get(name).spec
    assert isinstance(shipped.auth, OAuth2Auth)
    return connector(url, base_url=shipped.base_url, settings={
        k: shipped.settings[k].model_dump(exclude_unset=True)
        for k in ("accounts_host", "api_host")},
        settings_from_callback=shipped.auth.settings_from_callback)


@pytest.mark.parametrize("name", ["zoho_books", "zoho_crm"])
async def test_zoho_s_data_centre_comes_from_the_callback_s_location_and_accounts_server(
        provider: MockProvider, http: HttpCore, name: str) -> None:
    await provider.behave(callback_extra={"location": "eu",
                                          "accounts-server": "https://accounts.zoho.eu"})
    _, answer = await code_flow(client(zoho(provider.url, name), http))
    assert client(zoho(provider.url, name), http).callback_settings(answer) == {
        "accounts_host": "accounts.zoho.eu", "api_host": "www.zohoapis.eu"}


@pytest.mark.parametrize("server", [
    "https://accounts.zoho.eu.evil.example", "https://evil.example", "https://accounts.zoho.uk",
    "http://169.254.169.254", "https://accounts.zoho.eu\r\nX-Evil: 1"])
async def test_an_accounts_server_outside_zoho_s_data_centres_is_refused_before_any_exchange(
        provider: MockProvider, http: HttpCore, server: str) -> None:
    await provider.behave(callback_extra={"location": "eu", "accounts-server": server})
    with pytest.raises(OAuthError) as err:
        await code_flow(client(zoho(provider.url), http))
    assert err.value.error == "invalid_setting" and "accounts_host" in str(err.value)
    assert await provider.seen("token") == []  # the code went nowhere
