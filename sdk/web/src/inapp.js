// Placeholder so the SDK builds while the in-app helper writes this file (overwrite it whole).
export class InAppPresenter {
  /** @param {any} ctx @param {...any} rest */
  constructor(ctx, ...rest) {
    this.ctx = ctx;
    this.rest = rest;
  }

  destroy() {}
}
