/**
 * `sipnote keys …`: the account's S/MIME identity and the contacts' pinned certificates
 * (issue #4 item 8).
 *
 *   keys init        --aor URI [--rsa] [--passphrase-key]   new key pair + self-signed certificate
 *   keys show        --aor URI | --peer URI                 certificate details, SHA-256 fingerprint
 *   keys export-cert --aor URI                              the certificate as PEM on stdout
 *   keys import      --aor URI --cert F --key F [--passphrase-key]
 *   keys import      --aor URI --cert F.p12 [--passphrase-key]   a PKCS#12 file (RFC 7292)
 *   keys trust       --peer URI --cert F [--replace]        pin a contact's certificate
 *   keys forget      --aor URI | --peer URI                 delete an identity (and its key) / a pin
 * common: [--data-dir DIR] [--json]
 *
 * Private keys go to the OS keychain (main/security/keychain.ts). `--passphrase-key` is the
 * explicit opt-in for machines without one; its passphrase comes from SIPNOTE_KEY_PASSPHRASE or
 * a prompt (never an argument, which other users can read in the process list). An encrypted
 * key to import is opened with SIPNOTE_IMPORT_PASSPHRASE or a prompt; so is a PKCS#12 file
 * (recognised by its content, or a .p12/.pfx name), after its often empty passphrase is tried.
 *
 * Exit codes: 0 done; 1 refused or failed (no identity, already one, a certificate conflict,
 * no keychain, …), with one line on stderr; 2 usage error (thrown as UsageError for main.ts).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { canonicalAor } from '../security/aor.js';
import { certificateInfo, importCertificate, type CertificateInfo, type IdentityAlgorithm } from '../security/certificates.js';
import { CmsError } from '../security/cms/der.js';
import { ContactCertificateError, ContactCertificates } from '../security/contact-certificates.js';
import {
  IdentityError,
  assertNoIdentity,
  exportCertificatePem,
  forgetIdentity,
  importIdentity,
  importPkcs12Identity,
  initIdentity,
  readIdentityRecord,
  type IdentityRecord,
  type KeyLocation,
} from '../security/identity-store.js';
import { KeychainUnavailableError, OsKeychain, type Keychain } from '../security/keychain.js';
import { PassphraseKeyError, encryptedPrivateKeyInfoOf } from '../security/passphrase-key-file.js';
import { Pkcs12Error, looksLikePkcs12, openPkcs12 } from '../security/pkcs12.js';
import { ParseError } from '../sip/message/parse-error.js';
import { resolveDataDir } from './data-dir.js';
import { promptHidden, type CommandIo } from './io.js';
import { UsageError } from './usage-error.js';

export const KEYS_USAGE = `  sipnote keys init --aor URI [--rsa] [--passphrase-key] [--data-dir DIR] [--json]
  sipnote keys show --aor URI | --peer URI [--data-dir DIR] [--json]
  sipnote keys export-cert --aor URI [--data-dir DIR]
  sipnote keys import --aor URI --cert FILE --key FILE [--passphrase-key] [--data-dir DIR] [--json]
  sipnote keys import --aor URI --cert FILE.p12 [--passphrase-key] [--data-dir DIR] [--json]
  sipnote keys trust --peer URI --cert FILE [--replace] [--data-dir DIR] [--json]
  sipnote keys forget --aor URI | --peer URI [--data-dir DIR] [--json]`;

interface Common {
  /** The data dir as given by --data-dir; the default is resolved when the command runs. */
  readonly dataDir?: string;
  readonly json: boolean;
}

export type KeysArgs =
  | (Common & { readonly action: 'init'; readonly aor: string; readonly algorithm: IdentityAlgorithm; readonly passphraseKey: boolean })
  | (Common & { readonly action: 'show'; readonly aor: string; readonly subject: 'identity' | 'contact' })
  | (Common & { readonly action: 'export-cert'; readonly aor: string })
  | (Common & { readonly action: 'import'; readonly aor: string; readonly certFile: string; readonly keyFile?: string; readonly passphraseKey: boolean })
  | (Common & { readonly action: 'trust'; readonly peer: string; readonly certFile: string; readonly replace: boolean })
  | (Common & { readonly action: 'forget'; readonly aor: string; readonly subject: 'identity' | 'contact' });

