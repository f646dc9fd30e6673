/**
 * The tray icon, drawn in code (no image file, no image library): a rounded blue square with
 * a white speech bubble, and a red dot when messages are unread. Returns raw BGRA pixels,
 * the format Electron's `nativeImage.createFromBitmap` takes. Pure: no Electron import, so
 * it can be tested under Node.
 */
export interface TrayBitmap {
  readonly width: number;
  readonly height: number;
  /** BGRA, row-major, premultiplied-free (alpha 0 or 255 with soft edges). */
  readonly data: Buffer;
}

type Rgb = readonly [number, number, number];
const BLUE: Rgb = [37, 99, 235];
const WHITE: Rgb = [255, 255, 255];
const RED: Rgb = [220, 38, 38];

export function drawTrayIcon(size: number, unread: boolean): TrayBitmap {
  const data = Buffer.alloc(size * size * 4);
  const s = size / 32;
  const put = (x: number, y: number, color: Rgb, alpha: number): void => {
    if (alpha <= 0) return;
    const at = (y * size + x) * 4;
    const a = Math.min(1, alpha);
    const old = (data[at + 3] ?? 0) / 255;
    const out = a + old * (1 - a);
    const mix = (channel: number, value: number): number => Math.round((value * a + channel * old * (1 - a)) / (out || 1));
    data[at] = mix(data[at] ?? 0, color[2]);
    data[at + 1] = mix(data[at + 1] ?? 0, color[1]);
    data[at + 2] = mix(data[at + 2] ?? 0, color[0]);
    data[at + 3] = Math.round(out * 255);
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const px = (x + 0.5) / s;
      const py = (y + 0.5) / s;
      put(x, y, BLUE, coverage(roundedRect(px, py, 1, 1, 31, 31, 7), s));
      // The bubble: a rounded rectangle with a tail at the lower left.
      const bubble = Math.min(roundedRect(px, py, 7, 8, 25, 21, 4), tail(px, py));
      put(x, y, WHITE, coverage(bubble, s));
      if (unread) put(x, y, RED, coverage(Math.hypot(px - 26, py - 6) - 5.5, s));
    }
  }
  return { width: size, height: size, data };
}

/** Signed distance to a rounded rectangle (negative inside). */
function roundedRect(x: number, y: number, left: number, top: number, right: number, bottom: number, radius: number): number {
  const cx = (left + right) / 2;
  const cy = (top + bottom) / 2;
  const qx = Math.abs(x - cx) - ((right - left) / 2 - radius);
  const qy = Math.abs(y - cy) - ((bottom - top) / 2 - radius);
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - radius;
}

/** The bubble's tail: a triangle below its left side. */
function tail(x: number, y: number): number {
  if (y < 20 || y > 26 || x < 10) return 1;
  return x - (10 + (26 - y) * 1.2) <= 0 ? -1 : x - (10 + (26 - y) * 1.2);
}

/** Anti-aliasing: how much of the pixel a shape at distance `d` covers. */
function coverage(distance: number, scale: number): number {
  return Math.max(0, Math.min(1, 0.5 - distance * scale));
}
