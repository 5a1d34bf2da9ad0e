// Display settings (caption text size, captions under the speaker's tile, high contrast), remembered on this
// device (prefs.js). Outside the room they sit in the page header; in the room, in the "More" menu.

import { $ } from "./dom.js";
import { getPref, setPref } from "./prefs.js";

function applySize(size) {
  document.documentElement.dataset.captionSize = size;
}

function applyContrast(on) {
  document.documentElement.classList.toggle("high-contrast", on);
}

function applyUnderTiles(on) {
  document.documentElement.classList.toggle("captions-under-tiles", on);
}

// In the room the settings move into the "More" menu (the header is not shown there), and back outside it.
export function placeDisplaySettings(inRoom) {
  const settings = $("display-settings");
  const target = inRoom ? $("settings-slot") : document.querySelector(".site-header");
  if (settings.parentElement !== target) target.append(settings);
}

export function initDisplaySettings() {
  const sizeSelect = $("caption-size");
  const contrastBox = $("high-contrast");
  const underTilesBox = $("captions-under-tiles");
  sizeSelect.value = getPref("captionSize");
  contrastBox.checked = getPref("highContrast");
  underTilesBox.checked = getPref("captionsUnderTiles");
  applySize(sizeSelect.value);
  applyContrast(contrastBox.checked);
  applyUnderTiles(underTilesBox.checked);
  sizeSelect.addEventListener("change", () => {
    applySize(sizeSelect.value);
    setPref("captionSize", sizeSelect.value);
  });
  contrastBox.addEventListener("change", () => {
    applyContrast(contrastBox.checked);
    setPref("highContrast", contrastBox.checked);
  });
  underTilesBox.addEventListener("change", () => {
    applyUnderTiles(underTilesBox.checked);
    setPref("captionsUnderTiles", underTilesBox.checked);
  });
}
