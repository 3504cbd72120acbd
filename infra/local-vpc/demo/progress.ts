/**
 * One live status line. On a terminal it is rewritten in place; into a pipe or a log file each
 * distinct status becomes its own line, so a CI log still shows how the pool grew.
 */
export class Progress {
  private last = '';
  private live = false;
  private readonly started = Date.now();
  private lastPrinted = 0;
  private silent = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly tty: boolean = out.isTTY === true,
    private readonly minIntervalMs = 1_000,
  ) {}

  /** Shows `text` as the current status (skipped when unchanged). */
  update(text: string): void {
    if (this.silent || text === this.last) return;
    // Into a log, one line a second is plenty; the report has the final numbers.
    if (!this.tty && Date.now() - this.lastPrinted < this.minIntervalMs) return;
    this.last = text;
    this.lastPrinted = Date.now();
    const stamped = `[${((Date.now() - this.started) / 1000).toFixed(1).padStart(5)}s] ${text}`;
    if (this.tty) {
      this.out.write(`\r\x1b[K${stamped}`);
      this.live = true;
    } else {
      this.out.write(`${stamped}\n`);
    }
  }

  /** Prints a permanent line (ending any live status line first). */
  log(text: string): void {
    if (this.silent) return;
    this.clear();
    this.out.write(`${text}\n`);
  }

  /** No more output at all (nobody reads it any more). */
  silence(): void {
    this.silent = true;
  }

  /** Ends the live line so the next output starts on a fresh line. */
  clear(): void {
    if (this.live && !this.silent) this.out.write('\r\x1b[K');
    this.live = false;
    this.last = '';
  }
}
