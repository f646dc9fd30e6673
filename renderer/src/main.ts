/**
 * The renderer's entry: connect to the core (Electron bridge or the browser host's WebSocket)
 * and show the messenger, or only the quick-send form when opened as `#quick-send` (the tray's
 * small window).
 */
import { mount } from 'svelte';
import App from './App.svelte';
import QuickSend from './components/QuickSend.svelte';
import { createApiClient } from './connect.js';
import { MessengerState } from './lib/messenger-state.svelte.js';
import './styles.css';

const target = document.getElementById('app');
if (target === null) throw new Error('index.html has no #app element');
const app = new MessengerState(createApiClient());
const quickSend = location.hash.startsWith('#quick-send');
document.documentElement.classList.toggle('quick-send-window', quickSend);
mount(quickSend ? QuickSend : App, { target, props: { app } });
