// Video tiles rendered from the store: one per person and one per shared screen. A tile shows the name
// (initials when there is no picture), what the facilitator did (muted, video stopped), what the person did
// themselves (microphone or camera off), a raised hand, the dominant speaker's highlight, a short-lived
// reaction, a share-time countdown, and optionally the speaker's latest caption under it. A pin button puts
// the person on the stage. Where each tile goes (stage or filmstrip) is stage.js's business. User text goes
// in as text only.

import { el } from "./dom.js";
import { icon } from "./icons.js";
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

export function formatCountdown(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export class Tiles {
  // onPin(key): the pin button of a tile (key: participant id, or "screen:<id>")
  constructor({ onPin }) {
    this.tiles = new Map(); // key -> tile
    this.onPin = onPin;
  }

  ensure(key, { participantId, name, self, screen }) {
    let tile = this.tiles.get(key);
    if (!tile) {
      const video = el("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = self || screen; // never play our own microphone back; a screen has no sound
      const initialsEl = el("span", { class: "initials", "aria-hidden": "true" });
      const reaction = el("span", { class: "reaction", role: "img" });
      const nameEl = el("span", { class: "name" });
      const badges = el("span", { class: "badges" });
      const timer = el("span", { class: "share-timer", hidden: true });
      const label = el("figcaption", {}, nameEl, badges, timer);
      const pin = el("button", { type: "button", class: "pin", "aria-pressed": "false" }, icon("pin"));
      pin.addEventListener("click", () => this.onPin(key));
      const caption = el("p", { class: "tile-caption", "aria-hidden": "true" });
      const classes = ["tile", self ? "self" : "", screen ? "screen" : ""].filter(Boolean).join(" ");
      const data = screen ? { screenOf: participantId } : { participantId };
      const element = el("figure", { class: classes, dataset: data }, video, initialsEl, reaction, label, pin);
      const wrapper = el("div", { class: `tile-box${self ? " self" : ""}${screen ? " screen" : ""}`,
        dataset: { ...data, key } }, element, caption);
      tile = { key, participantId, wrapper, element, video, initials: initialsEl, reaction, name: nameEl, badges,
        timer, pin, caption, stream: new MediaStream(), hasVideo: false, self, screen, stateKey: "" };
      video.srcObject = tile.stream;
      this.tiles.set(key, tile);
    }
    if (tile.displayName !== name) {
      tile.displayName = name;
      const shown = tile.screen ? (self ? t("share.yourScreen") : t("share.screenOf", { name }))
        : self ? t("tile.you", { name }) : name;
      tile.name.textContent = shown;
      tile.initials.textContent = initials(name);
      tile.video.setAttribute("aria-label", tile.screen ? shown : self ? t("tile.yourVideo") : t("tile.videoOf", { name }));
      tile.pinLabel = null;
    }
    return tile;
  }

  // Every tile, from the store; media tracks come from the call (not state). Returns the tiles in order.
  render(state, ui, { remote, localVideo, localScreen }) {
    if (!state.self) return [];
    const hands = new Set(state.hands.map((h) => h.participant_id));
    const keys = new Set();
    const selfId = state.self.id;
    const order = [selfId, ...[...state.people.keys()].filter((id) => id !== selfId)];
    for (const id of order) {
      const person = id === selfId ? state.self : state.people.get(id);
      if (!person) continue;
      const self = id === selfId;
      keys.add(id);
      const tile = this.ensure(id, { participantId: id, name: person.name, self, screen: false });
      const moderation = moderationOf(state, id);
      const delivery = self ? "shown" : state.videoDelivery.get(id) || "shown";
      const media = self ? { microphone: state.local.micOn, camera: state.local.cameraOn } : mediaOf(state, id);
      const tracks = self ? { video: state.local.cameraOn ? localVideo : null } : remote.get(id) || {};
      this.setTracks(tile, { audio: tracks.audio, video: tracks.video });
      const timer = state.shareTimer && state.shareTimer.id === id ? state.shareTimer : null;
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
        pinned: ui.pinned === id,
        timer: timer ? { seconds: timer.seconds, endsAt: timer.endsAt, expired: timer.expired } : null,
      });
      // A shared screen: its own tile, shown large (stage.js).
      const screenTrack = state.sharer === id ? (self ? localScreen : (remote.get(id) || {}).screen) : null;
      if (state.sharer === id) {
        const key = `screen:${id}`;
        keys.add(key);
        const screenTile = this.ensure(key, { participantId: id, name: person.name, self, screen: true });
        this.setTracks(screenTile, { video: screenTrack || null });
        this.setState(screenTile, { pinned: ui.pinned === key, videoPaused: !screenTrack });
      }
    }
    for (const key of [...this.tiles.keys()]) if (!keys.has(key)) this.remove(key);
    return [...keys].map((key) => this.tiles.get(key));
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
    if (key === tile.stateKey) return;
    tile.stateKey = key;
    const badges = BADGES.filter(([name]) => state[name])
      .map(([name, text]) => el("span", { class: `badge badge-${name}` }, t(text)));
    tile.badges.replaceChildren(...badges);
    tile.element.classList.toggle("muted", Boolean(state.muted));
    tile.element.classList.toggle("video-stopped", Boolean(state.videoStopped));
    tile.element.classList.toggle("hand-raised", Boolean(state.hand));
    tile.element.classList.toggle("speaking", Boolean(state.speaking));
    // A stopped or turned-off video would otherwise freeze on its last frame: show initials instead.
    tile.element.classList.toggle("no-video",
      !tile.hasVideo || Boolean(state.videoStopped || state.cameraOff || state.videoPaused));
    const pinned = Boolean(state.pinned);
    tile.pin.setAttribute("aria-pressed", String(pinned));
    tile.pin.setAttribute("aria-label", pinned ? t("stage.unpin", { name: tile.name.textContent })
      : t("stage.pin", { name: tile.name.textContent }));
    tile.timer.hidden = !state.timer;
    tile.timerState = state.timer || null;
    this.tick(tile);
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

  // The share-time countdown, once a second (room.js): calm, and a gentle "time's up" at the end.
  tick(tile) {
    const timer = tile.timerState;
    if (!timer) {
      tile.element.classList.remove("time-up");
      return;
    }
    const left = (timer.endsAt - Date.now()) / 1000;
    const up = timer.expired || left <= 0;
    tile.element.classList.toggle("time-up", up);
    tile.timer.textContent = up ? t("share.timeUp") : t("share.timeLeft", { time: formatCountdown(left) });
  }

  tickAll() {
    for (const tile of this.tiles.values()) if (tile.timerState) this.tick(tile);
  }

  // Captions under the speaker's tile (display option): the latest line of each speaker.
  setCaption(id, text) {
    const tile = this.tiles.get(id);
    if (tile) tile.caption.textContent = text || "";
  }

  relabel() {
    for (const tile of this.tiles.values()) {
      tile.displayName = null;
      tile.stateKey = "";
    }
  }

  remove(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.wrapper.remove();
    this.tiles.delete(key);
  }

  clear() {
    for (const key of [...this.tiles.keys()]) this.remove(key);
  }
}
