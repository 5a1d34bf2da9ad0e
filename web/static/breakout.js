// Breakout rooms (docs/protocol.md, "Breakout rooms"). Everyone: a line under the room's name saying which
// room you are in and how long is left (a countdown from the server's `remaining`, then the closing notice),
// "I need help" from a breakout, the rooms to pick from when people choose, and the facilitator's messages.
// Facilitators: a section of their tools to prepare rooms (names, how people get there), assign by picking a
// room per person, open with a time, add time, message every room, go to a room, and close all.
// The server moves people on the connection they have: `moved` (signaling) replaces the people of the room,
// `room-entered` (data channel) replaces what was said there; room.js clears its views for that.

import { $, announce, el, setText } from "./dom.js";
import { t } from "./i18n.js";
import { notify } from "./notices.js";

const EXTEND_SECONDS = 300;
const HELP_AGAIN_MS = 30000;
const DURATIONS = [0, 300, 600, 900, 1200, 1800, 2700, 3600];

const state = {
  state: "none", mode: "", rooms: [], room: null, assigned: null, mainCount: 0, seconds: 0,
  endsAt: null, closesAt: null, people: [],
  roomName: "", // the breakout I am in (from `moved`)
  lastMessage: null, // { name, text }
};
const hooks = { send: () => false, facilitator: () => null, selfId: () => null };
const calls = new WeakSet();
let ticker = null;
let toolsKey = "";
let draftCount = 2;
let draftNames = [];
let draftMode = "auto";
let draftDuration = 900;

export function initBreakouts(given) {
  Object.assign(hooks, given);
  const head = $("room-title");
  if (!head || $("breakout-banner")) return;
  const banner = el("div", { id: "breakout-banner", class: "breakout-banner", hidden: true },
    el("p", { id: "breakout-status", class: "breakout-status", role: "status" }),
    el("p", { id: "breakout-time", class: "breakout-time", "aria-hidden": "true" }),
    el("p", { id: "breakout-message", class: "breakout-message", hidden: true }),
    el("div", { id: "breakout-choices", class: "breakout-choices button-row" }));
  head.after(banner);
}

// Each new connection (join, reconnect, reload): `moved` arrives on its signaling.
export function attachCall(call) {
  if (!call || calls.has(call)) return;
  calls.add(call);
  call.addEventListener("signal", (event) => {
    const message = event.detail;
    if (message && message.type === "moved") onMoved(call, message);
  });
}

function onMoved(call, message) {
  call.setParticipants(Array.isArray(message.participants) ? message.participants : []);
  call.emit("participants");
  const before = state.room;
  state.room = typeof message.room === "number" ? message.room : null;
  state.roomName = message.name || "";
  if (before !== state.room) {
    const text = state.room === null ? t("breakout.backInMain") : t("breakout.movedTo", { name: state.roomName });
    announce(text); // no notice: the line under the room's name says it, and stays
  }
  render();
}

// Data-channel events; true when it was one of ours.
export function handleBreakoutEvent(event) {
  if (event.type === "breakouts") {
    onState(event);
    return true;
  }
  if (event.type === "breakout-message") {
    state.lastMessage = { name: String(event.name || ""), text: String(event.text || "") };
    const text = t("breakout.messageFrom", { name: state.lastMessage.name, text: state.lastMessage.text });
    announce(text);
    notify(text, { kind: "urgent", key: "breakout-message" });
    render();
    return true;
  }
  return false;
}

function onState(event) {
  const was = state.state;
  const now = Date.now();
  state.state = event.state || "none";
  state.mode = event.mode || "";
  state.rooms = Array.isArray(event.rooms) ? event.rooms : [];
  state.room = typeof event.room === "number" ? event.room : null;
  state.assigned = typeof event.assigned === "number" ? event.assigned : null;
  state.mainCount = Number(event.main_count) || 0;
  state.seconds = Number(event.seconds) || 0;
  state.endsAt = typeof event.remaining === "number" ? now + event.remaining * 1000 : null;
  state.closesAt = typeof event.closing_in === "number" ? now + event.closing_in * 1000 : null;
  state.people = Array.isArray(event.people) ? event.people : [];
  const current = state.rooms.find((r) => r.index === state.room);
  if (current) state.roomName = current.name;
  if (state.state === "none") state.lastMessage = null;
  if (was !== state.state) {
    if (state.state === "open" && was !== "closing") announce(t("breakout.openNow"));
    if (state.state === "closing") {
      announce(t("breakout.closingNotice", { time: clock(state.closesAt) }));
      // The notice holds no time (it would stand still): the line under the room's name counts down.
      notify(t("breakout.closingTitle"), { kind: "urgent", key: "breakout-closing" });
    }
  }
  render();
}

