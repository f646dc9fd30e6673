/**
 * Positions of the rows of a virtualised list whose rows have different heights: each row is
 * its measured height once it has been on screen, an estimate until then. `offsetOf` and
 * `indexAt` answer in O(1) and O(log n) from prefix sums, rebuilt lazily (O(n), well under a
 * millisecond for 100,000 rows) after heights change, so a frame never rebuilds twice.
 */
export class RowHeights {
  private heights: Float64Array;
  private measured: Uint8Array;
  private prefix: Float64Array;
  private dirty = true;
  private count = 0;

  constructor(private readonly estimate: number) {
    this.heights = new Float64Array(0);
    this.measured = new Uint8Array(0);
    this.prefix = new Float64Array(1);
  }

  get length(): number {
    return this.count;
  }

  /** Grows (new rows at the end get the estimate) or shrinks to `count` rows. */
  resize(count: number): void {
    if (count === this.count) return;
    if (count > this.heights.length) {
      const capacity = Math.max(count, this.heights.length * 2, 64);
      const heights = new Float64Array(capacity);
      heights.set(this.heights.subarray(0, this.count));
      const measured = new Uint8Array(capacity);
      measured.set(this.measured.subarray(0, this.count));
      this.heights = heights;
      this.measured = measured;
    }
    for (let i = this.count; i < count; i++) {
      this.heights[i] = this.estimate;
      this.measured[i] = 0;
    }
    this.count = count;
    this.dirty = true;
  }

  /** Records a measured height; true when it changed the layout. */
  set(index: number, height: number): boolean {
    if (index < 0 || index >= this.count) return false;
    this.measured[index] = 1;
    if (Math.abs((this.heights[index] ?? 0) - height) < 0.5) return false;
    this.heights[index] = height;
    this.dirty = true;
    return true;
  }

  isMeasured(index: number): boolean {
    return this.measured[index] === 1;
  }

  /** Forgets every measurement (the width changed, so text wraps differently). */
  reset(): void {
    this.heights.fill(this.estimate, 0, this.count);
    this.measured.fill(0, 0, this.count);
    this.dirty = true;
  }

  /** Top of row `index` (index = length gives the total height). */
  offsetOf(index: number): number {
    this.rebuild();
    return this.prefix[Math.max(0, Math.min(index, this.count))] ?? 0;
  }

  get total(): number {
    return this.offsetOf(this.count);
  }

  /** The row at vertical position `y` (clamped to the list). */
  indexAt(y: number): number {
    this.rebuild();
    if (this.count === 0) return 0;
    let low = 0;
    let high = this.count - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if ((this.prefix[middle] ?? 0) <= y) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  private rebuild(): void {
    if (!this.dirty) return;
    if (this.prefix.length < this.count + 1) this.prefix = new Float64Array(Math.max(this.count + 1, this.heights.length + 1));
    let sum = 0;
    this.prefix[0] = 0;
    for (let i = 0; i < this.count; i++) {
      sum += this.heights[i] ?? 0;
      this.prefix[i + 1] = sum;
    }
    this.dirty = false;
  }
}
