// peerwell browser client: group directory, agreement, join details, lobby, room, reconnection.
// Plain ES modules, no build step. Every piece of user-provided text is rendered as text, never markup.

import { Call } from "./call.js";
import { CaptionView } from "./captions.js";
import { ChatView } from "./chat.js";
import { $, announce, el, setText, storageGet, storageSet } from "./dom.js";
import { FacilitatorPanel } from "./facilitator.js";
import { LANGUAGES, languageName, languageOption } from "./languages.js";
import { initDisplaySettings } from "./settings.js";
import { Tiles } from "./tiles.js";

const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
const VIEWS = ["directory", "agreement", "details", "lobby", "goodbye", "room"];
const DEFAULT_PRIVACY_NOTICE =
  "Your video, voice and messages go only through this server to the people in this room. Captions are " +
  "made on this server. Nothing is recorded.";

const JOIN_ERRORS = {
  "room-locked": "The facilitator has locked this group for now, so no one new can join. Please try again later.",
  "room-full": "This group is full right now. Please try again later.",
  removed: "The facilitator removed you from this session, so you can't rejoin it. You're welcome at a future session.",
  "bad-secret": "That facilitator secret doesn't match this group. Check it, or leave the field empty to join as a member.",
  "no-such-room": "There is no group with that name on this server.",
  "agreement-required": "Please read the group agreement and choose “I agree” first.",
  "rate-limited": "Too many attempts. Please wait a few seconds and try again.",
  "secret-locked": "Too many wrong facilitator secrets were tried. Please wait a few minutes, then try again.",
  connection: "Could not reach the server. Check your connection and try again.",
};

const BYE = {
  denied: {
    title: "Not admitted this time",
    text: "The facilitator wasn't able to let you in to this session. This isn't about you: groups are " +
      "sometimes full or already under way. You're welcome to try again at another session.",
  },
  removed: {
    title: "You've been removed from this session",
    text: "The facilitator has removed you from this session, and you can't rejoin it. You're welcome at " +
      "future sessions. If you're struggling right now, please reach out to someone you trust or a local crisis line.",
  },
  ended: {
    title: "The session has ended",
    text: "The facilitator has ended the session. Thank you for being here and for what you shared.",
  },
  left: {
    title: "You've left the session",
    text: "Thank you for being here. Take care of yourself.",
  },
};

const state = {
  directory: null, // { groups, allow_adhoc_rooms, adhoc, room_name, privacy_notice } from GET /api/groups
  group: null, // the chosen group (with privacy_notice)
  agreed: false,
  link: null, // { room, secret } from a facilitator link; the secret only ever goes into "join"
  call: null,
  localStream: null,
  request: null,
  micOn: false,
  cameraOn: false,
  leaving: false,
  facilitator: null,
  moderation: new Map(), // participant id -> { muted, videoStopped }
  hands: [],
  lockedRoom: false,
  subtitleLanguage: storageGet("peerwell.subtitleLanguage", "") || null,
  subtitleLanguages: [],
  hideName: storageGet("peerwell.hideName", "0") === "1",
  captionMode: storageGet("peerwell.captionMode", "both"),
  unmuteRequested: false,
};

const tiles = new Tiles($("tiles"));
const captions = new CaptionView({
  live: $("captions-live"), history: $("captions-history"), status: $("captions-status"),
});
const chat = new ChatView({
  list: $("chat-list"), form: $("chat-form"), input: $("chat-input"), counter: $("chat-counter"),
  error: $("chat-error"), send: (message) => sendControl(message),
});

// --- views ------------------------------------------------------------------------------------------

function showView(name, { focus = true, title } = {}) {
  for (const view of VIEWS) $(view).hidden = view !== name;
  const heading = $(`${name}-title`);
  document.title = `${title || heading.textContent} – peerwell`;
  if (focus) heading.focus();
}

function currentView() {
  return VIEWS.find((view) => !$(view).hidden);
}

function banner(message) {
  setText($("status-banner"), message);
}

// --- 1. directory -----------------------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}

