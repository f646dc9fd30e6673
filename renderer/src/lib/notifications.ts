/**
 * Notifications for incoming messages raised by the page, through the Web Notification API.
 *
 * The rule, the same in both shells: notify when the settings allow it and the user would not
 * otherwise see the message, i.e. the window is hidden or not focused, or it shows something
 * other than that conversation. Clicking the notification brings the window forward and opens
 * the conversation. One notification per conversation at a time (its `tag`): a newer message
 * replaces the older one instead of piling up.
 *
 * - In a browser (the browser host) the page raises all of them (scope `all`). The browser
 *   asks the user for permission once (`requestNotificationPermission`, from a click in
 *   Settings: browsers refuse a request that no gesture started).
 * - In the Electron app the main process raises native ones while the window is not focused
 *   (main/app/main.ts: it can show a hidden window when one is clicked), and the page raises
 *   the rest (scope `focused-window`): the window has the focus but shows another view, which
 *   only the page knows. Electron grants our own origin the permission.
 */
import type { ApiEvent } from '../../../shared/api.js';
import { peerName } from './format.js';
import type { MessengerState } from './messenger-state.svelte.js';

/** What the rule looks at, read at the moment a message arrives. */
export interface AttentionState {
  /** The "Notify me of incoming messages" setting. */
  readonly enabled: boolean;
  /** The page is visible (not a background tab, not minimised). */
  readonly visible: boolean;
  /** The window has the keyboard focus. */
  readonly focused: boolean;
  /** The conversation on screen, if one is. */
  readonly openConversationId: number | undefined;
}

export function shouldNotify(attention: AttentionState, conversationId: number): boolean {
  if (!attention.enabled) return false;
  return !attention.visible || !attention.focused || attention.openConversationId !== conversationId;
}

export type NotificationAccess = NotificationPermission | 'unsupported';

export function notificationAccess(): NotificationAccess {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

/** Must run from a user gesture (a click). */
export async function requestNotificationPermission(): Promise<NotificationAccess> {
  if (typeof Notification === 'undefined') return 'unsupported';
  return Notification.requestPermission();
}

function attentionOf(app: MessengerState): AttentionState {
  return {
    enabled: app.settings?.notifications !== false,
    visible: document.visibilityState === 'visible',
    focused: document.hasFocus(),
    openConversationId: app.view.name === 'conversation' ? app.view.id : undefined,
  };
}

/** Which messages the page raises notifications for (see the file comment). */
export type NotificationScope = 'all' | 'focused-window';

/** Raises a notification for each incoming message the rule lets through. Returns the function that stops. */
export function startPageNotifications(app: MessengerState, scope: NotificationScope): () => void {
  return app.api.onEvent((event: ApiEvent) => {
    if (event.type !== 'message-received' || notificationAccess() !== 'granted') return;
    const conversationId = event.conversation.id;
    const attention = attentionOf(app);
    if (!shouldNotify(attention, conversationId)) return;
    // The window is not focused (or hidden): Electron's main process notifies natively.
    if (scope === 'focused-window' && !(attention.visible && attention.focused)) return;
    const notification = new Notification(peerName(event.conversation.peer, event.conversation.displayName), {
      body: event.message.text.slice(0, 240),
      tag: `sipnote-conversation-${conversationId}`,
      icon: './icon.svg',
    });
    notification.addEventListener('click', () => {
      window.focus();
      app.open({ name: 'conversation', id: conversationId });
      notification.close();
    });
  });
}
