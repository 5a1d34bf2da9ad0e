// Facilitator tools: safety alerts and help requests first (private), the lobby (admit/deny), unmute
// requests, per-person mute/video/remove, screen sharing (allow, stop) and the share time, mute all, lock,
// end session, and the alert sound. A panel beside the stage on a desktop, a sheet on a phone (bar.js). Built from an
// inert <template> only when the server said our role is "facilitator"; for everyone else none of this
// exists in the page. Every arrival that needs attention also raises a notice (notices.js) that is seen
// whatever the scroll position.

import { breakoutNameOf } from "./breakout.js";
import { announce, clockTime, el } from "./dom.js";
import { t, translatePage } from "./i18n.js";
import { notify, setSound, soundOn } from "./notices.js";

export class FacilitatorPanel {
  // actions: { admit(id), deny(id), request(message) -> bool, reveal() (open the panel), timeOf(roomTime) -> Date }
  constructor(mount, actions) {
    const template = document.getElementById("facilitator-template");
    mount.replaceChildren(document.importNode(template.content, true));
    translatePage(mount);
    this.root = mount.querySelector("#facilitator-panel");
    this.actions = actions;
    const q = (id) => this.root.querySelector(`#${id}`);
    this.q = q;
    this.lobbyList = q("lobby-list");
    this.lobbyEmpty = q("lobby-empty");
    this.lobbyTitle = q("lobby-list-title");
    this.peopleList = q("people-list");
    this.peopleEmpty = q("people-empty");
    this.unmuteList = q("unmute-requests");
    this.unmuteEmpty = q("unmute-empty");
    this.alertList = q("safety-alerts");
    this.alertEmpty = q("safety-empty");
    this.safetyTitle = q("safety-title");
    this.lockButton = q("lock-room");
    this.endButton = q("end-session");
    this.dialog = q("confirm-dialog");
    // Breakout rooms: breakout.js renders this section (only facilitators have it).
    this.breakoutMount = el("section", { class: "breakout-tools", "aria-labelledby": "breakout-title" });
    this.root.querySelector(".facilitator-grid").after(this.breakoutMount);
    this.waiting = [];
    this.locked = false;
    this.alertCount = 0;
    this.peopleKey = "";
    const sound = q("alert-sound");
    sound.checked = soundOn();
    sound.addEventListener("change", () => setSound(sound.checked));
    this.timerLength = q("share-timer-length");
    this.clearTimer = q("clear-share-timer");
    this.clearTimer.addEventListener("click", () => this.actions.request({ type: "clear-share-timer" }));
    this.lockButton.addEventListener("click", () => {
      this.actions.request({ type: this.locked ? "unlock" : "lock" });
    });
    q("mute-all").addEventListener("click", () => {
      this.confirm(t("fac.muteAllConfirm"), t("fac.muteAll"), () => this.actions.request({ type: "mute-all" }));
    });
    this.endButton.addEventListener("click", () => {
      this.confirm(t("fac.endConfirm"), t("fac.endButton"), () => this.actions.request({ type: "end-session" }));
    });
    q("confirm-no").addEventListener("click", () => this.dialog.close("cancel"));
    q("confirm-yes").addEventListener("click", () => this.dialog.close("confirm"));
    this.dialog.addEventListener("close", () => {
      const pending = this.pendingConfirm;
      this.pendingConfirm = null;
      if (pending && this.dialog.returnValue === "confirm") pending.onConfirm();
      if (pending && pending.returnFocus && pending.returnFocus.isConnected) pending.returnFocus.focus();
    });
  }

  confirm(text, confirmLabel, onConfirm) {
    this.q("confirm-text").textContent = text;
    this.q("confirm-yes").textContent = confirmLabel;
    this.pendingConfirm = { onConfirm, returnFocus: document.activeElement };
    this.dialog.returnValue = "";
    this.dialog.showModal();
    this.q("confirm-no").focus(); // the safe choice first
  }

