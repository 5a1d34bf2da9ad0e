// Speech recognition for an end-to-end encrypted room, in the speaker's own browser: Moonshine tiny (English,
// quantized ONNX from the npm package @moonshine-ai/moonshine-js, served by peerwell itself from
// /static/e2ee/vendor/) on onnxruntime-web's single-threaded WASM backend. Microphone audio arrives from an
// AudioWorklet on a MessagePort; captions go back to the page, which seals them. Nothing leaves in clear.
//
// This worker's response carries its own Content-Security-Policy with 'wasm-unsafe-eval' (sfu/app.py): the
// page itself keeps script-src 'self'.

import { Endpointer, RATE, Resampler } from "./streaming.js";

const VENDOR = new URL("./vendor/", import.meta.url).href;
const MODEL = `${VENDOR}moonshine-tiny/`;
const LAYERS = 6; // Moonshine tiny: decoder layers, KV heads, head size
const KV_HEADS = 8;
const HEAD_DIM = 36;
const START_TOKEN = 1;
const END_TOKEN = 2;
const TOKENS_PER_SECOND = 6; // the most a second of speech can say, as moonshine-js bounds it

let ort = null;
let tokenizer = null;
let encoder = null;
let decoder = null;
let endpointer = null;
let resampler = null;
let busy = false; // one decode at a time; partials are skipped while busy, finals wait their turn
let finals = [];
let partial = null; // the latest partial asked for while busy (older ones are stale)
let segments = 0;
let segmentId = null;
const prefix = Math.random().toString(36).slice(2, 8); // ids name no one: hidden names stay hidden
const stats = { busyMs: 0, decodes: 0, finals: 0, partials: 0, skipped: 0, audioSeconds: 0 };

async function load() {
  ort = await import(`${VENDOR}ort.wasm.min.mjs`);
  ort.env.wasm.wasmPaths = VENDOR;
  ort.env.wasm.numThreads = 1; // no cross-origin isolation, and one core is the budget
  ort.env.wasm.proxy = false;
  tokenizer = (await import(`${VENDOR}llama-tokenizer.js`)).default;
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  encoder = await ort.InferenceSession.create(`${MODEL}encoder_model.onnx`, options);
  decoder = await ort.InferenceSession.create(`${MODEL}decoder_model_merged.onnx`, options);
}

async function transcribe(audio) {
  const started = performance.now();
  const encoded = await encoder.run({ input_values: new ort.Tensor("float32", audio, [1, audio.length]) });
  const past = {};
  for (let i = 0; i < LAYERS; i += 1) {
    for (const part of ["decoder", "encoder"]) {
      for (const kind of ["key", "value"]) {
        past[`past_key_values.${i}.${part}.${kind}`] = new ort.Tensor("float32", new Float32Array(0),
          [0, KV_HEADS, 1, HEAD_DIM]);
      }
    }
  }
  const tokens = [];
  let input = START_TOKEN;
  const limit = Math.max(4, Math.trunc((audio.length / RATE) * TOKENS_PER_SECOND));
  for (let step = 0; step < limit; step += 1) {
    const output = await decoder.run({
      input_ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(input)]), [1, 1]),
      encoder_hidden_states: encoded.last_hidden_state,
      use_cache_branch: new ort.Tensor("bool", [step > 0], [1]),
      ...past,
    });
    const logits = output.logits.data;
    let best = 0;
    for (let i = 1; i < logits.length; i += 1) if (logits[i] > logits[best]) best = i;
    if (best === END_TOKEN) break;
    tokens.push(best);
    input = best;
    for (const [name, value] of Object.entries(output)) {
      if (!name.startsWith("present.")) continue;
      const key = name.replace("present.", "past_key_values.");
      // The encoder's cross-attention cache is computed once, on the first step.
      if (step === 0 || key.includes(".decoder.")) past[key] = value;
    }
    // A loop guard: the same token four times over is a model stuck, not speech.
    if (tokens.length >= 8 && tokens.slice(-4).every((t) => t === best) && tokens.slice(-8, -4).every((t) => t === best)) break;
  }
  stats.busyMs += performance.now() - started;
  stats.decodes += 1;
  return tokens.length ? tokenizer.decode(tokens).trim() : "";
}

function clean(text) {
  const words = text.replace(/\s+/g, " ").trim();
  return /[\p{L}\p{N}]/u.test(words) ? words : "";
}

async function work() {
  if (busy) return;
  busy = true;
  try {
    while (finals.length || partial) {
      let job;
      if (finals.length) {
        job = finals.shift(); // finals first, in order: each is said once
      } else {
        job = partial;
        partial = null;
      }
      if (!job.final && segmentId !== job.segmentId) continue; // its segment ended meanwhile: the final says it
      const text = clean(await transcribe(job.audio));
      if (job.final) stats.finals += 1;
      else stats.partials += 1;
      if (!text && !job.final) continue;
      self.postMessage({ type: "caption", segment_id: job.segmentId, text, final: job.final, start: job.start,
        end: job.end, decodedAt: performance.now() });
    }
  } catch (error) {
    self.postMessage({ type: "status", state: "error", reason: String(error && error.message ? error.message : error) });
  } finally {
    busy = false;
  }
}

function onAudio(samples) {
  if (!endpointer) return;
  const resampled = resampler.push(samples);
  stats.audioSeconds += resampled.length / RATE;
  for (const action of endpointer.push(resampled)) {
    if (segmentId === null) {
      segments += 1;
      segmentId = `${prefix}-${segments}`;
    }
    const job = { ...action, segmentId };
    if (action.final) {
      finals.push(job);
      segmentId = null;
      partial = null;
    } else {
      if (busy) stats.skipped += 1; // behind: the newest partial replaces the waiting one
      partial = job;
    }
  }
  work();
}

self.onmessage = async (event) => {
  const message = event.data || {};
  if (message.type === "start") {
    try {
      await load();
    } catch (error) {
      self.postMessage({ type: "status", state: "error", reason: String(error && error.message ? error.message : error) });
      return;
    }
    endpointer = new Endpointer();
    resampler = new Resampler(message.sampleRate);
    message.port.onmessage = (e) => onAudio(e.data);
    self.postMessage({ type: "status", state: "ready" });
  } else if (message.type === "stats") {
    self.postMessage({ type: "stats", id: message.id, stats: { ...stats } });
  }
};
