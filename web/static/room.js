// The room: data-channel events update the store; tiles, hands, controls and the facilitator's people list
// render from it. Also the room's own controls (microphone, camera, devices, hand, reactions, "I need help",
// captions and subtitles).

import { CAMERA_SIZE } from "./call.js";
import { CaptionView } from "./captions.js";
import { ChatView } from "./chat.js";
import { ctx } from "./context.js";
import { $, announce, el, setText, storageSet } from "./dom.js";
import { FacilitatorPanel } from "./facilitator.js";
import { t } from "./i18n.js";
import { languageName, languageOption } from "./languages.js";
import { notify } from "./notices.js";
import { leave, savePlace } from "./session.js";
import { moderationOf, store } from "./store.js";
import { REACTIONS, Tiles } from "./tiles.js";
import { VideoViews } from "./video_views.js";
import { banner, currentView, showView } from "./views.js";

const REACTION_SHOWN_MS = 4000;

export const tiles = new Tiles($("tiles"));
const videoViews = new VideoViews(tiles, (message) => (ctx.call ? ctx.call.sendControl(message) : false));
export const captions = new CaptionView({
  live: $("captions-live"), history: $("captions-history"), status: $("captions-status"), jump: $("captions-jump"),
  onLine: (caption) => {
    if (caption.speaker_id) tiles.setCaption(caption.speaker_id, caption.text);
  },
});
export const chat = new ChatView({
  list: $("chat-list"), form: $("chat-form"), input: $("chat-input"), counter: $("chat-counter"),
  error: $("chat-error"), send: (message) => sendControl(message),
});

// Room time (seconds since the room opened, as the server stamps chat and alerts) -> a Date here.
export function timeOf(roomTime) {
  const started = store.state.roomStartedAt;
  return started !== null && typeof roomTime === "number" ? new Date(started + roomTime * 1000) : new Date();
}

export function sendControl(message) {
  const sent = Boolean(ctx.call && ctx.call.sendControl(message));
  if (!sent) banner(t("room.notConnected"));
  return sent;
}

function sendMediaState() {
  const local = store.state.local;
  if (ctx.call) ctx.call.sendControl({ type: "set-media-state", microphone: local.micOn, camera: local.cameraOn });
}

export function sendPreferences() {
  if (!ctx.call) return;
  if (ctx.subtitleLanguage) ctx.call.sendControl({ type: "set-subtitle-language", language: ctx.subtitleLanguage });
  if (ctx.hideName) ctx.call.sendControl({ type: "set-caption-name-hidden", hidden: true });
  if (ctx.audioOnly) ctx.call.sendControl({ type: "set-audio-only", enabled: true });
  videoViews.resend();
  sendMediaState();
}

// --- entering and leaving -----------------------------------------------------------------------------

export function enterRoom() {
  const call = ctx.call;
  if (!call) return;
  const group = call.group || ctx.group || { name: call.request.room };
  ctx.group = ctx.group || group;
  $("room-title").textContent = group.name || call.request.room;
  captions.setStatus(call.joined && call.joined.captions);
  renderSubtitleMenu();
  setupRole(call);
  store.update(() => {});
  history.replaceState(null, "", `#room=${encodeURIComponent(call.request.room)}`);
  if (currentView() !== "room") {
    showView("room", { title: group.name });
    announce(t("room.youreIn", { name: group.name || call.request.room }));
  } else {
    $("room-title").focus();
  }
}

export function setupRole(call) {
  const facilitator = Boolean(call) && call.role === "facilitator";
  if (call) chat.configure({ selfId: call.participantId, canDelete: facilitator, timeOf });
  if (facilitator && !ctx.facilitator) {
    ctx.facilitator = new FacilitatorPanel($("facilitator-mount"), {
      admit: (id) => ctx.call && ctx.call.admit(id),
      deny: (id) => ctx.call && ctx.call.deny(id),
      request: (message) => sendControl(message),
      timeOf,
    });
    ctx.facilitator.setLocked(store.state.locked);
    ctx.facilitator.setWaiting(store.state.waiting);
  } else if (!facilitator && ctx.facilitator) {
    ctx.facilitator.destroy();
    ctx.facilitator = null;
  }
  document.body.classList.toggle("is-facilitator", facilitator);
}

