// This person's preferences, read and written here only: localStorage on this device (nothing goes to the
// server but what a preference means for the room, e.g. "audio only"). Every key, its default and its type
// in one table; other modules call getPref/setPref and never touch storage themselves.

import { storageGet, storageSet } from "./dom.js";

const PREFS = {
  uiLanguage: { key: "peerwell.uiLanguage", fallback: "" },
  subtitleLanguage: { key: "peerwell.subtitleLanguage", fallback: "" },
  hideName: { key: "peerwell.hideName", fallback: false },
  captionMode: { key: "peerwell.captionMode", fallback: "both", values: ["both", "original", "translation"] },
  audioOnly: { key: "peerwell.audioOnly", fallback: false },
  captionSize: { key: "peerwell.captionSize", fallback: "normal",
    values: ["small", "normal", "large", "x-large", "xx-large"] },
  highContrast: { key: "peerwell.highContrast", fallback: false },
  captionsUnderTiles: { key: "peerwell.captionsUnderTiles", fallback: false },
  alertSound: { key: "peerwell.alertSound", fallback: true },
  selfViewHidden: { key: "peerwell.selfViewHidden", fallback: false },
  layout: { key: "peerwell.layout", fallback: "auto", values: ["auto", "speaker", "grid"] },
  captionsShown: { key: "peerwell.captionsShown", fallback: true },
};

export function getPref(name) {
  const pref = PREFS[name];
  if (!pref) throw new Error(`unknown preference ${name}`);
  const raw = storageGet(pref.key, null);
  if (raw === null) return pref.fallback;
  if (typeof pref.fallback === "boolean") return raw === "1";
  if (pref.values && !pref.values.includes(raw)) return pref.fallback;
  return raw;
}

export function setPref(name, value) {
  const pref = PREFS[name];
  if (!pref) throw new Error(`unknown preference ${name}`);
  if (typeof pref.fallback === "boolean") storageSet(pref.key, value ? "1" : "0");
  else storageSet(pref.key, value === "" || value === null || value === undefined ? null : String(value));
}
