// Display settings (caption text size, captions under the speaker's tile, high contrast), remembered in
// localStorage on this device.

import { $, storageGet, storageSet } from "./dom.js";

const SIZES = ["small", "normal", "large", "x-large", "xx-large"];
const SIZE_KEY = "peerwell.captionSize";
const CONTRAST_KEY = "peerwell.highContrast";
const UNDER_TILES_KEY = "peerwell.captionsUnderTiles";

function applySize(size) {
  document.documentElement.dataset.captionSize = SIZES.includes(size) ? size : "normal";
}

function applyContrast(on) {
  document.documentElement.classList.toggle("high-contrast", on);
}

function applyUnderTiles(on) {
  document.documentElement.classList.toggle("captions-under-tiles", on);
}

export function initDisplaySettings() {
  const size = storageGet(SIZE_KEY, "normal");
  const contrast = storageGet(CONTRAST_KEY, "0") === "1";
  const underTiles = storageGet(UNDER_TILES_KEY, "0") === "1";
  const sizeSelect = $("caption-size");
  const contrastBox = $("high-contrast");
  const underTilesBox = $("captions-under-tiles");
  sizeSelect.value = SIZES.includes(size) ? size : "normal";
  contrastBox.checked = contrast;
  underTilesBox.checked = underTiles;
  applySize(sizeSelect.value);
  applyContrast(contrast);
  applyUnderTiles(underTiles);
  sizeSelect.addEventListener("change", () => {
    applySize(sizeSelect.value);
    storageSet(SIZE_KEY, sizeSelect.value);
  });
  contrastBox.addEventListener("change", () => {
    applyContrast(contrastBox.checked);
    storageSet(CONTRAST_KEY, contrastBox.checked ? "1" : "0");
  });
  underTilesBox.addEventListener("change", () => {
    applyUnderTiles(underTilesBox.checked);
    storageSet(UNDER_TILES_KEY, underTilesBox.checked ? "1" : "0");
  });
}