export function resetRoom() {
  tiles.clear();
  captions.clear();
  chat.clear();
  $("subtitle-status").textContent = "";
  ctx.subtitleLanguages = null;
  renderSubtitleMenu();
}

// --- events from the data channel ---------------------------------------------------------------------

export function handleEvent(event) {
  switch (event.type) {
    case "caption":
      captions.show(event);
      break;
    case "subtitle":
      captions.showSubtitle(event);
      break;
    case "subtitle-languages":
      ctx.subtitleLanguages = Array.isArray(event.languages) ? event.languages : [];
      renderSubtitleMenu();
      break;
    case "subtitle-status":
      $("subtitle-status").textContent = event.message || (event.available ? t("subtitles.on") : t("subtitles.unavailable"));
      break;
    case "chat":
      chat.add(event);
      break;
    case "chat-deleted":
      chat.remove(event.message_id);
      break;
    case "hands":
      onHands(Array.isArray(event.queue) ? event.queue : []);
      break;
    case "moderation":
      onModeration(event.action, event.participant_id);
      break;
    case "media-state":
      store.update((state) => {
        state.media.set(event.participant_id, { microphone: Boolean(event.microphone), camera: Boolean(event.camera) });
      });
      break;
    case "reaction":
      onReaction(event.participant_id, event.reaction);
      break;
    case "unmute-requested":
      if (ctx.facilitator) ctx.facilitator.addUnmuteRequest(event);
      break;
    case "help-requested":
      if (ctx.facilitator) ctx.facilitator.addHelpRequest(event);
      break;
    case "room-state":
      onRoomState(event);
      break;
    case "video-delivery":
      onVideoDelivery(event.videos && typeof event.videos === "object" ? event.videos : {});
      break;
    case "dominant-speaker":
      store.update((state) => {
        state.speaking = event.participant_id;
      });
      break;
    case "safety-alert":
      if (ctx.facilitator) ctx.facilitator.addSafetyAlert(event); // never shown to anyone else
      break;
    case "error":
      if (event.request === "chat") chat.showError(event.message);
      else if (event.request === "ask-for-help") setText($("help-status"), event.message);
      else banner(event.message);
      break;
    default:
      break;
  }
}

function nameOf(id) {
  const state = store.state;
  if (state.self && id === state.self.id) return t("room.you");
  const person = state.people.get(id);
  return person ? person.name : t("room.someone");
}

function onModeration(action, id) {
  const self = store.state.self && id === store.state.self.id;
  store.update((state) => {
    const entry = { ...moderationOf(state, id) };
    if (action === "muted") entry.muted = true;
    else if (action === "unmuted") entry.muted = false;
    else if (action === "video-stopped") entry.videoStopped = true;
    else if (action === "video-allowed") entry.videoStopped = false;
    else return;
    state.moderation.set(id, entry);
    if (self && action === "unmuted") state.unmuteRequested = false;
  });
  if (self) {
    const key = { muted: "self.mutedNow", unmuted: "self.unmutedNow", "video-stopped": "self.videoStoppedNow",
      "video-allowed": "self.videoAllowedNow" }[action];
    if (key) announce(t(key));
  } else if (action === "muted" || action === "unmuted") {
    announce(t(action === "muted" ? "room.facilitatorMuted" : "room.facilitatorUnmuted", { name: nameOf(id) }));
  }
  if (action === "unmuted" && ctx.facilitator) ctx.facilitator.removeUnmuteRequest(id);
}

function onReaction(id, reaction) {
  if (!REACTIONS[reaction]) return;
  store.update((state) => {
    state.reactions.set(id, reaction);
  });
  announce(t("room.reacted", { name: nameOf(id), reaction: t(`reaction.${reaction}`) }));
  clearTimeout(onReaction.timers.get(id));
  onReaction.timers.set(id, setTimeout(() => {
    store.update((state) => {
      if (state.reactions.get(id) === reaction) state.reactions.delete(id);
    });
  }, REACTION_SHOWN_MS));
}
onReaction.timers = new Map();

