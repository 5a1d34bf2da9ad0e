// The client's one state: what the server told us about the room (people, moderation, presence, hands, who
// speaks) and what this person chose. Call events update it through `update`; views render from it after
// each batch of updates (one render per task, however many events arrived).

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
    audioOnly: false, // this person asked for audio and captions only
    local: { micOn: false, cameraOn: false, hasMic: false, hasCam: false },
  };
}

export class Store {
  constructor(state) {
    this.state = state;
    this.listeners = new Set();
    this.pending = false;
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  update(change) {
    change(this.state);
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      for (const listener of this.listeners) listener(this.state);
    });
  }

  reset() {
    this.update((state) => Object.assign(state, emptyRoom()));
  }
}

export const store = new Store(emptyRoom());

export function moderationOf(state, id) {
  return state.moderation.get(id) || { muted: false, videoStopped: false };
}

export function mediaOf(state, id) {
  return state.media.get(id) || { microphone: true, camera: true };
}
