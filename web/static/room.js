// The room: data-channel events update the store; the stage, tiles, hands, the bar and the facilitator's
// people list render from it. Also the room's own controls (microphone, camera, devices, hand, reactions,
// screen sharing, "I need help", captions and subtitles). What the session does for the room (leave, keep
// our place) is handed in by app.js (configureRoom), so room.js and session.js never import each other.

import * as bar from "./bar.js";
import { attachCall, handleBreakoutEvent, initBreakouts, renderTools as renderBreakoutTools,
  resetBreakouts } from "./breakout.js";
import { CAMERA_SIZE } from "./call.js";
import { CaptionView } from "./captions.js";
import { ChatView } from "./chat.js";
import { $, announce, el, setText } from "./dom.js";
import { FacilitatorPanel } from "./facilitator.js";
import { t } from "./i18n.js";
import { languageName, languageOption } from "./languages.js";
import { notify } from "./notices.js";
import { setPref } from "./prefs.js";
import { canShare, nameOf, onShareError, onShareEvent, toggleShare } from "./share.js";
import { Stage } from "./stage.js";
import { moderationOf, store } from "./store.js";
import { REACTIONS, Tiles } from "./tiles.js";
import { VideoViews } from "./video_views.js";
import { LocalCaptions } from "./e2ee/captioner.js";
import { PhraseMatcher } from "./e2ee/phrases.js";
import { banner, currentView, showView } from "./views.js";

const REACTION_SHOWN_MS = 4000;
const ctx = store.session;

// What the session module does for the room (set by app.js, so neither module imports the other).
const hooks = { leave: () => {}, savePlace: () => {} };
export function configureRoom(given) {
  Object.assign(hooks, given);
}

export const tiles = new Tiles({ onPin: (key) => togglePin(key) });
const stage = new Stage({ body: $("room-body"), main: $("stage-main"), strip: $("filmstrip") });
const videoViews = new VideoViews(tiles, (message) => (ctx.call ? ctx.call.sendControl(message) : false));
export const captions = new CaptionView({
  live: $("captions-live"), history: $("captions-history"), status: $("captions-status"), jump: $("captions-jump"),
  onLine: (caption) => {
    if (caption.speaker_id) tiles.setCaption(caption.speaker_id, caption.text);
  },
});
export const chat = new ChatView({
  list: $("chat-list"), form: $("chat-form"), input: $("chat-input"), counter: $("chat-counter"),
  error: $("chat-error"), send: (message) => (e2eeOn() ? sendSealed("chat", { text: message.text }) : sendControl(message)),
});

function togglePin(key) {
  store.update((state, ui) => {
    ui.pinned = ui.pinned === key ? null : key;
  });
}

// Room time (seconds since the room opened, as the server stamps chat and alerts) -> a Date here.
export function timeOf(roomTime) {
  const started = store.state.roomStartedAt;
  return started !== null && typeof roomTime === "number" ? new Date(started + roomTime * 1000) : new Date();
}

// --- end-to-end encrypted rooms (e2ee/): sealed chat and captions, local captions, the security code -----

function e2eeOn() {
  return Boolean(ctx.call && ctx.call.e2ee);
}

let lastSealed = null;

// Seal and send a chat line or caption; true when it could be queued (the channel may still be opening).
function sendSealed(kind, value, final = false) {
  const call = ctx.call;
  if (!call || !call.e2ee || !call.e2ee.ready) {
    banner(t("e2ee.waitingKey"));
    return false;
  }
  if (kind === "chat" || kind === "help") lastSealed = kind;
  call.e2ee.sealData(kind, value).then((payload) => {
    if (payload && ctx.call === call) call.sendControl({ type: "sealed", kind, payload, final });
  });
  return true;
}

const HIDDEN_NAME_KEY = "captions.hiddenName";
const localCaptions = new LocalCaptions({
  onCaption: (caption) => {
    // The speaker's own browser decides what is said about them: no name when they chose to hide it.
    const self = store.state.self;
    // Muted (by themselves or a facilitator): nothing of what they say is captioned, as on the server.
    if (!self || !store.state.local.micOn || moderationOf(store.state, self.id).muted) return;
    // The captioner's clock (seconds since it started) to room time, as the server stamps plain captions.
    const startedAt = store.state.roomStartedAt;
    const shift = startedAt === null ? 0 : (Date.now() - startedAt) / 1000 - (performance.now() - localCaptions.startedAt) / 1000;
    const value = { ...caption, start: round2(caption.start + shift), end: round2(caption.end + shift), language: "en" };
    if (!ctx.hideName && store.state.self) value.name = store.state.self.name;
    sendSealed("caption", value, caption.final);
  },
  onStatus: () => renderE2eeStatus(),
});
const round2 = (n) => Math.round(n * 100) / 100;
let phrases = null; // facilitators in an encrypted room: the crisis phrase layer, run here
let localAlerts = 0;

