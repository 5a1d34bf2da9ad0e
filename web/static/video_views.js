// What this person is shown of each remote video, reported to the server as `set-video-views` (tile height
// in device pixels, 0 when not shown: tile scrolled away, tab hidden or minimised). The server forwards each
// video at the smallest layer that fills its tile and pauses the ones nobody shows (docs/protocol.md).

const SEND_DELAY_MS = 250; // a resize or scroll settles before the server hears of it
const ROUND_TO = 10; // px: small layout jitter is not news

export class VideoViews {
  constructor(tiles, send) {
    this.tiles = tiles;
    this.send = send;
    this.visible = new Map(); // participant id -> intersecting the viewport
    this.observed = new Set(); // tile elements observed
    this.last = "";
    this.timer = null;
    this.intersections = typeof IntersectionObserver === "function" ? new IntersectionObserver((entries) => {
      for (const entry of entries) this.visible.set(entry.target.dataset.participantId, entry.isIntersecting);
      this.schedule();
    }) : null;
    this.sizes = typeof ResizeObserver === "function" ? new ResizeObserver(() => this.schedule()) : null;
    document.addEventListener("visibilitychange", () => this.schedule());
  }

  // After each render: observe new tiles, forget removed ones.
  update() {
    const current = new Set();
    for (const [id, tile] of this.tiles.tiles) {
      if (tile.self || tile.screen) continue;
      current.add(tile.element);
      if (!this.observed.has(tile.element)) {
        this.observed.add(tile.element);
        if (this.intersections) this.intersections.observe(tile.element);
        if (this.sizes) this.sizes.observe(tile.element);
        if (!this.intersections) this.visible.set(id, true);
      }
    }
    for (const element of [...this.observed]) {
      if (current.has(element)) continue;
      this.observed.delete(element);
      if (this.intersections) this.intersections.unobserve(element);
      if (this.sizes) this.sizes.unobserve(element);
      this.visible.delete(element.dataset.participantId);
    }
    this.schedule();
  }

  views() {
    const views = {};
    const scale = window.devicePixelRatio || 1;
    for (const [id, tile] of this.tiles.tiles) {
      if (tile.self || tile.screen) continue;
      const shown = !document.hidden && this.visible.get(id) === true;
      const height = Math.round((tile.video.clientHeight || tile.element.clientHeight) * scale / ROUND_TO) * ROUND_TO;
      views[id] = shown ? Math.min(Math.max(height, 0), 4320) : 0;
    }
    return views;
  }

  schedule() {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush(false);
    }, SEND_DELAY_MS);
  }

  flush(always) {
    const views = this.views();
    const text = JSON.stringify(views);
    if (!always && text === this.last) return;
    if (this.send({ type: "set-video-views", views })) this.last = text;
  }

  // The data channel (re)opened: the server knows nothing yet.
  resend() {
    this.flush(true);
  }
}
