/**
 * The renderer's entry: connect to the core (Electron bridge or the browser host's WebSocket)
 * and show the messenger, or only the quick-send form when opened as `#quick-send` (the tray's
 * small window). The main window also raises notifications for incoming messages
 * (lib/notifications.ts).
 */
import { mount } from 'svelte';
import App from './App.svelte';
import QuickSend from './components/QuickSend.svelte';
import { createApiClient } from './connect.js';
import { MessengerState } from './lib/messenger-state.svelte.js';
import { startPageNotifications } from './lib/notifications.js';
import './styles.css';

const target = document.getElementById('app');
if (target === null) throw new Error('index.html has no #app element');
const app = new MessengerState(createApiClient());
const quickSend = location.hash.startsWith('#quick-send');
document.documentElement.classList.toggle('quick-send-window', quickSend);
mount(quickSend ? QuickSend : App, { target, props: { app } });
// In a browser the main window raises every notification; in Electron the main process raises
// those for an unfocused window, and the page those it alone can tell (lib/notifications.ts).
if (!quickSend) startPageNotifications(app, app.api.kind === 'websocket' ? 'all' : 'focused-window');
