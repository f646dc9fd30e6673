/**
 * The UAC side of SIP Digest authentication (RFC 3261 §22 as updated by RFC 8760; RFC 7616;
 * RFC 2617): answering 401/407 challenges, caching what may be cached, and sending
 * credentials before being asked. Sans-I/O: challenge strings and request facts come in,
 * header values and decisions go out; the only asynchronous step is asking the application
 * for a password.
 *
 * Two objects:
 *  - `DigestClient`, one per account: the credentials per realm (kept in memory only, asked
 *    for through `getCredentials` — a keychain, the environment, a prompt — and never
 *    written anywhere or put into any message or error text), and the nonce state per
 *    protection space (nonce, opaque, algorithm, qop, nonce count).
 *  - `DigestExchange`, one per logical request: the request and its authenticated retries
 *    (same Call-ID, CSeq + 1: §8.1.3.5, §22.2). It remembers which credentials the last
 *    attempt carried, which is what makes a wrong password a final failure instead of a loop.
 *
 * `DigestClient` also fits the user agent's `ChallengeAnswerer` seam (main/sip/ua/authentication.ts),
 * whose calls carry no exchange: it keys exchanges by (method, Request-URI, body), which
 * identifies a request among those in flight because RFC 3428 §8 allows one pending
 * out-of-dialog MESSAGE per destination at a time, and a REGISTER client has one outstanding
 * at a time (§10.2). `preemptive()` starts a new exchange for its key; `answer()` continues it.
 * The seam keeps one credentials row per header name and re-sends earlier rows unchanged, so
 * through it only the first realm of a challenge is answered and nothing else is rewritten.
 *
 * Decisions taken where the RFCs leave room:
 *  - several challenges for one realm: the strongest algorithm we support wins
 *    (SHA-512-256 > SHA-256 > MD5), topmost among equals. RFC 8760 §2.4 says the UAC SHOULD
 *    use the topmost one it supports "unless local policy dictates otherwise"; preferring the
 *    strongest keeps a proxy that lists MD5 first (or an attacker who reorders headers) from
 *    choosing MD5 for us.
 *  - a challenge without `qop`: RFC 8760 §2.6 (item 8 of the §22.4 rewrite) says the default
 *    is `auth`, and a SHA-2 challenge can only come from a server written after RFC 7616, so
 *    there we send qop=auth with nc and cnonce. A plain MD5 challenge without qop is what an
 *    RFC 2069-era server sends (RFC 2617 §3.2.2.1 keeps that form for it), and such a server
 *    computes the response without qop, so there we answer in the RFC 2069 form (no qop,
 *    nc or cnonce). With qop offered we pick `auth`, and `auth-int` (body hashed) only when
 *    `auth` is not offered.
 *  - preemptive credentials (§22.2–§22.3; checklist item 168): for a proxy realm, on every
 *    later request (the configured outbound proxy case §22.3 allows across dialogs — one
 *    DigestClient per account, whose requests all leave through that proxy); for a UAS /
 *    registrar realm, only for Request-URIs on the same host as the challenged request or in
 *    the challenge's `domain` list (RFC 7616 §3.3 protection space). A `-sess` nonce is used
 *    for one request only, so the session key's cnonce is unambiguous (RFC 2617 §3.2.2.2 and
 *    RFC 7616 §3.4.2 describe which cnonce goes into A1 differently).
 *  - several realms challenged at once (a forked request, §22.3 / RFC 8760 §2.5): each realm
 *    is answered; if any has no credentials the whole decision is `no-credentials`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ParseError } from '../message/parse-error.js';
import { isSipUri, parseUri } from '../uri.js';
import { digestChallengeOf, isDigest, parseAuthenticationInfo, parseChallenges, type DigestChallenge } from './challenge.js';
import {
  digestAlgorithm,
  formatDigestCredentials,
  formatNonceCount,
  ha1For,
  hashedUsername,
  responseDigest,
  userHa1,
  type DigestAlgorithm,
  type DigestQop,
} from './digest.js';

export interface DigestCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Where passwords come from. Called with the realm, which is what a prompt should show the
 * user (§22.1: the realm is the string shown when asking). Undefined means "none": the request
 * fails with `no-credentials`. Concurrent calls for one realm are merged into one.
 */
