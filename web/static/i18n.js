// Interface language: every text the client shows comes from a catalog in static/locales/ (JSON, one file per
// language, listed in locales/index.json), so adding a language is data only. The language is the person's
// own choice, else the group's language once a group is chosen, else the browser's.

import { getPref, setPref } from "./prefs.js";

const FALLBACK = "en";
const catalogs = {};
let names = { en: "English" };
let current = FALLBACK;
let groupLanguage = null;
const listeners = new Set();

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Loads every listed catalog (they are small); English must load, the others may fail quietly.
export async function loadCatalogs() {
  try {
    names = (await fetchJson("/static/locales/index.json")).languages || names;
  } catch {
    names = { en: "English" };
  }
  await Promise.all(Object.keys(names).map(async (code) => {
    try {
      catalogs[code] = await fetchJson(`/static/locales/${code}.json`);
    } catch {
      delete names[code];
    }
  }));
  applyLanguage();
}

export function uiLanguages() {
  return { ...names };
}

export function chosenLanguage() {
  return getPref("uiLanguage") || "";
}

export function chooseLanguage(code) {
  setPref("uiLanguage", code || null);
  applyLanguage();
}

// The group's language takes over from the browser's while a group is open (null: back to the browser's).
export function setGroupLanguage(code) {
  groupLanguage = code || null;
  applyLanguage();
}

function supported(code) {
  if (!code) return null;
  const base = code.toLowerCase().split("-")[0];
  return catalogs[base] ? base : null;
}

function pickLanguage() {
  const browser = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
    .map(supported).find(Boolean);
  return supported(chosenLanguage()) || supported(groupLanguage) || browser || FALLBACK;
}

function applyLanguage() {
  const next = pickLanguage();
  const changed = next !== current;
  current = next;
  document.documentElement.lang = current;
  translatePage(document);
  if (changed) for (const listener of listeners) listener(current);
}

export function currentLanguage() {
  return current;
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}

// t("chat.left", { count: 3 }) -> the current language's text with {count} filled in.
export function t(key, params = {}) {
  const text = (catalogs[current] && catalogs[current][key]) ?? (catalogs[FALLBACK] && catalogs[FALLBACK][key]) ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// Static markup: data-i18n="key" sets the text; data-i18n-attr="aria-label:key;placeholder:key2" attributes.
export function translatePage(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(";")) {
      const [attribute, key] = pair.split(":");
      if (attribute && key) element.setAttribute(attribute.trim(), t(key.trim()));
    }
  }
  if (root.querySelectorAll) {
    for (const template of root.querySelectorAll("template")) translatePage(template.content);
  }
}