function onVideoDelivery(videos) {
  const was = [...store.state.videoDelivery.values()].includes("bandwidth");
  store.update((state) => {
    state.videoDelivery = new Map(Object.entries(videos));
  });
  const now = Object.values(videos).includes("bandwidth");
  if (was !== now) announce(now ? t("room.videoPausedBandwidth") : t("room.videoResumed"));
}

function onRoomState(event) {
  const changed = Boolean(event.locked) !== store.state.locked;
  store.update((state) => {
    state.locked = Boolean(event.locked);
    if (typeof event.room_time === "number") state.roomStartedAt = Date.now() - event.room_time * 1000;
  });
  if (ctx.facilitator) ctx.facilitator.setLocked(Boolean(event.locked));
  if (changed) announce(event.locked ? t("room.lockedNow") : t("room.unlockedNow"));
}

function onHands(queue) {
  const selfId = store.state.self ? store.state.self.id : null;
  const was = store.state.hands.some((entry) => entry.participant_id === selfId);
  const now = queue.some((entry) => entry.participant_id === selfId);
  store.update((state) => {
    state.hands = queue;
  });
  if (was !== now) announce(now ? t("hand.raisedNow") : t("hand.loweredNow"));
}

// --- rendering ----------------------------------------------------------------------------------------

export function renderRoom(state) {
  if (!ctx.call || !state.self) return;
  const remote = ctx.call.remoteTracks();
  const localVideo = ctx.localStream ? ctx.localStream.getVideoTracks()[0] || null : null;
  tiles.render(state, remote, localVideo);
  videoViews.update();
  renderHands(state);
  renderControls(state);
  renderSelfModeration(state);
  $("lock-status").hidden = !state.locked;
  if (ctx.facilitator) {
    const people = [...state.people.values()].filter((p) => p.id !== state.self.id).map((p) => {
      const moderation = moderationOf(state, p.id);
      return { id: p.id, name: p.name, role: p.role, muted: moderation.muted, videoStopped: moderation.videoStopped };
    });
    ctx.facilitator.setPeople(people);
  }
}

let handsKey = "";

function renderHands(state) {
  const selfId = state.self.id;
  const key = JSON.stringify([state.hands, Boolean(ctx.facilitator)]);
  if (key !== handsKey) {
    handsKey = key;
    const items = state.hands.map((entry, index) => {
      const own = entry.participant_id === selfId;
      const item = el("li", { dataset: { participantId: entry.participant_id } },
        el("span", { class: "person-name" }, own ? t("tile.you", { name: entry.name }) : entry.name));
      if (ctx.facilitator && !own) {
        const lower = el("button", {
          type: "button", class: "small secondary", "aria-label": t("hand.lowerOf", { name: entry.name }),
        }, t("hand.lower"));
        lower.addEventListener("click", () => sendControl({ type: "lower-hand-of", participant_id: entry.participant_id }));
        item.append(" ", lower);
      }
      if (index === 0) item.classList.add("next");
      return item;
    });
    const list = $("hand-queue");
    const hadFocus = list.contains(document.activeElement);
    list.replaceChildren(...items);
    if (hadFocus) $("hands-title").focus();
    $("hands-empty").hidden = state.hands.length > 0;
  }
  const raised = state.hands.some((entry) => entry.participant_id === selfId);
  const button = $("toggle-hand");
  button.dataset.raised = raised ? "1" : "0";
  button.textContent = raised ? t("hand.lower") : t("hand.raise");
  button.classList.toggle("active", raised);
}