function groupCard(group) {
  const lang = group.language || undefined;
  const nameId = `group-${group.slug}-name`;
  const facts = el("dl", { class: "group-facts" });
  const fact = (term, value, valueLang) => {
    if (!value) return;
    facts.append(el("div", {}, el("dt", {}, term), el("dd", { lang: valueLang }, value)));
  };
  fact("Topic", group.topic, lang);
  fact("When", group.schedule, lang);
  fact("Language", languageName(group.language));
  if (group.max_participants) fact("Size", `Up to ${group.max_participants} people`);
  fact("Waiting room", group.lobby ? "Yes: the facilitator lets people in" : "No: you join directly");
  const choose = el("button", { type: "button", class: "choose-group", dataset: { slug: group.slug } },
    "Join", el("span", { class: "visually-hidden" }, ` ${group.name}`));
  choose.addEventListener("click", () => chooseGroup(group.slug, group));
  return el("li", { class: "group-card", dataset: { slug: group.slug } },
    el("h2", { id: nameId, lang }, group.name),
    facts,
    group.description ? el("p", { class: "group-description", lang }, group.description) : null,
    choose);
}

async function loadDirectory() {
  const status = $("directory-status");
  let result;
  try {
    result = await fetchJson("/api/groups");
  } catch {
    result = { ok: false };
  }
  if (!result.ok || !result.body || !Array.isArray(result.body.groups)) {
    status.textContent = "Couldn't load the list of groups. You can still join a room by its name.";
    $("adhoc").hidden = false;
    return;
  }
  state.directory = result.body;
  const groups = result.body.groups;
  $("group-list").replaceChildren(...groups.map(groupCard));
  status.textContent = groups.length ? "" : "There are no scheduled groups on this server.";
  status.hidden = groups.length > 0;
  $("adhoc").hidden = !result.body.allow_adhoc_rooms;
}

async function chooseGroup(slug, known = null, { fromAdhoc = false } = {}) {
  const errorBox = fromAdhoc ? $("adhoc-error") : $("notice");
  setText(errorBox, "");
  let group = null;
  try {
    const result = await fetchJson(`/api/groups/${encodeURIComponent(slug)}`);
    if (result.ok && result.body && result.body.slug) {
      group = result.body;
    } else if (result.status === 404 && state.directory && state.directory.adhoc) {
      // Nobody is in that room yet: joining opens it with the server's settings for rooms opened by name.
      group = { ...state.directory.adhoc, slug, name: slug };
    } else if (result.status === 404) {
      setText(errorBox, fromAdhoc
        ? "There is no room with that name, and this server doesn't open new ones."
        : "That group doesn't exist on this server (any more). Please choose one from the list.");
      if (fromAdhoc) $("room-input").focus();
      return;
    }
  } catch {
    // offline for a moment: fall back to what the directory said
  }
  group = group || known;
  if (!group) {
    setText(errorBox, "Couldn't reach the server. Please try again.");
    return;
  }
  state.group = {
    ...group,
    privacy_notice: group.privacy_notice || (state.directory && state.directory.privacy_notice) || DEFAULT_PRIVACY_NOTICE,
  };
  state.agreed = false;
  history.replaceState(null, "", `#room=${encodeURIComponent(group.slug)}`);
  renderAgreement(state.group);
  showView("agreement", { title: `Agreement: ${group.name}` });
}

// Agreement text: lines starting with "- " become a bulleted list, other lines paragraphs.
function renderAgreementText(container, text, lang) {
  const blocks = [];
  let list = null;
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trim();
    if (!line) {
      list = null;
      continue;
    }
    if (/^[-*•]\s+/.test(line)) {
      if (!list) {
        list = el("ul");
        blocks.push(list);
      }
      list.append(el("li", {}, line.replace(/^[-*•]\s+/, "")));
    } else {
      list = null;
      blocks.push(el("p", {}, line));
    }
  }
  container.replaceChildren(...blocks);
  if (lang) container.lang = lang;
  else container.removeAttribute("lang");
}

function renderAgreement(group) {
  $("agreement-title").textContent = `Before you join: ${group.name}`;
  const meta = [group.topic, group.schedule, languageName(group.language)].filter(Boolean).join(" · ");
  $("agreement-group-meta").textContent = meta;
  renderAgreementText($("agreement-text"), group.agreement || "", group.language);
  $("privacy-text").textContent = group.privacy_notice;
}

