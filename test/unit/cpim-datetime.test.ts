/**
 * `parseCpimDateTime` against the implementation it replaced (setUTCFullYear and setUTCHours
 * on every call): the Date.UTC shortcut for years from 100 on must give the same instants,
 * leap seconds and offsets included, and the same errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { ParseError } from '../../main/sip/message/parse-error.js';
import { parseCpimDateTime } from '../../main/im/cpim.js';

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** The previous implementation, verbatim in substance: the reference. */
function referenceParse(text: string): { time: number; utcOffsetMinutes: number } | 'error' {
  const m = DATE_TIME.exec(text);
  if (m === null) return 'error';
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const offsetHours = Number(m[10] ?? 0);
  const offsetMinutesPart = Number(m[11] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 60 || offsetHours > 23 || offsetMinutesPart > 59) {
    return 'error';
  }
  const utcOffsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutesPart) || 0;
  const millis = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'));
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  return { time: date.getTime() - utcOffsetMinutes * 60_000, utcOffsetMinutes };
}

function actualParse(text: string): { time: number; utcOffsetMinutes: number } | 'error' {
  try {
    const { date, utcOffsetMinutes } = parseCpimDateTime(text);
    return { time: date.getTime(), utcOffsetMinutes };
  } catch (error) {
    if (error instanceof ParseError) return 'error';
    throw error;
  }
}

const pad = (value: number, width: number): string => String(value).padStart(width, '0');

describe('parseCpimDateTime', () => {
  it('gives the instants of the reference implementation', () => {
    const text = fc
      .record({
        year: fc.oneof(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 9999 })),
        month: fc.integer({ min: 0, max: 13 }),
        day: fc.integer({ min: 0, max: 32 }),
        hour: fc.integer({ min: 0, max: 24 }),
        minute: fc.integer({ min: 0, max: 60 }),
        second: fc.integer({ min: 0, max: 61 }),
        fraction: fc.option(fc.stringMatching(/^\d{1,6}$/), { nil: undefined }),
        offset: fc.oneof(fc.constantFrom('Z', 'z'), fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 })).map(([sign, h, m]) => `${sign}${pad(h, 2)}:${pad(m, 2)}`)),
      })
      .map((d) => `${pad(d.year, 4)}-${pad(d.month, 2)}-${pad(d.day, 2)}T${pad(d.hour, 2)}:${pad(d.minute, 2)}:${pad(d.second, 2)}${d.fraction === undefined ? '' : `.${d.fraction}`}${d.offset}`);
    fc.assert(
      fc.property(text, (value) => {
        expect(actualParse(value)).toEqual(referenceParse(value));
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps years 0–99 as written and rolls a leap second over', () => {
    expect(parseCpimDateTime('0099-12-31T23:59:60Z').date.toISOString()).toBe('0100-01-01T00:00:00.000Z');
    expect(parseCpimDateTime('2016-12-31T23:59:60.5+01:00').date.toISOString()).toBe('2016-12-31T23:00:00.500Z');
  });
});
