/**
 * The seam between the user agent and whatever answers authentication challenges
 * (RFC 3261 §22; the digest implementation lives in main/sip/auth/).
 *
 * The UA calls `answer` on a 401 or 407 and retries the request with the header it gets back,
 * with CSeq + 1 and the same Call-ID (§8.1.3.5, §22.2); it calls `preemptive` before a first
 * attempt so a second request through the same proxy does not cost another challenge round
 * trip (§22.3). An answerer that returns `fail` ends the attempts: a wrong password is a
 * final failure, never a loop.
 */
export interface AuthRequestView {
  readonly method: string;
  /** The Request-URI, which is also the digest-uri (§22.4). */
  readonly uri: string;
  readonly body: Buffer;
}

export type AuthAnswer =
  | {
      readonly action: 'retry';
      readonly headerName: 'Authorization' | 'Proxy-Authorization';
      readonly headerValue: string;
      /**
       * Every credential row the retried request needs (a proxy's and a registrar's realm
       * together, say). When present it replaces all rows sent before.
       */
      readonly headers?: ReadonlyArray<{ readonly name: string; readonly value: string }>;
    }
  | { readonly action: 'fail'; readonly reason: string };

export interface ChallengeAnswerer {
  answer(challenge: { readonly status: 401 | 407; readonly challenges: readonly string[] }, request: AuthRequestView): Promise<AuthAnswer>;
  /** Credentials to send before being asked, for realms whose nonce is known. */
  preemptive?(request: AuthRequestView): ReadonlyArray<readonly [string, string]>;
  /** An Authentication-Info from a 2xx: `nextnonce` for later requests, `rspauth` (RFC 2617 §3.2.3). */
  acceptAuthenticationInfo?(request: AuthRequestView, value: string | undefined, body?: Buffer): unknown;
}
