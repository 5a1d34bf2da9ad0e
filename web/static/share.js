// Screen sharing from this browser (docs/protocol.md, "Screen sharing"): getDisplayMedia, the track on the
// offer's second video transceiver (replaceTrack: no renegotiation), then `start-share`. Stopping: the bar's
// button, the browser's own "stop sharing" (the track ends), or the server saying someone else shares now
// (a facilitator stopped us or revoked our permission).

import { announce } from "./dom.js";
import { t } from "./i18n.js";
import { notify } from "./notices.js";
import { store } from "./store.js";

const session = store.session;

export function canShare(state) {
  const call = session.call;
  if (!call || !call.offersScreen || !state.self) return false;
  return state.self.role === "facilitator" || state.shareAllowed.includes(state.self.id);
}

function setSharing(on) {
  store.update((state) => {
    state.local = { ...state.local, sharing: on };
  });
}

// Local cleanup only: the track off the sender and stopped.
async function release() {
  const stream = session.screenStream;
  session.screenStream = null;
  setSharing(false);
  if (!stream) return;
  for (const track of stream.getTracks()) {
    track.onended = null;
    track.stop();
  }
  if (session.call && session.call.senders.screen) {
    try {
      await session.call.setScreenTrack(null);
    } catch {
      // the connection is gone: nothing is sent anyway
    }
  }
}

export async function startShare(sendControl) {
  if (session.screenStream || !session.call) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    notify(t("share.unsupported"), { kind: "info" });
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch {
    return; // the person cancelled the browser's picker: nothing to say
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  track.contentHint = "detail";
  session.screenStream = stream;
  track.onended = () => stopShare(sendControl); // the browser's own "stop sharing"
  try {
    await session.call.setScreenTrack(track);
  } catch {
    await release();
    notify(t("share.unsupported"), { kind: "info" });
    return;
  }
  setSharing(true);
  if (!sendControl({ type: "start-share" })) await release();
}

export async function stopShare(sendControl) {
  if (!session.screenStream) return;
  sendControl({ type: "stop-share" });
  await release();
  announce(t("share.stopped"));
}

export function toggleShare(sendControl) {
  return session.screenStream ? stopShare(sendControl) : startShare(sendControl);
}

// `share` event: who shares now. If it is no longer us, our share was ended for us.
export function onShareEvent(participantId) {
  const state = store.state;
  const before = state.sharer;
  const selfId = state.self ? state.self.id : null;
  store.update((s) => {
    s.sharer = participantId || null;
  });
  if (session.screenStream && participantId !== selfId && before === selfId) release();
  if (participantId && participantId !== before) {
    announce(participantId === selfId ? t("share.youAreSharing") : t("share.isSharing", { name: nameOf(participantId) }));
  } else if (!participantId && before) {
    announce(t("share.ended"));
  }
}

// An `error` answering start-share: the share did not start; say why in plain words.
export function onShareError(code) {
  release();
  const key = { "not-allowed": "share.notAllowed", "share-busy": "share.busy", "no-screen-track": "share.unsupported" }[code];
  const text = key ? t(key) : t("share.failed");
  notify(text, { kind: "info", key: "share-error" });
  announce(text);
}

export function nameOf(id) {
  const state = store.state;
  if (state.self && id === state.self.id) return t("room.you");
  const person = state.people.get(id);
  return person ? person.name : t("room.someone");
}
