// One visit to a room, from "Join" to leaving: local media, the Call, reconnecting after a drop, and taking
// back our place after a reload. This tab's place (the join request, the resume token, and for a facilitator
// the secret) lives in sessionStorage: it survives a reload but not closing the tab, and never goes in the
// address bar. Only the Leave button (or a goodbye from the server) gives the place up at once; a reload or a
// closed tab leaves it to the server's grace period, so a reload within it comes back to the same seat.

import { CAMERA_SIZE, Call } from "./call.js";
import { $, announce } from "./dom.js";
import { currentLanguage, setGroupLanguage, t } from "./i18n.js";
import { clearNotices, notify } from "./notices.js";
import { store } from "./store.js";
import { banner, currentView, showView } from "./views.js";

const ctx = store.session;

// What the room does for the session (set by app.js, so session.js and room.js never import each other):
// room.enterRoom(), room.handleEvent(event), room.resetRoom(), room.sendPreferences(), room.setupRole(call or null).
const room = {
  enterRoom: () => {}, handleEvent: () => {}, resetRoom: () => {}, sendPreferences: () => {}, setupRole: () => {},
};
export function configureSession(hooks) {
  Object.assign(room, hooks);
}

const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
// Worth trying again: no connection, or (several nodes) the room could not be found or placed right now.
const RETRY_CODES = new Set(["connection", "unavailable"]);
const PLACE_KEY = "peerwell.place";
const LEFT_NOTICE_DELAY_MS = 4000; // a reload comes back within this: no "left" notice for it

// --- this tab's place ---------------------------------------------------------------------------------

export function savedPlace() {
  try {
    const place = JSON.parse(sessionStorage.getItem(PLACE_KEY) || "null");
    return place && place.request && place.request.room ? place : null;
  } catch {
    return null;
  }
}

export function savePlace() {
  const call = ctx.call;
  if (!call || !ctx.request || !call.resumeToken) return;
  const request = { ...ctx.request };
  // A facilitator's secret is kept for this tab only, so a reload after the grace period still works.
  if (call.role !== "facilitator") request.secret = null;
  const place = {
    request, resume: call.resumeToken, group: ctx.group,
    micOn: store.state.local.micOn, cameraOn: store.state.local.cameraOn,
  };
  try {
    sessionStorage.setItem(PLACE_KEY, JSON.stringify(place));
  } catch {
    // storage disabled: a reload starts over, as before
  }
}

export function clearPlace() {
  try {
    sessionStorage.removeItem(PLACE_KEY);
  } catch {
    // nothing kept
  }
}

// --- local media ----------------------------------------------------------------------------------------

function constraint(wanted, deviceId, extra = {}) {
  if (!wanted) return false;
  return deviceId ? { deviceId: { exact: deviceId }, ...extra } : Object.keys(extra).length ? extra : true;
}

export async function openLocalMedia(wantMic, wantCamera, devices = {}) {
  if (!wantMic && !wantCamera) return null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: constraint(wantMic, devices.audio), video: constraint(wantCamera, devices.video, CAMERA_SIZE),
    });
  } catch {
    if (wantCamera && wantMic) {
      // No camera, or camera refused: audio-only still lets the person take part.
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      } catch {
        return null;
      }
    }
    return null;
  }
}

export function stopLocalMedia() {
  if (ctx.localStream) for (const track of ctx.localStream.getTracks()) track.stop();
  ctx.localStream = null;
  if (ctx.screenStream) for (const track of ctx.screenStream.getTracks()) track.stop();
  ctx.screenStream = null;
}

function useLocalStream(stream, { micOn = true, cameraOn = true } = {}) {
  ctx.localStream = stream;
  const hasMic = Boolean(stream && stream.getAudioTracks().length);
  const hasCam = Boolean(stream && stream.getVideoTracks().length);
  store.update((state) => {
    state.local = { hasMic, hasCam, micOn: hasMic && micOn, cameraOn: hasCam && cameraOn };
  });
}

// --- joining ------------------------------------------------------------------------------------------

// From the join form. Throws the server's JoinError (shown on the form) when refused.
export async function joinRoom(request, stream) {
  ctx.request = request;
  ctx.leaving = false;
  // The first moment any device is touched: after "I agree" and the person's own choice (or the preview).
  useLocalStream(stream || await openLocalMedia(request.mic, request.camera, request.devices));
  try {
    await connect(null);
  } catch (error) {
    if (ctx.call) ctx.call.close();
    ctx.call = null;
    stopLocalMedia();
    throw error;
  }
  if ((request.mic || request.camera) && !ctx.localStream) banner(t("session.textOnly"));
  afterConnect();
}

// After a reload: take back our place with the resume token, without the agreement or the lobby.
export async function resumeFromTab(place) {
  ctx.group = place.group;
  ctx.agreed = true;
  if (place.group) setGroupLanguage(place.group.language);
  ctx.request = place.request;
  ctx.leaving = false;
  showView("room", { title: (place.group && place.group.name) || place.request.room });
  banner(t("session.rejoining"));
  useLocalStream(await openLocalMedia(place.request.mic, place.request.camera, place.request.devices || {}),
    { micOn: place.micOn !== false, cameraOn: place.cameraOn !== false });
  try {
    await connect(place.resume);
  } catch (error) {
    if (ctx.call) ctx.call.close();
    ctx.call = null;
    const code = error.code || "connection";
    if (code !== "resume-failed" && code !== "connection") return refusedLater(error);
    try {
      await connect(null); // the place was given up meanwhile: join afresh (a facilitator keeps the secret)
    } catch (again) {
      if (ctx.call) ctx.call.close();
      ctx.call = null;
      return refusedLater(again);
    }
  }
  banner("");
  afterConnect();
}