export type KeysAction = KeysArgs['action'];
const ACTIONS: readonly KeysAction[] = ['init', 'show', 'export-cert', 'import', 'trust', 'forget'];

/** What each action accepts besides --data-dir and --json. */
const ALLOWED: Readonly<Record<KeysAction, readonly string[]>> = {
  init: ['aor', 'rsa', 'passphrase-key'],
  show: ['aor', 'peer'],
  'export-cert': ['aor'],
  import: ['aor', 'cert', 'key', 'passphrase-key'],
  trust: ['peer', 'cert', 'replace', 'aor'],
  forget: ['aor', 'peer'],
};

/** Parses the arguments after `sipnote keys`. Throws UsageError (or a parseArgs TypeError). */
export function parseKeysArgs(argv: readonly string[]): KeysArgs {
  const [action, ...rest] = argv;
  if (action === undefined) throw new UsageError(`keys needs an action: ${ACTIONS.join(', ')}`);
  if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown keys action ${action} (${ACTIONS.join(', ')})`);
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      aor: { type: 'string' },
      peer: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'data-dir': { type: 'string' },
      rsa: { type: 'boolean', default: false },
      'passphrase-key': { type: 'boolean', default: false },
      replace: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const kind = action as KeysAction;
  for (const [name, value] of Object.entries(values)) {
    if (name === 'data-dir' || name === 'json' || value === undefined || value === false) continue;
    if (!ALLOWED[kind].includes(name)) throw new UsageError(`keys ${kind} does not take --${name}`);
  }
  const common: Common = { json: values.json, ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }) };
  switch (kind) {
    case 'init':
      return { ...common, action: kind, aor: sipAor(values.aor, '--aor'), algorithm: values.rsa ? 'RSA-2048' : 'ECDSA-P256', passphraseKey: values['passphrase-key'] };
    case 'export-cert':
      return { ...common, action: kind, aor: sipAor(values.aor, '--aor') };
    case 'import':
      return {
        ...common,
        action: kind,
        aor: sipAor(values.aor, '--aor'),
        certFile: required(values.cert, '--cert'),
        // Required unless --cert is a PKCS#12 file, which only reading it tells (runImport).
        ...(values.key === undefined ? {} : { keyFile: required(values.key, '--key') }),
        passphraseKey: values['passphrase-key'],
      };
    case 'trust':
      return { ...common, action: kind, peer: sipAor(values.peer, '--peer'), certFile: required(values.cert, '--cert'), replace: values.replace };
    case 'show':
    case 'forget': {
      if ((values.aor === undefined) === (values.peer === undefined)) throw new UsageError(`keys ${kind} takes either --aor URI (your identity) or --peer URI (a contact)`);
      return values.aor !== undefined
        ? { ...common, action: kind, aor: sipAor(values.aor, '--aor'), subject: 'identity' }
        : { ...common, action: kind, aor: sipAor(values.peer, '--peer'), subject: 'contact' };
    }
  }
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.length === 0) throw new UsageError(`${flag} is required`);
  return value;
}

function sipAor(value: string | undefined, flag: string): string {
  try {
    return canonicalAor(required(value, flag));
  } catch (error) {
    if (error instanceof ParseError) throw new UsageError(`${flag} ${value}: ${error.message}`);
    throw error;
  }
}

export interface KeysDependencies {
  /** The keychain (default: the OS keychain). */
  readonly keychain?: Keychain;
  readonly env?: NodeJS.ProcessEnv;
  /** PBKDF2 iterations for a new passphrase key file (tests lower it). */
  readonly pbkdf2Iterations?: number;
}

/** Runs a parsed `sipnote keys` command; returns the exit code. */
export async function keysCommand(args: KeysArgs, io: CommandIo, dependencies: KeysDependencies = {}): Promise<number> {
  const env = dependencies.env ?? process.env;
  const keychain = dependencies.keychain ?? new OsKeychain();
  const dataDir = resolveDataDir(args.dataDir, env);
  const context: Context = { io, env, keychain, dataDir, json: args.json, ...(dependencies.pbkdf2Iterations === undefined ? {} : { iterations: dependencies.pbkdf2Iterations }) };
  try {
    switch (args.action) {
      case 'init':
        return await init(context, args.aor, args.algorithm, args.passphraseKey);
      case 'import':
        return await runImport(context, args.aor, args.certFile, args.keyFile, args.passphraseKey);
      case 'show':
        return args.subject === 'identity' ? await showIdentity(context, args.aor) : await showContact(context, args.aor);
      case 'export-cert':
        io.stdout.write(await exportCertificatePem(dataDir, args.aor));
        return 0;
      case 'trust':
        return await trust(context, args.peer, args.certFile, args.replace);
      case 'forget':
        return args.subject === 'identity' ? await forget(context, args.aor) : await forgetContact(context, args.aor);
    }
  } catch (error) {
    if (
      error instanceof IdentityError ||
      error instanceof KeychainUnavailableError ||
      error instanceof PassphraseKeyError ||
      error instanceof ContactCertificateError ||
      error instanceof CmsError ||
      error instanceof Pkcs12Error ||
      error instanceof FileError
    ) {
      fail(context, error);
      return 1;
    }
    throw error;
  }
}

interface Context {
  readonly io: CommandIo;
  readonly env: NodeJS.ProcessEnv;
  readonly keychain: Keychain;
  readonly dataDir: string;
  readonly json: boolean;
  readonly iterations?: number;
}

/** A file named on the command line could not be read. */
class FileError extends Error {
  override readonly name = 'FileError';
}

function fail(context: Context, error: Error & { code?: unknown; reason?: unknown }): void {
  if (context.json) {
    const code = typeof error.code === 'string' ? error.code : typeof error.reason === 'string' ? error.reason : undefined;
    context.io.stdout.write(`${JSON.stringify({ error: error.name, ...(code === undefined ? {} : { code }), message: error.message })}\n`);
  }
  context.io.stderr.write(`sipnote: ${error.message}\n`);
}

async function init(context: Context, aor: string, algorithm: IdentityAlgorithm, passphraseKey: boolean): Promise<number> {
  const passphrase = passphraseKey ? await newPassphrase(context) : undefined;
  if (passphraseKey && passphrase === undefined) return 1;
  const identity = await initIdentity(context.dataDir, aor, {
    keychain: context.keychain,
    algorithm,
    ...(passphrase === undefined ? {} : { passphraseKeyFile: { passphrase, ...(context.iterations === undefined ? {} : { iterations: context.iterations }) } }),
  });
  report(context, 'created', identity);
  return 0;
}

async function runImport(context: Context, aor: string, certFile: string, keyFile: string | undefined, passphraseKey: boolean): Promise<number> {
  const certificate = await readArgumentFile(certFile);
  if (looksLikePkcs12(certificate) || /\.(p12|pfx)$/i.test(certFile)) {
    if (keyFile !== undefined) throw new UsageError(`${certFile} is a PKCS#12 file, which holds the key too: leave out --key`);
    return importPkcs12(context, aor, certFile, certificate, passphraseKey);
  }
  if (keyFile === undefined) throw new UsageError('--key is required (unless --cert is a PKCS#12 .p12/.pfx file)');
  const keyBytes = await readArgumentFile(keyFile);
  // PEM is text; anything else is taken as DER.
  const keyText = keyBytes.toString('latin1');
  const key = keyText.includes('-----BEGIN ') ? keyText : new Uint8Array(keyBytes);
  const certText = certificate.toString('latin1');
  const cert = certText.includes('-----BEGIN ') ? certText : new Uint8Array(certificate);
  let privateKeyPassphrase: string | undefined;
  if (isEncryptedKey(key)) {
    privateKeyPassphrase = await passphraseFrom(context, 'SIPNOTE_IMPORT_PASSPHRASE', `Passphrase of ${keyFile}: `);
    if (privateKeyPassphrase === undefined) return 1;
  }
  const passphrase = passphraseKey ? await newPassphrase(context) : undefined;
  if (passphraseKey && passphrase === undefined) return 1;
  const identity = await importIdentity(context.dataDir, aor, cert, key, {
    keychain: context.keychain,
    ...(privateKeyPassphrase === undefined ? {} : { privateKeyPassphrase }),
    ...(passphrase === undefined ? {} : { passphraseKeyFile: { passphrase, ...(context.iterations === undefined ? {} : { iterations: context.iterations }) } }),
  });
  report(context, 'imported', identity);
  return 0;
}

