// The classic-script build's entry: the same SDK as `window.Pigeonhole`, for pages that
// load it with <script src=".../sdk/pigeonhole.js">.
import Pigeonhole from "./index.js";

/** @type {any} */ (window).Pigeonhole = Pigeonhole;
