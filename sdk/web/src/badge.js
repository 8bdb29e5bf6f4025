// Placeholder so the SDK builds while the inbox helper writes this file (overwrite it whole).
export class Badge {
  /** @param {any} ctx @param {...any} rest */
  constructor(ctx, ...rest) {
    this.ctx = ctx;
    this.rest = rest;
  }

  destroy() {}
}