/** `keys import --cert FILE.p12`: the key and certificate from a PKCS#12 file (RFC 7292). */
async function importPkcs12(context: Context, aor: string, file: string, pfx: Uint8Array, passphraseKey: boolean): Promise<number> {
  await assertNoIdentity(context.dataDir, aor); // before anyone types a passphrase
  const filePassphrase = await pkcs12Passphrase(context, file, pfx);
  if (filePassphrase === undefined) return 1;
  const passphrase = passphraseKey ? await newPassphrase(context) : undefined;
  if (passphraseKey && passphrase === undefined) return 1;
  const { identity, otherCertificates } = await importPkcs12Identity(context.dataDir, aor, pfx, filePassphrase, {
    keychain: context.keychain,
    ...(passphrase === undefined ? {} : { passphraseKeyFile: { passphrase, ...(context.iterations === undefined ? {} : { iterations: context.iterations }) } }),
  });
  report(context, 'imported', identity, { otherCertificates: otherCertificates.length });
  return 0;
}

/**
 * The passphrase of a PKCS#12 file: SIPNOTE_IMPORT_PASSPHRASE, else the empty one when it fits
 * (exports "without a password" are common and asking for one would only confuse), else asked.
 * A file that cannot be opened for another reason fails here, before anything is asked.
 */
