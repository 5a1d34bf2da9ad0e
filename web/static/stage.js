// The stage: where each tile goes and how big it is. Speaker view (the default, and always on a phone): one
// tile large on the stage (a pinned person, else a shared screen, else whoever speaks, else the last one who
// spoke) and everyone else in a filmstrip. Grid view: every tile in a grid whose tile size is computed from
// the number of people and the space there is. Our own tile is small (filmstrip) and can be hidden.

const ASPECT = 16 / 9;
const GAP = 8; // px, as .stage-main's gap in style.css

// Phone-sized or a short window (landscape phone, browser zoom 200%): the same query as style.css.
export const COMPACT_QUERY = "(max-width: 47.99rem), (max-height: 30rem)";

export function isCompact() {
  return window.matchMedia(COMPACT_QUERY).matches;
}

// Columns that give the biggest 16:9 tiles for `count` tiles in a width x height box.
export function gridFit(count, width, height) {
  let best = { columns: 1, tileWidth: 0 };
  for (let columns = 1; columns <= Math.max(1, count); columns += 1) {
    const rows = Math.ceil(count / columns);
    const byWidth = (width - GAP * (columns - 1)) / columns;
    const byHeight = ((height - GAP * (rows - 1)) / rows) * ASPECT;
    const tileWidth = Math.floor(Math.max(0, Math.min(byWidth, byHeight)));
    if (tileWidth > best.tileWidth) best = { columns, tileWidth };
  }
  return best;
}

export class Stage {
  constructor({ body, main, strip }) {
    this.body = body;
    this.main = main;
    this.strip = strip;
    this.lastSpeaker = null;
    this.tiles = [];
    this.mode = "speaker";
    if (typeof ResizeObserver === "function") new ResizeObserver(() => this.size()).observe(main);
  }

  // Which tile is on the stage in speaker view.
  focusOf(tiles, state, ui) {
    const byKey = new Map(tiles.map((tile) => [tile.key, tile]));
    if (state.speaking && state.self && state.speaking !== state.self.id && byKey.has(state.speaking)) {
      this.lastSpeaker = state.speaking;
    }
    const candidates = [
      ui.pinned,
      state.sharer ? `screen:${state.sharer}` : null,
      this.lastSpeaker,
    ];
    for (const key of candidates) if (key && byKey.has(key)) return byKey.get(key);
    return tiles.find((tile) => !tile.self && !tile.screen) || tiles.find((tile) => tile.screen) || tiles[0] || null;
  }

  layout(tiles, state, ui) {
    this.tiles = tiles;
    const grid = ui.layout === "grid" && !state.sharer && !ui.pinned;
    this.mode = grid ? "grid" : "speaker";
    this.body.dataset.layout = this.mode;
    this.body.classList.toggle("self-hidden", ui.selfViewHidden);
    const focus = grid ? null : this.focusOf(tiles, state, ui);
    const shown = (tile) => !(tile.self && !tile.screen && ui.selfViewHidden);
    const mainTiles = grid ? tiles.filter(shown) : focus ? [focus] : [];
    const stripTiles = grid ? [] : tiles.filter((tile) => tile !== focus && shown(tile));
    // Our own camera first in the filmstrip, then everyone else in room order.
    stripTiles.sort((a, b) => Number(b.self && !b.screen) - Number(a.self && !a.screen));
    this.place(this.main, mainTiles);
    this.place(this.strip, stripTiles);
    for (const tile of tiles) {
      tile.wrapper.classList.toggle("on-stage", tile === focus);
      if (!shown(tile) && tile.wrapper.parentElement) tile.wrapper.remove();
    }
    this.strip.hidden = stripTiles.length === 0;
    this.body.classList.toggle("no-strip", stripTiles.length === 0);
    this.size();
  }

  // Moves only what changed place, so videos keep playing.
  place(container, tiles) {
    const wanted = tiles.map((tile) => tile.wrapper);
    for (const child of [...container.children]) if (!wanted.includes(child)) child.remove();
    wanted.forEach((wrapper, index) => {
      if (container.children[index] !== wrapper) {
        container.insertBefore(wrapper, container.children[index] || null);
        const video = wrapper.querySelector("video");
        if (video) video.play().catch(() => {});
      }
    });
  }

  size() {
    if (this.mode !== "grid") {
      this.main.style.removeProperty("--tile-width");
      return;
    }
    const count = this.main.children.length;
    const { tileWidth } = gridFit(count, this.main.clientWidth, this.main.clientHeight);
    this.main.style.setProperty("--tile-width", `${tileWidth}px`);
  }
}
