// Video tiles, one per participant, labelled with their name and with what the facilitator did (muted,
// video stopped) and a raised hand. User text goes in as text only.

import { el } from "./dom.js";

const BADGES = {
  facilitator: "Facilitator",
  hand: "Hand raised",
  muted: "Muted by facilitator",
  videoStopped: "Video stopped by facilitator",
};

export class Tiles {
  constructor(container) {
    this.container = container;
    this.tiles = new Map(); // participant id -> { element, video, stream, name, badges, state }
  }

  ensure(id, name, { self = false, role = "participant" } = {}) {
    let tile = this.tiles.get(id);
    if (!tile) {
      const video = el("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = self; // never play our own microphone back
      const nameEl = el("span", { class: "name" });
      const badges = el("span", { class: "badges" });
      const label = el("figcaption", {}, nameEl, badges);
      const element = el("figure", { class: self ? "tile self" : "tile", dataset: { participantId: id } }, video, label);
      this.container.append(element);
      tile = { element, video, label, name: nameEl, badges, stream: new MediaStream(), state: {}, hasVideo: false };
      video.srcObject = tile.stream;
      this.tiles.set(id, tile);
    }
    tile.name.textContent = self ? `${name} (you)` : name;
    tile.video.setAttribute("aria-label", self ? "Your video" : `Video of ${name}`);
    this.setState(id, { facilitator: role === "facilitator" });
    return tile;
  }

  setTracks(id, tracks) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const wanted = Object.values(tracks).filter(Boolean);
    for (const track of tile.stream.getTracks()) {
      if (!wanted.includes(track)) tile.stream.removeTrack(track);
    }
    for (const track of wanted) {
      if (!tile.stream.getTracks().includes(track)) tile.stream.addTrack(track);
    }
    tile.hasVideo = Boolean(tracks.video);
    this.renderVideoState(tile);
    tile.video.play().catch(() => {});
  }

  // state: { muted, videoStopped, hand, facilitator } (only the given keys change)
  setState(id, changes) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    Object.assign(tile.state, changes);
    const badges = [];
    for (const [key, text] of Object.entries(BADGES)) {
      if (tile.state[key]) badges.push(el("span", { class: `badge badge-${key}` }, text));
    }
    tile.badges.replaceChildren(...badges);
    tile.element.classList.toggle("muted", Boolean(tile.state.muted));
    tile.element.classList.toggle("video-stopped", Boolean(tile.state.videoStopped));
    tile.element.classList.toggle("hand-raised", Boolean(tile.state.hand));
    this.renderVideoState(tile);
  }

  // The dominant speaker (from the server's "dominant-speaker" event): one highlighted tile at most.
  setSpeaking(id) {
    for (const [tileId, tile] of this.tiles) tile.element.classList.toggle("speaking", tileId === id);
  }

  renderVideoState(tile) {
    // A stopped video would otherwise freeze on its last frame.
    tile.element.classList.toggle("no-video", !tile.hasVideo || Boolean(tile.state.videoStopped));
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.element.remove();
    this.tiles.delete(id);
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }
}