async function pkcs12Passphrase(context: Context, file: string, pfx: Uint8Array): Promise<string | undefined> {
  const fromEnv = context.env.SIPNOTE_IMPORT_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  try {
    await openPkcs12(pfx, '');
    return '';
  } catch (error) {
    if (!(error instanceof Pkcs12Error && error.code === 'bad-passphrase')) throw error;
  }
  return passphraseFrom(context, 'SIPNOTE_IMPORT_PASSPHRASE', `Passphrase of ${file}: `);
}

function isEncryptedKey(key: string | Uint8Array): boolean {
  try {
    return encryptedPrivateKeyInfoOf(key) !== undefined;
  } catch {
    return false; // unreadable PEM: importIdentity reports it
  }
}

/** Prints what `init` / `import` stored; `otherCertificates` counts a PKCS#12 file's certificates left out. */
function report(context: Context, verb: 'created' | 'imported', identity: IdentityRecord, pkcs12?: { otherCertificates: number }): void {
  if (context.json) {
    context.io.stdout.write(`${JSON.stringify({ [verb]: true, ...identityView(context, identity), ...(pkcs12 ?? {}) })}\n`);
    return;
  }
  const leftOut = pkcs12 && pkcs12.otherCertificates > 0 ? `The file's ${pkcs12.otherCertificates} other certificate(s) (its CA chain) were not stored: contacts pin your certificate itself.\n` : '';
  context.io.stdout.write(
    `${verb} the identity of ${identity.aor} (${identity.info.keyAlgorithm})\n` +
      `certificate: ${identity.certificatePath}\n` +
      `private key: ${describeKey(context, identity.key)}\n` +
      `SHA-256 fingerprint: ${identity.info.fingerprintSha256}\n` +
      leftOut +
      `Give your contacts the certificate (sipnote keys export-cert --aor ${identity.aor}) and compare the fingerprint with them out of band.\n`,
  );
}

function describeKey(context: Context, key: KeyLocation): string {
  return key.storage === 'keychain' ? `in ${context.keychain.description}, account ${key.account}` : `in the passphrase-protected file ${key.path}`;
}

