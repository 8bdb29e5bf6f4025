// What the SDK keeps between page loads, per app AND contact: two people using one browser
// (or one person with two apps) never share a cursor, held messages or view counts.

const PREFIX = "pigeonhole:v1:";

/** @param {string} appKey @param {string} contactId */
export function storeKeyPrefix(appKey, contactId) {
  return `${PREFIX}${encodeURIComponent(appKey)}:${encodeURIComponent(contactId)}:`;
}

export class Store {
  /**
   * @param {string} appKey
   * @param {string} contactId
   * @param {Pick<Storage, "getItem" | "setItem" | "removeItem"> | null} [storage]
   *   localStorage by default; null (or a blocked localStorage) keeps values in memory
   */
  constructor(appKey, contactId, storage = defaultStorage()) {
    this.prefix = storeKeyPrefix(appKey, contactId);
    this.storage = storage;
    /** @type {Map<string, string>} */
    this.memory = new Map();
  }

  /**
   * The value stored under `name`, or undefined (also when it is unreadable).
   * @param {string} name
   * @returns {any}
   */
  get(name) {
    const raw = this.read(this.prefix + name);
    if (raw == null) return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      return undefined;
    }
  }

  /**
   * @param {string} name
   * @param {any} value
   */
  set(name, value) {
    const key = this.prefix + name;
    const raw = JSON.stringify(value);
    this.memory.set(key, raw);
    try {
      this.storage?.setItem(key, raw);
    } catch {
      // Quota exceeded or storage blocked: the value lives in memory for this page.
    }
  }

  /** @param {string} name */
  remove(name) {
    const key = this.prefix + name;
    this.memory.delete(key);
    try {
      this.storage?.removeItem(key);
    } catch {
      // Blocked storage: nothing was stored there.
    }
  }

  /** @param {string} key */
  read(key) {
    try {
      const raw = this.storage?.getItem(key);
      if (raw != null) return raw;
    } catch {
      // Blocked storage: fall back to memory.
    }
    return this.memory.get(key) ?? null;
  }
}

/** @returns {Storage | null} */
function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // a sandboxed frame or blocked cookies throw on access
  }
}
