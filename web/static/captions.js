// Caption area: partials replaced in place under their segment id, finals kept in a history,
// and a WebVTT transcript built here in the browser (nothing is stored on the server).

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

const LIVE_LINES = 6;

export class CaptionView {
  constructor({ live, history, status }) {
    this.live = live;
    this.history = history;
    this.status = status;
    this.lines = new Map(); // segment_id -> live element
    this.finals = new Map(); // segment_id -> final caption (kept for the transcript)
    this.subtitles = new Map(); // segment_id -> { language, text }
    this.mode = "both"; // original | translation | both
  }

  setStatus(captions) {
    if (captions.enabled) {
      this.status.textContent = `Captions are on (${captions.model || "local model"}).`;
    } else {
      this.status.textContent = `Captions are off: ${captions.reason || "not available"}.`;
    }
  }

  show(caption) {
    if (this.finals.has(caption.segment_id)) return; // a final never changes
    let line = this.lines.get(caption.segment_id);
    if (!line) {
      line = document.createElement("p");
      line.className = "caption";
      line.dataset.segmentId = caption.segment_id;
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      const text = document.createElement("span");
      text.className = "text";
      const subtitle = document.createElement("span");
      subtitle.className = "subtitle";
      line.append(speaker, text, subtitle);
      this.live.append(line);
      this.lines.set(caption.segment_id, line);
      while (this.live.children.length > LIVE_LINES) {
        const oldest = this.live.firstElementChild;
        this.lines.delete(oldest.dataset.segmentId);
        oldest.remove();
      }
    }
    line.querySelector(".speaker").textContent = `${caption.speaker_name}: `;
    line.querySelector(".text").textContent = caption.text;
    line.classList.toggle("partial", !caption.final);
    line.classList.toggle("final", caption.final);
    if (caption.final) {
      this.finals.set(caption.segment_id, caption);
      const item = document.createElement("li");
      item.dataset.segmentId = caption.segment_id;
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = `${caption.speaker_name}: `;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = caption.text;
      const subtitle = document.createElement("span");
      subtitle.className = "subtitle";
      item.append(speaker, text, subtitle);
      this.history.append(item);
      this.applySubtitle(caption.segment_id);
    }
  }

  showSubtitle(subtitle) {
    this.subtitles.set(subtitle.segment_id, subtitle);
    this.applySubtitle(subtitle.segment_id);
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
  }
}