async function connect(resume) {
  const call = new Call({ ...ctx.request, resume, localStream: ctx.localStream });
  call.addEventListener("participants", () => syncPeople(call));
  call.addEventListener("tracks", () => store.update(() => {}));
  call.addEventListener("event", (e) => room.handleEvent(e.detail));
  call.addEventListener("server-error", (e) => banner(e.detail.message));
  call.addEventListener("bye", (e) => onBye(e.detail.reason));
  call.addEventListener("failed", () => reconnect(call));
  call.addEventListener("lobby", (e) => onLobby(e.detail));
  call.addEventListener("admitted", () => {
    savePlace(); // the token may have changed (several nodes)
    room.enterRoom();
  });
  call.addEventListener("lobby-update", (e) => {
    const waiting = e.detail.waiting || [];
    store.update((state) => {
      state.waiting = waiting;
    });
    if (ctx.facilitator) ctx.facilitator.setWaiting(waiting);
  });
  call.addEventListener("participant-joined", (e) => onJoinedRoom(e.detail));
  call.addEventListener("participant-left", (e) => onLeftRoom(e.detail));
  call.addEventListener("channel-open", () => room.sendPreferences());
  ctx.call = call;
  window.peerwell = { call, store }; // for diagnostics and the end-to-end tests
  const joined = await call.start();
  savePlace();
  return joined;
}

function syncPeople(call) {
  if (call !== ctx.call || !call.participantId) return;
  store.update((state) => {
    state.self = { id: call.participantId, name: ctx.request.name, role: call.role };
    state.people = new Map(call.participants);
    for (const id of [...state.moderation.keys()]) if (!state.people.has(id) && id !== state.self.id) state.moderation.delete(id);
    for (const id of [...state.media.keys()]) if (!state.people.has(id)) state.media.delete(id);
  });
}

// After a successful join (first time, reconnect or reload): lobby or room.
function afterConnect() {
  if (ctx.call.waiting) onLobby(null);
  else room.enterRoom();
}

function onLobby(message) {
  // The server's wording is English; other interface languages use their own.
  const text = message && message.message && currentLanguage() === "en" ? message.message : t("lobby.waiting");
  $("lobby-message").textContent = text;
  if (currentView() !== "lobby") {
    showView("lobby", { title: t("lobby.title") });
    announce(text);
  }
}

// Someone who reloads leaves and comes back within a few seconds: say nothing about that.
const recentlyLeft = new Map(); // id -> timer

function onJoinedRoom(person) {
  const timer = recentlyLeft.get(person.id);
  if (timer) {
    clearTimeout(timer);
    recentlyLeft.delete(person.id);
    return;
  }
  if (currentView() === "room") announce(t("room.joined", { name: person.name }));
}

function onLeftRoom(person) {
  if (currentView() !== "room" || !person.name) return;
  recentlyLeft.set(person.id, setTimeout(() => {
    recentlyLeft.delete(person.id);
    if (!ctx.call || currentView() !== "room") return;
    const text = t("room.left", { name: person.name });
    announce(text);
    notify(text, { kind: "info" });
  }, LEFT_NOTICE_DELAY_MS));
}

async function reconnect(failedCall) {
  const previous = ctx.call;
  if (ctx.leaving || !previous || previous !== failedCall || previous.ended) return;
  const token = previous.resumeToken;
  previous.close();
  for (const delay of RECONNECT_DELAYS_MS) {
    banner(t("session.reconnecting"));
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (ctx.leaving) return;
    try {
      await connect(token);
      banner("");
      afterConnect();
      return;
    } catch (error) {
      if (ctx.call) ctx.call.close();
      if (error.code && !RETRY_CODES.has(error.code)) {
        if (error.code !== "resume-failed") return refusedLater(error);
        break;
      }
    }
  }
  if (ctx.leaving) return;
  try {
    await connect(null); // our place was given up: join afresh
    banner("");
    afterConnect();
  } catch (error) {
    if (error.code && !RETRY_CODES.has(error.code)) return refusedLater(error);
    banner(t("session.couldNotReconnect"));
  }
}

export function joinErrorText(error) {
  const key = `joinError.${error.code}`;
  const text = t(key);
  return text !== key ? text : error.message || t("joinError.connection");
}

// A rejoin was refused (removed, locked, ...): leave the room and say why.
function refusedLater(error) {
  clearPlace();
  endCall();
  showGoodbye(t("goodbye.couldNotRejoin"), joinErrorText(error));
}

// --- leaving ------------------------------------------------------------------------------------------

export function endCall() {
  ctx.leaving = true;
  const call = ctx.call;
  ctx.call = null;
  if (call) call.close();
  stopLocalMedia();
  for (const timer of recentlyLeft.values()) clearTimeout(timer);
  recentlyLeft.clear();
  clearNotices();
  room.resetRoom();
  room.setupRole(null);
  store.reset();
  banner("");
}

export function showGoodbye(title, text) {
  $("goodbye-title").textContent = title;
  $("goodbye-message").textContent = text;
  showView("goodbye");
}

function onBye(reason) {
  clearPlace();
  endCall();
  const known = ["denied", "removed", "ended"].includes(reason) ? reason : "other";
  showGoodbye(t(`bye.${known}.title`), t(`bye.${known}.text`));
}

// The Leave button (room or lobby): the only way, with a goodbye from the server, to give the place up now.
export function leave() {
  const fromLobby = currentView() === "lobby";
  if (ctx.call) ctx.call.leave();
  clearPlace();
  endCall();
  if (fromLobby) showGoodbye(t("bye.leftLobby.title"), t("bye.leftLobby.text"));
  else showGoodbye(t("bye.left.title"), t("bye.left.text"));
}
