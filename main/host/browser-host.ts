/**
 * The browser host: the same renderer and the same API as the Electron app, for any browser
 * on this machine. An HTTP server on 127.0.0.1 serves the built renderer, and a WebSocket at
 * `/api` carries shared/api.ts as JSON frames (RequestFrame in, ServerFrame out) to the one
 * core object's `dispatch` and from its events.
 *
 * Who may use it (see access-token.ts):
 *  - bound to 127.0.0.1 only; any other address is refused at start;
 *  - every HTTP request and every WebSocket upgrade must carry the per-launch token (in the
 *    URL or in the cookie set from it on the first visit, after which the URL is cleaned);
 *  - the Host header must name this host (127.0.0.1:PORT or localhost:PORT), which defeats
 *    DNS rebinding;
 *  - a WebSocket upgrade must come from our own Origin, so a page on another site cannot
 *    talk to the API even if it learnt the port;
 *  - the HTML carries a strict Content-Security-Policy (security-headers.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { WS_PATH, type ApiEndpoint, type ApiEvent, type ServerFrame } from '../../shared/api.js';
import { newAccessToken, presentedToken, sameToken, tokenCookieName } from './access-token.js';
import { securityHeaders } from './security-headers.js';
import { readStaticFile } from './static-files.js';

export const LOOPBACK = '127.0.0.1';
/** Largest request frame accepted: a message of 100,000 characters is well under this. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** A client that reads this far behind is dropped rather than buffered without end. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface BrowserHostOptions {
  readonly endpoint: ApiEndpoint;
  /** The built renderer (index.html and assets). */
  readonly rendererDir: string;
  /** 0 = any free port. */
  readonly port?: number;
  /** Must be 127.0.0.1 if given: the host never listens anywhere else. */
  readonly host?: string;
  /** Fixed token for tests; a fresh random one otherwise. */
  readonly token?: string;
}

export interface BrowserHost {
  readonly port: number;
  readonly origin: string;
  /** The address to open: origin plus the token. */
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
}

export async function startBrowserHost(options: BrowserHostOptions): Promise<BrowserHost> {
  if (options.host !== undefined && options.host !== LOOPBACK) {
    throw new Error(`the browser host listens on ${LOOPBACK} only, not ${options.host}`);
  }
  const token = options.token ?? newAccessToken();
  if (token.length < 22) throw new Error('the access token must carry at least 128 bits');
  const server = createServer();
  const sockets = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? 0, host: LOOPBACK, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  const origin = `http://${LOOPBACK}:${port}`;
  const allowedHosts = new Set([`${LOOPBACK}:${port}`, `localhost:${port}`]);
  const allowedOrigins = new Set([origin, `http://localhost:${port}`]);

  server.on('request', (request, response) => {
    handleHttp(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });

  async function handleHttp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const headers = securityHeaders(origin);
    const reply = (status: number, text: string, extra: Record<string, string> = {}): void => {
      response.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', ...extra });
      response.end(request.method === 'HEAD' ? undefined : `${text}\n`);
    };
    if (!allowedHosts.has(request.headers.host ?? '')) return reply(421, 'Misdirected request');
    const url = new URL(request.url ?? '/', origin);
    // `//elsewhere/…` would parse as another host: only paths on this origin are served.
    if (url.origin !== origin) return reply(400, 'Bad request');
    const presented = presentedToken(request, url, port);
    if (presented === undefined || !sameToken(presented.token, token)) {
      return reply(401, 'sipnote: this address needs the token sipnote printed when it started (open that link).');
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'Method not allowed', { Allow: 'GET, HEAD' });
    if (presented.from === 'query') {
      // Keep the token out of the address bar, history and bookmarks: a cookie carries it from now on.
      url.searchParams.delete('token');
      response.writeHead(303, {
        ...headers,
        'Set-Cookie': `${tokenCookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`,
        // One leading slash: `//host` in a Location would send the browser to another site.
        Location: `/${url.pathname.replace(/^\/+/, '')}${url.search}`,
      });
      response.end();
      return;
    }
    const file = await readStaticFile(options.rendererDir, url.pathname);
    if (file === undefined) {
      if (url.pathname === '/' || url.pathname === '/index.html') return reply(503, 'sipnote: the user interface is not built: run `npm run build`.');
      return reply(404, 'Not found');
    }
    response.writeHead(200, { ...headers, 'Content-Type': file.contentType, 'Content-Length': String(file.body.length) });
    response.end(request.method === 'HEAD' ? undefined : file.body);
  }

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, reason: string): void => {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    };
    const url = new URL(request.url ?? '/', origin);
    if (url.origin !== origin || url.pathname !== WS_PATH) return refuse(404, 'Not Found');
    if (!allowedHosts.has(request.headers.host ?? '')) return refuse(421, 'Misdirected Request');
    if (!allowedOrigins.has(request.headers.origin ?? '')) return refuse(403, 'Forbidden');
    const presented = presentedToken(request, url, port);
    if (presented === undefined || !sameToken(presented.token, token)) return refuse(401, 'Unauthorized');
    sockets.handleUpgrade(request, socket, head, (ws) => serveApi(ws, options.endpoint));
  });

  return {
    port,
    origin,
    url: `${origin}/?token=${token}`,
    token,
    close: async () => {
      for (const client of sockets.clients) client.terminate();
      await new Promise<void>((resolve) => sockets.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One WebSocket client: its requests to `dispatch`, every event to it. */
function serveApi(ws: WebSocket, endpoint: ApiEndpoint): void {
  const send = (frame: ServerFrame): void => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      ws.close(1008, 'client too slow');
      return;
    }
    ws.send(JSON.stringify(frame));
  };
  const unsubscribe = endpoint.subscribe((event: ApiEvent) => send({ event }));
  ws.on('close', unsubscribe);
  ws.on('error', unsubscribe);
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const frame = isBinary ? undefined : parseRequestFrame(rawText(data));
    if (frame === undefined) {
      ws.close(1008, 'malformed frame');
      return;
    }
    void endpoint.dispatch(frame.command, frame.args).then((response) => send({ id: frame.id, response }));
  });
}

/** `{ id, command, args }` with a safe-integer id and a string command; the args are checked by dispatch. */
function parseRequestFrame(text: string): { id: number; command: string; args: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { id, command, args } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(id) || typeof command !== 'string') return undefined;
  return { id: id as number, command, args };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

