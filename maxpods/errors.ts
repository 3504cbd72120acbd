/** Errors the CLI turns into a message on stderr and an exit status. */

/** Bad flags or flag values: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The flags were fine but the answer cannot be given (unknown type, IMDS unreachable): exit status 1. */
export class CalculatorError extends Error {
  override name = 'CalculatorError';
}
