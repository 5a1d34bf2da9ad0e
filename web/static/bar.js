// The control bar and what it opens: one panel at a time (chat, people or facilitator tools) beside the stage
// under the captions on a desktop, or a sheet over the stage on a phone; the "More" menu and the reactions popover. Unread counts on the bar's buttons. Which panels are
// open lives in store.ui; this module renders that and handles the buttons that change it.

import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { icon } from "./icons.js";
import { setPref } from "./prefs.js";
import { COMPACT_QUERY, isCompact } from "./stage.js";
import { store } from "./store.js";

const SHEETS = ["chat", "people", "facilitator", "captions"];
const PANEL_IDS = { chat: "chat-panel", people: "people-panel", facilitator: "facilitator-panel", captions: "captions-panel" };
const HEADINGS = { chat: "chat-title", people: "people-title", facilitator: "facilitator-title", captions: "captions-title" };
const BUTTONS = { chat: "toggle-chat", people: "toggle-people", facilitator: "toggle-tools", captions: "toggle-captions" };

let opener = null; // the button that opened the current sheet or menu: focus goes back to it

// Each bar button: an icon, its name as text (in a span, so labels can be re-rendered), and a count badge.
function decorate() {
  for (const button of document.querySelectorAll(".bar-button")) {
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = button.textContent.trim();
    if (button.dataset.i18n) {
      label.dataset.i18n = button.dataset.i18n;
      delete button.dataset.i18n;
    }
    const count = document.createElement("span");
    count.className = "count";
    count.setAttribute("aria-hidden", "true");
    count.hidden = true;
    button.replaceChildren(icon(button.dataset.icon), label, count);
  }
}

export function setBarLabel(id, text) {
  const label = $(id).querySelector(".label");
  if (label.textContent !== text) label.textContent = text;
}

function setCount(id, count, key) {
  const button = $(id);
  const badge = button.querySelector(".count");
  badge.hidden = !count;
  badge.textContent = count ? String(count) : "";
  if (count) button.setAttribute("aria-label", t(key, { name: button.querySelector(".label").textContent, count }));
  else button.removeAttribute("aria-label");
}

// Defaults when entering the room or changing between phone and desktop: on a desktop the chat (a
// facilitator: their tools) is open beside the stage; on a phone nothing covers the stage until asked.
export function defaultPanels() {
  store.update((state, ui) => {
    ui.panels = new Set();
    if (!isCompact()) ui.panels.add(state.self && state.self.role === "facilitator" ? "facilitator" : "chat");
  });
}

export function openPanel(name, { focus = true } = {}) {
  store.update((state, ui) => {
    if (name !== "captions" || isCompact()) ui.panels = new Set([name]);
    if (name === "chat") ui.unread.chat = 0;
    if (name === "captions" && !isCompact()) {
      ui.captionsShown = true;
      setPref("captionsShown", true);
    }
  });
  closePopovers(false);
  if (focus) {
    queueMicrotask(() => {
      const heading = $(HEADINGS[name]);
      if (heading) {
        heading.tabIndex = -1;
        heading.focus();
      }
    });
  }
}

export function closePanel(name) {
  store.update((state, ui) => {
    ui.panels.delete(name);
    if (name === "captions" && !isCompact()) {
      ui.captionsShown = false;
      setPref("captionsShown", false);
    }
  });
  if (opener && opener.isConnected) opener.focus();
  opener = null;
}

function togglePanel(name, button) {
  const ui = store.ui;
  const open = name === "captions" && !isCompact() ? ui.captionsShown : ui.panels.has(name);
  if (name === "captions" && isCompact()) {
    // On a phone the captions button shows or hides the caption band over the stage.
    store.update((state, u) => {
      u.captionsShown = !u.captionsShown;
      u.panels.delete("captions");
      setPref("captionsShown", u.captionsShown);
    });
    return;
  }
  if (open) closePanel(name);
  else {
    opener = button;
    openPanel(name);
  }
}

