// Video tiles, one per participant, rendered from the store: the name (initials when there is no picture),
// what the facilitator did (muted, video stopped), what the person did themselves (microphone or camera
// off), a raised hand, the dominant speaker's highlight, a short-lived reaction, and optionally the
// speaker's latest caption under their tile. User text goes in as text only.

import { el } from "./dom.js";
import { t } from "./i18n.js";
import { mediaOf, moderationOf } from "./store.js";

const BADGES = [
  ["facilitator", "tile.facilitator"],
  ["hand", "tile.hand"],
  ["muted", "tile.muted"],
  ["videoStopped", "tile.videoStopped"],
  ["micOff", "tile.micOff"],
  ["cameraOff", "tile.cameraOff"],
  ["pausedBandwidth", "tile.pausedBandwidth"],
];

export const REACTIONS = {
  nod: "👍", heart: "❤️", clap: "👏", "me-too": "🙋", wave: "👋",
};

export function initials(name) {
  const words = name.replace(/\(.*?\)/g, " ").trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => [...word][0]);
  return (letters.join("") || "?").toUpperCase();
}

export class Tiles {
  constructor(container) {
    this.container = container;
    this.tiles = new Map(); // participant id -> tile
  }

  ensure(id, name, { self = false } = {}) {
    let tile = this.tiles.get(id);
    if (!tile) {
      const video = el("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = self; // never play our own microphone back
      const initialsEl = el("span", { class: "initials", "aria-hidden": "true" });
      const reaction = el("span", { class: "reaction", role: "img" });
      const nameEl = el("span", { class: "name" });
      const badges = el("span", { class: "badges" });
      const label = el("figcaption", {}, nameEl, badges);
      const caption = el("p", { class: "tile-caption", "aria-hidden": "true" });
      const element = el("figure", { class: self ? "tile self" : "tile", dataset: { participantId: id } },
        video, initialsEl, reaction, label);
      const wrapper = el("div", { class: "tile-box", dataset: { participantId: id } }, element, caption);
      this.container.append(wrapper);
      tile = { wrapper, element, video, initials: initialsEl, reaction, name: nameEl, badges, caption,
        stream: new MediaStream(), hasVideo: false, self, key: "" };
      video.srcObject = tile.stream;
      this.tiles.set(id, tile);
    }
    if (tile.displayName !== name) {
      tile.displayName = name;
      tile.name.textContent = self ? t("tile.you", { name }) : name;
      tile.initials.textContent = initials(name);
      tile.video.setAttribute("aria-label", self ? t("tile.yourVideo") : t("tile.videoOf", { name }));
    }
    return tile;
  }

  // Everything about every tile, from the store; media tracks come from the call (not state).
  render(state, remoteTracks, localVideo) {
    if (!state.self) return;
    const hands = new Set(state.hands.map((h) => h.participant_id));
    const ids = new Set();
    const order = [state.self.id, ...[...state.people.keys()].filter((id) => id !== state.self.id)];
    for (const id of order) {
      const person = id === state.self.id ? state.self : state.people.get(id);
      if (!person) continue;
      ids.add(id);
      const tile = this.ensure(id, person.name, { self: id === state.self.id });
      const moderation = moderationOf(state, id);
      const delivery = id === state.self.id ? "shown" : state.videoDelivery.get(id) || "shown";
      const media = id === state.self.id
        ? { microphone: state.local.micOn, camera: state.local.cameraOn }
        : mediaOf(state, id);
      this.setTracks(tile, id === state.self.id ? { video: state.local.cameraOn ? localVideo : null }
        : remoteTracks.get(id) || {});
      this.setState(tile, {
        facilitator: person.role === "facilitator",
        hand: hands.has(id),
        muted: moderation.muted,
        videoStopped: moderation.videoStopped,
        micOff: !moderation.muted && !media.microphone,
        cameraOff: !moderation.videoStopped && !media.camera,
        speaking: state.speaking === id,
        pausedBandwidth: delivery === "bandwidth",
        videoPaused: delivery === "bandwidth" || delivery === "audio-only",
        reaction: state.reactions.get(id) || null,
      });
    }
    for (const id of [...this.tiles.keys()]) if (!ids.has(id)) this.remove(id);
  }

  setTracks(tile, tracks) {
    const wanted = Object.values(tracks).filter(Boolean);
    let changed = false;
    for (const track of tile.stream.getTracks()) {
      if (!wanted.includes(track)) {
        tile.stream.removeTrack(track);
        changed = true;
      }
    }
    for (const track of wanted) {
      if (!tile.stream.getTracks().includes(track)) {
        tile.stream.addTrack(track);
        changed = true;
      }
    }
    tile.hasVideo = Boolean(tracks.video);
    if (changed) tile.video.play().catch(() => {});
  }

  setState(tile, state) {
    const key = JSON.stringify(state) + tile.hasVideo;
    if (key === tile.key) return;
    tile.key = key;
    const badges = BADGES.filter(([name]) => state[name])
      .map(([name, text]) => el("span", { class: `badge badge-${name}` }, t(text)));
    tile.badges.replaceChildren(...badges);
    tile.element.classList.toggle("muted", state.muted);
    tile.element.classList.toggle("video-stopped", state.videoStopped);
    tile.element.classList.toggle("hand-raised", state.hand);
    tile.element.classList.toggle("speaking", state.speaking);
    // A stopped or turned-off video would otherwise freeze on its last frame: show initials instead.
    tile.element.classList.toggle("no-video",
      !tile.hasVideo || state.videoStopped || state.cameraOff || state.videoPaused);
    if (state.reaction) {
      tile.reaction.textContent = REACTIONS[state.reaction] || "";
      tile.reaction.setAttribute("aria-label", t(`reaction.${state.reaction}`));
      tile.reaction.dataset.reaction = state.reaction;
      tile.reaction.hidden = false;
    } else {
      tile.reaction.hidden = true;
      tile.reaction.removeAttribute("data-reaction");
    }
  }

  // Captions under the speaker's tile (display option): the latest line of each speaker.
  setCaption(id, text) {
    const tile = this.tiles.get(id);
    if (tile) tile.caption.textContent = text || "";
  }

  relabel() {
    for (const tile of this.tiles.values()) {
      tile.displayName = null;
      tile.key = "";
    }
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.wrapper.remove();
    this.tiles.delete(id);
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }
}