async function showIdentity(context: Context, aor: string): Promise<number> {
  const record = await readIdentityRecord(context.dataDir, aor);
  if (!record) {
    fail(context, new IdentityError('not-found', `${aor} has no identity in ${context.dataDir} (sipnote keys init --aor ${aor})`));
    return 1;
  }
  // Whether the key is really there: the first thing to know when messages fail to sign.
  let keyPresent: boolean | undefined;
  let keyProblem: string | undefined;
  if (record.key.storage === 'keychain') {
    try {
      keyPresent = (await context.keychain.get(record.key.account)) !== undefined;
    } catch (error) {
      if (!(error instanceof KeychainUnavailableError)) throw error;
      keyProblem = error.message;
    }
  } else {
    keyPresent = (await readFileBytes(record.key.path)) !== undefined;
  }
  if (context.json) {
    context.io.stdout.write(`${JSON.stringify({ ...identityView(context, record), key: { ...keyView(context, record.key), present: keyPresent ?? null, ...(keyProblem === undefined ? {} : { problem: keyProblem }) } })}\n`);
    return 0;
  }
  const status = keyPresent === true ? 'present' : keyPresent === false ? 'MISSING' : `unknown: ${keyProblem ?? ''}`;
  context.io.stdout.write(`identity of ${record.aor}\n${certificateLines(record.info)}certificate file:    ${record.certificatePath}\nprivate key:         ${describeKey(context, record.key)} (${status})\n`);
  return 0;
}

async function showContact(context: Context, aor: string): Promise<number> {
  const der = await new ContactCertificates(context.dataDir).pinned(aor);
  if (!der) {
    fail(context, new IdentityError('not-found', `no certificate is pinned for ${aor} (sipnote keys trust --peer ${aor} --cert FILE)`));
    return 1;
  }
  const info = certificateInfo(der);
  if (context.json) context.io.stdout.write(`${JSON.stringify({ peer: aor, ...certificateView(info) })}\n`);
  else context.io.stdout.write(`pinned certificate of ${aor}\n${certificateLines(info)}`);
  return 0;
}

async function trust(context: Context, peer: string, certFile: string, replace: boolean): Promise<number> {
  const bytes = await readArgumentFile(certFile);
  const text = bytes.toString('latin1');
  const der = importCertificate(text.includes('-----BEGIN ') ? text : new Uint8Array(bytes));
  const contacts = new ContactCertificates(context.dataDir);
  const result = await contacts.pin(peer, der);
  const fingerprint = certificateInfo(der).fingerprintSha256;
  let outcome: 'pinned' | 'unchanged' | 'replaced';
  if (result.status === 'conflict') {
    const pinnedFingerprint = certificateInfo(result.pinnedDer).fingerprintSha256;
    if (!replace) {
      const message =
        `${peer} already has a different pinned certificate (SHA-256 ${pinnedFingerprint}); the one in ${certFile} is ${fingerprint}. ` +
        'Compare the new fingerprint with your contact out of band, then run again with --replace';
      if (context.json) context.io.stdout.write(`${JSON.stringify({ error: 'ContactCertificateError', code: 'conflict', peer, pinned: pinnedFingerprint, offered: fingerprint, message })}\n`);
      context.io.stderr.write(`sipnote: ${message}\n`);
      return 1;
    }
    await contacts.replace(peer, der);
    outcome = 'replaced';
  } else {
    outcome = result.status;
  }
  if (context.json) context.io.stdout.write(`${JSON.stringify({ [outcome]: true, peer, fingerprintSha256: fingerprint, file: contacts.pathOf(peer) })}\n`);
  else context.io.stdout.write(`${outcome === 'unchanged' ? 'already pinned' : outcome}: ${peer}\nSHA-256 fingerprint: ${fingerprint}\n`);
  return 0;
}

async function forget(context: Context, aor: string): Promise<number> {
  const forgotten = await forgetIdentity(context.dataDir, aor, { keychain: context.keychain });
  if (context.json) context.io.stdout.write(`${JSON.stringify({ forgotten, aor })}\n`);
  else context.io.stdout.write(forgotten ? `forgot the identity of ${aor} and deleted its private key\n` : `${aor} had no identity in ${context.dataDir}\n`);
  return forgotten ? 0 : 1;
}