export function render(state, ui) {
  const compact = isCompact();
  document.body.classList.toggle("compact", compact);
  for (const name of SHEETS) {
    const panel = $(PANEL_IDS[name]);
    if (!panel) continue;
    let open = ui.panels.has(name);
    if (name === "captions") {
      open = ui.captionsShown || ui.panels.has("captions");
      panel.classList.toggle("expanded", compact && ui.panels.has("captions"));
    }
    panel.hidden = !open;
    panel.classList.toggle("open", open);
  }
  const sheetOpen = compact && SHEETS.some((name) => name !== "captions" ? ui.panels.has(name) : ui.panels.has("captions"));
  document.body.classList.toggle("sheet-open", sheetOpen);
  for (const [name, id] of Object.entries(BUTTONS)) {
    const pressed = name === "captions" ? ui.captionsShown : ui.panels.has(name);
    $(id).setAttribute("aria-pressed", String(pressed));
  }
  const facilitator = Boolean(state.self && state.self.role === "facilitator");
  for (const element of document.querySelectorAll(".facilitator-only")) element.hidden = !facilitator;
  setCount("toggle-chat", ui.panels.has("chat") ? 0 : ui.unread.chat, "bar.unread");
  setCount("toggle-people", state.hands.length, "bar.hands");
  const attention = facilitator ? state.waiting.length + (store.session.facilitator ? store.session.facilitator.alertTotal() : 0) : 0;
  setCount("toggle-tools", ui.panels.has("facilitator") ? 0 : attention, "bar.attention");
}

// A chat message arrived: count it while the chat is not open.
export function noteChat() {
  if (store.ui.panels.has("chat")) return;
  store.update((state, ui) => {
    ui.unread.chat += 1;
  });
}

function popover(id, buttonId) {
  return { menu: $(id), button: $(buttonId) };
}

function setPopover({ menu, button }, open) {
  menu.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
}

export function closePopovers(returnFocus = true) {
  const wasOpen = ["more-menu", "reactions"].some((id) => !$(id).hidden);
  setPopover(popover("more-menu", "open-more"), false);
  setPopover(popover("reactions", "open-reactions"), false);
  if (wasOpen && returnFocus && opener && opener.isConnected) opener.focus();
}

function togglePopover(id, buttonId, button) {
  const entry = popover(id, buttonId);
  const open = entry.menu.hidden;
  closePopovers(false);
  if (open) {
    opener = button;
    setPopover(entry, true);
    const first = entry.menu.querySelector("button:not([hidden]), summary");
    if (first) first.focus();
  }
}

// actions: { share() } — the Share button's action (share.js)
export function initBar(actions) {
  decorate();
  // Sheets and menus sit just above the bar, whatever its height (text size, zoom, wrapping).
  const controlBar = $("control-bar");
  new ResizeObserver(() => {
    document.documentElement.style.setProperty("--bar-height", `${controlBar.offsetHeight}px`);
  }).observe(controlBar);
  for (const button of document.querySelectorAll(".control-bar [data-panel]")) {
    button.addEventListener("click", () => togglePanel(button.dataset.panel, button));
  }
  for (const button of document.querySelectorAll("#more-menu [data-panel]")) {
    button.addEventListener("click", () => {
      opener = $("open-more");
      openPanel(button.dataset.panel);
    });
  }
  for (const button of document.querySelectorAll(".close-panel")) {
    button.addEventListener("click", () => closePanel(button.dataset.close));
  }
  $("open-more").addEventListener("click", (event) => togglePopover("more-menu", "open-more", event.currentTarget));
  $("open-reactions").addEventListener("click", (event) => togglePopover("reactions", "open-reactions", event.currentTarget));
  $("more-menu").addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const action = target.dataset.action;
    if (action === "close-more") closePopovers();
    else if (action === "reactions") {
      closePopovers(false);
      opener = $("open-more");
      setPopover(popover("reactions", "open-reactions"), true);
      const first = $("reactions").querySelector("button");
      if (first) first.focus();
    } else if (action === "caption-options") {
      opener = $("open-more");
      openPanel("captions");
      $("captions-panel").querySelector(".caption-options").open = true;
    } else if (action === "share") {
      closePopovers(false);
      actions.share();
    }
  });
  for (const button of $("reactions").querySelectorAll("button")) {
    button.addEventListener("click", () => closePopovers());
  }
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (!$("more-menu").hidden || !$("reactions").hidden) {
      closePopovers();
      return;
    }
    if (isCompact()) {
      const open = [...store.ui.panels][0];
      if (open && !document.querySelector("dialog[open]")) closePanel(open);
    }
  });
  document.addEventListener("click", (event) => {
    for (const [id, buttonId] of [["more-menu", "open-more"], ["reactions", "open-reactions"]]) {
      const menu = $(id);
      if (!menu.hidden && !menu.contains(event.target) && !$(buttonId).contains(event.target)
          && !event.target.closest("[data-action]")) {
        setPopover(popover(id, buttonId), false);
      }
    }
  });
  window.matchMedia(COMPACT_QUERY).addEventListener("change", () => {
    closePopovers(false);
    defaultPanels();
  });
}
