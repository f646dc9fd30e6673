/**
 * The Electron main process: a thin shell around the one core object (main/im/messenger.ts).
 * It never runs in this repository's CI (Electron's binary cannot be downloaded here); it is
 * type-checked against electron.d.ts, and everything behind it is tested through the browser
 * host, which serves the same API to the same renderer. Nothing else may import this file:
 * requiring 'electron' under plain Node throws.
 *
 * Security, following Electron's own checklist:
 *  - every window: contextIsolation, sandbox, no nodeIntegration, webSecurity, no webviews;
 *  - the renderer is served from a privileged `app://sipnote/` scheme with a strict CSP
 *    header (and the same policy in index.html);
 *  - navigation away from it and new windows are denied (http/https links go to the browser);
 *  - every permission request and check is denied (no camera, no microphone, …), except
 *    notifications for our own pages (see notify below);
 *  - one IPC channel, whose sender frame is checked, hands `(command, args)` to
 *    `Messenger.dispatch`, which validates every argument before anything happens.
 *
 * Desktop behaviour: one instance (a second launch focuses the first and passes on its
 * sip:/sips:/im: link); a tray icon with the unread count and the registration state; a
 * small quick-send window (To + text + Enter) from the tray and a global shortcut; native
 * notifications for incoming messages (a click opens the conversation); an app menu with the
 * usual shortcuts; closing the window keeps sipnote in the tray.
 */
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  app,
  BrowserWindow,
  globalShortcut,
  ipcMain,
  Menu,
  nativeImage,
  Notification,
  powerMonitor,
  protocol,
  session,
  shell,
  Tray,
  type IpcMainInvokeEvent,
  type MenuItemConstructorOptions,
  type NativeImage,
  type WebContents,
} from 'electron';
import { IPC_EVENT_CHANNEL, IPC_INVOKE_CHANNEL, type ApiEvent, type ApiResponse, type AppSettings, type OpenTarget } from '../../shared/api.js';
import { defaultDataDir } from '../cli/data-dir.js';
import { Messenger } from '../im/messenger.js';
import { contentSecurityPolicy } from '../host/security-headers.js';
import { drawTrayIcon } from './tray-icon.js';

