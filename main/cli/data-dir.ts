/**
 * Where sipnote keeps its data (identities, pinned contact certificates, later the history):
 * `--data-dir DIR` when given, else `$XDG_DATA_HOME/sipnote` (XDG Base Directory
 * Specification: only an absolute XDG_DATA_HOME counts), else `~/.local/share/sipnote`.
 * macOS and Windows follow their own conventions unless XDG_DATA_HOME is set.
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home: string = homedir()): string {
  const xdg = env.XDG_DATA_HOME;
  if (xdg !== undefined && xdg.length > 0 && isAbsolute(xdg)) return join(xdg, 'sipnote');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'sipnote');
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'sipnote');
  return join(home, '.local', 'share', 'sipnote');
}

/** The data dir for a command: the `--data-dir` value (made absolute) or the default. */
export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag === undefined ? defaultDataDir(env) : resolve(flag);
}