export function breakoutState() {
  return state;
}

// Leaving the room: nothing of the breakouts stays.
export function resetBreakouts() {
  Object.assign(state, { state: "none", mode: "", rooms: [], room: null, assigned: null, mainCount: 0, seconds: 0,
    endsAt: null, closesAt: null, people: [], roomName: "", lastMessage: null });
  toolsKey = "";
  render();
}

// --- time ------------------------------------------------------------------------------------------

function clock(at) {
  const left = at === null ? 0 : Math.max(0, Math.round((at - Date.now()) / 1000));
  const minutes = Math.floor(left / 60);
  return `${minutes}:${String(left % 60).padStart(2, "0")}`;
}

function timeText() {
  if (state.state === "closing") return t("breakout.closingIn", { time: clock(state.closesAt) });
  if (state.state === "open" && state.endsAt !== null) return t("breakout.timeLeft", { time: clock(state.endsAt) });
  if (state.state === "open") return t("breakout.noLimit");
  return "";
}

function tick() {
  const line = $("breakout-time");
  if (line) line.textContent = timeText();
  const tools = document.getElementById("breakout-tools-time");
  if (tools) tools.textContent = timeText();
}

// --- everyone's line ---------------------------------------------------------------------------------

export function render() {
  const banner = $("breakout-banner");
  if (!banner) return;
  const live = state.state === "open" || state.state === "closing";
  const choosing = state.mode === "choose" && state.state !== "closing" && state.state !== "none";
  banner.hidden = !live && !(choosing && state.state === "prepared");
  banner.classList.toggle("closing", state.state === "closing");
  let status = "";
  if (state.state === "closing") status = t("breakout.closingTitle");
  else if (live && state.room !== null) status = t("breakout.youAreIn", { name: state.roomName });
  else if (live) status = t("breakout.inMain");
  else if (choosing) status = t("breakout.chooseSoon");
  setText($("breakout-status"), status);
  tick();
  const message = $("breakout-message");
  message.hidden = !state.lastMessage || !live;
  if (state.lastMessage) {
    message.textContent = t("breakout.messageFrom", { name: state.lastMessage.name, text: state.lastMessage.text });
  }
  renderChoices(live, choosing);
  clearInterval(ticker);
  ticker = live && (state.endsAt !== null || state.closesAt !== null) ? setInterval(tick, 1000) : null;
  renderTools();
}

function renderChoices(live, choosing) {
  const box = $("breakout-choices");
  const facilitator = Boolean(hooks.facilitator());
  const buttons = [];
  if (choosing && !facilitator) {
    const where = state.state === "prepared" ? state.assigned : state.room;
    for (const room of state.rooms) {
      const here = where === room.index;
      buttons.push(el("button", { type: "button", class: "secondary", "aria-pressed": String(here), disabled: here,
        onclick: () => hooks.send({ type: "breakout-join", room: room.index }) },
      t("breakout.joinRoom", { name: room.name, count: room.count })));
    }
    if (state.state === "open" && state.room !== null) {
      buttons.push(el("button", { type: "button", class: "secondary",
        onclick: () => hooks.send({ type: "breakout-join", room: null }) }, t("breakout.backToMain")));
    }
  }
  if (live && state.room !== null && !facilitator && state.state === "open") {
    const help = el("button", { type: "button", id: "breakout-help", onclick: () => {
      if (hooks.send({ type: "ask-for-help", text: "" })) {
        help.disabled = true;
        help.textContent = t("breakout.helpSent");
        notify(t("help.sent"), { kind: "info" });
        // The server takes 2 a minute: the button comes back after half a minute, if it is still there.
        setTimeout(() => {
          help.disabled = false;
          help.textContent = t("breakout.needHelp");
        }, HELP_AGAIN_MS);
      }
    } }, t("breakout.needHelp"));
    buttons.push(help);
  }
  const key = JSON.stringify([buttons.map((b) => b.textContent), state.room, state.state]);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(...buttons);
  box.hidden = buttons.length === 0;
}

