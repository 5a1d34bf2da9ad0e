// Caption area: partials replaced in place under their segment id, finals kept in a history, and a WebVTT
// transcript built here in the browser (nothing is stored on the server). The live area scrolls by itself to
// the newest line unless the reader scrolled back to read, and a button brings them back to the newest.

import { currentLanguage, t } from "./i18n.js";

function formatTime(seconds) {
  const total = Math.max(0, seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toFixed(3).padStart(6, "0");
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${s}`;
}

function vttEscape(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/-->/g, "--&gt;");
}

const LIVE_LINES = 200; // the live area is a scrolling log; older lines stay in the history
const AT_END_PX = 24; // "at the newest line" tolerance

function line(tag, caption) {
  const item = document.createElement(tag);
  item.dataset.segmentId = caption.segment_id;
  const speaker = document.createElement("span");
  speaker.className = "speaker";
  const text = document.createElement("span");
  text.className = "text";
  const subtitle = document.createElement("span");
  subtitle.className = "subtitle";
  item.append(speaker, text, subtitle);
  return item;
}

export class CaptionView {
  // onLine(caption): every caption shown (for captions under the speaker's tile)
  constructor({ live, history, status, jump, onLine = () => {} }) {
    this.live = live;
    this.history = history;
    this.status = status;
    this.jump = jump;
    this.onLine = onLine;
    this.lines = new Map(); // segment_id -> live element
    this.finals = new Map(); // segment_id -> final caption (kept for the transcript)
    this.subtitles = new Map(); // segment_id -> { language, text }
    this.mode = "both"; // original | translation | both
    this.captionStatus = { enabled: false };
    this.following = true; // keep the newest line in view
    live.addEventListener("scroll", () => {
      this.following = live.scrollHeight - live.scrollTop - live.clientHeight <= AT_END_PX;
      this.jump.hidden = this.following;
    });
    jump.addEventListener("click", () => {
      this.following = true;
      this.jump.hidden = true;
      this.scrollToNewest();
    });
    new ResizeObserver(() => {
      if (this.following) this.scrollToNewest();
    }).observe(live);
  }

  setStatus(captions) {
    this.captionStatus = captions || { enabled: false };
    // The server gives its reason in English; other interface languages say it more simply.
    const reason = this.captionStatus.reason && currentLanguage() === "en" ? this.captionStatus.reason : null;
    this.status.textContent = this.captionStatus.enabled ? t("captions.on")
      : reason ? t("captions.off", { reason }) : t("captions.offNoReason");
  }

  scrollToNewest() {
    this.live.scrollTop = this.live.scrollHeight;
  }

  show(caption) {
    if (this.finals.has(caption.segment_id)) return; // a final never changes
    let item = this.lines.get(caption.segment_id);
    if (!item) {
      item = line("p", caption);
      item.className = "caption";
      this.live.append(item);
      this.lines.set(caption.segment_id, item);
      while (this.live.children.length > LIVE_LINES) {
        const oldest = this.live.firstElementChild;
        this.lines.delete(oldest.dataset.segmentId);
        oldest.remove();
      }
    }
    // Speech the server could not caption in time (docs/protocol.md, `skipped`): readers know words are missing.
    const skipped = caption.final && caption.skipped > 0
      ? t("captions.skipped", { seconds: Math.max(1, Math.round(caption.skipped)) }) : "";
    const text = [caption.text, skipped].filter(Boolean).join(" ");
    item.querySelector(".speaker").textContent = `${caption.speaker_name}: `;
    item.querySelector(".text").textContent = text;
    item.classList.toggle("partial", !caption.final);
    item.classList.toggle("final", caption.final);
    item.classList.toggle("skipped", Boolean(skipped));
    if (caption.final) {
      this.finals.set(caption.segment_id, caption);
      const entry = line("li", caption);
      entry.querySelector(".speaker").textContent = `${caption.speaker_name}: `;
      entry.querySelector(".text").textContent = text;
      this.history.append(entry);
      this.applySubtitle(caption.segment_id);
    }
    if (this.following) this.scrollToNewest();
    this.onLine(caption);
  }

  showSubtitle(subtitle) {
    this.subtitles.set(subtitle.segment_id, subtitle);
    this.applySubtitle(subtitle.segment_id);
    if (this.following) this.scrollToNewest();
  }

  applySubtitle(segmentId) {
    const subtitle = this.subtitles.get(segmentId);
    if (!subtitle) return;
    for (const root of [this.live, this.history]) {
      const element = root.querySelector(`[data-segment-id="${CSS.escape(segmentId)}"]`);
      if (!element) continue;
      const target = element.querySelector(".subtitle");
      target.textContent = subtitle.text;
      target.lang = subtitle.language;
      element.classList.add("has-subtitle");
    }
  }

  setMode(mode) {
    this.mode = mode;
    for (const root of [this.live, this.history]) {
      root.dataset.mode = mode;
    }
  }

  transcript() {
    const cues = [...this.finals.values()].sort((a, b) => a.start - b.start);
    const lines = ["WEBVTT", ""];
    for (const cue of cues) {
      const end = Math.max(cue.end, cue.start + 0.5);
      lines.push(`${formatTime(cue.start)} --> ${formatTime(end)}`);
      lines.push(`<v ${vttEscape(cue.speaker_name)}>${vttEscape(cue.text)}`);
      const subtitle = this.subtitles.get(cue.segment_id);
      if (subtitle) lines.push(`[${subtitle.language}] ${vttEscape(subtitle.text)}`);
      lines.push("");
    }
    return lines.join("\n");
  }

  clear() {
    this.lines.clear();
    this.finals.clear();
    this.subtitles.clear();
    this.live.replaceChildren();
    this.history.replaceChildren();
    this.following = true;
    this.jump.hidden = true;
  }
}