function onAgree() {
  if (!state.group) return;
  state.agreed = true;
  const group = state.group;
  $("details-title").textContent = `Join ${group.name}`;
  const language = $("spoken-language");
  if (!language.dataset.touched) language.value = LANGUAGES[group.language] ? group.language : "";
  const secret = state.link && state.link.room === group.slug ? state.link.secret : null;
  if (secret) {
    $("secret-input").value = secret;
    $("facilitator-details").open = true;
  } else if (state.secretFor && state.secretFor !== group.slug) {
    $("secret-input").value = "";
  }
  setText($("join-error"), "");
  showView("details", { title: `Join ${group.name}` });
}

function backToDirectory() {
  state.group = null;
  state.agreed = false;
  history.replaceState(null, "", location.pathname + location.search);
  showView("directory");
}

// --- 2. joining ---------------------------------------------------------------------------------------

async function openLocalMedia(wantMic, wantCamera) {
  if (!wantMic && !wantCamera) return null;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: wantMic, video: wantCamera });
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

function stopLocalMedia() {
  if (state.localStream) for (const track of state.localStream.getTracks()) track.stop();
  state.localStream = null;
}

async function onJoin(event) {
  event.preventDefault();
  if (!state.group || !state.agreed) {
    backToDirectory();
    return;
  }
  const name = $("name-input").value.replace(/\s+/g, " ").trim();
  if (!name || name.length > 40) {
    setText($("join-error"), "Please choose a name of 1 to 40 characters.");
    $("name-input").setAttribute("aria-invalid", "true");
    $("name-input").focus();
    return;
  }
  $("name-input").removeAttribute("aria-invalid");
  setText($("join-error"), "");
  const button = $("join-button");
  button.disabled = true;
  button.textContent = "Joining…";
  state.leaving = false;
  const secret = $("secret-input").value.trim() || null;
  state.secretFor = secret ? state.group.slug : null;
  state.request = { room: state.group.slug, name, language: $("spoken-language").value || null, secret };
  // The first moment any device is touched: after "I agree" and the person's own choice here.
  state.localStream = await openLocalMedia($("join-mic").checked, $("join-camera").checked);
  const wantedMedia = $("join-mic").checked || $("join-camera").checked;
  state.micOn = Boolean(state.localStream && state.localStream.getAudioTracks().length);
  state.cameraOn = Boolean(state.localStream && state.localStream.getVideoTracks().length);
  try {
    await connect(null);
    if (wantedMedia && !state.localStream) banner("Your microphone and camera aren't available, so you joined text-only.");
    afterConnect();
  } catch (error) {
    if (state.call) state.call.close();
    state.call = null;
    stopLocalMedia();
    setText($("join-error"), JOIN_ERRORS[error.code] || error.message || "Could not join.");
    button.disabled = false;
    button.focus(); // disabling it while joining dropped the focus
  } finally {
    button.disabled = false;
    button.textContent = "Join";
  }
}

async function connect(resume) {
  const call = new Call({ ...state.request, resume, localStream: state.localStream });
  call.addEventListener("participants", renderParticipants);
  call.addEventListener("tracks", renderTracks);
  call.addEventListener("event", (e) => handleEvent(e.detail));
  call.addEventListener("server-error", (e) => banner(e.detail.message));
  call.addEventListener("bye", (e) => onBye(e.detail.reason));
  call.addEventListener("failed", () => reconnect(call));
  call.addEventListener("lobby", (e) => onLobby(e.detail));
  call.addEventListener("admitted", () => enterRoom());
  call.addEventListener("lobby-update", (e) => {
    if (state.facilitator) state.facilitator.setWaiting(e.detail.waiting || []);
  });
  call.addEventListener("participant-joined", (e) => {
    if (currentView() === "room") announce(`${e.detail.name} joined.`);
  });
  call.addEventListener("participant-left", (e) => {
    if (currentView() === "room" && e.detail.name) announce(`${e.detail.name} left.`);
    state.moderation.delete(e.detail.id);
  });
  call.addEventListener("channel-open", sendPreferences);
  state.call = call;
  window.peerwell = { call }; // for diagnostics and the end-to-end tests
  const joined = await call.start();
  captions.setStatus(joined.captions || { enabled: false });
  return call;
}