const SCHEME = 'app';
const APP_ORIGIN = `${SCHEME}://sipnote`;
const RENDERER_DIR = fileURLToPath(new URL('../../renderer/', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./preload.cjs', import.meta.url));
const LINK_SCHEMES = ['sip', 'sips', 'im'] as const;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

// Must happen before `ready`: the renderer's scheme behaves like https (secure, standard origin).
protocol.registerSchemesAsPrivileged([{ scheme: SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

let messenger: Messenger | undefined;
let mainWindow: BrowserWindow | undefined;
let quickSendWindow: BrowserWindow | undefined;
let tray: Tray | undefined;
let quitting = false;
let registeredShortcut: string | undefined;
let unread = 0;
let registrationSummary = '';
let settings: AppSettings | undefined;

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', (_event, argv) => {
    const link = linkIn(argv);
    if (link !== undefined) openTarget({ view: 'compose', to: link });
    else showMainWindow();
  });
  // macOS delivers links this way, also before `ready`.
  app.on('open-url', (event, url) => {
    event.preventDefault();
    void app.whenReady().then(() => openTarget({ view: 'compose', to: url }));
  });
  app.on('web-contents-created', (_event, contents) => lockDown(contents));
  app.on('before-quit', () => {
    quitting = true;
  });
  app.on('will-quit', (event) => {
    globalShortcut.unregisterAll();
    const closing = messenger;
    if (closing === undefined) return;
    messenger = undefined;
    event.preventDefault();
    void closing.close().finally(() => app.quit());
  });
  app.on('activate', () => showMainWindow());
  app.whenReady().then(start, (error: unknown) => {
    console.error('sipnote: could not start', error);
    app.exit(1);
  });
}

async function start(): Promise<void> {
  for (const scheme of LINK_SCHEMES) app.setAsDefaultProtocolClient(scheme);
  protocol.handle(SCHEME, serveRenderer);
  // Only notifications, only for our pages: the renderer raises those for a focused window
  // that shows another view (renderer/src/lib/notifications.ts); notify() below the rest.
  session.defaultSession.setPermissionRequestHandler((contents, permission, callback) =>
    callback(permission === 'notifications' && contents.getURL().startsWith(`${APP_ORIGIN}/`)),
  );
  session.defaultSession.setPermissionCheckHandler((_contents, permission, requestingOrigin) => permission === 'notifications' && requestingOrigin === APP_ORIGIN);

  // The same data dir as every sipnote command (and `sipnote ui`), so they share the accounts
  // and the history (the store, DATA_DIR/sipnote.db).
  messenger = await Messenger.open({ dataDir: defaultDataDir(), version: app.getVersion() });
  const core = messenger;
  // Waking from sleep usually means a new network: waiting retries go now (the core also
  // polls the network interfaces, network-watch.ts).
  powerMonitor.on('resume', () => core.networkChanged());
  ipcMain.handle(IPC_INVOKE_CHANNEL, (event: IpcMainInvokeEvent, command: unknown, args: unknown): Promise<ApiResponse<unknown>> | ApiResponse<unknown> => {
    if (!fromOurRenderer(event)) return { ok: false, error: { code: 'failed', message: 'not allowed from this frame' } };
    return core.dispatch(typeof command === 'string' ? command : '', args);
  });
  core.subscribe(onCoreEvent);

  settings = (await core.call('settings.get', {})) as AppSettings;
  unread = (await core.call('conversations.list', {})).reduce((sum, conversation) => sum + conversation.unread, 0);
  applySettings(settings);
  Menu.setApplicationMenu(Menu.buildFromTemplate(menuTemplate()));
  createTray();
  showMainWindow();
  const link = linkIn(process.argv);
  if (link !== undefined) openTarget({ view: 'compose', to: link });
}

// ---- Windows ----------------------------------------------------------------------------------

const SECURE_PREFERENCES = {
  preload: PRELOAD,
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  spellcheck: true,
} as const;

function showMainWindow(): BrowserWindow {
  if (mainWindow === undefined || mainWindow.isDestroyed()) {
    const window = new BrowserWindow({
      width: 1120,
      height: 740,
      minWidth: 720,
      minHeight: 480,
      show: false,
      title: 'sipnote',
      autoHideMenuBar: process.platform !== 'darwin',
      webPreferences: SECURE_PREFERENCES,
    });
    window.once('ready-to-show', () => window.show());
    // Closing the window keeps sipnote running in the tray, where messages still arrive.
    window.on('close', (event) => {
      if (!quitting && tray !== undefined) {
        event.preventDefault();
        window.hide();
      }
    });
    void window.loadURL(`${APP_ORIGIN}/index.html`);
    mainWindow = window;
    return window;
  }
  if (mainWindow.isMinimized()) mainWindow.restore();
  mainWindow.show();
  mainWindow.focus();
  return mainWindow;
}

function showQuickSend(to?: string): void {
  quickSendWindow?.destroy();
  const window = new BrowserWindow({
    width: 440,
    height: 220,
    resizable: false,
    minimizable: false,
    maximizable: false,
    fullscreenable: false,
    alwaysOnTop: true,
    skipTaskbar: true,
    show: false,
    title: 'Quick send — sipnote',
    webPreferences: SECURE_PREFERENCES,
  });
  window.setMenuBarVisibility(false);
  window.once('ready-to-show', () => {
    window.show();
    window.focus();
  });
  window.on('blur', () => window.close());
  const hash = to === undefined ? '#quick-send' : `#quick-send?to=${encodeURIComponent(to)}`;
  void window.loadURL(`${APP_ORIGIN}/index.html${hash}`);
  quickSendWindow = window;
}

function openTarget(target: OpenTarget): void {
  if (target.view === 'quick-send') {
    showQuickSend(target.to);
    return;
  }
  const window = showMainWindow();
  const send = (): void => window.webContents.send(IPC_EVENT_CHANNEL, { type: 'open', target } satisfies ApiEvent);
  if (window.webContents.isLoading()) window.webContents.once('did-finish-load', send);
  else send();
}

/** Denies navigation, new windows and webviews for every web contents (Electron security checklist §12–14). */
function lockDown(contents: WebContents): void {
  contents.on('will-navigate', (event, url) => {
    if (!url.startsWith(`${APP_ORIGIN}/`)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!url.startsWith(`${APP_ORIGIN}/`)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (/^https?:\/\//i.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

/** Only our own pages (top frame or not) may call the core. */
function fromOurRenderer(event: IpcMainInvokeEvent): boolean {
  const url = event.senderFrame?.url ?? '';
  return url.startsWith(`${APP_ORIGIN}/`);
}

/** app://sipnote/PATH → a file in build/renderer, never outside it, with the CSP header. */
async function serveRenderer(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const relative = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
  const file = normalize(join(RENDERER_DIR, relative));
  const type = CONTENT_TYPES[extname(file).toLowerCase()];
  if (url.host !== 'sipnote' || !file.startsWith(RENDERER_DIR.endsWith(sep) ? RENDERER_DIR : `${RENDERER_DIR}${sep}`) || type === undefined) {
    return new Response('Not found', { status: 404 });
  }
  try {
    return new Response(await readFile(file), {
      headers: { 'Content-Type': type, 'Content-Security-Policy': contentSecurityPolicy(APP_ORIGIN), 'X-Content-Type-Options': 'nosniff' },
    });
  } catch {
    return new Response('Not found', { status: 404 });
  }
}

// ---- Events from the core ------------------------------------------------------------------------

function onCoreEvent(event: ApiEvent): void {
  for (const window of BrowserWindow.getAllWindows()) {
    if (!window.isDestroyed()) window.webContents.send(IPC_EVENT_CHANNEL, event);
  }
  switch (event.type) {
    case 'message-received':
      notify(event);
      break;
    case 'conversation-updated':
      void refreshUnread();
      break;
    case 'registration-changed':
      registrationSummary = event.registration.state === 'disabled' ? 'peer to peer' : event.registration.state;
      updateTray();
      break;
    case 'settings-changed':
      applySettings(event.settings);
      break;
    default:
      break;
  }
}

/**
 * The rule of renderer/src/lib/notifications.ts (notify unless the conversation is on screen
 * in a focused window), split: this native notification while the window is not focused
 * (it can bring a hidden window back), the renderer's own while it is focused on another view.
 */
function notify(event: Extract<ApiEvent, { type: 'message-received' }>): void {
  if (settings?.notifications === false || !Notification.isSupported()) return;
  if (mainWindow?.isFocused() === true) return;
  const from = event.conversation.displayName ?? event.conversation.peer.replace(/^sips?:/, '');
  const notification = new Notification({ title: from, body: event.message.text.slice(0, 240) });
  notification.on('click', () => openTarget({ view: 'conversation', conversationId: event.conversation.id }));
  notification.show();
}

async function refreshUnread(): Promise<void> {
  if (messenger === undefined) return;
  const conversations = await messenger.call('conversations.list', {});
  unread = conversations.reduce((sum, conversation) => sum + conversation.unread, 0);
  app.setBadgeCount(unread);
  updateTray();
}

function applySettings(next: AppSettings): void {
  settings = next;
  app.setLoginItemSettings({ openAtLogin: next.startAtLogin });
  if (registeredShortcut !== next.quickSendShortcut) {
    if (registeredShortcut !== undefined) globalShortcut.unregister(registeredShortcut);
    registeredShortcut = undefined;
    try {
      if (globalShortcut.register(next.quickSendShortcut, () => showQuickSend())) registeredShortcut = next.quickSendShortcut;
    } catch {
      // An accelerator Electron cannot parse: the setting stays, the shortcut does not work.
    }
  }
}

// ---- Tray and menu ----------------------------------------------------------------------------------

function trayImage(): NativeImage {
  const bitmap = drawTrayIcon(32, unread > 0);
  return nativeImage.createFromBitmap(bitmap.data, { width: bitmap.width, height: bitmap.height });
}

function createTray(): void {
  tray = new Tray(trayImage());
  tray.on('click', () => showQuickSend());
  updateTray();
}

function updateTray(): void {
  if (tray === undefined) return;
  const unreadText = unread === 0 ? 'no unread messages' : `${unread} unread`;
  tray.setImage(trayImage());
  tray.setToolTip(`sipnote — ${unreadText}${registrationSummary === '' ? '' : ` — ${registrationSummary}`}`);
  if (process.platform === 'darwin') tray.setTitle(unread === 0 ? '' : String(unread));
  tray.setContextMenu(
    Menu.buildFromTemplate([
      { label: unread === 0 ? 'No unread messages' : `${unread} unread`, enabled: false },
      { label: registrationSummary === '' ? 'Starting…' : `Account: ${registrationSummary}`, enabled: false },
      { type: 'separator' },
      { label: 'Quick send…', accelerator: settings?.quickSendShortcut, click: () => showQuickSend() },
      { label: 'Open sipnote', click: () => showMainWindow() },
      { type: 'separator' },
      { label: 'Quit sipnote', role: 'quit' },
    ]),
  );
}

function menuTemplate(): MenuItemConstructorOptions[] {
  const mac = process.platform === 'darwin';
  return [
    ...(mac ? [{ role: 'appMenu' } as MenuItemConstructorOptions] : []),
    {
      label: '&File',
      submenu: [
        { label: 'New Message', accelerator: 'CmdOrCtrl+N', click: () => openTarget({ view: 'compose' }) },
        { label: 'Quick Send…', accelerator: 'CmdOrCtrl+Shift+N', click: () => showQuickSend() },
        { type: 'separator' },
        mac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: '&View',
      submenu: [{ role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' }],
    },
    { role: 'windowMenu' },
    { role: 'help', submenu: [{ role: 'about' }] },
  ];
}

/** A sip:, sips: or im: link among command-line arguments (how Linux and Windows pass protocol links). */
function linkIn(argv: readonly string[]): string | undefined {
  return argv.find((arg) => LINK_SCHEMES.some((scheme) => arg.toLowerCase().startsWith(`${scheme}:`)));
}