// A relayed sealed caption or chat line, opened in order; key messages never get here (call.js).
function onSealed(event) {
  const call = ctx.call;
  if (!call || !call.e2ee) return;
  call.e2ee.receive(event).then((value) => {
    if (!value || ctx.call !== call) return;
    const sender = typeof event.participant_id === "string" ? event.participant_id : "";
    const person = sender ? store.state.people.get(sender) : null;
    if (event.kind === "chat" && typeof value.text === "string") {
      const name = person ? person.name : String(value.name || "");
      chat.add({ message_id: event.message_id, participant_id: sender, name, text: value.text, at: event.at });
      bar.noteChat();
      checkPhrases(sender, name, value.text, "chat", null, event.at);
    } else if (event.kind === "help" && typeof value.text === "string") {
      if (ctx.facilitator) ctx.facilitator.addHelpRequest({ participant_id: sender, name: person ? person.name : "",
        text: value.text.replace(/\s+/g, " ").trim(), at: event.at });
      store.update(() => {});
    } else if (event.kind === "caption" && typeof value.text === "string" && typeof value.segment_id === "string") {
      const named = typeof value.name === "string" && value.name;
      const caption = {
        segment_id: value.segment_id, speaker_id: named ? sender : "",
        speaker_name: named ? (person ? person.name : value.name) : t(HIDDEN_NAME_KEY), text: value.text,
        final: Boolean(event.final && value.final), start: Number(value.start) || 0, end: Number(value.end) || 0,
        language: typeof value.language === "string" ? value.language : "en",
      };
      captions.show(caption);
      if (caption.final) checkPhrases(sender, person ? person.name : "", caption.text, "caption", caption.language, event.at);
    }
  });
}

// The phrase layer of the crisis detector (safety/), in a facilitator's browser: the server cannot read
// captions or chat here, so it raises nothing; its learned model is off in an encrypted room.
function checkPhrases(participantId, name, text, source, language, at) {
  if (!ctx.facilitator || !phrases || !participantId || participantId === (store.state.self && store.state.self.id)) return;
  const match = phrases.check(participantId, text, language, source);
  if (!match) return;
  localAlerts += 1;
  const alertId = `local-${localAlerts}`;
  phrases.raisedAs(alertId, match);
  ctx.facilitator.addSafetyAlert({
    alert_id: alertId, participant_id: participantId, name, text, source, category: match.category,
    at, resources: t("e2ee.safetyNote"), triggers: match.triggers, confidence: match.confidence, layer: match.layer,
  });
  store.update(() => {});
}

async function setupE2ee(call) {
  if (!call.e2ee || call.e2eeWired) return;
  call.e2eeWired = true;
  call.addEventListener("e2ee", () => renderE2eeStatus());
  if (call.role === "facilitator" && !phrases) {
    phrases = new PhraseMatcher();
    phrases.load().catch(() => {
      phrases = null;
      banner(t("e2ee.phrasesFailed"));
    });
  }
  if (store.state.local.hasMic && ctx.localStream) localCaptions.start(ctx.localStream);
  if (window.peerwell) window.peerwell.localCaptions = localCaptions; // diagnostics, tests and bench.e2ee
  renderE2eeStatus();
}

function inviteLink() {
  const call = ctx.call;
  if (!call || !call.request.roomKey) return "";
  return `${location.origin}${location.pathname}#room=${encodeURIComponent(call.request.room)}&key=${call.request.roomKey}`;
}

