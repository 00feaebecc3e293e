// A real OpenID Connect provider on loopback for the identity tests (npm package oidc-provider).
//
// Usage: node oidc_provider.mjs CONFIG.json NODE_MODULES_DIR
// (ES modules ignore NODE_PATH, so the package is imported from the directory `make` installs it in.)
// CONFIG: {"port": N, "client": {"client_id", "client_secret", "redirect_uris": [...]},
//          "accounts": {"<login>": {<claims>}}}; the login is the account's `sub`.
// An account's claims are served exactly as given: a missing, null or string "groups" claim is
// passed on as such, so the hub's handling of bad claims is tested against a real provider.
// Accounts are read from CONFIG at every sign-in, so a test can change someone's groups.
// The development login and consent pages accept any password for a known login.
// Prints "ready <issuer>" on stdout once it listens; stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.argv[3];
const entry = JSON.parse(readFileSync(join(modules, 'oidc-provider', 'package.json'), 'utf8')).main;
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider', entry)));

const readConfig = () => JSON.parse(readFileSync(process.argv[2], 'utf8'));
const config = readConfig();
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: [{
    ...config.client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  async findAccount(ctx, id) {
    // The development login page makes the typed login the account id, and the id is `sub`.
    const { accounts } = readConfig();
    if (!Object.hasOwn(accounts, id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { ...accounts[id], sub: id };
      },
    };
  },
  cookies: { keys: ['statbox-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  // Local test keys are generated at start; nothing here is a production setting.
  ttl: { AuthorizationCode: 120, AccessToken: 600, Session: 600, Interaction: 600, Grant: 600 },
});
provider.proxy = false;

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
