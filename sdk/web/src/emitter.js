// A small event emitter: the SDK's parts talk through it, and `Pigeonhole.on` exposes it.

/** @typedef {(detail: any) => void} Listener */

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Listener>>} */
    this.listeners = new Map();
  }

  /**
   * Call `fn` with each `type` event's detail; returns the function that stops it.
   * @param {string} type
   * @param {Listener} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /**
   * @param {string} type
   * @param {Listener} fn
   */
  off(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  /**
   * Call every listener of `type`; one that throws is reported and the others still run.
   * @param {string} type
   * @param {any} [detail]
   */
  emit(type, detail) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) {
      try {
        fn(detail);
      } catch (error) {
        console.error(`Pigeonhole: a "${type}" listener failed`, error);
      }
    }
  }

  clear() {
    this.listeners.clear();
  }
}