export type CredentialsLookup = (realm: string) => Promise<DigestCredentials | undefined>;

/** What the digest covers of a request. Structurally the UA's AuthRequestView. */
export interface DigestRequest {
  readonly method: string;
  /** The Request-URI as sent; it is also the digest-uri (§22.4 item 3). */
  readonly uri: string;
  /** The body, needed only for qop=auth-int. */
  readonly body?: Buffer;
}

export type AuthorizationHeaderName = 'Authorization' | 'Proxy-Authorization';

export interface AuthorizationHeader {
  readonly name: AuthorizationHeaderName;
  readonly value: string;
}

/** A 401 with its WWW-Authenticate values, or a 407 with its Proxy-Authenticate values, in order. */
export interface ChallengeResponse {
  readonly status: 401 | 407;
  readonly challenges: readonly string[];
}

export type AuthFailureReason = 'no-credentials' | 'rejected' | 'unsupported-challenge' | 'loop';

export interface AuthRetry {
  readonly action: 'retry';
  /** 401 → Authorization, 407 → Proxy-Authorization (§22.2, §22.3). */
  readonly headerName: AuthorizationHeaderName;
  /** The credentials answering this response (the first realm's, if it challenged several). */
  readonly headerValue: string;
  /**
   * Every credential header the retried request should carry, this one included: also the
   * realms answered earlier in this exchange (a proxy's 407, then a registrar's 401), each
   * with its nonce count moved on. Replace the request's Authorization and Proxy-Authorization
   * rows with these.
   */
  readonly headers: readonly AuthorizationHeader[];
}

export interface AuthFailure {
  readonly action: 'fail';
  readonly reason: AuthFailureReason;
  /** The realm concerned, for the user ("wrong password for example.com"). */
  readonly realm?: string;
  /** For a log or a person; never holds a password. */
  readonly detail: string;
}

export type AuthDecision = AuthRetry | AuthFailure;

/**
 * What an `Authentication-Info` value told us (RFC 2617 §3.2.3; RFC 7616 §3.5):
 * `rspauth` checked against the credentials we sent — `valid` proves the server knows our
 * password too; `unverifiable` means we cannot tell which of our credentials it answers.
 */
export interface AuthenticationInfoResult {
  readonly rspauth: 'absent' | 'valid' | 'invalid' | 'unverifiable' | 'malformed';
  /** A `nextnonce` was taken: the next requests use it (with nc from 00000001). */
  readonly nextNonceTaken: boolean;
}

export interface DigestClientOptions {
  readonly getCredentials: CredentialsLookup;
  /**
   * A fresh client nonce per request. Default: 128 bits from the CSPRNG as hex (RFC 7616
   * §3.4 wants it unpredictable; 64 bits is the usual floor). Tests inject fixed values.
   */
  readonly createCnonce?: () => string;
  /** Send credentials before being challenged, where allowed (see the policy above). Default true. */
  readonly preemptive?: boolean;
  /** Challenges one request may answer before we call it a loop. Default 4. */
  readonly maxChallenges?: number;
}

// ---------------------------------------------------------------------------------------------
// State shared by the exchanges of one client
// ---------------------------------------------------------------------------------------------

/** One protection space: a realm as announced in one kind of header (a proxy and a registrar may share a realm name). */
type SpaceKey = string;

function spaceKey(headerName: AuthorizationHeaderName, realm: string): SpaceKey {
  return `${headerName}\u0000${realm}`;
}

