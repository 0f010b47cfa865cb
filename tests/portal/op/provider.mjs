// A real OpenID provider for the portal's sign-in tests: panva's certified `oidc-provider`, on loopback.
//
//   node provider.mjs config.json
//
// config.json (written by the pytest fixture):
//   {"clients": [{"client_id", "client_secret", "redirect_uris", "token_endpoint_auth_method"}],
//    "users": {"<login>": {"name": ..., "email": ..., "groups": [...], "organisation": ...}}}
//
// It listens on 127.0.0.1 on a port the system picks, builds its issuer from that port, and prints one
// JSON line {"issuer": "http://127.0.0.1:<port>"} on stdout when it is ready. Its signing key is made
// fresh at every start, so two providers never share a key. Login is oidc-provider's development
// interaction (a form taking any password for a known login, then a consent form): the tests drive both
// with plain HTTP, no browser. The ID token carries every claim its scopes grant (groups, and an
// `organisation` claim the broker must ignore).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

  const provider = new Provider(issuer, {
    clients: config.clients,
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
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const user = config.users[id];
      if (!user) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...user }; } };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The fixture ends us with SIGTERM; close quickly so the port is freed.
process.on('SIGTERM', () => { server.close(); process.exit(0); });
