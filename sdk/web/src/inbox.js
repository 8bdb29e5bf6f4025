// Placeholder so the SDK builds while the inbox helper writes this file (overwrite it whole).
export class InboxWidget {
  /** @param {any} ctx @param {...any} rest */
  constructor(ctx, ...rest) {
    this.ctx = ctx;
    this.rest = rest;
  }

  destroy() {}
}