/** What a challenge leaves behind for later requests (RFC 7616 §3.4: nonce reuse with nc). */
interface NonceState {
  readonly key: SpaceKey;
  readonly headerName: AuthorizationHeaderName;
  readonly realm: string;
  readonly algorithm: DigestAlgorithm;
  /** The `algorithm` parameter as the server wrote it, echoed back. */
  readonly algorithmToken: string | undefined;
  readonly qop: DigestQop | undefined;
  readonly opaque: string | undefined;
  readonly userhash: boolean;
  /** Hosts of the Request-URIs these credentials may be sent to unasked (Authorization only). */
  readonly hosts: ReadonlySet<string>;
  nonce: string;
  /** The last nonce count used with `nonce`; the next request sends count + 1. */
  count: number;
}

const MAX_NONCE_COUNT = 0xffffffff;

class RealmStore {
  readonly states = new Map<SpaceKey, NonceState>();
  // Private fields: util.inspect and JSON.stringify do not show them.
  readonly #credentials = new Map<string, DigestCredentials>();
  readonly #lookups = new Map<string, Promise<DigestCredentials | undefined>>();
  readonly #lookup: CredentialsLookup;

  constructor(lookup: CredentialsLookup) {
    this.#lookup = lookup;
  }

  cached(realm: string): DigestCredentials | undefined {
    return this.#credentials.get(realm);
  }

  /** The realm's credentials: from memory, else asked for (one question per realm at a time). */
  async obtain(realm: string): Promise<DigestCredentials | undefined> {
    const known = this.#credentials.get(realm);
    if (known !== undefined) return known;
    let pending = this.#lookups.get(realm);
    if (pending === undefined) {
      pending = this.#lookup(realm).then(
        (credentials) => (credentials !== undefined && isUsable(credentials) ? { username: credentials.username, password: credentials.password } : undefined),
        // A failing keychain is "no credentials"; its error text is not passed on (it might echo a secret).
        () => undefined,
      );
      this.#lookups.set(realm, pending);
      void pending.finally(() => this.#lookups.delete(realm));
    }
    const credentials = await pending;
    if (credentials !== undefined) this.#credentials.set(realm, credentials);
    return credentials;
  }

  forget(realm: string): void {
    this.#credentials.delete(realm);
    for (const [key, state] of this.states) if (state.realm === realm) this.states.delete(key);
  }

  forgetAll(): void {
    this.#credentials.clear();
    this.states.clear();
  }
}

/** A username with CR or LF cannot be written in a quoted-string (§25.1): unusable, not a crash. */
function isUsable(credentials: DigestCredentials): boolean {
  return typeof credentials.username === 'string' && typeof credentials.password === 'string' && !/[\r\n]/.test(credentials.username);
}

const stores = new WeakMap<DigestClient, RealmStore>();

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/** How many seam-keyed exchanges to remember (requests in flight at once, with room to spare). */
const MAX_TRACKED_EXCHANGES = 256;

export class DigestClient {
  readonly #options: Required<DigestClientOptions>;
  /** Exchanges of the ChallengeAnswerer seam, by request identity, oldest first. */
  readonly #exchanges = new Map<string, DigestExchange>();

