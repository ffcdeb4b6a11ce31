/** A tiny RGB24 raster with the few primitives the synthetic videos need. */
export type RGB = readonly [number, number, number];

export class Canvas {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    /** Pixels to draw on (default: a new black frame). */
    data?: Uint8Array,
  ) {
    this.data = data ?? new Uint8Array(width * height * 3);
  }

  set(x: number, y: number, c: RGB, alpha = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    for (let k = 0; k < 3; k++) this.data[i + k] = Math.round(this.data[i + k] * (1 - alpha) + c[k] * alpha);
  }

  fillRect(x0: number, y0: number, w: number, h: number, c: RGB, alpha = 1): void {
    for (let y = Math.max(0, Math.floor(y0)); y < Math.min(this.height, Math.ceil(y0 + h)); y++)
      for (let x = Math.max(0, Math.floor(x0)); x < Math.min(this.width, Math.ceil(x0 + w)); x++)
        this.set(x, y, c, alpha);
  }

  /** Fills every pixel whose centre satisfies `inside` within the bounding box. */
  fillWhere(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    inside: (x: number, y: number) => boolean,
    c: RGB,
    alpha = 1,
  ): void {
    for (let y = Math.max(0, Math.floor(y0)); y <= Math.min(this.height - 1, Math.ceil(y1)); y++)
      for (let x = Math.max(0, Math.floor(x0)); x <= Math.min(this.width - 1, Math.ceil(x1)); x++)
        if (inside(x + 0.5, y + 0.5)) this.set(x, y, c, alpha);
  }

  fillCircle(cx: number, cy: number, r: number, c: RGB, alpha = 1): void {
    this.fillWhere(
      cx - r,
      cy - r,
      cx + r,
      cy + r,
      (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r,
      c,
      alpha,
    );
  }

  /** Even–odd polygon fill. */
  fillPolygon(points: ReadonlyArray<readonly [number, number]>, c: RGB, alpha = 1): void {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const inside = (x: number, y: number) => {
      let odd = false;
      for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
        const [xi, yi] = points[i];
        const [xj, yj] = points[j];
        if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
      }
      return odd;
    };
    this.fillWhere(Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys), inside, c, alpha);
  }
}
