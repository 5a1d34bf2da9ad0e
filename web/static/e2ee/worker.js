// The frame worker of an end-to-end encrypted room (RTCRtpScriptTransform). Every encoded frame we send is
// sealed here, every frame we receive opened here; the server forwards what it cannot read.
//
// Frame format (SFrame-style, RFC 9605 as the model; docs/architecture.md):
//   clear bytes | header: 0x01, key id (epoch, u32), counter (u64) | AES-GCM ciphertext + 16-byte tag
// Clear bytes stay readable for the forwarder: VP8 10 on a keyframe (frame tag, start code, size) and 3 on a
// delta frame; Opus 1 (the TOC byte). AAD = clear bytes + header. Nonce = per-key salt XOR counter. The counter
// starts at random << 32 per transform, so a reload (same participant id, same epoch) never reuses a nonce.

import { mediaKey } from "./keys.js";

const HEADER = 13;
const TAG = 16;
const epochs = new Map(); // epoch -> secret (Uint8Array)
let sendEpoch = null; // null: not allowed to send yet (no key for the room's current epoch)
let selfId = "";
let tracks = {}; // mid -> { participant_id, kind, source }
const keys = new Map(); // "epoch|participant|source" -> Promise<{ key, salt }>
const senders = new Set(); // video sender transformers (to ask for a keyframe once we may send)
const stats = { sealed: 0, opened: 0, failed: 0, dropped: 0, passed: 0 };

function keyFor(epoch, participantId, source) {
  const id = `${epoch}|${participantId}|${source}`;
  let entry = keys.get(id);
  if (!entry) {
    const secret = epochs.get(epoch);
    if (!secret) return null;
    entry = mediaKey(secret, participantId, source);
    keys.set(id, entry);
  }
  return entry;
}

function nonce(salt, counter) {
  const iv = salt.slice();
  const view = new DataView(iv.buffer);
  view.setUint32(4, view.getUint32(4) ^ Number(counter >> 32n));
  view.setUint32(8, view.getUint32(8) ^ Number(counter & 0xffffffffn));
  return iv;
}

export function clearBytes(kind, frame) {
  if (kind === "audio") return 1; // the Opus TOC byte
  return frame.type === "key" ? 10 : 3; // VP8 payload header: keyframe bit, start code, width and height
}

function sourceOf(kind, source) {
  return kind === "audio" ? "audio" : source === "screen" ? "screen" : "camera";
}

async function sealFrame(frame, controller, state) {
  const data = new Uint8Array(frame.data);
  const clear = clearBytes(state.kind, frame);
  if (sendEpoch === null) {
    stats.dropped += 1; // no key yet: nothing leaves in clear
    return;
  }
  if (data.length <= clear) { // DTX and empty frames: nothing to hide
    stats.passed += 1;
    controller.enqueue(frame);
    return;
  }
  const epoch = sendEpoch;
  const material = await keyFor(epoch, selfId, state.source);
  const counter = state.counter;
  state.counter += 1n;
  const header = new Uint8Array(HEADER);
  const view = new DataView(header.buffer);
  header[0] = 1;
  view.setUint32(1, epoch);
  view.setBigUint64(5, counter);
  const aad = new Uint8Array(clear + HEADER);
  aad.set(data.subarray(0, clear));
  aad.set(header, clear);
  const body = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce(material.salt, counter), additionalData: aad }, material.key, data.subarray(clear)));
  const out = new Uint8Array(clear + HEADER + body.length);
  out.set(aad);
  out.set(body, clear + HEADER);
  frame.data = out.buffer;
  stats.sealed += 1;
  controller.enqueue(frame);
}

async function openFrame(frame, controller, state) {
  const data = new Uint8Array(frame.data);
  const info = tracks[state.mid];
  const clear = clearBytes(info ? info.kind : state.kind, frame);
  if (data.length < clear + HEADER + TAG || data[clear] !== 1) {
    if (data.length <= clear + 2) { // a DTX frame is sent as it is
      stats.passed += 1;
      controller.enqueue(frame);
    } else {
      stats.failed += 1;
    }
    return;
  }
  if (!info) {
    stats.dropped += 1;
    return;
  }
  const view = new DataView(data.buffer, data.byteOffset);
  const epoch = view.getUint32(clear + 1);
  const counter = view.getBigUint64(clear + 5);
  const material = keyFor(epoch, info.participant_id, sourceOf(info.kind, info.source));
  if (!material) {
    stats.dropped += 1; // an epoch we do not (or no longer) hold
    return;
  }
  try {
    const { key, salt } = await material;
    const plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce(salt, counter), additionalData: data.subarray(0, clear + HEADER) }, key,
      data.subarray(clear + HEADER)));
    const out = new Uint8Array(clear + plain.length);
    out.set(data.subarray(0, clear));
    out.set(plain, clear);
    frame.data = out.buffer;
    stats.opened += 1;
    controller.enqueue(frame);
  } catch {
    stats.failed += 1; // wrong key or tampered: never hand it to the decoder
  }
}

function counterStart() {
  const high = crypto.getRandomValues(new Uint32Array(1))[0];
  return BigInt(high) << 32n;
}

self.onrtctransform = (event) => {
  const transformer = event.transformer;
  const options = transformer.options || {};
  const state = { kind: options.kind, source: options.source, mid: options.mid, counter: counterStart() };
  const work = options.dir === "send" ? sealFrame : openFrame;
  if (options.dir === "send" && options.kind === "video") senders.add(transformer);
  // Frames stay in order: each one is finished before the next is looked at.
  transformer.readable.pipeThrough(new TransformStream({
    transform: (frame, controller) => work(frame, controller, state),
  })).pipeTo(transformer.writable).catch(() => {});
};

self.onmessage = (event) => {
  const message = event.data || {};
  switch (message.type) {
    case "self":
      selfId = message.id;
      keys.clear();
      break;
    case "epoch": {
      epochs.set(message.epoch, message.secret);
      // A replaced secret for the same epoch (two rekeys at once settled on the other) drops its derived keys.
      for (const id of [...keys.keys()]) if (id.startsWith(`${message.epoch}|`)) keys.delete(id);
      // Keep the last few epochs only: frames in flight across a change still open, old keys go.
      for (const old of [...epochs.keys()]) if (old < message.epoch - 2) epochs.delete(old);
      for (const id of [...keys.keys()]) if (!epochs.has(Number(id.split("|")[0]))) keys.delete(id);
      if (message.send) {
        const first = sendEpoch === null;
        sendEpoch = message.epoch;
        if (first) for (const sender of senders) {
          try {
            // Frames were dropped until now: start receivers at a keyframe.
            Promise.resolve(sender.generateKeyFrame()).catch(() => {});
          } catch {
            // not supported here: receivers ask for one when their decoder needs it
          }
        }
      }
      break;
    }
    case "forget":
      epochs.clear();
      keys.clear();
      sendEpoch = null;
      break;
    case "tracks":
      tracks = message.tracks || {};
      break;
    case "stats":
      self.postMessage({ type: "stats", id: message.id, stats: { ...stats } });
      break;
    default:
      break;
  }
};
