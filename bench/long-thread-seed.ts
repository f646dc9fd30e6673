/**
 * A long conversation for the thread view at scale (bench/ui.ts and test/e2e/long-thread.test.ts):
 * dave (peer to peer on 127.0.0.1) and carol, one message a minute up to now. A third of the
 * messages dave's own (delivered), the rest carol's; every 17th is long enough to wrap over
 * several lines and has a line break, so rows differ in height. Written straight into the
 * store of a data dir (never through the UI), in one transaction, and the conversation
 * marked read, as a Messenger opened on the data dir will then show it.
 */
import { ConfigStore, type StoredAccount } from '../main/im/config-store.js';
import { openStore, type Store } from '../main/store/index.js';

/** The other side of the conversation. */
export const LONG_THREAD_PEER = 'sip:carol@127.0.0.1:5999';

/** Seeds `count` messages into a fresh data dir under account `accountId` (dave). */
export function seedLongThread(dataDir: string, accountId: string, count: number): void {
  const account: StoredAccount = {
    id: accountId,
    sipAddress: 'sip:dave@127.0.0.1',
    displayName: 'Dave',
    registrar: '',
    outboundProxy: '',
    transport: 'udp',
    register: false,
    authUser: '',
    localAddress: '127.0.0.1',
    localPort: 0,
  };
  // Durability does not matter for a throwaway data dir; `normal` makes the seeding fast.
  const store = openStore(dataDir, { synchronous: 'normal' });
  try {
    seed(store, account, count);
  } finally {
    store.close();
  }
}

function seed(store: Store, account: StoredAccount, count: number): void {
  const start = Date.now() - count * 60_000;
  new ConfigStore(store).saveAccount(account);
  store.batch(() => {
    for (let i = 0; i < count; i++) {
      const text = i % 17 === 0 ? `Message ${i + 1}\n${'a longer line that wraps around the bubble '.repeat(4)}` : `Message ${i + 1}`;
      if (i % 3 === 0) {
        const sent = store.messages.enqueueOutgoing({ account: account.sipAddress, peer: LONG_THREAD_PEER, body: text, contentType: 'text/plain', security: 'plaintext' });
        store.messages.markSending(sent.id, { callId: `out-${i}`, cseq: 1, fromTag: `out-tag-${i}` });
        store.messages.markResult(sent.id, { state: 'delivered', status: 200, reason: 'OK' });
      } else {
        store.messages.recordIncoming({
          account: account.sipAddress,
          peer: LONG_THREAD_PEER,
          body: text,
          contentType: 'text/plain',
          security: 'plaintext',
          callId: `call-${i}`,
          cseq: 1,
          fromTag: `tag-${i}`,
          receivedAt: start + i * 60_000,
        });
      }
    }
  });
  const [conversation] = store.conversations.list();
  if (conversation === undefined) throw new Error('seeding made no conversation');
  store.conversations.markRead(conversation.id);
}