async function forgetContact(context: Context, peer: string): Promise<number> {
  const forgotten = await new ContactCertificates(context.dataDir).forget(peer);
  if (context.json) context.io.stdout.write(`${JSON.stringify({ forgotten, peer })}\n`);
  else context.io.stdout.write(forgotten ? `unpinned the certificate of ${peer}\n` : `no certificate was pinned for ${peer}\n`);
  return forgotten ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Output

function certificateView(info: CertificateInfo): Record<string, unknown> {
  return {
    fingerprintSha256: info.fingerprintSha256,
    subject: info.subject,
    issuer: info.issuer,
    selfIssued: info.selfIssued,
    serialNumberHex: info.serialNumberHex,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    keyAlgorithm: info.keyAlgorithm,
    sipUris: info.sipUris,
    emailAddresses: info.emailAddresses,
    keyUsage: info.keyUsage,
    extendedKeyUsage: info.extendedKeyUsage,
  };
}

function keyView(context: Context, key: KeyLocation): Record<string, unknown> {
  return key.storage === 'keychain' ? { storage: 'keychain', keychain: context.keychain.description, account: key.account } : { storage: 'passphrase-file', file: key.path };
}

function identityView(context: Context, record: IdentityRecord): Record<string, unknown> {
  return { aor: record.aor, ...certificateView(record.info), certificateFile: record.certificatePath, key: keyView(context, record.key) };
}

function certificateLines(info: CertificateInfo): string {
  const lines: Array<[string, string]> = [
    ['subject', info.subject],
    ['issuer', info.selfIssued ? `${info.issuer} (self-signed)` : info.issuer],
    ['SIP URIs', info.sipUris.join(', ') || '(none)'],
    ...(info.emailAddresses.length > 0 ? [['email', info.emailAddresses.join(', ')] as [string, string]] : []),
    ['key', info.keyAlgorithm],
    ['valid', `${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}`],
    ['serial', info.serialNumberHex],
    ['SHA-256 fingerprint', info.fingerprintSha256],
  ];
  return lines.map(([label, value]) => `${`${label}:`.padEnd(21)}${value}\n`).join('');
}

// ---------------------------------------------------------------------------------------------
// Files and passphrases

async function readArgumentFile(path: string): Promise<Buffer> {
  const bytes = await readFileBytes(path);
  if (bytes === undefined) throw new FileError(`cannot read ${path}: no such file`);
  return bytes;
}

async function readFileBytes(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new FileError(`cannot read ${path}: ${code ?? String(error)}`);
  }
}

/** A new key-file passphrase: SIPNOTE_KEY_PASSPHRASE, or asked twice on the terminal. */
async function newPassphrase(context: Context): Promise<string | undefined> {
  const fromEnv = context.env.SIPNOTE_KEY_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  if (!isTerminal(context.io)) {
    context.io.stderr.write('sipnote: --passphrase-key needs a passphrase: set SIPNOTE_KEY_PASSPHRASE (no terminal to ask on)\n');
    return undefined;
  }
  const first = await promptHidden(context.io, 'Passphrase for the new key file: ');
  const second = await promptHidden(context.io, 'The same passphrase again: ');
  if (first !== second) {
    context.io.stderr.write('sipnote: the passphrases differ\n');
    return undefined;
  }
  return first;
}

/** A passphrase from `variable`, else asked once on the terminal. */
async function passphraseFrom(context: Context, variable: string, question: string): Promise<string | undefined> {
  const fromEnv = context.env[variable];
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  if (!isTerminal(context.io)) {
    context.io.stderr.write(`sipnote: a passphrase is needed: set ${variable} (no terminal to ask on)\n`);
    return undefined;
  }
  return promptHidden(context.io, question);
}

function isTerminal(io: CommandIo): boolean {
  return (io.stdin as NodeJS.ReadStream).isTTY === true;
}