// After a successful join (first time or reconnect): lobby or room.
function afterConnect() {
  const call = state.call;
  if (call.waiting) onLobby(null);
  else enterRoom();
}

function onLobby(message) {
  const text = message && message.message ? message.message : "Waiting for the facilitator to let you in.";
  $("lobby-message").textContent = text;
  if (currentView() !== "lobby") {
    showView("lobby", { title: "Waiting room" });
    announce(text);
  }
}

function enterRoom() {
  const call = state.call;
  if (!call) return;
  const group = call.group || state.group || { name: call.request.room };
  $("room-title").textContent = group.name || call.request.room;
  setupRole(call);
  applyMicCamera();
  renderParticipants();
  history.replaceState(null, "", `#room=${encodeURIComponent(call.request.room)}`);
  if (currentView() !== "room") {
    showView("room", { title: group.name });
    announce(`You're in ${group.name || "the room"}.`);
  }
}

function setupRole(call) {
  const facilitator = call.role === "facilitator";
  chat.configure({ selfId: call.participantId, canDelete: facilitator });
  if (facilitator && !state.facilitator) {
    state.facilitator = new FacilitatorPanel($("facilitator-mount"), {
      admit: (id) => state.call && state.call.admit(id),
      deny: (id) => state.call && state.call.deny(id),
      request: (message) => sendControl(message),
    });
    state.facilitator.setLocked(state.lockedRoom);
  } else if (!facilitator && state.facilitator) {
    state.facilitator.destroy();
    state.facilitator = null;
  }
  document.body.classList.toggle("is-facilitator", facilitator);
}

function sendControl(message) {
  const sent = Boolean(state.call && state.call.sendControl(message));
  if (!sent) banner("Not connected right now; please try again in a moment.");
  return sent;
}

function sendPreferences() {
  if (!state.call) return;
  if (state.subtitleLanguage) state.call.sendControl({ type: "set-subtitle-language", language: state.subtitleLanguage });
  if (state.hideName) state.call.sendControl({ type: "set-caption-name-hidden", hidden: true });
}

