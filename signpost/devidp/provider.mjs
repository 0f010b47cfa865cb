// A development identity provider: panva's certified `oidc-provider`, on loopback. `signpost demo` runs
// it for its demo users; the portal's sign-in tests run it as every authority's real OpenID provider.
// Never for production: its keys live only as long as the process, and its users are in a JSON file.
//
//   node provider.mjs config.json
//
// config.json is one provider, or several in one process ({"providers": [<provider>, ...]}):
//   {"clients": [{"client_id", "client_secret", "redirect_uris", "token_endpoint_auth_method"}],
//    "users": {"<username>": {"password": ..., "name": ..., "email": ..., "groups": [...], ...}}}
//
// Each provider listens on 127.0.0.1 on a port the system picks and builds its issuer from that port;
// when all are ready one JSON line is printed on stdout: {"issuer": "http://127.0.0.1:<port>"} for one,
// {"issuers": [...]} (in the config's order) for several. Signing keys are made fresh at every start, so
// two providers never share a key. Sign-in is one page with a username, a password and one button; the
// password must be the user's. Consent is granted without asking (the broker is the only client, first
// party). The ID token carries every claim its scopes grant (a user's other fields, never the password).
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const MAX_FORM_BYTES = 4096;

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, failed) {
  const problem = failed ? '<p role="alert"><strong>That username and password did not match.</strong></p>' : '';
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in – development identity provider</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 30em; margin: 2em auto">
<h1>Sign in</h1><p>Development identity provider for the Signpost demo: use a demo user printed by <code>signpost demo</code>.</p>
${problem}<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<input type="hidden" name="prompt" value="login">
<p><label for="username">Username</label><br><input id="username" name="login" required autofocus></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" required></p>
<p><button type="submit">Sign in</button></p></form></body></html>`;
}

function samePassword(given, expected) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(String(expected ?? ''));
  return expected !== undefined && a.length === b.length && timingSafeEqual(a, b);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > MAX_FORM_BYTES) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

async function interaction(provider, users, req, res, uid, submitted) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'This sign-in is not the one in progress. Start again.');
  if (!submitted) return send(res, 200, loginPage(uid, false));
  const form = await readForm(req);
  const username = form.get('login') ?? '';
  const user = Object.hasOwn(users, username) ? users[username] : undefined;
  if (!user || !samePassword(form.get('password'), user.password)) return send(res, 200, loginPage(uid, true));
  return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

function start(settings) {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      const issuer = `http://127.0.0.1:${port}`;
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
      const users = settings.users;

      const provider = new Provider(issuer, {
        clients: settings.clients,
        jwks: { keys: [jwk] },
        cookies: { keys: [randomBytes(32).toString('hex')] },
        scopes: ['openid', 'profile', 'email', 'groups', 'organisation'],
        claims: {
          openid: ['sub'],
          profile: ['name'],
          email: ['email'],
          groups: ['groups'],
          organisation: ['organisation'],
        },
        // Put the scopes' claims in the ID token itself, as Entra ID does with its groups claim.
        conformIdTokenClaims: false,
        interactions: { url: (ctx, details) => `/interaction/${details.uid}` },
        features: { devInteractions: { enabled: false } },
        // First party: the broker is this provider's only client, so consent is granted, never asked.
        async loadExistingGrant(ctx) {
          const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
          if (grantId) return ctx.oidc.provider.Grant.find(grantId);
          const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
          grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
          await grant.save();
          return grant;
        },
        async findAccount(ctx, id) {
          if (!Object.hasOwn(users, id)) return undefined;
          const { password, ...claims } = users[id];
          return { accountId: id, async claims() { return { sub: id, ...claims }; } };
        },
      });
      const callback = provider.callback();
      server.on('request', (req, res) => {
        const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?(\?.*)?$/.exec(req.url);
        if (!match) return callback(req, res);
        const submitted = Boolean(match[2]) && req.method === 'POST';
        interaction(provider, users, req, res, match[1], submitted).catch(() => {
          if (!res.headersSent) send(res, 400, 'This sign-in has expired. Go back to Signpost and start again.');
        });
      });
      resolve({ issuer, server });
    });
  });
}

const several = Array.isArray(config.providers);
const started = await Promise.all((several ? config.providers : [config]).map(start));
const issuers = started.map((s) => s.issuer);
process.stdout.write(`${JSON.stringify(several ? { issuers } : { issuer: issuers[0] })}\n`);

// The fixture and the demo end us with SIGTERM; close quickly so the ports are freed.
const stop = () => { for (const s of started) s.server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
