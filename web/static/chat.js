// Chat panel: the room's messages (memory only, on the server and here), a length counter, errors such
// as the rate limit shown in place, and a delete button per message for the facilitator.

import { clockTime, el, setText } from "./dom.js";
import { t } from "./i18n.js";

export const CHAT_MAX = 500;

export class ChatView {
  constructor({ list, form, input, counter, error, send }) {
    this.list = list;
    this.form = form;
    this.input = input;
    this.counter = counter;
    this.error = error;
    this.send = send; // (request) => bool
    this.items = new Map(); // message_id -> li
    this.selfId = null;
    this.canDelete = false;
    this.lastSent = "";
    this.timeOf = () => new Date(); // (room time) -> Date; set from the room's clock when known
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("input", () => this.updateCounter());
    input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter starts a new line.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.updateCounter();
  }

  configure({ selfId, canDelete, timeOf }) {
    this.selfId = selfId;
    this.canDelete = canDelete;
    if (timeOf) this.timeOf = timeOf;
  }

  updateCounter() {
    const left = CHAT_MAX - this.input.value.length;
    this.counter.textContent = left === 1 ? t("chat.oneLeft") : t("chat.left", { count: left });
    this.counter.classList.toggle("warning", left < 50);
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) {
      setText(this.error, t("chat.empty"));
      this.input.focus();
      return;
    }
    if (text.length > CHAT_MAX) {
      setText(this.error, t("chat.tooLong", { max: CHAT_MAX }));
      return;
    }
    if (!this.send({ type: "chat", text })) {
      setText(this.error, t("chat.notSent"));
      return;
    }
    setText(this.error, "");
    this.lastSent = text;
    this.input.value = "";
    this.updateCounter();
  }

  // An error event for a chat request (rate limit, invalid): show it and give the text back.
  showError(message) {
    setText(this.error, message);
    if (!this.input.value && this.lastSent) {
      this.input.value = this.lastSent;
      this.updateCounter();
    }
  }

  add(message) {
    if (this.items.has(message.message_id)) return;
    const own = message.participant_id === this.selfId;
    const name = el("span", { class: "chat-name" }, own ? t("tile.you", { name: message.name }) : message.name);
    const time = el("span", { class: "chat-time" }, clockTime(this.timeOf(message.at)));
    const text = el("p", { class: "chat-text" }, message.text);
    const item = el("li", { class: own ? "chat-message own" : "chat-message", dataset: { messageId: message.message_id } },
      el("div", { class: "chat-meta" }, name, " ", time), text);
    if (this.canDelete) {
      const remove = el("button", {
        type: "button", class: "small secondary chat-delete",
        "aria-label": t("chat.deleteFrom", { name: message.name }),
      }, t("chat.delete"));
      remove.addEventListener("click", () => {
        this.send({ type: "delete-chat", message_id: message.message_id });
      });
      item.append(remove);
    }
    this.items.set(message.message_id, item);
    this.list.append(item);
    const log = this.list.parentElement;
    if (log) log.scrollTop = log.scrollHeight;
  }

  remove(messageId) {
    const item = this.items.get(messageId);
    if (!item) return;
    // The text is gone everywhere; a short note keeps the conversation readable.
    const focusWasInside = item.contains(document.activeElement);
    item.replaceChildren(el("p", { class: "chat-removed" }, t("chat.removed")));
    item.classList.add("removed");
    if (focusWasInside) this.input.focus();
  }

  clear() {
    this.items.clear();
    this.list.replaceChildren();
    this.input.value = "";
    this.lastSent = "";
    setText(this.error, "");
    this.updateCounter();
  }
}
