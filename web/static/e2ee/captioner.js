// Captions of this person's own speech in an end-to-end encrypted room, made in this browser: the microphone
// (an AudioWorklet) feeds the speech worker (asr_worker.js: Moonshine tiny on onnxruntime-web), whose partial and
// final captions the room seals and sends (room.js). The server never hears the audio or reads the text.

export class LocalCaptions {
  constructor({ onCaption, onStatus }) {
    this.onCaption = onCaption; // ({ segment_id, text, final, start, end }) -> void; start/end: seconds of this clock
    this.onStatus = onStatus;
    this.state = "off"; // off | loading | ready | error
    this.reason = "";
    this.worker = null;
    this.context = null;
    this.startedAt = 0;
    this.statsWaiting = new Map();
    this.latency = []; // ms from a segment's end of speech to its final leaving the worker (for bench.e2ee)
  }

  async start(stream) {
    const track = stream && stream.getAudioTracks()[0];
    if (!track || this.worker) return;
    this.state = "loading";
    this.onStatus();
    try {
      this.worker = new Worker(new URL("./asr_worker.js", import.meta.url), { type: "module" });
      this.worker.addEventListener("message", (event) => this.onWorker(event.data));
      this.worker.addEventListener("error", (event) => this.fail(event.message || "the speech worker failed"));
      this.context = new AudioContext();
      await this.context.audioWorklet.addModule(new URL("./mic_worklet.js", import.meta.url));
      const source = this.context.createMediaStreamSource(new MediaStream([track]));
      const tap = new AudioWorkletNode(this.context, "peerwell-mic-tap", { numberOfOutputs: 0 });
      const channel = new MessageChannel();
      tap.port.postMessage({ port: channel.port1 }, [channel.port1]);
      source.connect(tap);
      this.audioStart = this.context.currentTime;
      this.startedAt = performance.now();
      this.worker.postMessage({ type: "start", sampleRate: this.context.sampleRate, port: channel.port2 },
        [channel.port2]);
      if (this.context.state === "suspended") await this.context.resume().catch(() => {});
    } catch (error) {
      this.fail(String(error && error.message ? error.message : error));
    }
  }

  onWorker(message) {
    if (message.type === "status") {
      if (message.state === "error") this.fail(message.reason);
      else {
        this.state = message.state;
        this.onStatus();
      }
    } else if (message.type === "caption") {
      if (message.final) {
        // Audio clock: seconds since start; performance clock: ms since start (same origin, near enough).
        this.latency.push(message.decodedAt - this.startedAt - message.end * 1000);
      }
      this.onCaption({ segment_id: message.segment_id, text: message.text, final: message.final,
        start: message.start, end: message.end });
    } else if (message.type === "stats") {
      const done = this.statsWaiting.get(message.id);
      if (done) done(message.stats);
      this.statsWaiting.delete(message.id);
    }
  }

  fail(reason) {
    this.state = "error";
    this.reason = reason;
    this.onStatus();
  }

  stats() {
    if (!this.worker) return Promise.resolve(null);
    const id = Math.random().toString(36).slice(2);
    return new Promise((resolve) => {
      this.statsWaiting.set(id, resolve);
      this.worker.postMessage({ type: "stats", id });
    });
  }

  stop() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.state = "off";
    this.latency = [];
  }

  statusText(t) {
    if (this.state === "loading") return t("e2ee.captionsLoading");
    if (this.state === "ready") return t("e2ee.captionsOn");
    if (this.state === "error") return t("e2ee.captionsOff", { reason: this.reason });
    return "";
  }
}