// "End-to-end encrypted" with the security code everyone compares, and the invite link (it holds the key).
function renderE2eeStatus() {
  let box = $("e2ee-status");
  const call = ctx.call;
  if (!call || !call.e2ee) {
    if (box) box.remove();
    return;
  }
  if (!box) {
    // Compact in the room's head: the code in the summary, the rest one click away.
    box = el("details", { id: "e2ee-status", class: "e2ee-status" },
      el("summary", {}, el("span", { id: "e2ee-title" }), " · ", el("span", { id: "e2ee-code", class: "e2ee-code" })),
      el("p", { id: "e2ee-help", class: "help" }),
      el("p", { id: "e2ee-captions", class: "help" }),
      el("p", { id: "e2ee-safety", class: "help", hidden: true }),
      el("button", { type: "button", id: "e2ee-copy", class: "small secondary" }, t("e2ee.copyLink")));
    $("room-title").after(box);
    $("e2ee-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(inviteLink());
        announce(t("e2ee.copied"));
        notify(t("e2ee.copied"), { kind: "info" });
      } catch {
        banner(t("e2ee.copyFailed", { link: inviteLink() }));
      }
    });
  }
  $("e2ee-title").textContent = t("e2ee.title");
  const code = call.e2ee.ready ? call.e2ee.fingerprint : "";
  $("e2ee-code").textContent = code ? t("e2ee.code", { code }) : t("e2ee.waitingKey");
  $("e2ee-code").dataset.code = code;
  $("e2ee-code").dataset.epoch = call.e2ee.ready ? String(call.e2ee.epoch) : "";
  $("e2ee-help").textContent = code ? t("e2ee.codeHelp") : "";
  $("e2ee-captions").textContent = localCaptions.statusText(t);
  // Facilitators: where the crisis alerts come from here, and that the server's learned model is off.
  setText($("e2ee-safety"), call.role === "facilitator" ? t("e2ee.safetyNote") : "");
  $("e2ee-copy").textContent = t("e2ee.copyLink");
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
  if (ctx.subtitleLanguage && !e2eeOn()) ctx.call.sendControl({ type: "set-subtitle-language", language: ctx.subtitleLanguage });
  if (ctx.hideName) ctx.call.sendControl({ type: "set-caption-name-hidden", hidden: true });
  if (store.state.audioOnly) ctx.call.sendControl({ type: "set-audio-only", enabled: true });
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
  // An encrypted room's captions are made in each speaker's browser (e2ee/captioner.js), never on the server.
  captions.setStatus(call.e2ee ? { enabled: true } : call.joined && call.joined.captions);
  renderSubtitleMenu();
  setupRole(call);
  attachCall(call); // `moved`: the server took us to another room of the group (breakout.js)
  setupE2ee(call);
  bar.defaultPanels();
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
      request: (message) => {
        // An alert raised in this browser (encrypted room) is dismissed here; the server never saw it.
        if (message.type === "dismiss-alert" && String(message.alert_id).startsWith("local-")) {
          if (ctx.facilitator) ctx.facilitator.alertDismissed({ alert_id: message.alert_id, by: store.state.self.name });
          if (phrases) phrases.dismiss(message.alert_id);
          return true;
        }
        return sendControl(message);
      },
      reveal: () => bar.openPanel("facilitator", { focus: false }),
      timeOf,
    });
    ctx.facilitator.setLocked(store.state.locked);
    ctx.facilitator.setWaiting(store.state.waiting);
    renderBreakoutTools();
  } else if (!facilitator && ctx.facilitator) {
    ctx.facilitator.destroy();
    ctx.facilitator = null;
  }
  document.body.classList.toggle("is-facilitator", facilitator);
}

export function resetRoom() {
  localCaptions.stop();
  renderE2eeStatus();
  clearInterval(timerTicker);
  timerTicker = null;
  tiles.clear();
  captions.clear();
  chat.clear();
  resetBreakouts();
  $("subtitle-status").textContent = "";
  ctx.subtitleLanguages = null;
  renderSubtitleMenu();
}

// --- events from the data channel ---------------------------------------------------------------------

// Moved to another room of the group (a breakout, or back): what we knew of the old room goes; the new
// room's entry burst follows on the channel, and our choices (subtitles, hidden name...) are its to learn.
function onRoomEntered() {
  clearInterval(timerTicker);
  timerTicker = null;
  captions.clear();
  chat.clear();
  store.update((state, ui) => {
    Object.assign(state, { hands: [], moderation: new Map(), media: new Map(), reactions: new Map(), speaking: null,
      sharer: null, shareAllowed: [], shareTimer: null, videoDelivery: new Map() });
    ui.pinned = null;
    ui.unread = { chat: 0 };
  });
  sendPreferences();
}