function renderControls(state) {
  const { local } = state;
  const mine = moderationOf(state, state.self.id);
  const mic = $("toggle-mic");
  // The button agrees with the facilitator: while they have muted us, our own switch cannot unmute.
  mic.disabled = !local.hasMic || mine.muted;
  mic.textContent = !local.hasMic ? t("controls.noMic") : mine.muted ? t("controls.mutedByFacilitator")
    : local.micOn ? t("controls.mute") : t("controls.unmute");
  mic.classList.toggle("off", local.hasMic && (!local.micOn || mine.muted));
  mic.setAttribute("aria-pressed", String(local.hasMic && !local.micOn));
  const cam = $("toggle-camera");
  cam.disabled = !local.hasCam || mine.videoStopped;
  cam.textContent = !local.hasCam ? t("controls.noCamera") : mine.videoStopped ? t("controls.videoStoppedByFacilitator")
    : local.cameraOn ? t("controls.cameraOff") : t("controls.cameraOn");
  cam.classList.toggle("off", local.hasCam && (!local.cameraOn || mine.videoStopped));
  cam.setAttribute("aria-pressed", String(local.hasCam && !local.cameraOn));
  const audioOnly = $("toggle-audio-only");
  audioOnly.setAttribute("aria-pressed", String(state.audioOnly));
  audioOnly.classList.toggle("active", state.audioOnly);
  const thin = [...state.videoDelivery.values()].includes("bandwidth");
  $("bandwidth-status").hidden = !thin;
  if (ctx.localStream) {
    for (const track of ctx.localStream.getAudioTracks()) track.enabled = local.micOn;
    for (const track of ctx.localStream.getVideoTracks()) track.enabled = local.cameraOn;
  }
}

function renderSelfModeration(state) {
  const mine = moderationOf(state, state.self.id);
  const lines = [];
  if (mine.muted) lines.push(t("self.muted"));
  if (mine.videoStopped) lines.push(t("self.videoStopped"));
  $("self-moderation-text").textContent = lines.join(" ");
  $("self-moderation").hidden = lines.length === 0;
  const ask = $("request-unmute");
  ask.hidden = !mine.muted;
  ask.disabled = state.unmuteRequested;
  ask.textContent = state.unmuteRequested ? t("self.unmuteRequested") : t("self.askUnmute");
}

// --- subtitles ---------------------------------------------------------------------------------------

export function renderSubtitleMenu() {
  const select = $("subtitle-language");
  const options = [languageOption("", t("subtitles.none"))];
  const codes = [...(ctx.subtitleLanguages || [])];
  if (ctx.subtitleLanguage && !codes.includes(ctx.subtitleLanguage)) codes.push(ctx.subtitleLanguage);
  for (const code of codes) options.push(languageOption(code));
  select.replaceChildren(...options);
  select.value = ctx.subtitleLanguage || "";
  // Say why when there is nothing to choose: the server offers subtitles only for installed translations.
  const none = ctx.subtitleLanguages !== null && ctx.subtitleLanguages.length === 0 && !ctx.subtitleLanguage;
  const unknown = ctx.subtitleLanguages === null && !ctx.subtitleLanguage;
  setText($("subtitle-why"), none ? t("subtitles.noneInstalled") : unknown && ctx.call ? t("subtitles.notOffered") : "");
}

function onSubtitleLanguage() {
  const value = $("subtitle-language").value || null;
  ctx.subtitleLanguage = value;
  storageSet("peerwell.subtitleLanguage", value);
  $("subtitle-status").textContent = value ? t("subtitles.asking", { language: languageName(value) }) : t("subtitles.off");
  if (ctx.call) ctx.call.sendControl({ type: "set-subtitle-language", language: value });
}

function onHideName() {
  ctx.hideName = $("hide-name").checked;
  storageSet("peerwell.hideName", ctx.hideName ? "1" : "0");
  if (ctx.call) ctx.call.sendControl({ type: "set-caption-name-hidden", hidden: ctx.hideName });
  announce(ctx.hideName ? t("captions.nameHidden") : t("captions.nameShown"));
}

// --- devices in the room ------------------------------------------------------------------------------

async function fillDeviceMenus() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const current = (kind) => {
    const track = ctx.localStream && ctx.localStream.getTracks().find((tr) => tr.kind === kind);
    return track ? track.getSettings().deviceId : "";
  };
  for (const [kind, id] of [["audioinput", "room-mic-device"], ["videoinput", "room-camera-device"]]) {
    const select = $(id);
    const list = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...list.map((d, i) => el("option", { value: d.deviceId },
      d.label || t(kind === "audioinput" ? "devices.micN" : "devices.cameraN", { n: i + 1 }))));
    select.value = current(kind === "audioinput" ? "audio" : "video");
    select.disabled = list.length === 0;
  }
}

