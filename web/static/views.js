// The page's views (one visible at a time), the status banner, and the page title.

import { $, setText } from "./dom.js";
import { setBaseTitle } from "./notices.js";
import { placeDisplaySettings } from "./settings.js";

export const VIEWS = ["directory", "agreement", "details", "lobby", "goodbye", "room"];

export function showView(name, { focus = true, title } = {}) {
  for (const view of VIEWS) $(view).hidden = view !== name;
  document.body.classList.toggle("in-room", name === "room");
  placeDisplaySettings(name === "room");
  const heading = $(`${name}-title`);
  setBaseTitle(`${title || heading.textContent} – peerwell`);
  if (focus) heading.focus();
}

export function currentView() {
  return VIEWS.find((view) => !$(view).hidden);
}

export function banner(message) {
  setText($("status-banner"), message);
}
