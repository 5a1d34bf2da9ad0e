// Notices that must be seen whatever the scroll position: a fixed stack at the top of the window, a short
// sound (facilitators can turn it off) and a count in the tab title while urgent notices are open.
// Used for safety alerts, help requests and lobby arrivals (facilitators) and for gentle room news.

import { el } from "./dom.js";
import { t } from "./i18n.js";
import { getPref, setPref } from "./prefs.js";

const INFO_MS = 6000; // urgent notices stay until dismissed

let stack = null;
let baseTitle = document.title;
let audio = null;

export function initNotices(container) {
  stack = container;
}

export function soundOn() {
  return getPref("alertSound");
}

export function setSound(on) {
  setPref("alertSound", on);
}

// The page title without the badge; showView calls this when the view changes.
export function setBaseTitle(title) {
  baseTitle = title;
  renderTitle();
}

function renderTitle() {
  const open = stack ? stack.querySelectorAll(".toast-urgent").length : 0;
  document.title = open > 0 ? `(${open}) ${baseTitle}` : baseTitle;
}

function removeNotice(item) {
  item.remove();
  renderTitle();
}

// Two soft tones, 0.35 s, made here (no audio file, nothing fetched).
function chime() {
  if (!soundOn()) return;
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const now = audio.currentTime;
    for (const [offset, frequency] of [[0, 660], [0.16, 880]]) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.18);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(now + offset);
      oscillator.stop(now + offset + 0.2);
    }
  } catch {
    // no audio output: the visible notice and the title still say it
  }
}

// kind: "urgent" (sound, title badge, stays) or "info" (fades after a few seconds).
// action: optional { label, run } shown as a button, e.g. "Show" scrolling to the alert.
export function notify(text, { kind = "info", action = null, key = null } = {}) {
  if (!stack) return null;
  if (key) {
    const old = stack.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (old) removeNotice(old);
  }
  const close = el("button", { type: "button", class: "small secondary", "aria-label": t("notice.dismiss") }, "✕");
  const buttons = [];
  if (action) {
    const button = el("button", { type: "button", class: "small" }, action.label);
    button.addEventListener("click", () => {
      removeNotice(item);
      action.run();
    });
    buttons.push(button);
  }
  const item = el("div", { class: `toast toast-${kind}`, role: kind === "urgent" ? "alert" : "status",
    dataset: key ? { key } : {} },
    el("p", { class: "toast-text" }, text), el("span", { class: "toast-actions" }, ...buttons, close));
  close.addEventListener("click", () => removeNotice(item));
  stack.append(item);
  if (kind === "urgent") chime();
  else setTimeout(() => removeNotice(item), INFO_MS);
  renderTitle();
  return item;
}

export function clearNotices() {
  if (stack) stack.replaceChildren();
  renderTitle();
}
