// Facilitator tools: lobby (admit/deny), per-person mute/video/remove, lock, end session, unmute
// requests and private safety alerts. Built from an inert <template> only when the server said our role
// is "facilitator"; for everyone else none of this exists in the page.

import { announce, clockTime, el } from "./dom.js";

export class FacilitatorPanel {
  // actions: { admit(id), deny(id), request(message) -> bool }
  constructor(mount, actions) {
    const template = document.getElementById("facilitator-template");
    mount.replaceChildren(document.importNode(template.content, true));
    this.root = mount.querySelector("#facilitator-panel");
    this.actions = actions;
    const q = (id) => this.root.querySelector(`#${id}`);
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
    this.waiting = [];
    this.locked = false;
    this.alertCount = 0;
    this.lockButton.addEventListener("click", () => {
      this.actions.request({ type: this.locked ? "unlock" : "lock" });
    });
    this.endButton.addEventListener("click", () => {
      this.confirm("End the session for everyone? Everyone, including you, will leave the room.",
        "End session", () => this.actions.request({ type: "end-session" }));
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
    this.root.querySelector("#confirm-text").textContent = text;
    this.root.querySelector("#confirm-yes").textContent = confirmLabel;
    this.pendingConfirm = { onConfirm, returnFocus: document.activeElement };
    this.dialog.returnValue = "";
    this.dialog.showModal();
    this.root.querySelector("#confirm-no").focus(); // the safe choice first
  }

  // --- lobby (signaling: lobby-update) ---------------------------------------------------------

  setWaiting(waiting) {
    const before = new Set(this.waiting.map((p) => p.id));
    this.waiting = waiting;
    const arrivals = waiting.filter((p) => !before.has(p.id));
    this.lobbyList.replaceChildren(...waiting.map((person) => this.lobbyItem(person)));
    this.lobbyEmpty.hidden = waiting.length > 0;
    this.lobbyTitle.textContent = waiting.length ? `Waiting room (${waiting.length})` : "Waiting room";
    if (arrivals.length === 1) announce(`${arrivals[0].name} is waiting to join.`);
    else if (arrivals.length > 1) announce(`${arrivals.length} people are waiting to join.`);
  }

  lobbyItem(person) {
    const admit = el("button", { type: "button", class: "small", "aria-label": `Admit ${person.name}` }, "Admit");
    const deny = el("button", { type: "button", class: "small secondary", "aria-label": `Deny ${person.name}` }, "Deny");
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

  // people: [{id, name, role}] without ourselves; moderation: id -> {muted, videoStopped}
  setPeople(people, moderation) {
    const focusedKey = document.activeElement && this.peopleList.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    this.peopleList.replaceChildren(...people.map((person) => this.personItem(person, moderation.get(person.id) || {})));
    this.peopleEmpty.hidden = people.length > 0;
    if (focusedKey) {
      const again = this.peopleList.querySelector(`[data-focus-key="${CSS.escape(focusedKey)}"]`);
      if (again) again.focus();
      else this.root.querySelector("#people-list-title").focus();
    }
  }

  personItem(person, state) {
    const button = (label, key, request, extraClass = "") => {
      const b = el("button", {
        type: "button", class: `small ${extraClass}`.trim(), "aria-label": `${label}: ${person.name}`,
        dataset: { focusKey: `${person.id}:${key}` },
      }, label);
      b.addEventListener("click", request);
      return b;
    };
    const send = (type) => () => this.actions.request({ type, participant_id: person.id });
    const mute = state.muted
      ? button("Unmute", "audio", send("unmute"))
      : button("Mute", "audio", send("mute"));
    const video = state.videoStopped
      ? button("Allow video", "video", send("allow-video"))
      : button("Stop video", "video", send("stop-video"));
    const remove = button("Remove", "remove", () => {
      this.confirm(`Remove ${person.name} from this session? They will not be able to come back to it.`,
        "Remove", () => this.actions.request({ type: "remove", participant_id: person.id }));
    }, "danger");
    const status = [];
    if (person.role === "facilitator") status.push("facilitator");
    if (state.muted) status.push("muted");
    if (state.videoStopped) status.push("video stopped");
    return el("li", { dataset: { participantId: person.id } },
      el("span", { class: "person-name" }, person.name),
      status.length ? el("span", { class: "person-status" }, ` (${status.join(", ")})`) : null,
      el("span", { class: "actions" }, mute, video, remove));
  }

  // --- room state -------------------------------------------------------------------------------

  setLocked(locked) {
    this.locked = locked;
    this.lockButton.textContent = locked ? "Unlock room" : "Lock room";
    this.lockButton.setAttribute("aria-pressed", String(locked));
  }

  // --- unmute requests --------------------------------------------------------------------------

  addUnmuteRequest({ participant_id: id, name }) {
    this.removeUnmuteRequest(id);
    const unmute = el("button", { type: "button", class: "small", "aria-label": `Unmute ${name}` }, "Unmute");
    const dismiss = el("button", { type: "button", class: "small secondary", "aria-label": `Dismiss request from ${name}` }, "Dismiss");
    unmute.addEventListener("click", () => {
      this.actions.request({ type: "unmute", participant_id: id });
      this.removeUnmuteRequest(id);
    });
    dismiss.addEventListener("click", () => this.removeUnmuteRequest(id));
    this.unmuteList.append(el("li", { dataset: { participantId: id } },
      el("span", { class: "person-name" }, name), " asks to be unmuted ", el("span", { class: "actions" }, unmute, dismiss)));
    this.unmuteEmpty.hidden = true;
    announce(`${name} asks to be unmuted.`);
  }

  removeUnmuteRequest(id) {
    const item = this.unmuteList.querySelector(`[data-participant-id="${CSS.escape(id)}"]`);
    if (item) {
      const hadFocus = item.contains(document.activeElement);
      item.remove();
      if (hadFocus) this.root.querySelector("#unmute-title").focus();
    }
    this.unmuteEmpty.hidden = this.unmuteList.children.length > 0;
  }

  // --- safety alerts (private) ------------------------------------------------------------------

  addSafetyAlert(alert) {
    this.alertCount += 1;
    const where = alert.source === "chat" ? "wrote in the chat" : "said (from the captions)";
    const id = `safety-alert-${this.alertCount}`;
    const dismiss = el("button", { type: "button", class: "small secondary", "aria-label": `Dismiss alert about ${alert.name}` }, "Dismiss");
    const item = el("li", { class: "safety-alert", id, "aria-labelledby": `${id}-title` },
      el("p", { class: "alert-title", id: `${id}-title` },
        el("strong", {}, alert.name), ` ${where} at ${clockTime()}`,
        alert.category ? el("span", { class: "alert-category" }, ` (${alert.category.replace(/[-_]/g, " ")})`) : null),
      el("blockquote", { class: "alert-text" }, alert.text),
      el("p", { class: "alert-resources" }, alert.resources || ""),
      dismiss);
    dismiss.addEventListener("click", () => {
      item.remove();
      this.alertEmpty.hidden = this.alertList.children.length > 0;
      this.safetyTitle.textContent = this.alertList.children.length ? `Safety alerts (${this.alertList.children.length})` : "Safety alerts";
      this.safetyTitle.focus();
    });
    this.alertList.prepend(item);
    this.alertEmpty.hidden = true;
    this.safetyTitle.textContent = `Safety alerts (${this.alertList.children.length})`;
    announce(`Private safety alert about ${alert.name}. See the facilitator tools.`);
  }

  destroy() {
    if (this.dialog.open) this.dialog.close("cancel");
    this.root.remove();
  }
}