export function handleEvent(event) {
  if (handleBreakoutEvent(event)) return;
  switch (event.type) {
    case "room-entered":
      onRoomEntered();
      break;
    case "caption":
      captions.show(event);
      break;
    case "sealed":
      onSealed(event);
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
      bar.noteChat();
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
      store.update(() => {}); // the bar's count
      break;
    case "room-state":
      onRoomState(event);
      break;
    case "video-delivery":
      onVideoDelivery(event.videos && typeof event.videos === "object" ? event.videos : {});
      break;
    case "share":
      onShareEvent(typeof event.participant_id === "string" ? event.participant_id : null);
      break;
    case "share-allowed":
      store.update((state) => {
        state.shareAllowed = Array.isArray(event.participant_ids) ? event.participant_ids : [];
      });
      break;
    case "share-timer":
      onShareTimer(event);
      break;
    case "dominant-speaker":
      store.update((state) => {
        state.speaking = event.participant_id;
      });
      break;
    case "safety-alert":
      if (ctx.facilitator) ctx.facilitator.addSafetyAlert(event); // never shown to anyone else
      store.update(() => {}); // the bar's count
      break;
    case "alert-dismissed":
      if (ctx.facilitator) ctx.facilitator.alertDismissed(event);
      store.update(() => {});
      break;
    case "error":
      // A refused `sealed` is about what we sealed last that can be refused: a chat line or a help request.
      if (event.request === "chat" || (event.request === "sealed" && lastSealed !== "help")) chat.showError(event.message);
      else if (event.request === "ask-for-help" || event.request === "sealed") setText($("help-status"), event.message);
      else if (event.request === "start-share") onShareError(event.code);
      else banner(event.message);
      break;
    default:
      break;
  }
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

// A share time (docs/protocol.md `share-timer`): everyone counts down locally from `remaining`; at the
// end a gentle cue on the tile and for screen readers. Nothing is cut off.
let timerTicker = null;
function onShareTimer(event) {
  const id = typeof event.participant_id === "string" ? event.participant_id : null;
  const before = store.state.shareTimer;
  const remaining = Number(event.remaining) || 0;
  store.update((state) => {
    state.shareTimer = id ? { id, seconds: Number(event.seconds) || 0, endsAt: Date.now() + remaining * 1000,
      expired: Boolean(event.expired) } : null;
  });
  clearInterval(timerTicker);
  timerTicker = id ? setInterval(() => tiles.tickAll(), 1000) : null;
  if (id && event.expired && !(before && before.id === id && before.expired)) {
    const self = store.state.self && id === store.state.self.id;
    announce(self ? t("share.timeUp") : t("share.timeUpFor", { name: nameOf(id) }));
    if (self) notify(t("share.timeUp"), { kind: "info", key: "share-time" });
  } else if (id && !event.expired && !(before && before.id === id)) {
    announce(t("share.timerSet", { name: nameOf(id), time: Math.round((Number(event.seconds) || 0) / 60) }));
  }
}

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

export function renderRoom(state, ui) {
  bar.render(state, ui);
  if (!ctx.call || !state.self) return;
  if (ctx.call.e2ee) renderE2eeStatus(); // also relabels it after a change of interface language
  const remote = ctx.call.remoteTracks();
  const localVideo = ctx.localStream ? ctx.localStream.getVideoTracks()[0] || null : null;
  const localScreen = ctx.screenStream ? ctx.screenStream.getVideoTracks()[0] || null : null;
  if (ui.pinned && !state.people.has(ui.pinned.replace(/^screen:/, "")) && ui.pinned !== state.self.id) ui.pinned = null;
  if (ui.pinned && ui.pinned.startsWith("screen:") && state.sharer !== ui.pinned.slice(7)) ui.pinned = null;
  const shown = tiles.render(state, ui, { remote, localVideo, localScreen });
  stage.layout(shown, state, ui);
  videoViews.update();
  renderHands(state);
  renderControls(state, ui);
  renderRoster(state, ui);
  renderSelfModeration(state);
  renderShareStatus(state);
  $("lock-status").hidden = !state.locked;
  if (ctx.facilitator) {
    const people = [...state.people.values()].filter((p) => p.id !== state.self.id).map((p) => {
      const moderation = moderationOf(state, p.id);
      return { id: p.id, name: p.name, role: p.role, muted: moderation.muted, videoStopped: moderation.videoStopped,
        sharing: state.sharer === p.id, shareAllowed: state.shareAllowed.includes(p.id),
        timer: Boolean(state.shareTimer && state.shareTimer.id === p.id) };
    });
    ctx.facilitator.setPeople(people);
    ctx.facilitator.setTimerActive(Boolean(state.shareTimer));
  }
}

function renderShareStatus(state) {
  const sharer = state.sharer;
  const text = !sharer ? "" : state.self && sharer === state.self.id ? t("share.youAreSharing")
    : t("share.isSharing", { name: nameOf(sharer) });
  setText($("share-status"), text);
}

// Everyone in the room, for everyone: who they are, a raised hand, and a pin button.
let rosterKey = "";
function renderRoster(state, ui) {
  const hands = new Set(state.hands.map((h) => h.participant_id));
  const people = [state.self, ...[...state.people.values()].filter((p) => p.id !== state.self.id)];
  const key = JSON.stringify([people.map((p) => [p.id, p.name, p.role, hands.has(p.id)]), ui.pinned]);
  if (key === rosterKey) return;
  rosterKey = key;
  const list = $("people-roster");
  const hadFocus = list.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
  list.replaceChildren(...people.map((person) => {
    const own = person.id === state.self.id;
    const name = own ? t("tile.you", { name: person.name }) : person.name;
    const notes = [];
    if (person.role === "facilitator") notes.push(t("tile.facilitator"));
    if (hands.has(person.id)) notes.push(t("tile.hand"));
    const pinned = ui.pinned === person.id;
    const pin = el("button", { type: "button", class: "small secondary", "aria-pressed": String(pinned),
      dataset: { focusKey: `pin:${person.id}` }, "aria-label": pinned ? t("stage.unpin", { name }) : t("stage.pin", { name }) },
    pinned ? t("stage.unpinShort") : t("stage.pinShort"));
    pin.addEventListener("click", () => togglePin(person.id));
    return el("li", { dataset: { participantId: person.id } }, el("span", { class: "person-name" }, name),
      notes.length ? el("span", { class: "person-status" }, ` (${notes.join(", ")})`) : null,
      el("span", { class: "actions" }, pin));
  }));
  if (hadFocus) {
    const again = list.querySelector(`[data-focus-key="${CSS.escape(hadFocus)}"]`);
    if (again) again.focus();
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
    $("hands-panel").hidden = state.hands.length === 0;
  }
  const raised = state.hands.some((entry) => entry.participant_id === selfId);
  const button = $("toggle-hand");
  button.dataset.raised = raised ? "1" : "0";
  bar.setBarLabel("toggle-hand", raised ? t("hand.lower") : t("hand.raise"));
  button.classList.toggle("active", raised);
}

function renderControls(state, ui) {
  const { local } = state;
  const mine = moderationOf(state, state.self.id);
  const mic = $("toggle-mic");
  // The button agrees with the facilitator: while they have muted us, our own switch cannot unmute.
  mic.disabled = !local.hasMic || mine.muted;
  bar.setBarLabel("toggle-mic", !local.hasMic ? t("controls.noMic") : mine.muted ? t("controls.mutedByFacilitator")
    : local.micOn ? t("controls.mute") : t("controls.unmute"));
  mic.classList.toggle("off", local.hasMic && (!local.micOn || mine.muted));
  mic.setAttribute("aria-pressed", String(local.hasMic && !local.micOn));
  const cam = $("toggle-camera");
  cam.disabled = !local.hasCam || mine.videoStopped;
  bar.setBarLabel("toggle-camera", !local.hasCam ? t("controls.noCamera") : mine.videoStopped
    ? t("controls.videoStoppedByFacilitator") : local.cameraOn ? t("controls.cameraOff") : t("controls.cameraOn"));
  cam.classList.toggle("off", local.hasCam && (!local.cameraOn || mine.videoStopped));
  cam.setAttribute("aria-pressed", String(local.hasCam && !local.cameraOn));
  const sharing = Boolean(ctx.screenStream);
  const shareShown = sharing || canShare(state);
  const share = $("toggle-share");
  share.hidden = !shareShown;
  share.classList.toggle("active", sharing);
  bar.setBarLabel("toggle-share", sharing ? t("share.stop") : t("share.start"));
  const moreShare = $("more-share");
  moreShare.hidden = !shareShown;
  moreShare.textContent = sharing ? t("share.stop") : t("share.start");
  const layout = $("toggle-layout");
  const grid = stage.mode === "grid";
  layout.textContent = grid ? t("stage.speakerView") : t("stage.gridView");
  layout.hidden = Boolean(state.sharer) || state.people.size < 2;
  const selfView = $("toggle-self-view");
  selfView.textContent = ui.selfViewHidden ? t("stage.showSelf") : t("stage.hideSelf");
  selfView.setAttribute("aria-pressed", String(ui.selfViewHidden));
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
  if (e2eeOn()) { // translation runs on the server, which cannot read an encrypted room's captions
    select.replaceChildren(languageOption("", t("subtitles.none")));
    select.value = "";
    select.disabled = true;
    setText($("subtitle-why"), t("subtitles.e2ee"));
    return;
  }
  select.disabled = false;
  setText($("subtitle-why"), none ? t("subtitles.noneInstalled") : unknown && ctx.call ? t("subtitles.notOffered") : "");
}

function onSubtitleLanguage() {
  if (e2eeOn()) return;
  const value = $("subtitle-language").value || null;
  ctx.subtitleLanguage = value;
  setPref("subtitleLanguage", value);
  $("subtitle-status").textContent = value ? t("subtitles.asking", { language: languageName(value) }) : t("subtitles.off");
  if (ctx.call) ctx.call.sendControl({ type: "set-subtitle-language", language: value });
}

function onHideName() {
  ctx.hideName = $("hide-name").checked;
  setPref("hideName", ctx.hideName);
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
    if (kind === "audio" && e2eeOn()) { // captions made here follow the new microphone
      localCaptions.stop();
      localCaptions.start(ctx.localStream);
    }
    ctx.request.devices = { ...(ctx.request.devices || {}), [kind]: deviceId };
    store.update((state) => {
      if (kind === "audio") state.local = { ...state.local, hasMic: true, micOn: true };
      else state.local = { ...state.local, hasCam: true, cameraOn: true };
    });
    hooks.savePlace();
    sendMediaState();
    announce(t("devices.switched"));
  } catch {
    banner(t("devices.failed"));
  }
}