  show(section) {
    if (this.actions.reveal) this.actions.reveal();
    const target = this.q(section);
    target.scrollIntoView({ block: "start" });
    target.focus({ preventScroll: true });
    // The newest alert (or arrival) right under its heading, whole when it fits.
    const first = target.parentElement.querySelector(".safety-alert, #lobby-list li");
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  // --- lobby (signaling: lobby-update) ---------------------------------------------------------

  setWaiting(waiting) {
    const before = new Set(this.waiting.map((p) => p.id));
    this.waiting = waiting;
    const arrivals = waiting.filter((p) => !before.has(p.id));
    this.lobbyList.replaceChildren(...waiting.map((person) => this.lobbyItem(person)));
    this.lobbyEmpty.hidden = waiting.length > 0;
    this.lobbyTitle.textContent = waiting.length ? t("fac.lobbyCount", { count: waiting.length }) : t("fac.lobby");
    if (!arrivals.length) return;
    const text = arrivals.length === 1
      ? t("fac.arrivedOne", { name: arrivals[0].name }) : t("fac.arrivedMany", { count: arrivals.length });
    announce(text);
    notify(text, { kind: "urgent", key: "lobby", action: { label: t("notice.show"), run: () => this.show("lobby-list-title") } });
  }

  lobbyItem(person) {
    const admit = el("button", { type: "button", class: "small", "aria-label": t("fac.admitName", { name: person.name }) },
      t("fac.admit"));
    const deny = el("button", { type: "button", class: "small secondary", "aria-label": t("fac.denyName", { name: person.name }) },
      t("fac.deny"));
    admit.addEventListener("click", () => {
      admit.disabled = deny.disabled = true;
      this.actions.admit(person.id);
    });
    deny.addEventListener("click", () => {
      admit.disabled = deny.disabled = true;
      this.actions.deny(person.id);
    });
    return el("li", { dataset: { participantId: person.id } },
      el("span", { class: "person-name" }, person.name), el("span", { class: "actions" }, admit, deny));
  }

  // --- people in the room ----------------------------------------------------------------------

  // people: [{id, name, role, muted, videoStopped}] without ourselves. Rebuilt only when it changed, so a
  // button is never replaced under the pointer by unrelated news (someone speaking, a reaction).
  setPeople(people) {
    const key = JSON.stringify(people);
    if (key === this.peopleKey) return;
    this.peopleKey = key;
    const focusedKey = document.activeElement && this.peopleList.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    this.peopleList.replaceChildren(...people.map((person) => this.personItem(person)));
    this.peopleEmpty.hidden = people.length > 0;
    if (focusedKey) {
      const again = this.peopleList.querySelector(`[data-focus-key="${CSS.escape(focusedKey)}"]`);
      if (again) again.focus();
      else this.q("people-list-title").focus();
    }
  }

  personItem(person) {
    const button = (label, key, request, extraClass = "") => {
      const b = el("button", {
        type: "button", class: `small ${extraClass}`.trim(), "aria-label": `${label}: ${person.name}`,
        dataset: { focusKey: `${person.id}:${key}` },
      }, label);
      b.addEventListener("click", request);
      return b;
    };
    const send = (type) => () => this.actions.request({ type, participant_id: person.id });
    const mute = person.muted
      ? button(t("fac.unmute"), "audio", send("unmute"))
      : button(t("fac.mute"), "audio", send("mute"));
    const video = person.videoStopped
      ? button(t("fac.allowVideo"), "video", send("allow-video"))
      : button(t("fac.stopVideo"), "video", send("stop-video"));
    const share = [];
    if (person.sharing) share.push(button(t("fac.stopShare"), "share", send("stop-share-of")));
    if (person.role !== "facilitator") {
      share.push(button(person.shareAllowed ? t("fac.revokeShare") : t("fac.allowShare"), "allow",
        () => this.actions.request({ type: "allow-share", participant_id: person.id, allowed: !person.shareAllowed })));
    }
    share.push(button(t("fac.shareTime"), "timer", () => this.actions.request({
      type: "set-share-timer", participant_id: person.id, seconds: Number(this.timerLength.value) || 180 })));
    const remove = button(t("fac.remove"), "remove", () => {
      this.confirm(t("fac.removeConfirm", { name: person.name }), t("fac.remove"),
        () => this.actions.request({ type: "remove", participant_id: person.id }));
    }, "danger");
    const status = [];
    if (person.role === "facilitator") status.push(t("fac.statusFacilitator"));
    if (person.muted) status.push(t("fac.statusMuted"));
    if (person.videoStopped) status.push(t("fac.statusVideoStopped"));
    if (person.sharing) status.push(t("fac.statusSharing"));
    else if (person.shareAllowed) status.push(t("fac.statusMayShare"));
    if (person.timer) status.push(t("fac.statusTimer"));
    return el("li", { dataset: { participantId: person.id } },
      el("span", { class: "person-name" }, person.name),
      status.length ? el("span", { class: "person-status" }, ` (${status.join(", ")})`) : null,
      el("span", { class: "actions" }, mute, video, ...share, remove));
  }

  setTimerActive(active) {
    this.clearTimer.hidden = !active;
  }

  // Alerts and help requests not yet dismissed (the bar's count).
  alertTotal() {
    return this.alertList.children.length;
  }

  // --- room state -------------------------------------------------------------------------------

  setLocked(locked) {
    this.locked = locked;
    this.lockButton.textContent = locked ? t("fac.unlock") : t("fac.lock");
    this.lockButton.setAttribute("aria-pressed", String(locked));
  }

  // --- unmute requests --------------------------------------------------------------------------

  addUnmuteRequest({ participant_id: id, name }) {
    this.removeUnmuteRequest(id);
    const unmute = el("button", { type: "button", class: "small", "aria-label": t("fac.unmuteName", { name }) },
      t("fac.unmute"));
    const dismiss = el("button", { type: "button", class: "small secondary",
      "aria-label": t("fac.dismissRequest", { name }) }, t("fac.dismiss"));
    unmute.addEventListener("click", () => {
      this.actions.request({ type: "unmute", participant_id: id });
      this.removeUnmuteRequest(id);
    });
    dismiss.addEventListener("click", () => this.removeUnmuteRequest(id));
    this.unmuteList.append(el("li", { dataset: { participantId: id } },
      el("span", { class: "person-name" }, name), ` ${t("fac.asksUnmute")} `, el("span", { class: "actions" }, unmute, dismiss)));
    this.unmuteEmpty.hidden = true;
    announce(t("fac.asksUnmuteName", { name }));
  }

  removeUnmuteRequest(id) {
    const item = this.unmuteList.querySelector(`[data-participant-id="${CSS.escape(id)}"]`);
    if (item) {
      const hadFocus = item.contains(document.activeElement);
      item.remove();
      if (hadFocus) this.q("unmute-title").focus();
    }
    this.unmuteEmpty.hidden = this.unmuteList.children.length > 0;
  }

  // --- safety alerts and help requests (private) ------------------------------------------------

  // `why`: what raised a safety alert (its words, confidence, context); `alertId`: the server's id, for
  // "Not a concern" (every facilitator's copy goes when one of them marks it).
  addAlert({ heading, quote, resources, name, at, why = null, alertId = null, go = null }) {
    this.alertCount += 1;
    const id = `safety-alert-${this.alertCount}`;
    const dismiss = el("button", { type: "button", class: "small secondary",
      "aria-label": t("fac.dismissAlert", { name }) }, t("fac.dismiss"));
    const notConcern = alertId ? el("button", { type: "button", class: "small secondary",
      "aria-label": t("fac.notConcernFor", { name }) }, t("fac.notConcern")) : null;
    const item = el("li", { class: "safety-alert", id, "aria-labelledby": `${id}-title` },
      el("p", { class: "alert-title", id: `${id}-title` }, el("strong", {}, name), ` ${heading} `,
        t("fac.at", { time: clockTime(this.actions.timeOf(at)) })),
      quote ? el("blockquote", { class: "alert-text" }, quote) : null,
      why ? el("p", { class: "alert-why" }, why) : null,
      // The same guidance with every alert: one line until opened, so the alert itself stays in view.
      resources ? el("details", { class: "alert-resources" }, el("summary", {}, t("fac.whatToDo")),
        el("p", {}, resources)) : null,
      el("div", { class: "alert-actions" }, go ? el("button", { type: "button", class: "small",
        onclick: () => this.actions.request(go.message) }, go.label) : null, dismiss, notConcern));
    if (alertId) item.dataset.alertId = alertId;
    const remove = () => {
      const hadFocus = item.contains(document.activeElement);
      item.remove();
      this.renderAlertCount();
      if (hadFocus) this.safetyTitle.focus();
    };
    dismiss.addEventListener("click", remove);
    if (notConcern) {
      notConcern.addEventListener("click", () => {
        if (this.actions.request({ type: "dismiss-alert", alert_id: alertId })) notConcern.disabled = true;
      });
    }
    this.alertList.prepend(item);
    this.renderAlertCount();
  }

  // Another facilitator (or this one) marked it "not a concern": same words from that person stay quiet.
  alertDismissed({ alert_id: alertId, by }) {
    const item = [...this.alertList.children].find((li) => li.dataset.alertId === alertId);
    if (!item) return;
    const hadFocus = item.contains(document.activeElement);
    item.remove();
    this.renderAlertCount();
    if (hadFocus) this.safetyTitle.focus();
    announce(t("fac.markedNotConcern", { name: by }));
  }

  renderAlertCount() {
    const count = this.alertList.children.length;
    this.alertEmpty.hidden = count > 0;
    this.safetyTitle.textContent = count ? t("fac.alertsCount", { count }) : t("fac.alerts");
  }

  // A breakout's name for the heading and notice, and a button to go there (null in the main room).
  breakoutOf(message) {
    const room = breakoutNameOf(message);
    return room === null ? { room, go: null } : { room,
      go: { label: t("breakout.goToName", { name: room }), message: { type: "breakout-join", room: message.breakout } } };
  }

  addSafetyAlert(alert) {
    const { room, go } = this.breakoutOf(alert);
    const base = alert.source === "chat" ? t("fac.wroteInChat") : t("fac.saidInCaptions");
    const heading = room === null ? base : `${base} ${t("breakout.inRoom", { name: room })}`;
    const why = [
      alert.category ? alert.category.replace(/[-_]/g, " ") : "",
      alert.triggers && alert.triggers.length ? t("fac.alertWords", { words: alert.triggers.join(", ") }) : "",
      typeof alert.confidence === "number" ? t("fac.alertConfidence", { percent: Math.round(alert.confidence * 100) }) : "",
      alert.layer === "context" ? t("fac.alertContext") : "",
    ].filter(Boolean).join(" · ");
    this.addAlert({ heading, quote: alert.text, resources: alert.resources || "", name: alert.name, at: alert.at,
      why, alertId: alert.alert_id || null, go });
    const text = room === null ? t("fac.safetyNotice", { name: alert.name })
      : `${t("fac.safetyNotice", { name: alert.name })} ${t("breakout.inRoom", { name: room })}`;
    announce(text);
    notify(text, { kind: "urgent", action: { label: t("notice.show"), run: () => this.show("safety-title") } });
  }

  addHelpRequest(request) {
    const { room, go } = this.breakoutOf(request);
    const heading = room === null ? t("fac.asksForHelp") : `${t("fac.asksForHelp")} ${t("breakout.inRoom", { name: room })}`;
    this.addAlert({ heading, quote: request.text, resources: "", name: request.name, at: request.at, go });
    const text = room === null ? t("fac.helpNotice", { name: request.name })
      : `${t("fac.helpNotice", { name: request.name })} ${t("breakout.inRoom", { name: room })}`;
    announce(text);
    notify(text, { kind: "urgent", action: { label: t("notice.show"), run: () => this.show("safety-title") } });
  }

  destroy() {
    if (this.dialog.open) this.dialog.close("cancel");
    this.root.remove();
  }
}
