// The client's one store. Three parts, one object:
//   store.state    what the server told us about the room (people, moderation, presence, hands, who speaks,
//                  who shares) and this person's own media and choices in the room;
//   store.session  what this tab is doing: the chosen group, the join request, the live Call, local media;
//   store.ui       how the room is shown here: layout, pinned person, open panels, unread counts.
// Room events change it through `update`; views render from it once per task, however many events arrived.
// Preferences that outlive the tab are read from prefs.js once, here, and written back there.

import { getPref } from "./prefs.js";

export function emptyRoom() {
  return {
    self: null, // { id, name, role }
    people: new Map(), // id -> { id, name, role } (everyone admitted, ourselves included)
    moderation: new Map(), // id -> { muted, videoStopped }: what a facilitator did
    media: new Map(), // id -> { microphone, camera }: what the person said about their own devices
    reactions: new Map(), // id -> reaction shown on their tile for a moment
    hands: [], // [{ participant_id, name }], first raised first
    speaking: null, // the dominant speaker's id
    locked: false,
    unmuteRequested: false,
    waiting: [], // facilitators: the lobby
    roomStartedAt: null, // Date.now() at room time 0, from room-state
    videoDelivery: new Map(), // id -> "shown" | "hidden" | "audio-only" | "bandwidth": what the server sends us
    audioOnly: getPref("audioOnly"), // this person asked for audio and captions only
    local: { micOn: false, cameraOn: false, hasMic: false, hasCam: false, sharing: false },
    sharer: null, // who shares a screen now (docs/protocol.md `share`)
    shareAllowed: [], // members a facilitator allowed to share
    shareTimer: null, // { id, seconds, endsAt (Date.now() ms), expired }
  };
}

function emptySession() {
  return {
    directory: null, // { groups, allow_adhoc_rooms, privacy_notice }
    group: null, // the chosen group (with privacy_notice)
    agreed: false,
    link: null, // { room, secret } from a facilitator link; the secret only ever goes into "join"
    request: null, // { room, name, language, secret, mic, camera, devices: { audio, video } }
    call: null,
    localStream: null,
    screenStream: null, // our own screen share while it lasts
    leaving: false,
    secretFor: null, // the group a typed facilitator secret belongs to
    facilitator: null, // FacilitatorPanel while our role is facilitator
    subtitleLanguage: getPref("subtitleLanguage") || null,
    subtitleLanguages: null, // null until the server says; [] when nothing can be offered
    hideName: getPref("hideName"),
    captionMode: getPref("captionMode"),
  };
}

function emptyUi() {
  return {
    layout: getPref("layout"), // auto | speaker | grid
    pinned: null, // participant id (or "screen:<id>") pinned to the stage
    selfViewHidden: getPref("selfViewHidden"),
    captionsShown: getPref("captionsShown"),
    panels: new Set(), // open panels: chat, people, facilitator, captions-sheet (phone)
    unread: { chat: 0 },
  };
}

export class Store {
  constructor() {
    this.state = emptyRoom();
    this.session = emptySession();
    this.ui = emptyUi();
    this.listeners = new Set();
    this.pending = false;
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  update(change) {
    if (change) change(this.state, this.ui);
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      for (const listener of this.listeners) listener(this.state, this.ui);
    });
  }

  reset() {
    this.update((state, ui) => {
      Object.assign(state, emptyRoom());
      ui.pinned = null;
      ui.unread = { chat: 0 };
    });
  }
}

export const store = new Store();

export function moderationOf(state, id) {
  return state.moderation.get(id) || { muted: false, videoStopped: false };
}

export function mediaOf(state, id) {
  return state.media.get(id) || { microphone: true, camera: true };
}
