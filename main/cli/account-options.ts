/**
 * The command-line options that make `listen` and `send` work with real servers (issue #3):
 * credentials for digest authentication, an outbound proxy, TLS certificates, and DNS servers.
 *
 * Passwords come from SIPNOTE_PASSWORD or an interactive prompt (never an argument, which
 * other users could read in the process list, and never a file in the data dir).
 */
import { readFile } from 'node:fs/promises';
import { DigestClient } from '../sip/auth/digest-client.js';
import { createDnsResolver, type DnsResolver } from '../sip/dns/dns-resolver.js';
import type { TlsOptions } from '../sip/transport/transport-layer.js';
import type { ChallengeAnswerer } from '../sip/ua/authentication.js';
import type { UserAgentOptions } from '../sip/ua/user-agent.js';
import { formatUri, isSipUri, parseUri } from '../sip/uri.js';
import { promptHidden, type CommandIo } from './io.js';
import { UsageError } from './usage-error.js';

export interface AccountArgs {
  /** Authentication user name; when absent, the AoR's user part. */
  readonly user?: string;
  readonly proxy?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly trustCerts: readonly string[];
  /** `HOST:PORT` of DNS servers to ask instead of the system's. */
  readonly dns: readonly string[];
}

export const ACCOUNT_OPTIONS = {
  user: { type: 'string' },
  proxy: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'trust-cert': { type: 'string', multiple: true },
  dns: { type: 'string', multiple: true },
} as const;

export function readAccountArgs(values: {
  user?: string | undefined;
  proxy?: string | undefined;
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'trust-cert'?: string[] | undefined;
  dns?: string[] | undefined;
}): AccountArgs {
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  return {
    ...(values.user === undefined ? {} : { user: values.user }),
    ...(values.proxy === undefined ? {} : { proxy: values.proxy }),
    ...(values['tls-cert'] === undefined ? {} : { tlsCert: values['tls-cert'] }),
    ...(values['tls-key'] === undefined ? {} : { tlsKey: values['tls-key'] }),
    trustCerts: values['trust-cert'] ?? [],
    dns: values.dns ?? [],
  };
}

/** TLS material for the transport layer, read from the files named on the command line. */
export async function tlsOptionsOf(args: AccountArgs): Promise<TlsOptions | undefined> {
  if (args.tlsCert === undefined && args.trustCerts.length === 0) return undefined;
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  };
  return {
    ...(args.tlsCert === undefined ? {} : { certificate: await read(args.tlsCert) }),
    ...(args.tlsKey === undefined ? {} : { key: await read(args.tlsKey) }),
    trustedCertificates: await Promise.all(args.trustCerts.map(read)),
  };
}

export function resolverOf(args: AccountArgs): DnsResolver | undefined {
  return args.dns.length === 0 ? undefined : createDnsResolver({ servers: args.dns });
}

/**
 * A digest client whose password is asked for once, when a server first challenges: from
 * SIPNOTE_PASSWORD, else a prompt on the terminal. With no terminal and no variable the
 * challenge fails with a clear reason instead of hanging.
 */
export function authenticatorFor(username: string, io: CommandIo, env: NodeJS.ProcessEnv = process.env): ChallengeAnswerer {
  let password: Promise<string | undefined> | undefined;
  return new DigestClient({
    getCredentials: async (realm) => {
      password ??= passwordFrom(env, io, username, realm);
      const value = await password;
      return value === undefined ? undefined : { username, password: value };
    },
  });
}

async function passwordFrom(env: NodeJS.ProcessEnv, io: CommandIo, username: string, realm: string): Promise<string | undefined> {
  const fromEnv = env.SIPNOTE_PASSWORD;
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  const stdin = io.stdin as NodeJS.ReadStream;
  if (stdin.isTTY !== true) {
    io.stderr.write(`sipnote: ${realm} asks for a password for ${username}: set SIPNOTE_PASSWORD (no terminal to prompt on)\n`);
    return undefined;
  }
  return promptHidden(io, `Password for ${username} at ${realm}: `);
}


/** The user agent options these arguments stand for. */
export async function accountAgentOptions(
  args: AccountArgs,
  aor: string,
  io: CommandIo,
): Promise<Pick<UserAgentOptions, 'authenticator' | 'outboundProxy' | 'tls' | 'resolver'>> {
  const parsed = parseUri(aor);
  const username = args.user ?? (isSipUri(parsed) ? parsed.user : undefined);
  const tls = await tlsOptionsOf(args);
  const resolver = resolverOf(args);
  return {
    ...(username === undefined ? {} : { authenticator: authenticatorFor(username, io) }),
    ...(args.proxy === undefined ? {} : { outboundProxy: [withLooseRouting(args.proxy)] }),
    ...(tls === undefined ? {} : { tls }),
    ...(resolver === undefined ? {} : { resolver }),
  };
}

/** An outbound proxy is a loose router: its Route entry carries `;lr` (RFC 3261 §16.12, §19.1.1). */
function withLooseRouting(proxy: string): string {
  const uri = parseUri(proxy);
  if (!isSipUri(uri)) throw new UsageError(`--proxy must be a sip: or sips: URI, not ${proxy}`);
  if (uri.params.has('lr')) return proxy;
  uri.params.set('lr', null);
  return formatUri(uri);
}
