// oauth2-mock-server (npm, not ours) made to behave like a real provider, for the OAuth
// quirk tests (tests/oauth/test_provider_quirks.py, through tests/support/oauth_provider.py).
//
// Usage: node oauth_provider.mjs <path to oauth2-mock-server's dist/index.mjs>
// Prints "listening on http://127.0.0.1:PORT" once it serves. The package's own service
// answers /authorize and /token; its hooks (beforeResponse, beforeAuthorizeRedirect)
// apply the behaviour a test sets with POST /_behave (JSON, replacing the previous one):
//
//   nest: "authed_user"        the user's token fields move under this key and the top
//                              level carries another (bot) token, as Slack's oauth.v2.access
//   token_extra: {...}         fields added to every token answer (Salesforce instance_url)
//   no_expiry: true            no expires_in (GitHub OAuth apps' tokens never expire)
//   keep_refresh: true         a refresh answer carries no new refresh token
//   client_auth: "body"|"basic" credentials required there; refused (401) anywhere else
//   require_form: {...}        form fields every token request must carry (token_params)
//   callback_extra: {...}      query parameters added to the redirect back (realmId, shop)
//   raw: {status, type, body}  the token endpoint answers this instead (hostile answers)
//   huge: N                    the token endpoint answers a JSON body of N bytes
//
// /tenants/<name>/... is served as /... with <name> recorded as the request's tenant
// (Microsoft's login.microsoftonline.com/{tenant}/oauth2/v2.0/token).
//
// Every /authorize query and /token request (Authorization header, form) is recorded and
// served back at GET /_seen, so a test asserts what Patchwire sent, not what it meant to.

import { randomUUID } from "node:crypto";
import http from "node:http";
import { pathToFileURL } from "node:url";

const { OAuth2Issuer, OAuth2Service } = await import(pathToFileURL(process.argv[2]).href);

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);
let behaviour = {};
const seen = [];

// two tokens signed in the same second would otherwise be the same JWT: real providers'
// tokens differ every time, and the tests tell renewed tokens apart
service.on("beforeTokenSigning", (token) => { token.payload.jti = randomUUID(); });

service.on("beforeAuthorizeRedirect", (redirect, req) => {
  const url = new URL(req.url, "http://mock");
  seen.push({ endpoint: "authorize", query: Object.fromEntries(url.searchParams) });
  for (const [key, value] of Object.entries(behaviour.callback_extra ?? {})) {
    redirect.url.searchParams.set(key, value);
  }
});

function refused(response, status, error) {
  response.statusCode = status;
  response.body = { error };
}

service.on("beforeResponse", (response, req) => {
  const form = { ...req.body };
  const authorization = req.headers.authorization ?? null;
  seen.push({ endpoint: "token", authorization, form,
              tenant: req.headers["x-mock-tenant"] ?? null });
  if (response.statusCode !== 200) return;
  if (behaviour.client_auth === "body"
      && (authorization !== null || !form.client_id || !form.client_secret)) {
    return refused(response, 401, "invalid_client");
  }
  if (behaviour.client_auth === "basic" && !(authorization ?? "").startsWith("Basic ")) {
    return refused(response, 401, "invalid_client");
  }
  for (const [key, value] of Object.entries(behaviour.require_form ?? {})) {
    if (form[key] !== value) return refused(response, 400, "invalid_request");
  }
  const body = response.body;
  if (behaviour.no_expiry) delete body.expires_in;
  if (behaviour.keep_refresh && form.grant_type === "refresh_token") delete body.refresh_token;
  Object.assign(body, behaviour.token_extra ?? {});
  if (behaviour.nest) {
    const inner = {};
    for (const key of ["access_token", "refresh_token", "expires_in", "scope", "token_type"]) {
      if (key in body) inner[key] = body[key];
      delete body[key];
    }
    body.ok = true;
    body.access_token = "xoxb-the-bot-token-not-the-users";
    body.token_type = "bot";
    body[behaviour.nest] = inner;
  }
});

function send(res, status, type, text) {
  res.writeHead(status, { "Content-Type": type });
  res.end(text);
}

const handler = service.requestHandler;
const server = http.createServer((req, res) => {
  const tenant = /^\/tenants\/([^/]+)(\/.*)$/.exec(req.url);
  if (tenant) {
    req.headers["x-mock-tenant"] = decodeURIComponent(tenant[1]);
    req.url = tenant[2];
  }
  const path = new URL(req.url, "http://mock").pathname;
  if (req.method === "POST" && path === "/_behave") {
    let text = "";
    req.on("data", (chunk) => { text += chunk; });
    req.on("end", () => {
      behaviour = JSON.parse(text || "{}");
      send(res, 204, "text/plain", "");
    });
    return;
  }
  if (req.method === "GET" && path === "/_seen") {
    return send(res, 200, "application/json", JSON.stringify(seen));
  }
  if (req.method === "POST" && path === "/token" && (behaviour.raw || behaviour.huge)) {
    seen.push({ endpoint: "token", authorization: req.headers.authorization ?? null,
                form: null });
    if (behaviour.huge) {
      const filler = "x".repeat(behaviour.huge);
      return send(res, 200, "application/json",
                  JSON.stringify({ access_token: "huge", filler }));
    }
    const raw = behaviour.raw;
    return send(res, raw.status ?? 200, raw.type ?? "application/json", raw.body ?? "");
  }
  return handler(req, res);
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  console.log(`listening on ${issuer.url}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