  constructor(options: DigestClientOptions) {
    this.#options = {
      getCredentials: options.getCredentials,
      createCnonce: options.createCnonce ?? (() => randomBytes(16).toString('hex')),
      preemptive: options.preemptive ?? true,
      maxChallenges: options.maxChallenges ?? 4,
    };
    stores.set(this, new RealmStore(options.getCredentials));
  }

  /** Starts the authentication state of one logical request (first attempt and its retries). */
  begin(request: DigestRequest): DigestExchange {
    return new DigestExchange(this, request, this.#options);
  }

  /** Drops the credentials and nonces of a realm (the user changed the password, say). */
  forgetRealm(realm: string): void {
    storeOf(this).forget(realm);
  }

  /** Drops every credential and nonce (account removed, app locked). */
  forgetAll(): void {
    storeOf(this).forgetAll();
    this.#exchanges.clear();
  }

  // --- The user agent's ChallengeAnswerer seam -------------------------------------------------

  /**
   * Credentials for a request about to be sent for the first time, as [name, value] pairs, at
   * most one per header name (the UA keeps one row per name). Starts a new exchange.
   */
  preemptive(request: DigestRequest): Array<[AuthorizationHeaderName, string]> {
    const exchange = this.begin(request);
    this.#track(request, exchange);
    return exchange.preemptiveHeaders({ onePerHeaderName: true }).map((header) => [header.name, header.value]);
  }

  /** Answers a 401/407 to `request`, continuing its exchange (or starting one). */
  answer(challenge: ChallengeResponse, request: DigestRequest): Promise<AuthDecision> {
    const key = requestIdentity(request);
    let exchange = this.#exchanges.get(key);
    if (exchange === undefined) {
      exchange = this.begin(request);
      this.#track(request, exchange);
    }
    return exchange.authorize(challenge, { singleHeader: true });
  }

  /** Takes a final response's Authentication-Info for `request` (nextnonce, rspauth). */
  acceptAuthenticationInfo(request: DigestRequest, value: string | undefined, responseBody?: Buffer): AuthenticationInfoResult {
    const exchange = this.#exchanges.get(requestIdentity(request));
    if (exchange === undefined) return { rspauth: value === undefined ? 'absent' : 'unverifiable', nextNonceTaken: false };
    return exchange.acceptAuthenticationInfo(value, responseBody);
  }

  #track(request: DigestRequest, exchange: DigestExchange): void {
    const key = requestIdentity(request);
    this.#exchanges.delete(key);
    this.#exchanges.set(key, exchange);
    if (this.#exchanges.size > MAX_TRACKED_EXCHANGES) {
      const oldest = this.#exchanges.keys().next();
      if (oldest.done !== true) this.#exchanges.delete(oldest.value);
    }
  }
}

function storeOf(client: DigestClient): RealmStore {
  const store = stores.get(client);
  if (store === undefined) throw new Error('DigestClient not constructed');
  return store;
}

function requestIdentity(request: DigestRequest): string {
  const bodyHash = createHash('sha256')
    .update(request.body ?? Buffer.alloc(0))
    .digest('base64');
  return `${request.method}\u0000${request.uri}\u0000${bodyHash}`;
}

// ---------------------------------------------------------------------------------------------
// One request and its retries
// ---------------------------------------------------------------------------------------------

/** What the last attempt carried for one protection space, kept to judge the next challenge and to check rspauth. */
interface SentCredentials {
  readonly key: SpaceKey;
  readonly headerName: AuthorizationHeaderName;
  /** `challenge`: answering a challenge of this exchange; `preemptive`: sent unasked. */
  readonly origin: 'challenge' | 'preemptive';
  readonly algorithm: DigestAlgorithm;
  readonly ha1: string;
  readonly nonce: string;
  readonly uri: string;
  readonly qop: DigestQop | undefined;
  readonly nc: string | undefined;
  readonly cnonce: string | undefined;
}

/** One usable challenge, chosen for its protection space. */
interface Selected {
  readonly key: SpaceKey;
  readonly headerName: AuthorizationHeaderName;
  readonly challenge: DigestChallenge;
  readonly algorithm: DigestAlgorithm;
  readonly qop: DigestQop | undefined;
}

export class DigestExchange {
  readonly request: DigestRequest;
  readonly #store: RealmStore;
  readonly #options: Required<DigestClientOptions>;
  /** Protection spaces this request carries credentials for, in the order first added. */
  readonly #inUse = new Set<SpaceKey>();
  readonly #sent = new Map<SpaceKey, SentCredentials>();
  #challengesSeen = 0;

  /** Use `DigestClient.begin`. */
  constructor(client: DigestClient, request: DigestRequest, options: Required<DigestClientOptions>) {
    this.request = request;
    this.#store = storeOf(client);
    this.#options = options;
  }

