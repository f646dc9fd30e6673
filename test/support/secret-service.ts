/**
 * Gate for tests that need the real OS keychain (on Linux: a Secret Service, which
 * scripts/with-secret-service.sh provides headless). Probed once per test file by a real
 * set/get/delete round trip.
 *
 * Under CI (CI set, and not "false"/"0") the keychain tests never skip: a missing keychain
 * fails them, so a broken CI setup cannot pass quietly. Elsewhere they skip with the reason
 * and the command that runs them.
 */
import { randomBytes } from 'node:crypto';
import { OsKeychain } from '../../main/security/keychain.js';

export const IN_CI = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI.toLowerCase());

/** Why the OS keychain cannot be used here, or undefined when it works. */
export async function keychainProblem(): Promise<string | undefined> {
  const keychain = new OsKeychain({ timeoutMs: 10_000 });
  const account = `test-probe#${randomBytes(8).toString('hex')}`;
  try {
    await keychain.set(account, Uint8Array.of(1, 2, 3));
    const back = await keychain.get(account);
    await keychain.delete(account);
    return back?.length === 3 ? undefined : 'the keychain did not return what was stored';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export interface KeychainGate {
  /** Skip the keychain tests (never under CI). */
  readonly skip: boolean;
  /** Why the keychain is unusable, when it is. */
  readonly problem: string | undefined;
}

/** Probes the keychain and decides; prints why when the tests of `testFile` are skipped. */
export async function keychainGate(testFile: string): Promise<KeychainGate> {
  const problem = await keychainProblem();
  const skip = problem !== undefined && !IN_CI;
  if (skip) {
    console.warn(
      `\n${testFile}: tests that need the OS keychain are SKIPPED: ${problem}\n` +
        `Run them with a private Secret Service: sh scripts/with-secret-service.sh npx vitest run ${testFile}\n`,
    );
  }
  return { skip, problem };
}
