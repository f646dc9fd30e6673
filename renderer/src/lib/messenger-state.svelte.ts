/**
 * What every view shares: the accounts, the conversation list, the settings, the link state.
 * It mirrors the core through the ApiClient: loaded once (and again after a reconnect), then
 * kept current by events. What only one view needs (a thread's messages, the SIP log) lives
 * in that view instead.
 */
import type { Account, ApiEvent, AppInfo, AppSettings, ConversationView } from '../../../shared/api.js';
import type { ApiClient, ConnectionState } from '../api-client.js';

export type View =
  | { readonly name: 'compose'; readonly to?: string }
  | { readonly name: 'conversation'; readonly id: number }
  | { readonly name: 'search' }
  | { readonly name: 'contacts' }
  | { readonly name: 'sip-log' }
  | { readonly name: 'settings'; readonly accountId?: string };

export class MessengerState {
  info = $state<AppInfo | undefined>(undefined);
  accounts = $state<Account[]>([]);
  conversations = $state<ConversationView[]>([]);
  settings = $state<AppSettings | undefined>(undefined);
  connection = $state<ConnectionState>('connecting');
  loaded = $state(false);
  loadError = $state<string | undefined>(undefined);
  currentAccountId = $state<string | undefined>(undefined);
  view = $state<View>({ name: 'compose' });
  /** Latest incoming message, for the live region that announces it. */
  announcement = $state('');

  readonly currentAccount = $derived(this.accounts.find((account) => account.id === this.currentAccountId) ?? this.accounts[0]);
  readonly visibleConversations = $derived(
    this.conversations
      .filter((conversation) => conversation.accountId === this.currentAccount?.id)
      .sort((a, b) => b.lastActivity - a.lastActivity || b.id - a.id),
  );
  readonly totalUnread = $derived(this.conversations.reduce((sum, conversation) => sum + conversation.unread, 0));

  constructor(readonly api: ApiClient) {
    api.onEvent((event) => this.handle(event));
    api.onConnection((state) => {
      this.connection = state;
      if (state === 'open') void this.load();
    });
  }

  async load(): Promise<void> {
    try {
      const [info, accounts, conversations, settings] = await Promise.all([
        this.api.call('app.info', {}),
        this.api.call('accounts.list', {}),
        this.api.call('conversations.list', {}),
        this.api.call('settings.get', {}),
      ]);
      this.info = info;
      this.accounts = [...accounts];
      this.conversations = [...conversations];
      this.settings = settings;
      this.loadError = undefined;
      this.loaded = true;
    } catch (error) {
      this.loadError = error instanceof Error ? error.message : String(error);
    }
  }

  open(view: View): void {
    this.view = view;
  }

  conversation(id: number): ConversationView | undefined {
    return this.conversations.find((conversation) => conversation.id === id);
  }

  private upsertConversation(conversation: ConversationView): void {
    const index = this.conversations.findIndex((known) => known.id === conversation.id);
    if (index < 0) this.conversations.push(conversation);
    else this.conversations[index] = conversation;
  }

  private handle(event: ApiEvent): void {
    switch (event.type) {
      case 'accounts-changed':
        this.accounts = [...event.accounts];
        break;
      case 'registration-changed': {
        const index = this.accounts.findIndex((account) => account.id === event.accountId);
        const account = this.accounts[index];
        if (account !== undefined) this.accounts[index] = { ...account, registration: event.registration };
        break;
      }
      case 'conversation-updated':
        this.upsertConversation(event.conversation);
        break;
      case 'message-received': {
        this.upsertConversation(event.conversation);
        const who = event.conversation.displayName ?? event.conversation.peer.replace(/^sips?:/, '');
        this.announcement = `New message from ${who}: ${event.message.text.slice(0, 140)}`;
        break;
      }
      case 'settings-changed':
        this.settings = event.settings;
        break;
      case 'open':
        if (event.target.view === 'conversation') this.view = { name: 'conversation', id: event.target.conversationId };
        else if (event.target.view === 'compose') this.view = event.target.to === undefined ? { name: 'compose' } : { name: 'compose', to: event.target.to };
        break;
      default:
        break;
    }
  }
}
