/**
 * The browser host's doors: loopback only, the per-launch token on every request and
 * WebSocket, the Host and Origin checks, the CSP, no path traversal; and `sipnote ui`'s
 * arguments and its `--json` line.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ApiEndpoint, ApiEvent, ServerFrame } from '../../shared/api.js';
import { startBrowserHost, type BrowserHost } from '../../main/host/browser-host.js';
import { parseUiArgs, uiCommand } from '../../main/cli/ui-command.js';
import { UsageError } from '../../main/cli/usage-error.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const cleanups = cleanupsAfterEach();

/** A stand-in core that records what reaches it. */
function fakeEndpoint(): ApiEndpoint & { calls: Array<[string, unknown]>; emit(event: ApiEvent): void } {
  const listeners = new Set<(event: ApiEvent) => void>();
  const calls: Array<[string, unknown]> = [];
  return {
    calls,
    async dispatch(command, args) {
      calls.push([command, args]);
      return { ok: true, value: { echo: command } };
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(event) {
      for (const listener of listeners) listener(event);
    },
  };
}

function rendererDir(): string {
  const dir = tempDir(cleanups, 'sipnote-renderer-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>sipnote</title>');
  writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, '..', 'secret.txt'.replace('secret', `secret-${process.pid}`)), 'do not serve');
  cleanups.push(() => rmSync(join(dir, '..', `secret-${process.pid}.txt`), { force: true }));
  return dir;
}

async function host(): Promise<{ host: BrowserHost; endpoint: ReturnType<typeof fakeEndpoint> }> {
  const endpoint = fakeEndpoint();
  const started = await startBrowserHost({ endpoint, rendererDir: rendererDir() });
  cleanups.push(() => started.close());
  return { host: started, endpoint };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves 'open' or the refusal's status. */
function openSocket(url: string, headers: Record<string, string>): Promise<{ socket: WebSocket } | { refused: number }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => {
      cleanups.push(() => socket.terminate());
      resolve({ socket });
    });
    socket.once('unexpected-response', (_req, res) => {
      resolve({ refused: res.statusCode ?? 0 });
      res.resume();
      socket.terminate();
    });
    socket.once('error', () => undefined);
  });
}

function nextFrame(socket: WebSocket): Promise<ServerFrame> {
  return new Promise((resolve) => socket.once('message', (data) => resolve(JSON.parse(String(data)) as ServerFrame)));
}

