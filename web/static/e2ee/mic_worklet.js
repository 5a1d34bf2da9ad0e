// The microphone for captions made in this browser: batches of samples at the context's rate, posted on a
// port straight to the speech worker (e2ee/asr_worker.js), so the page's own thread never carries audio.
const BATCH = 4096;

class MicTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.port.onmessage = (event) => {
      this.out = event.data.port;
    };
    this.buffer = new Float32Array(BATCH);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && this.out) {
      let offset = 0;
      while (offset < channel.length) {
        const n = Math.min(channel.length - offset, BATCH - this.filled);
        this.buffer.set(channel.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === BATCH) {
          this.out.postMessage(this.buffer, [this.buffer.buffer]);
          this.buffer = new Float32Array(BATCH);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("peerwell-mic-tap", MicTap);
