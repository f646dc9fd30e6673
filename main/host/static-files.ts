/**
 * The built renderer (build/renderer) as files for the browser host: a URL path maps to a
 * file inside that folder and nowhere else (no `..`, no encoded slashes or NUL, no symlink
 * way out), with a fixed list of content types.
 */
import { realpath, readFile, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
}

/** The file for a URL path, or undefined when there is none (or the path tries to leave `root`). */
export async function readStaticFile(root: string, urlPath: string): Promise<StaticFile | undefined> {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (path === '/' || path === '') path = '/index.html';
  if (!path.startsWith('/') || path.includes('\0') || path.includes('\\') || path.split('/').some((part) => part === '..' || part === '.')) return undefined;
  const contentType = CONTENT_TYPES[extname(path).toLowerCase()];
  if (contentType === undefined) return undefined;
  try {
    const realRoot = await realpath(root);
    const file = await realpath(join(realRoot, path));
    if (!file.startsWith(realRoot + sep)) return undefined;
    if (!(await stat(file)).isFile()) return undefined;
    return { body: await readFile(file), contentType };
  } catch {
    return undefined;
  }
}