async function switchDevice(kind, deviceId) {
  if (!ctx.call || !deviceId) return;
  try {
    const size = kind === "video" ? CAMERA_SIZE : {};
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId }, ...size } });
    const track = stream.getTracks()[0];
    if (!ctx.localStream) ctx.localStream = new MediaStream();
    for (const old of ctx.localStream.getTracks().filter((tr) => tr.kind === kind)) {
      old.stop();
      ctx.localStream.removeTrack(old);
    }
    ctx.localStream.addTrack(track);
    await ctx.call.replaceLocalTrack(kind, track);
    ctx.request.devices = { ...(ctx.request.devices || {}), [kind]: deviceId };
    store.update((state) => {
      if (kind === "audio") state.local = { ...state.local, hasMic: true, micOn: true };
      else state.local = { ...state.local, hasCam: true, cameraOn: true };
    });
    savePlace();
    sendMediaState();
    announce(t("devices.switched"));
  } catch {
    banner(t("devices.failed"));
  }
}

// --- wiring -------------------------------------------------------------------------------------------

export function initRoom() {
  store.subscribe(renderRoom);
  renderSubtitleMenu();
  $("hide-name").checked = ctx.hideName;
  const mode = ["both", "original", "translation"].includes(ctx.captionMode) ? ctx.captionMode : "both";
  captions.setMode(mode);
  for (const radio of document.querySelectorAll('input[name="caption-mode"]')) {
    radio.checked = radio.value === mode;
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      captions.setMode(radio.value);
      storageSet("peerwell.captionMode", radio.value);
    });
  }
  $("toggle-mic").addEventListener("click", () => {
    store.update((state) => {
      state.local = { ...state.local, micOn: !state.local.micOn };
    });
    queueMicrotask(() => {
      sendMediaState();
      savePlace();
    });
  });
  $("toggle-camera").addEventListener("click", () => {
    store.update((state) => {
      state.local = { ...state.local, cameraOn: !state.local.cameraOn };
    });
    queueMicrotask(() => {
      sendMediaState();
      savePlace();
    });
  });
  store.update((state) => {
    state.audioOnly = ctx.audioOnly;
  });
  $("toggle-audio-only").addEventListener("click", () => {
    ctx.audioOnly = !ctx.audioOnly;
    storageSet("peerwell.audioOnly", ctx.audioOnly ? "1" : "0");
    store.update((state) => {
      state.audioOnly = ctx.audioOnly;
    });
    sendControl({ type: "set-audio-only", enabled: ctx.audioOnly });
    announce(t(ctx.audioOnly ? "controls.audioOnlyNow" : "controls.videoBackNow"));
  });
  $("toggle-hand").addEventListener("click", () => {
    const raised = $("toggle-hand").dataset.raised === "1";
    sendControl({ type: raised ? "lower-hand" : "raise-hand" });
  });
  $("request-unmute").addEventListener("click", () => {
    if (sendControl({ type: "request-unmute" })) {
      store.update((state) => {
        state.unmuteRequested = true;
      });
      announce(t("self.requestSent"));
    }
  });
  for (const button of document.querySelectorAll("#reactions button[data-reaction]")) {
    button.addEventListener("click", () => sendControl({ type: "react", reaction: button.dataset.reaction }));
  }
  $("help-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("help-text").value.trim();
    if (sendControl({ type: "ask-for-help", text })) {
      $("help-text").value = "";
      setText($("help-status"), t("help.sent"));
      notify(t("help.sent"), { kind: "info" });
    }
  });
  $("devices-details").addEventListener("toggle", () => {
    if ($("devices-details").open) fillDeviceMenus();
  });
  $("room-mic-device").addEventListener("change", (e) => switchDevice("audio", e.target.value));
  $("room-camera-device").addEventListener("change", (e) => switchDevice("video", e.target.value));
  $("subtitle-language").addEventListener("change", onSubtitleLanguage);
  $("hide-name").addEventListener("change", onHideName);
  $("leave").addEventListener("click", leave);
  $("lobby-leave").addEventListener("click", leave);
  $("download-transcript").addEventListener("click", downloadTranscript);
}

function downloadTranscript() {
  const blob = new Blob([captions.transcript()], { type: "text/vtt" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = `peerwell-${ctx.request ? ctx.request.room : "captions"}.vtt`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