async function reconnect(failedCall) {
  const previous = state.call;
  if (state.leaving || !previous || previous !== failedCall || previous.ended) return;
  const token = previous.resumeToken;
  previous.close();
  for (const delay of RECONNECT_DELAYS_MS) {
    banner("Connection lost. Reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (state.leaving) return;
    try {
      await connect(token);
      banner("");
      afterConnect();
      return;
    } catch (error) {
      if (state.call) state.call.close();
      if (error.code && error.code !== "connection") {
        if (error.code !== "resume-failed") return onJoinRefusedLater(error);
        break;
      }
    }
  }
  if (state.leaving) return;
  try {
    await connect(null); // our place was given up: join afresh
    banner("");
    afterConnect();
  } catch (error) {
    if (error.code && error.code !== "connection") return onJoinRefusedLater(error);
    banner("Could not reconnect. Check your connection and join again.");
  }
}

// A reconnect was refused (removed, locked, ...): leave the room and say why.
function onJoinRefusedLater(error) {
  endCall();
  showGoodbye("Could not rejoin", JOIN_ERRORS[error.code] || error.message);
}

// --- 3. the room --------------------------------------------------------------------------------------

function moderationOf(id) {
  let entry = state.moderation.get(id);
  if (!entry) {
    entry = { muted: false, videoStopped: false };
    state.moderation.set(id, entry);
  }
  return entry;
}

function renderParticipants() {
  const call = state.call;
  if (!call || !call.participantId) return;
  const hands = new Set(state.hands.map((h) => h.participant_id));
  tiles.ensure(call.participantId, state.request.name, { self: true, role: call.role });
  if (state.localStream) tiles.setTracks(call.participantId, {
    video: state.localStream.getVideoTracks()[0] || null,
  });
  for (const [id, info] of call.participants) {
    if (id === call.participantId) continue;
    tiles.ensure(id, info.name, { role: info.role });
    if (info.muted !== undefined || info.video_stopped !== undefined) {
      // Tolerate a server that reports moderation state in the participant list.
      const entry = moderationOf(id);
      if (info.muted !== undefined) entry.muted = Boolean(info.muted);
      if (info.video_stopped !== undefined) entry.videoStopped = Boolean(info.video_stopped);
    }
  }
  for (const id of [...tiles.tiles.keys()]) {
    if (id !== call.participantId && !call.participants.has(id)) tiles.remove(id);
  }
  for (const id of tiles.tiles.keys()) {
    const m = state.moderation.get(id) || {};
    tiles.setState(id, { muted: Boolean(m.muted), videoStopped: Boolean(m.videoStopped), hand: hands.has(id) });
  }
  renderTracks();
  renderFacilitatorPeople();
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

function renderFacilitatorPeople() {
  const call = state.call;
  if (!state.facilitator || !call) return;
  const people = [...call.participants.values()].filter((p) => p.id !== call.participantId);
  state.facilitator.setPeople(people, state.moderation);
}

function handleEvent(event) {
  switch (event.type) {
    case "caption":
      captions.show(event);
      break;
    case "subtitle":
      captions.showSubtitle(event);
      break;
    case "subtitle-languages":
      setSubtitleLanguages(Array.isArray(event.languages) ? event.languages : []);
      break;
    case "subtitle-status":
      $("subtitle-status").textContent = event.message || (event.available ? "Subtitles are on." : "Subtitles are not available.");
      break;
    case "chat":
      chat.add(event);
      break;
    case "chat-deleted":
      chat.remove(event.message_id);
      break;
    case "hands":
      renderHands(Array.isArray(event.queue) ? event.queue : []);
      break;
    case "moderation":
      applyModeration(event.action, event.participant_id);
      break;
    case "unmute-requested":
      if (state.facilitator) state.facilitator.addUnmuteRequest(event);
      break;
    case "room-state":
      setLocked(Boolean(event.locked));
      break;
    case "dominant-speaker":
      tiles.setSpeaking(event.participant_id);
      break;
    case "safety-alert":
      if (state.facilitator) state.facilitator.addSafetyAlert(event); // never shown to anyone else
      break;
    case "error":
      if (event.request === "chat") chat.showError(event.message);
      else banner(event.message);
      break;
    default:
      break;
  }
}

function nameOf(id) {
  const call = state.call;
  if (call && id === call.participantId) return "you";
  const info = call && call.participants.get(id);
  return info ? info.name : "someone";
}

function applyModeration(action, id) {
  const entry = moderationOf(id);
  const self = state.call && id === state.call.participantId;
  switch (action) {
    case "muted":
      entry.muted = true;
      if (!self) announce(`The facilitator muted ${nameOf(id)}.`);
      break;
    case "unmuted":
      entry.muted = false;
      if (self) state.unmuteRequested = false;
      if (!self) announce(`The facilitator unmuted ${nameOf(id)}.`);
      break;
    case "video-stopped":
      entry.videoStopped = true;
      break;
    case "video-allowed":
      entry.videoStopped = false;
      break;
    default:
      return;
  }
  if (self) renderSelfModeration(action);
  renderParticipants();
  if (state.facilitator && state.call) {
    if (action === "unmuted") state.facilitator.removeUnmuteRequest(id);
  }
}

function renderSelfModeration(action) {
  const mine = state.moderation.get(state.call.participantId) || {};
  const lines = [];
  if (mine.muted) lines.push("The facilitator has muted you: others can't hear you right now.");
  if (mine.videoStopped) lines.push("The facilitator has stopped your video: others can't see you right now.");
  $("self-moderation-text").textContent = lines.join(" ");
  $("self-moderation").hidden = lines.length === 0;
  const ask = $("request-unmute");
  ask.hidden = !mine.muted;
  ask.disabled = state.unmuteRequested;
  ask.textContent = state.unmuteRequested ? "Unmute requested" : "Ask to be unmuted";
  const messages = {
    muted: "The facilitator has muted you.",
    unmuted: "The facilitator has unmuted you. Others can hear you again.",
    "video-stopped": "The facilitator has stopped your video.",
    "video-allowed": "The facilitator has allowed your video again.",
  };
  if (messages[action]) announce(messages[action]);
}

function requestUnmute() {
  if (sendControl({ type: "request-unmute" })) {
    state.unmuteRequested = true;
    renderSelfModeration(null);
    announce("Your request was sent to the facilitator.");
  }
}

function setLocked(locked) {
  const changed = locked !== state.lockedRoom;
  state.lockedRoom = locked;
  $("lock-status").hidden = !locked;
  if (state.facilitator) state.facilitator.setLocked(locked);
  if (changed) announce(locked ? "The room is now locked: no one new can join." : "The room is unlocked.");
}

function renderHands(queue) {
  state.hands = queue;
  const call = state.call;
  const selfId = call ? call.participantId : null;
  const items = queue.map((entry, index) => {
    const own = entry.participant_id === selfId;
    const item = el("li", { dataset: { participantId: entry.participant_id } },
      el("span", { class: "person-name" }, own ? `${entry.name} (you)` : entry.name));
    if (state.facilitator && !own) {
      const lower = el("button", {
        type: "button", class: "small secondary", "aria-label": `Lower hand of ${entry.name}`,
      }, "Lower hand");
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
  $("hands-empty").hidden = queue.length > 0;
  const raised = queue.some((entry) => entry.participant_id === selfId);
  const button = $("toggle-hand");
  const wasRaised = button.dataset.raised === "1";
  button.dataset.raised = raised ? "1" : "0";
  button.textContent = raised ? "Lower hand" : "Raise hand";
  button.classList.toggle("active", raised);
  if (wasRaised !== raised) announce(raised ? "Your hand is raised." : "Your hand is lowered.");
  renderParticipants();
}

function toggleHand() {
  const raised = $("toggle-hand").dataset.raised === "1";
  sendControl({ type: raised ? "lower-hand" : "raise-hand" });
}

function setSubtitleLanguages(languages) {
  state.subtitleLanguages = languages;
  const select = $("subtitle-language");
  const options = [languageOption("", "No subtitles")];
  const codes = [...languages];
  if (state.subtitleLanguage && !codes.includes(state.subtitleLanguage)) codes.push(state.subtitleLanguage);
  for (const code of codes) options.push(languageOption(code));
  select.replaceChildren(...options);
  select.value = state.subtitleLanguage || "";
}

function onSubtitleLanguage() {
  const value = $("subtitle-language").value || null;
  state.subtitleLanguage = value;
  storageSet("peerwell.subtitleLanguage", value);
  $("subtitle-status").textContent = value ? `Asking for subtitles in ${languageName(value)}…` : "Subtitles are off.";
  if (state.call) state.call.sendControl({ type: "set-subtitle-language", language: value });
}

function onHideName() {
  state.hideName = $("hide-name").checked;
  storageSet("peerwell.hideName", state.hideName ? "1" : "0");
  if (state.call) state.call.sendControl({ type: "set-caption-name-hidden", hidden: state.hideName });
  announce(state.hideName ? "Your captions will show “a participant” instead of your name."
    : "Your captions will show your name.");
}

function applyMicCamera() {
  const stream = state.localStream;
  const hasMic = Boolean(stream && stream.getAudioTracks().length);
  const hasCam = Boolean(stream && stream.getVideoTracks().length);
  if (stream) {
    for (const track of stream.getAudioTracks()) track.enabled = state.micOn;
    for (const track of stream.getVideoTracks()) track.enabled = state.cameraOn;
  }
  const mic = $("toggle-mic");
  mic.disabled = !hasMic;
  mic.textContent = !hasMic ? "No microphone" : state.micOn ? "Mute microphone" : "Unmute microphone";
  mic.classList.toggle("off", hasMic && !state.micOn);
  const cam = $("toggle-camera");
  cam.disabled = !hasCam;
  cam.textContent = !hasCam ? "No camera" : state.cameraOn ? "Turn camera off" : "Turn camera on";
  cam.classList.toggle("off", hasCam && !state.cameraOn);
}

// --- 4. leaving -----------------------------------------------------------------------------------------

function endCall() {
  state.leaving = true;
  const call = state.call;
  state.call = null;
  if (call) call.close();
  stopLocalMedia();
  tiles.clear();
  captions.clear();
  chat.clear();
  if (state.facilitator) state.facilitator.destroy();
  state.facilitator = null;
  document.body.classList.remove("is-facilitator");
  state.moderation.clear();
  state.hands = [];
  state.lockedRoom = false;
  state.unmuteRequested = false;
  $("hand-queue").replaceChildren();
  $("hands-empty").hidden = false;
  $("toggle-hand").dataset.raised = "0";
  $("toggle-hand").textContent = "Raise hand";
  $("lock-status").hidden = true;
  $("self-moderation").hidden = true;
  $("subtitle-status").textContent = "";
  setSubtitleLanguages([]);
  banner("");
}

function showGoodbye(title, text) {
  $("goodbye-title").textContent = title;
  $("goodbye-message").textContent = text;
  showView("goodbye");
}

function onBye(reason) {
  endCall();
  const bye = BYE[reason] || { title: "The session has ended", text: "You are no longer in the room." };
  showGoodbye(bye.title, bye.text);
}

function leave() {
  const fromLobby = currentView() === "lobby";
  if (state.call) state.call.leave();
  endCall();
  if (fromLobby) showGoodbye("You've left the waiting room", "You're welcome to come back whenever you like.");
  else showGoodbye(BYE.left.title, BYE.left.text);
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

// --- start-up -------------------------------------------------------------------------------------------

// "#room=SLUG" opens a group; "#room=SLUG&secret=..." is a facilitator link. The secret is taken out of
// the address bar at once and only ever sent in the join message.
function readFragment() {
  const raw = location.hash.slice(1);
  if (!raw) return null;
  if (!raw.includes("=")) return { room: decodeURIComponent(raw), secret: null };
  const params = new URLSearchParams(raw);
  const room = params.get("room");
  if (!room) return null;
  return { room, secret: params.get("secret") || null };
}

function fillLanguages() {
  const select = $("spoken-language");
  for (const [code, label] of Object.entries(LANGUAGES)) select.append(languageOption(code, label));
  select.addEventListener("change", () => {
    select.dataset.touched = "1";
  });
}

function init() {
  initDisplaySettings();
  fillLanguages();
  setSubtitleLanguages([]);
  $("hide-name").checked = state.hideName;
  const mode = ["both", "original", "translation"].includes(state.captionMode) ? state.captionMode : "both";
  captions.setMode(mode);
  for (const radio of document.querySelectorAll('input[name="caption-mode"]')) {
    radio.checked = radio.value === mode;
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      captions.setMode(radio.value);
      storageSet("peerwell.captionMode", radio.value);
    });
  }

  $("adhoc-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room-input").value.trim().toLowerCase();
    const rule = state.directory && state.directory.room_name; // the server's one rule; without it, the server decides
    if (rule && !new RegExp(rule.pattern).test(room)) {
      setText($("adhoc-error"), `Room names: ${rule.rule}.`);
      $("room-input").setAttribute("aria-invalid", "true");
      $("room-input").focus();
      return;
    }
    $("room-input").removeAttribute("aria-invalid");
    chooseGroup(room, null, { fromAdhoc: true });
  });
  $("agree-button").addEventListener("click", onAgree);
  $("agreement-back").addEventListener("click", backToDirectory);
  $("details-back").addEventListener("click", backToDirectory);
  $("join-form").addEventListener("submit", onJoin);
  $("lobby-leave").addEventListener("click", leave);
  $("goodbye-back").addEventListener("click", backToDirectory);
  $("toggle-mic").addEventListener("click", () => {
    state.micOn = !state.micOn;
    applyMicCamera();
  });
  $("toggle-camera").addEventListener("click", () => {
    state.cameraOn = !state.cameraOn;
    applyMicCamera();
  });
  $("toggle-hand").addEventListener("click", toggleHand);
  $("request-unmute").addEventListener("click", requestUnmute);
  $("subtitle-language").addEventListener("change", onSubtitleLanguage);
  $("hide-name").addEventListener("change", onHideName);
  $("leave").addEventListener("click", leave);
  $("download-transcript").addEventListener("click", downloadTranscript);
  window.addEventListener("pagehide", () => {
    if (state.call) state.call.leave();
  });

  const link = readFragment();
  if (link && link.secret) {
    state.link = link;
    history.replaceState(null, "", `#room=${encodeURIComponent(link.room)}`);
  }
  showView("directory", { focus: false });
  const loaded = loadDirectory();
  if (link) loaded.then(() => chooseGroup(link.room, null));
}

init();
