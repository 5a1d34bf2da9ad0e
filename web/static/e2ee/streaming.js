// Streaming logic for captions made in the speaker's browser (no model here: pure, testable alone).
// Energy endpointing: a noise floor that follows the quiet parts; a 30 ms frame well above it starts speech, and
// speech goes on while frames stay somewhat above it (hysteresis, so quiet syllables do not cut a sentence).
// While someone speaks, the growing segment is offered for a partial every PARTIAL_EVERY_S; after
// END_SILENCE_S of quiet the segment is final, and a long one ends at its first short pause after SOFT_MAX_S
// (MAX_SEGMENT_S at most): a small model does best on a few seconds at a time. Silence is never transcribed,
// which is what keeps a speech model from inventing words in pauses.

export const RATE = 16000;
const FRAME = 480; // 30 ms
const PRE_ROLL_S = 0.5; // audio kept before the first loud frame: onsets are quiet
const END_SILENCE_S = 0.5; // quiet that ends a segment
const SOFT_MAX_S = 6; // from here a short pause ends the segment
const SHORT_PAUSE_S = 0.2;
const MIN_SPEECH_S = 0.25; // shorter bursts (a cough, a click) are dropped
const PARTIAL_EVERY_S = 0.8;
const MAX_SEGMENT_S = 10; // a long turn is cut here and goes on in a new segment
const FLOOR_MIN = 0.0005; // RMS of a very quiet room
const SPEECH_RATIO = 3.5; // this far above the floor starts speech
const KEEP_RATIO = 2; // this far above keeps it going
const SPEECH_ABS = 0.004; // ...and at least this loud (a recording without automatic gain can be quiet)

export class Endpointer {
  constructor() {
    this.floor = 0.003; // a quiet room; it follows the real one within a second
    this.pending = new Float32Array(0); // samples not yet in a whole frame
    this.clock = 0; // seconds of audio seen
    this.preRoll = []; // recent quiet frames
    this.segment = null; // { frames: [Float32Array], start, speech, lastLoud, lastPartial }
    this.cutInSpeech = false; // the last segment was cut while speech went on
  }

  // 16 kHz mono samples in; what to transcribe out: [{ final, audio, start, end }].
  push(samples) {
    const joined = new Float32Array(this.pending.length + samples.length);
    joined.set(this.pending);
    joined.set(samples, this.pending.length);
    const out = [];
    let offset = 0;
    for (; offset + FRAME <= joined.length; offset += FRAME) {
      const frame = joined.slice(offset, offset + FRAME);
      const action = this.frame(frame);
      if (action) out.push(action);
    }
    this.pending = joined.slice(offset);
    return out;
  }

  frame(frame) {
    let sum = 0;
    for (const s of frame) sum += s * s;
    const rms = Math.sqrt(sum / frame.length);
    const start = this.clock;
    this.clock += FRAME / RATE;
    // A segment cut at MAX_SEGMENT_S goes on in the next one at the "keep" threshold: nothing said is lost.
    const ratio = this.segment || this.cutInSpeech ? KEEP_RATIO : SPEECH_RATIO;
    const loud = rms > Math.max(this.floor * ratio, SPEECH_ABS);
    if (!loud) this.floor = Math.max(FLOOR_MIN, this.floor * 0.95 + rms * 0.05); // follows the room, not the voice
    else this.floor = Math.max(FLOOR_MIN, this.floor * 0.999 + rms * 0.001);
    const seg = this.segment;
    if (!seg) {
      this.cutInSpeech = false;
      this.preRoll.push(frame);
      if (this.preRoll.length > Math.round((PRE_ROLL_S * RATE) / FRAME)) this.preRoll.shift();
      if (!loud) return null;
      this.segment = { frames: [...this.preRoll], start: start - (this.preRoll.length - 1) * (FRAME / RATE),
        speech: 0, lastLoud: this.clock, lastPartial: this.clock };
      this.preRoll = [];
      this.segment.speech += FRAME / RATE;
      return null;
    }
    seg.frames.push(frame);
    if (loud) {
      seg.speech += FRAME / RATE;
      seg.lastLoud = this.clock;
    }
    const length = this.clock - seg.start;
    const quiet = this.clock - seg.lastLoud;
    if (quiet >= END_SILENCE_S || length >= MAX_SEGMENT_S || (length >= SOFT_MAX_S && quiet >= SHORT_PAUSE_S)) {
      this.segment = null;
      this.cutInSpeech = quiet < SHORT_PAUSE_S;
      if (seg.speech < MIN_SPEECH_S) return null;
      // Trailing quiet beyond a little is not worth decoding.
      const keep = seg.frames.length - Math.max(0, Math.floor((this.clock - seg.lastLoud - 0.2) * RATE / FRAME));
      return { final: true, audio: concat(seg.frames.slice(0, keep)), start: seg.start, end: seg.lastLoud };
    }
    if (this.clock - seg.lastPartial >= PARTIAL_EVERY_S && seg.speech >= MIN_SPEECH_S) {
      seg.lastPartial = this.clock;
      return { final: false, audio: concat(seg.frames), start: seg.start, end: this.clock };
    }
    return null;
  }
}

function concat(frames) {
  const out = new Float32Array(frames.length * FRAME);
  frames.forEach((frame, i) => out.set(frame, i * FRAME));
  return out;
}

// Any input rate to 16 kHz: a windowed-sinc low-pass below 8 kHz, then linear interpolation. Stateful across
// chunks so chunk edges leave no clicks.
export class Resampler {
  constructor(inputRate) {
    this.step = inputRate / RATE;
    const taps = 31;
    const cutoff = 7600 / inputRate;
    this.kernel = new Float32Array(taps);
    let total = 0;
    for (let i = 0; i < taps; i += 1) {
      const x = i - (taps - 1) / 2;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const window = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (taps - 1));
      this.kernel[i] = sinc * window;
      total += this.kernel[i];
    }
    for (let i = 0; i < taps; i += 1) this.kernel[i] /= total;
    this.history = new Float32Array(taps - 1);
    this.position = 0; // where the next output sample falls, in filtered input samples
    this.last = new Float32Array(0);
  }

  push(input) {
    if (this.step === 1) return input;
    const taps = this.kernel.length;
    const data = new Float32Array(this.history.length + input.length);
    data.set(this.history);
    data.set(input, this.history.length);
    const filtered = new Float32Array(input.length);
    for (let i = 0; i < input.length; i += 1) {
      let acc = 0;
      for (let k = 0; k < taps; k += 1) acc += data[i + k] * this.kernel[k];
      filtered[i] = acc;
    }
    this.history = data.slice(data.length - (taps - 1));
    const all = new Float32Array(this.last.length + filtered.length);
    all.set(this.last);
    all.set(filtered, this.last.length);
    const out = [];
    while (this.position + 1 < all.length) {
      const i = Math.floor(this.position);
      const frac = this.position - i;
      out.push(all[i] * (1 - frac) + all[i + 1] * frac);
      this.position += this.step;
    }
    const used = Math.floor(this.position);
    this.last = all.slice(used);
    this.position -= used;
    return Float32Array.from(out);
  }
}