  /**
   * Credentials to put in the first attempt, for protection spaces whose nonce we hold
   * (§22.2–§22.3 allow it; RFC 7616 §3.4 nonce reuse with the next nc). Saves the 401/407
   * round trip on every request after the first.
   */
  preemptiveHeaders(options: { readonly onePerHeaderName?: boolean } = {}): AuthorizationHeader[] {
    if (!this.#options.preemptive) return [];
    const host = hostOf(this.request.uri);
    const headers: AuthorizationHeader[] = [];
    for (const state of [...this.#store.states.values()]) {
      if (state.headerName === 'Authorization' && !state.hosts.has(host)) continue;
      if (state.algorithm.session && state.count > 0) continue; // one request per -sess nonce
      if (options.onePerHeaderName === true && headers.some((header) => header.name === state.headerName)) continue;
      const header = this.#write(state, 'preemptive');
      if (header !== undefined) headers.push(header);
    }
    return headers;
  }

  /**
   * Answers a 401 or 407 to the latest attempt of this request. Never throws for what the
   * server sent: unreadable challenges are skipped like unknown ones (RFC 8760 §2.4), and if
   * nothing usable is left the decision is `unsupported-challenge`.
   *
   * `singleHeader`: the caller sends only `headerName: headerValue` and keeps its other
   * credential rows as they were (the UA's ChallengeAnswerer seam, one row per header name):
   * only the first challenged realm is answered and nothing else is rewritten, so what we
   * record as sent is what was sent.
   */
  async authorize(response: ChallengeResponse, options: { readonly singleHeader?: boolean } = {}): Promise<AuthDecision> {
    this.#challengesSeen++;
    if (this.#challengesSeen > this.#options.maxChallenges) {
      return fail('loop', `challenged ${this.#challengesSeen} times for one request`);
    }
    const headerName: AuthorizationHeaderName = response.status === 401 ? 'Authorization' : 'Proxy-Authorization';
    const { selected: usable, skipped } = selectChallenges(response, headerName);
    if (usable.length === 0) {
      return fail('unsupported-challenge', `no Digest challenge we can answer${skipped.length > 0 ? ` (skipped: ${skipped.join('; ')})` : ''}`);
    }
    const selected = options.singleHeader === true ? usable.slice(0, 1) : usable;

    // §22.1, RFC 2617 §3.2.1: a new challenge (not stale) to credentials that answered a
    // challenge means they were wrong. Never send them again: a final failure, no loop.
    // The realm's credentials are dropped so that the next request asks again.
    for (const choice of selected) {
      if (!choice.challenge.stale && this.#sent.get(choice.key)?.origin === 'challenge') {
        this.#store.forget(choice.challenge.realm);
        return fail('rejected', `the server rejected the credentials for realm "${choice.challenge.realm}"`, choice.challenge.realm);
      }
    }

    // stale=true: the same credentials with the new nonce, from memory, without asking again
    // (RFC 7616 §3.3). Otherwise: from memory if this realm worked before, else asked for.
    for (const choice of selected) {
      const credentials = await this.#store.obtain(choice.challenge.realm);
      if (credentials === undefined) {
        return fail('no-credentials', `no credentials for realm "${choice.challenge.realm}"`, choice.challenge.realm);
      }
    }

    const challenged = new Set<SpaceKey>();
    for (const choice of selected) {
      this.#store.states.set(choice.key, newNonceState(choice, this.request));
      this.#inUse.add(choice.key);
      challenged.add(choice.key);
    }

    // The retry carries every space in use: the ones just challenged, answered afresh, and
    // those answered or sent earlier in this exchange, with their next nonce count.
    const first = selected[0]!;
    const rewrite = options.singleHeader === true ? [first.key] : [...this.#inUse];
    const headers: AuthorizationHeader[] = [];
    let primary: AuthorizationHeader | undefined;
    for (const key of rewrite) {
      const state = this.#store.states.get(key);
      if (state === undefined) continue;
      const origin = challenged.has(key) ? 'challenge' : (this.#sent.get(key)?.origin ?? 'preemptive');
      const header = this.#write(state, origin);
      if (header === undefined) continue;
      headers.push(header);
      if (key === first.key) primary = header;
    }
    // Only if the realm was forgotten while we waited for credentials.
    if (primary === undefined) return fail('no-credentials', `no credentials for realm "${first.challenge.realm}"`, first.challenge.realm);
    return { action: 'retry', headerName: primary.name, headerValue: primary.value, headers };
  }

  /**
   * Reads the Authentication-Info of a final response to this request's latest attempt
   * (RFC 2617 §3.2.3, RFC 7616 §3.5): takes `nextnonce` for the next requests and checks
   * `rspauth` (mutual authentication). `responseBody` matters only for qop=auth-int.
   */
  acceptAuthenticationInfo(value: string | undefined, responseBody?: Buffer): AuthenticationInfoResult {
    if (value === undefined) return { rspauth: 'absent', nextNonceTaken: false };
    let info;
    try {
      info = parseAuthenticationInfo(value);
    } catch (error) {
      if (error instanceof ParseError) return { rspauth: 'malformed', nextNonceTaken: false };
      throw error;
    }
    // Authentication-Info answers the UAS's (Authorization) credentials; with several, the
    // cnonce it echoes says which.
    const candidates = [...this.#sent.values()].filter((sent) => sent.headerName === 'Authorization');
    const sent =
      info.cnonce !== undefined ? candidates.find((candidate) => candidate.cnonce === info.cnonce) : candidates.length === 1 ? candidates[0] : undefined;

    let nextNonceTaken = false;
    if (sent !== undefined && info.nextnonce !== undefined) {
      const state = this.#store.states.get(sent.key);
      // Only if nobody has moved this space on to a newer nonce meanwhile.
      if (state !== undefined && state.nonce === sent.nonce) {
        state.nonce = info.nextnonce;
        state.count = 0;
        nextNonceTaken = true;
      }
    }

    if (info.rspauth === undefined) return { rspauth: 'absent', nextNonceTaken };
    if (sent === undefined) return { rspauth: 'unverifiable', nextNonceTaken };
    const qopMatches = (info.qop ?? sent.qop) === sent.qop;
    const ncMatches = info.nc === undefined || info.nc.toLowerCase() === sent.nc;
    // rspauth = the request-digest with A2 = ":" digest-uri (method empty) (RFC 2617 §3.2.3).
    const expected = responseDigest({
      hash: sent.algorithm.hash,
      ha1: sent.ha1,
      nonce: sent.nonce,
      method: '',
      uri: sent.uri,
      qop: sent.qop,
      nc: sent.nc,
      cnonce: sent.cnonce,
      body: responseBody,
    });
    const valid = qopMatches && ncMatches && sameHex(expected, info.rspauth);
    return { rspauth: valid ? 'valid' : 'invalid', nextNonceTaken };
  }

  /** Builds the credentials for one protection space with the next nonce count, and records them. */
  #write(state: NonceState, origin: SentCredentials['origin']): AuthorizationHeader | undefined {
    const credentials = this.#store.cached(state.realm);
    if (credentials === undefined) return undefined;
    if (state.count >= MAX_NONCE_COUNT) {
      // nc is 8 hex digits: this nonce is used up; the next challenge brings a new one.
      this.#store.states.delete(state.key);
      return undefined;
    }
    state.count++;
    // nc and cnonce go with qop and only with it (RFC 2617 §3.2.2; RFC 3261 §22.4 item 8).
    const nc = state.qop === undefined ? undefined : formatNonceCount(state.count);
    const cnonce = state.qop === undefined ? undefined : this.#options.createCnonce();
    const hash = state.algorithm.hash;
    const ha1 = ha1For(state.algorithm, userHa1(hash, credentials.username, state.realm, credentials.password), state.nonce, cnonce);
    const response = responseDigest({
      hash,
      ha1,
      nonce: state.nonce,
      method: this.request.method,
      uri: this.request.uri,
      qop: state.qop,
      nc,
      cnonce,
      body: this.request.body,
    });
    const value = formatDigestCredentials({
      username: state.userhash ? hashedUsername(hash, credentials.username, state.realm) : credentials.username,
      realm: state.realm,
      nonce: state.nonce,
      uri: this.request.uri,
      response,
      algorithm: state.algorithmToken,
      cnonce,
      opaque: state.opaque,
      qop: state.qop,
      nc,
      userhash: state.userhash,
    });
    this.#inUse.add(state.key);
    this.#sent.set(state.key, {
      key: state.key,
      headerName: state.headerName,
      origin,
      algorithm: state.algorithm,
      ha1,
      nonce: state.nonce,
      uri: this.request.uri,
      qop: state.qop,
      nc,
      cnonce,
    });
    return { name: state.headerName, value };
  }
}

function fail(reason: AuthFailureReason, detail: string, realm?: string): AuthFailure {
  return realm === undefined ? { action: 'fail', reason, detail } : { action: 'fail', reason, realm, detail };
}

/**
 * Reads every challenge of the response and keeps, per realm, the one we answer (see the
 * policy at the top). Unreadable and unknown challenges are skipped (RFC 8760 §2.4: "MUST
 * ignore any challenge it does not understand"); Basic is never answered (RFC 8760 §2.6).
 */
function selectChallenges(response: ChallengeResponse, headerName: AuthorizationHeaderName): { selected: Selected[]; skipped: string[] } {
  const header = headerName === 'Authorization' ? 'WWW-Authenticate' : 'Proxy-Authenticate';
  const skipped: string[] = [];
  const best = new Map<string, Selected>();
  for (const value of response.challenges) {
    let challenges;
    try {
      challenges = parseChallenges(value, header);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      skipped.push(`malformed ${header}: ${error.message}`);
      continue;
    }
    for (const challenge of challenges) {
      if (!isDigest(challenge)) {
        skipped.push(`${challenge.scheme} scheme`);
        continue;
      }
      let digest: DigestChallenge;
      try {
        digest = digestChallengeOf(challenge, header);
      } catch (error) {
        if (!(error instanceof ParseError)) throw error;
        skipped.push(error.message);
        continue;
      }
      const algorithm = digestAlgorithm(digest.algorithm);
      if (algorithm === undefined) {
        skipped.push(`algorithm ${digest.algorithm ?? ''}`);
        continue;
      }
      const qop = chooseQop(digest, algorithm);
      if (qop === 'unsupported') {
        skipped.push(`qop "${(digest.qop ?? []).join(',')}"`);
        continue;
      }
      const current = best.get(digest.realm);
      // Strictly stronger replaces: among equals the topmost stays (RFC 8760 §2.4).
      if (current === undefined || algorithm.strength > current.algorithm.strength) {
        best.set(digest.realm, { key: spaceKey(headerName, digest.realm), headerName, challenge: digest, algorithm, qop });
      }
    }
  }
  return { selected: [...best.values()], skipped };
}

/** The qop we answer with (policy at the top), or 'unsupported'. */
function chooseQop(challenge: DigestChallenge, algorithm: DigestAlgorithm): DigestQop | undefined | 'unsupported' {
  if (challenge.qop === undefined) return algorithm.hash === 'MD5' && !algorithm.session ? undefined : 'auth';
  if (challenge.qop.includes('auth')) return 'auth';
  if (challenge.qop.includes('auth-int')) return 'auth-int';
  return 'unsupported';
}

function newNonceState(choice: Selected, request: DigestRequest): NonceState {
  const hosts = new Set<string>();
  if (choice.headerName === 'Authorization') {
    hosts.add(hostOf(request.uri));
    for (const uri of choice.challenge.domain) hosts.add(hostOf(uri));
  }
  return {
    key: choice.key,
    headerName: choice.headerName,
    realm: choice.challenge.realm,
    algorithm: choice.algorithm,
    algorithmToken: choice.challenge.algorithm,
    qop: choice.qop,
    opaque: choice.challenge.opaque,
    userhash: choice.challenge.userhash,
    hosts,
    nonce: choice.challenge.nonce,
    count: 0,
  };
}

/** The host a Request-URI points at, for the protection space; the URI itself if it has none we can read. */
function hostOf(uri: string): string {
  try {
    const parsed = parseUri(uri);
    if (isSipUri(parsed)) return parsed.host;
  } catch {
    // Not a URI we can read: it only matches itself.
  }
  return uri.toLowerCase();
}

function sameHex(expected: string, received: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(received.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