// --- the facilitator's section ------------------------------------------------------------------------

function defaultNames(count) {
  const names = [];
  for (let i = 0; i < count; i += 1) names.push(draftNames[i] || t("breakout.roomN", { n: i + 1 }));
  return names;
}

function labelled(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

function roomOptions(selected) {
  return [el("option", { value: "", selected: selected === null }, t("breakout.mainRoom")),
    ...state.rooms.map((r) => el("option", { value: String(r.index), selected: selected === r.index }, r.name))];
}

export function renderTools() {
  const panel = hooks.facilitator();
  const mount = panel ? panel.breakoutMount : null;
  if (!mount) return;
  const selfId = hooks.selfId();
  const key = JSON.stringify([state.state, state.mode, state.rooms, state.people, state.room, draftCount,
    state.state === "none" ? draftNames : null, selfId]);
  if (key === toolsKey && mount.childElementCount) {
    tick();
    return;
  }
  toolsKey = key;
  const focused = mount.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
  const parts = [el("h3", { id: "breakout-title", tabindex: "-1" }, t("breakout.title"))];
  if (state.state === "none") parts.push(...planForm());
  else parts.push(...liveTools(selfId));
  mount.replaceChildren(...parts);
  if (focused) {
    const again = mount.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
  tick();
}

function planForm() {
  const count = el("input", { id: "breakout-count", type: "number", min: "2", max: "20", value: String(draftCount),
    dataset: { focusKey: "count" } });
  count.addEventListener("change", () => {
    draftCount = Math.min(20, Math.max(2, Number(count.value) || 2));
    renderTools();
  });
  const names = defaultNames(draftCount).map((name, i) => {
    const input = el("input", { id: `breakout-name-${i}`, type: "text", maxlength: "40", value: name,
      dataset: { focusKey: `name-${i}` } });
    input.addEventListener("input", () => {
      draftNames[i] = input.value;
    });
    return labelled(`breakout-name-${i}`, t("breakout.nameN", { n: i + 1 }), input);
  });
  const mode = el("select", { id: "breakout-mode", dataset: { focusKey: "mode" } },
    el("option", { value: "auto", selected: draftMode === "auto" }, t("breakout.modeAuto")),
    el("option", { value: "manual", selected: draftMode === "manual" }, t("breakout.modeManual")),
    el("option", { value: "choose", selected: draftMode === "choose" }, t("breakout.modeChoose")));
  mode.addEventListener("change", () => {
    draftMode = mode.value;
  });
  const prepare = el("button", { type: "button", id: "breakout-prepare", dataset: { focusKey: "prepare" } },
    t("breakout.prepare"));
  prepare.addEventListener("click", () => {
    const chosen = defaultNames(draftCount).map((n, i) => (n || "").trim() || t("breakout.roomN", { n: i + 1 }));
    hooks.send({ type: "breakout-plan", names: chosen, mode: draftMode });
  });
  return [el("p", { class: "help" }, t("breakout.intro")),
    labelled("breakout-count", t("breakout.count"), count), ...names,
    labelled("breakout-mode", t("breakout.mode"), mode), el("div", { class: "button-row" }, prepare)];
}

function liveTools(selfId) {
  const open = state.state === "open" || state.state === "closing";
  const parts = [];
  parts.push(el("p", { class: "breakout-tools-status", role: "status" },
    state.state === "prepared" ? t("breakout.prepared") : state.state === "closing" ? t("breakout.closingTitle")
      : t("breakout.openNow")));
  if (open) parts.push(el("p", { id: "breakout-tools-time", class: "breakout-time" }));
  // The rooms, with how many are in each; open: a button to go there.
  const rooms = [];
  if (open) {
    const here = state.room === null;
    rooms.push(el("li", {}, el("span", { class: "person-name" }, t("breakout.mainRoom")),
      ` ${t("breakout.people", { count: state.mainCount })} `,
      el("span", { class: "actions" }, here ? el("span", { class: "help" }, t("breakout.youAreHere"))
        : el("button", { type: "button", class: "secondary", dataset: { focusKey: "go-main" },
          onclick: () => hooks.send({ type: "breakout-join", room: null }) }, t("breakout.backToMain")))));
  }
  for (const room of state.rooms) {
    const here = open && state.room === room.index;
    const go = open && !here ? el("button", { type: "button", class: "secondary", dataset: { focusKey: `go-${room.index}` },
      "aria-label": t("breakout.goToName", { name: room.name }),
      onclick: () => hooks.send({ type: "breakout-join", room: room.index }) }, t("breakout.goTo")) : null;
    rooms.push(el("li", { dataset: { room: String(room.index) } }, el("span", { class: "person-name" }, room.name),
      ` ${t("breakout.people", { count: room.count })} `,
      el("span", { class: "actions" }, here ? el("span", { class: "help" }, t("breakout.youAreHere")) : go)));
  }
  parts.push(el("ul", { class: "action-list breakout-rooms" }, ...rooms));
  // Who goes where: pick a room per person (prepared: the plan; open: moves them now).
  if (state.state !== "closing") {
    const people = state.people.filter((p) => p.participant_id !== selfId);
    parts.push(el("h4", {}, t("breakout.assignTitle")));
    if (!people.length) parts.push(el("p", { class: "help" }, t("breakout.nobodyToAssign")));
    parts.push(el("ul", { class: "action-list breakout-people" }, ...people.map((person) => {
      const id = `breakout-assign-${person.participant_id}`;
      const current = state.state === "prepared" ? person.assigned : person.room;
      const select = el("select", { id, dataset: { focusKey: `assign-${person.participant_id}` } },
        ...roomOptions(current));
      select.addEventListener("change", () => hooks.send({ type: "breakout-assign", participant_id: person.participant_id,
        room: select.value === "" ? null : Number(select.value) }));
      return el("li", { dataset: { participantId: person.participant_id } },
        el("label", { for: id, class: "person-name" }, person.role === "facilitator"
          ? `${person.name} (${t("tile.facilitator")})` : person.name), select);
    })));
  }
  if (state.state === "prepared") {
    const duration = el("select", { id: "breakout-duration", dataset: { focusKey: "duration" } },
      ...DURATIONS.map((s) => el("option", { value: String(s), selected: s === draftDuration },
        s ? t("breakout.minutes", { count: s / 60 }) : t("breakout.noLimitOption"))));
    duration.addEventListener("change", () => {
      draftDuration = Number(duration.value) || 0;
    });
    parts.push(labelled("breakout-duration", t("breakout.duration"), duration));
    parts.push(el("div", { class: "button-row" },
      el("button", { type: "button", id: "breakout-open", dataset: { focusKey: "open" },
        onclick: () => hooks.send({ type: "breakout-open", seconds: draftDuration }) }, t("breakout.open")),
      el("button", { type: "button", id: "breakout-cancel", class: "secondary", dataset: { focusKey: "cancel" },
        onclick: () => hooks.send({ type: "breakout-cancel" }) }, t("breakout.discard"))));
    return parts;
  }
  // Open: more time, a message to every room, close all.
  const text = el("input", { id: "breakout-broadcast-text", type: "text", maxlength: "500", dataset: { focusKey: "text" } });
  const form = el("form", { class: "breakout-broadcast" }, labelled("breakout-broadcast-text", t("breakout.messageLabel"), text),
    el("button", { type: "submit", id: "breakout-broadcast" }, t("breakout.sendToAll")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = text.value.trim();
    if (value && hooks.send({ type: "breakout-broadcast", text: value })) {
      text.value = "";
      announce(t("breakout.messageSent"));
    }
  });
  parts.push(form);
  const panel = hooks.facilitator();
  parts.push(el("div", { class: "button-row" },
    el("button", { type: "button", id: "breakout-extend", class: "secondary", dataset: { focusKey: "extend" },
      onclick: () => hooks.send({ type: "breakout-extend", seconds: EXTEND_SECONDS }) }, t("breakout.extend")),
    state.state === "open" ? el("button", { type: "button", id: "breakout-close", class: "danger", dataset: { focusKey: "close" },
      onclick: () => panel.confirm(t("breakout.closeConfirm"), t("breakout.closeAll"),
        () => hooks.send({ type: "breakout-close" })) }, t("breakout.closeAll")) : null));
  return parts;
}

// A room's name for a help request or a safety alert (facilitators), or null in the main room.
export function breakoutNameOf(message) {
  return typeof message.breakout === "number" ? message.breakout_name || t("breakout.roomN", { n: message.breakout + 1 })
    : null;
}