// --- wiring -------------------------------------------------------------------------------------------

export function initRoom() {
  bar.initBar({ share: () => toggleShare(sendControl) });
  initBreakouts({ send: (message) => sendControl(message), facilitator: () => ctx.facilitator,
    selfId: () => (store.state.self ? store.state.self.id : null) });
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
      setPref("captionMode", radio.value);
    });
  }
  $("toggle-mic").addEventListener("click", () => {
    store.update((state) => {
      state.local = { ...state.local, micOn: !state.local.micOn };
    });
    queueMicrotask(() => {
      sendMediaState();
      hooks.savePlace();
    });
  });
  $("toggle-camera").addEventListener("click", () => {
    store.update((state) => {
      state.local = { ...state.local, cameraOn: !state.local.cameraOn };
    });
    queueMicrotask(() => {
      sendMediaState();
      hooks.savePlace();
    });
  });
  $("toggle-audio-only").addEventListener("click", () => {
    const on = !store.state.audioOnly;
    setPref("audioOnly", on);
    store.update((state) => {
      state.audioOnly = on;
    });
    sendControl({ type: "set-audio-only", enabled: on });
    announce(t(on ? "controls.audioOnlyNow" : "controls.videoBackNow"));
  });
  $("toggle-share").addEventListener("click", () => toggleShare(sendControl));
  $("toggle-layout").addEventListener("click", () => {
    store.update((state, ui) => {
      ui.layout = stage.mode === "grid" ? "speaker" : "grid";
      ui.pinned = null;
      setPref("layout", ui.layout);
    });
  });
  $("toggle-self-view").addEventListener("click", () => {
    store.update((state, ui) => {
      ui.selfViewHidden = !ui.selfViewHidden;
      setPref("selfViewHidden", ui.selfViewHidden);
    });
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
    // Encrypted room: the words go sealed to the facilitators; a request without words goes as in any room.
    const sent = e2eeOn() && text ? sendSealed("help", { text }) : sendControl({ type: "ask-for-help", text });
    if (sent) {
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
  $("leave").addEventListener("click", () => hooks.leave());
  $("lobby-leave").addEventListener("click", () => hooks.leave());
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