describe('startBrowserHost', () => {
  it('listens on 127.0.0.1 only and refuses any other address', async () => {
    const { host: started } = await host();
    expect(started.origin).toBe(`http://127.0.0.1:${started.port}`);
    expect(started.token.length).toBeGreaterThanOrEqual(43); // 256 bits in base64url
    await expect(startBrowserHost({ endpoint: fakeEndpoint(), rendererDir: '.', host: '0.0.0.0' })).rejects.toThrow(/127\.0\.0\.1 only/);
    await expect(startBrowserHost({ endpoint: fakeEndpoint(), rendererDir: '.', host: '::1' })).rejects.toThrow(/127\.0\.0\.1 only/);
    await expect(startBrowserHost({ endpoint: fakeEndpoint(), rendererDir: '.', token: 'short' })).rejects.toThrow(/128 bits/);
    // Nothing answers on the IPv6 loopback (or any other address) at that port.
    const v6 = await new Promise<string>((resolve) => {
      const socket = connect({ host: '::1', port: started.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    expect(v6).not.toBe('connected');
  });

  it('answers 401 without the token or with a wrong one, and never serves a file then', async () => {
    const { host: started } = await host();
    for (const path of ['/', '/index.html', '/assets/app.js', `/?token=${'A'.repeat(started.token.length)}`, '/?token=']) {
      const reply = await get(started.port, path);
      expect(reply.status, path).toBe(401);
      expect(reply.body).not.toContain('<title>');
    }
    const wrongCookie = await get(started.port, '/', { cookie: `sipnote-token-${started.port}=${started.token.slice(1)}x` });
    expect(wrongCookie.status).toBe(401);
  });

  it('trades the token in the URL for a cookie, then serves the renderer with a strict CSP', async () => {
    const { host: started } = await host();
    const first = await get(started.port, `/?token=${started.token}`);
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/');
    const cookie = String(first.headers['set-cookie']).split(';')[0] as string;
    expect(first.headers['set-cookie']?.[0]).toMatch(/HttpOnly; SameSite=Strict; Path=\//);
    const page = await get(started.port, '/', { cookie });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>sipnote</title>');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect((await get(started.port, '/assets/app.js', { cookie })).headers['content-type']).toMatch(/^text\/javascript/);
  });

  it('refuses a foreign Host header (DNS rebinding), path traversal and other methods', async () => {
    const { host: started } = await host();
    const cookie = `sipnote-token-${started.port}=${started.token}`;
    expect((await get(started.port, '/', { cookie, host: `evil.example:${started.port}` })).status).toBe(421);
    expect((await get(started.port, '//evil.example/', { cookie })).status).toBe(400);
    const sneaky = await get(started.port, `/.//evil.example/?token=${started.token}`);
    expect(sneaky.status).toBe(303);
    expect(sneaky.headers.location).toBe('/evil.example/');
    for (const path of ['/../secret-' + process.pid + '.txt', '/%2e%2e/secret-' + process.pid + '.txt', '/assets/..%2f..%2fsecret-' + process.pid + '.txt', '/nope.html']) {
      const reply = await get(started.port, path, { cookie });
      expect(reply.status, path).toBe(404);
      expect(reply.body).not.toContain('do not serve');
    }
  });

  it('opens the API WebSocket only with the token and from our own Origin', async () => {
    const { host: started, endpoint } = await host();
    const url = `ws://127.0.0.1:${started.port}/api`;
    const cookie = `sipnote-token-${started.port}=${started.token}`;
    expect(await openSocket(url, { origin: started.origin })).toEqual({ refused: 401 });
    expect(await openSocket(`${url}?token=wrong`, { origin: started.origin })).toEqual({ refused: 401 });
    expect(await openSocket(url, { cookie, origin: 'http://evil.example' })).toEqual({ refused: 403 });
    expect(await openSocket(url, { cookie, origin: `http://127.0.0.1:${started.port + 1}` })).toEqual({ refused: 403 });
    expect(await openSocket(url, { cookie })).toEqual({ refused: 403 });
    expect(await openSocket(`ws://127.0.0.1:${started.port}/other`, { cookie, origin: started.origin })).toEqual({ refused: 404 });
    expect(endpoint.calls).toEqual([]);

    const opened = await openSocket(url, { cookie, origin: started.origin });
    if (!('socket' in opened)) throw new Error(`refused ${opened.refused}`);
    const reply = nextFrame(opened.socket);
    opened.socket.send(JSON.stringify({ id: 7, command: 'accounts.list', args: {} }));
    expect(await reply).toEqual({ id: 7, response: { ok: true, value: { echo: 'accounts.list' } } });
    const event = nextFrame(opened.socket);
    endpoint.emit({ type: 'composing', conversationId: 1, active: true });
    expect(await event).toEqual({ event: { type: 'composing', conversationId: 1, active: true } });

    // The token in the query works too (for clients without cookies).
    const byQuery = await openSocket(`${url}?token=${started.token}`, { origin: started.origin });
    expect('socket' in byQuery).toBe(true);
  });

  it('closes a connection that sends a malformed frame, without calling the core', async () => {
    const { host: started, endpoint } = await host();
    for (const bad of ['not json', '[]', '{"id":"1","command":"x"}', '{"id":1,"command":5}', '{"id":1.5,"command":"x"}']) {
      const opened = await openSocket(`ws://127.0.0.1:${started.port}/api?token=${started.token}`, { origin: started.origin });
      if (!('socket' in opened)) throw new Error('refused');
      const closed = new Promise<number>((resolve) => opened.socket.once('close', (code) => resolve(code)));
      opened.socket.send(bad);
      expect(await closed, bad).toBe(1008);
    }
    expect(endpoint.calls).toEqual([]);
  });
});

describe('sipnote ui', () => {
  it('parses its arguments', () => {
    expect(parseUiArgs([])).toEqual({ port: 0, json: false });
    expect(parseUiArgs(['--data-dir', '/tmp/x', '--port', '8123', '--json'])).toEqual({ dataDir: '/tmp/x', port: 8123, json: true });
    for (const bad of [['--port', '70000'], ['--port', 'abc'], ['--port=-1'], ['extra'], ['--data-dir', '']]) {
      expect(() => parseUiArgs(bad), bad.join(' ')).toThrow(UsageError);
    }
    expect(() => parseUiArgs(['--bogus'])).toThrow(/Unknown option/);
  });

  it('prints {"event":"ui","url":…} with a token, serves until stopped, then frees the port', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const dataDir = tempDir(cleanups, 'sipnote-ui-');
    const exit = uiCommand(parseUiArgs(['--json', '--data-dir', dataDir]), { stdin: new PassThrough(), stdout, stderr }, stopped, { rendererDir: rendererDir() });
    while (!out.includes('\n')) await new Promise((resolve) => stdout.once('data', resolve));
    const line = JSON.parse(out.split('\n')[0] as string) as { event: string; url: string };
    expect(line.event).toBe('ui');
    expect(line.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    const url = new URL(line.url);
    expect((await get(Number(url.port), `/${url.search}`)).status).toBe(303);
    stop();
    expect(await exit).toBe(0);
    expect(existsSync(join(dataDir, 'config.json'))).toBe(false);
    await expect(get(Number(url.port), '/')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fails clearly when the renderer is not built', async () => {
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await uiCommand(parseUiArgs([]), { stdin: new PassThrough(), stdout: new PassThrough(), stderr }, Promise.resolve(), { rendererDir: '/nonexistent/renderer' });
    expect(code).toBe(1);
    expect(err).toContain('npm run build');
  });
});
