import { expect } from 'vitest';
import { CniError } from '../../../cni/errors.js';

/** Runs fn, which must throw a CniError, and returns its code and message. */
export function codeOf(fn: () => unknown): { code: number; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return { code: (err as CniError).code, message: (err as CniError).message };
  }
  throw new Error('expected an error');
}
