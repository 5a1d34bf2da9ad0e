// peerwell browser client: landing form, room view, reconnection. Plain ES modules, no build step.

import { Call } from "./call.js";
import { CaptionView } from "./captions.js";
import { Tiles } from "./tiles.js";

const LANGUAGES = {
  en: "English", es: "Español", fr: "Français", de: "Deutsch", it: "Italiano", pt: "Português",
  nl: "Nederlands", pl: "Polski", uk: "Українська", ru: "Русский", tr: "Türkçe", ar: "العربية",
  hi: "हिन्दी", zh: "中文", ja: "日本語", ko: "한국어",
};
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

const $ = (id) => document.getElementById(id);

const state = {
  call: null,
  localStream: null,
  request: null,
  micOn: true,
  cameraOn: true,
  leaving: false,
};

const tiles = new Tiles($("tiles"));
const captions = new CaptionView({
  live: $("captions-live"), history: $("captions-history"), status: $("captions-status"),
});

function fillLanguages() {
  const select = $("spoken-language");
  for (const [code, label] of Object.entries(LANGUAGES)) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = label;
    select.append(option);
  }
}

function showError(message) {
  const box = $("join-error");
  box.textContent = message;
  box.hidden = !message;
}

function banner(message) {
  const box = $("status-banner");
  box.textContent = message || "";
  box.hidden = !message;
}

async function openLocalMedia(wantMic, wantCamera) {
  if (!wantMic && !wantCamera) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: wantMic, video: wantCamera });
  } catch (error) {
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

function renderParticipants() {
  const call = state.call;
  if (!call) return;
  tiles.ensure(call.participantId, state.request.name, { self: true });
  if (state.localStream) tiles.setTracks(call.participantId, {
    video: state.localStream.getVideoTracks()[0] || null,
  });
  for (const [id, info] of call.participants) {
    if (id !== call.participantId) tiles.ensure(id, info.name);
  }
  for (const id of [...tiles.tiles.keys()]) {
    if (id !== call.participantId && !call.participants.has(id)) tiles.remove(id);
  }
  renderTracks();
}

function renderTracks() {
  const call = state.call;
  if (!call) return;
  const remote = call.remoteTracks();
  for (const id of tiles.tiles.keys()) {
    if (id === call.participantId) continue;
    tiles.setTracks(id, remote.get(id) || {});
  }
}

function handleEvent(event) {
  switch (event.type) {
    case "caption":
      captions.show(event);
      break;
    case "subtitle":
      captions.showSubtitle(event);
      break;
    case "error":
      banner(event.message);
      break;
    default:
      document.dispatchEvent(new CustomEvent("peerwell-event", { detail: event }));
  }
}

async function connect(resume) {
  const call = new Call({ ...state.request, resume, localStream: state.localStream });
  call.addEventListener("participants", renderParticipants);
  call.addEventListener("tracks", renderTracks);
  call.addEventListener("event", (e) => handleEvent(e.detail));
  call.addEventListener("server-error", (e) => banner(e.detail.message));
  call.addEventListener("bye", (e) => endSession(e.detail.reason));
  call.addEventListener("failed", () => reconnect());
  state.call = call;
  window.peerwell = { call }; // for diagnostics and the end-to-end tests
  const joined = await call.start();
  captions.setStatus(joined.captions);
  applyMicCamera();
  return call;
}

async function reconnect() {
  const previous = state.call;
  if (state.leaving || !previous || previous.ended) return;
  const token = previous.resumeToken;
  previous.close();
  for (const delay of RECONNECT_DELAYS_MS) {
    banner("Connection lost. Reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (state.leaving) return;
    try {
      await connect(token);
      banner("");
      return;
    } catch (error) {
      if (error.code === "resume-failed") break;
    }
  }
  try {
    await connect(null); // our place was given up: join afresh
    banner("");
  } catch {
    banner("Could not reconnect. Check your connection and join again.");
  }
}

function applyMicCamera() {
  if (!state.localStream) return;
  for (const track of state.localStream.getAudioTracks()) track.enabled = state.micOn;
  for (const track of state.localStream.getVideoTracks()) track.enabled = state.cameraOn;
  const mic = $("toggle-mic");
  mic.textContent = state.micOn ? "Mute microphone" : "Unmute microphone";
  mic.setAttribute("aria-pressed", String(state.micOn));
  const cam = $("toggle-camera");
  cam.textContent = state.cameraOn ? "Turn camera off" : "Turn camera on";
  cam.setAttribute("aria-pressed", String(state.cameraOn));
}

function endSession(reason) {
  state.leaving = true;
  if (state.call) state.call.close();
  state.call = null;
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
  tiles.clear();
  captions.clear();
  $("room").hidden = true;
  $("landing").hidden = false;
  showError(reason || "");
  $("join-button").focus();
}

async function onJoin(event) {
  event.preventDefault();
  const room = $("room-input").value.trim();
  const name = $("name-input").value.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(room)) {
    showError("Room names use letters, digits, dashes and underscores.");
    $("room-input").focus();
    return;
  }
  if (!name || name.length > 40) {
    showError("Please choose a name of 1 to 40 characters.");
    $("name-input").focus();
    return;
  }
  showError("");
  $("join-button").disabled = true;
  state.leaving = false;
  state.request = { room, name, language: $("spoken-language").value || null };
  state.localStream = await openLocalMedia($("join-mic").checked, $("join-camera").checked);
  state.micOn = Boolean(state.localStream && state.localStream.getAudioTracks().length);
  state.cameraOn = Boolean(state.localStream && state.localStream.getVideoTracks().length);
  try {
    await connect(null);
    $("landing").hidden = true;
    $("room").hidden = false;
    history.replaceState(null, "", `#${encodeURIComponent(room)}`);
    $("leave").focus();
  } catch (error) {
    showError(error.message || "Could not join.");
    if (state.call) state.call.close();
    state.call = null;
  } finally {
    $("join-button").disabled = false;
  }
}

function downloadTranscript() {
  const blob = new Blob([captions.transcript()], { type: "text/vtt" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = `peerwell-${state.request ? state.request.room : "captions"}.vtt`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function init() {
  fillLanguages();
  if (location.hash.length > 1) $("room-input").value = decodeURIComponent(location.hash.slice(1));
  $("join-form").addEventListener("submit", onJoin);
  $("toggle-mic").addEventListener("click", () => {
    state.micOn = !state.micOn;
    applyMicCamera();
  });
  $("toggle-camera").addEventListener("click", () => {
    state.cameraOn = !state.cameraOn;
    applyMicCamera();
  });
  $("leave").addEventListener("click", () => {
    state.leaving = true;
    if (state.call) state.call.leave();
    endSession("");
  });
  $("download-transcript").addEventListener("click", downloadTranscript);
  window.addEventListener("pagehide", () => {
    if (state.call) state.call.leave();
  });
}

init();
