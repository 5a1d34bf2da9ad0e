// One member's end-to-end encryption state for a room (docs/architecture.md, "End-to-end encrypted rooms"):
// the epoch keys, the members' ECDH public keys, the frame worker, and sealing/opening of data-channel
// payloads. The server relays every key message as opaque bytes; it never holds a key.
//
//   hello    {id, pub, ready, reply}      sealed with the join key (from the room secret): "here is my ECDH key"
//   welcome  {from, to, epoch, wrap}      sealed with the join key: the current epoch secret, wrapped for `to`
//   rekey    {from, epoch, wraps: {id}}   sealed with the current epoch's data key: the next epoch's fresh
//                                         randomness, wrapped for each remaining member (never the one who left)

import {
  JOIN_EPOCH, b64url, dataKey, envelopeEpoch, fingerprint, firstEpochSecret, joinSecret, nextEpochSecret, open,
  randomBytes, seal, unb64url, unwrap, wrap, wrapKey, aesKey,
} from "./keys.js";

const HELLO_RETRY_MS = 3000; // a member still waiting for the room's key asks again
const ORPHAN_AFTER_MS = 6000; // no key holder answered in this long: nobody present holds one
const KEEP_EPOCHS = 3; // older data keys go: what was sealed before them stays unreadable here

export function e2eeSupported() {
  return typeof RTCRtpScriptTransform === "function" && Boolean(globalThis.crypto && crypto.subtle)
    && typeof Worker === "function";
}

export class E2EE extends EventTarget {
  constructor({ room, secret, send }) {
    super();
    this.room = room;
    this.roomSecret = secret;
    this.send = send; // (kind, payload, final) -> bool: a `sealed` data-channel request
    this.selfId = null;
    this.members = () => []; // ids of everyone else admitted (the server's list)
    this.epoch = null; // the epoch we send with; null until we hold the room's current key
    this.epochs = new Map(); // epoch -> { secret, data (CryptoKey), from }
    this.peers = new Map(); // id -> { pub (CryptoKey), ready }
    this.fingerprint = "";
    this.worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    this.statsWaiting = new Map();
    this.worker.addEventListener("message", (event) => {
      const done = this.statsWaiting.get(event.data.id);
      if (done) done(event.data.stats);
      this.statsWaiting.delete(event.data.id);
    });
    this.retry = null;
    this.inbox = Promise.resolve(); // relayed sealed messages are opened strictly in order
    this.early = []; // captions and chat that came before we held the room's key (the entry burst)
  }

  // A relayed `sealed` event: key messages act here; a caption or chat line resolves to its plain value
  // (null when it cannot be opened). Those that arrive before we hold the key wait for it.
  receive(event) {
    return new Promise((resolve) => {
      this.inbox = this.inbox.then(async () => {
        if (event.kind === "key") {
          await this.onKey(event.payload);
          resolve(null);
        } else if (!this.ready) {
          this.early.push({ event, resolve });
        } else {
          resolve(await this.openData(event.kind, event.payload));
        }
      }).catch((error) => {
        console.warn("peerwell: sealed message not handled:", error);
        resolve(null);
      });
    });
  }

  // `alone`: nobody else is in the room, so epoch 0 (from the room secret alone) is the room's key.
  async start(selfId, members, alone) {
    this.selfId = selfId;
    this.members = members;
    this.worker.postMessage({ type: "self", id: selfId });
    this.joinKey = await aesKey(await joinSecret(this.roomSecret, this.room));
    this.pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
    this.pub = b64url(await crypto.subtle.exportKey("raw", this.pair.publicKey));
    if (alone) await this.setEpoch(0, null, selfId);
  }

  get ready() {
    return this.epoch !== null;
  }

  attachSender(sender, kind, source) {
    sender.transform = new RTCRtpScriptTransform(this.worker, { dir: "send", kind, source });
  }

  attachReceiver(transceiver) {
    const receiver = transceiver.receiver;
    if (receiver.transform) return;
    receiver.transform = new RTCRtpScriptTransform(this.worker, { dir: "recv", kind: receiver.track.kind,
      mid: transceiver.mid });
  }

  setTracks(tracks) {
    this.worker.postMessage({ type: "tracks", tracks });
  }

  channelOpen() {
    this.hello(false);
    clearInterval(this.retry);
    const waitingSince = Date.now();
    this.retry = setInterval(() => {
      if (this.ready) return;
      // Nobody who holds the room's key is here (everyone left, or only seats held for a reconnect and other
      // newcomers remain): start over from the room secret, as every one of them will.
      const holder = [...this.peers.values()].some((peer) => peer.ready);
      if (this.members().length === 0 || (!holder && Date.now() - waitingSince >= ORPHAN_AFTER_MS)) {
        this.setEpoch(0, null, this.selfId);
      } else {
        this.hello(false);
      }
    }, HELLO_RETRY_MS);
  }

  async setEpoch(epoch, secret, from) {
    if (secret === null) secret = await firstEpochSecret(this.roomSecret, this.room);
    this.epochs.set(epoch, { secret, data: await dataKey(secret), from });
    for (const old of [...this.epochs.keys()]) if (old <= epoch - KEEP_EPOCHS) this.epochs.delete(old);
    if (this.epoch !== null && epoch < this.epoch) return;
    const first = this.epoch === null;
    this.epoch = epoch;
    this.worker.postMessage({ type: "epoch", epoch, secret, send: true });
    this.fingerprint = await fingerprint(secret);
    this.emit("change");
    if (first && this.pub) this.hello(true); // now we hold the key: the others may pick us to hand on the next
    const early = this.early;
    this.early = [];
    for (const { event, resolve } of early) resolve(await this.openData(event.kind, event.payload));
  }

  // --- key messages -----------------------------------------------------------------------------------

  async hello(reply) {
    const value = { t: "hello", id: this.selfId, pub: this.pub, ready: this.ready, reply };
    this.send("key", await seal(this.joinKey, JOIN_EPOCH, "key", value));
  }

  async onKey(payload) {
    const epoch = envelopeEpoch(payload);
    if (epoch === null) return;
    const key = epoch === JOIN_EPOCH ? this.joinKey : this.epochs.get(epoch)?.data;
    if (!key) {
      if (epoch > (this.epoch ?? -1)) this.lost(); // a rekey we could not follow
      return;
    }
    let value;
    try {
      value = await open(key, "key", payload);
    } catch {
      return; // not sealed with our room's keys: ignore it
    }
    if (value.t === "hello") await this.onHello(value);
    else if (value.t === "welcome") await this.onWelcome(value);
    else if (value.t === "rekey") await this.onRekey(value, epoch);
  }

  async onHello({ id, pub, ready, reply }) {
    if (typeof id !== "string" || id === this.selfId || typeof pub !== "string") return;
    const key = await crypto.subtle.importKey("raw", unb64url(pub), { name: "ECDH", namedCurve: "P-256" }, false, []);
    this.peers.set(id, { pub: key, ready: Boolean(ready) });
    if (reply) return;
    await this.hello(true); // so the newcomer knows our key too
    if (this.ready && !ready) await this.welcome(id);
  }

  async welcome(id) {
    const peer = this.peers.get(id);
    const current = this.epochs.get(this.epoch);
    if (!peer || !current) return;
    const key = await wrapKey(this.pair.privateKey, peer.pub, `welcome|${this.epoch}|${this.selfId}|${id}`);
    const value = { t: "welcome", from: this.selfId, to: id, epoch: this.epoch, wrap: await wrap(key, current.secret) };
    this.send("key", await seal(this.joinKey, JOIN_EPOCH, "key", value));
  }

  async onWelcome({ from, to, epoch, wrap: wrapped }) {
    const peer = this.peers.get(from);
    if (to !== this.selfId || !peer || !Number.isInteger(epoch) || (this.epoch !== null && epoch <= this.epoch)) return;
    try {
      const key = await wrapKey(this.pair.privateKey, peer.pub, `welcome|${epoch}|${from}|${to}`);
      await this.setEpoch(epoch, await unwrap(key, wrapped), from);
    } catch {
      return;
    }
    peer.ready = true;
  }

  // Someone left or was removed: the member with the smallest id among those holding the key makes the next
  // epoch from fresh randomness and wraps it for each remaining member. The one who left gets nothing.
  participantLeft(id) {
    // In line with the key messages we receive: two departures in a row make two epochs, one after the other.
    const work = this.inbox.then(() => this.rekeyWithout(id));
    this.inbox = work.catch(() => {});
    return work;
  }

  async rekeyWithout(id) {
    this.peers.delete(id);
    if (!this.ready) return;
    const present = new Set(this.members());
    const holders = [this.selfId, ...[...this.peers.entries()].filter(([pid, p]) => p.ready && present.has(pid))
      .map(([pid]) => pid)];
    if (holders.sort()[0] !== this.selfId) return;
    const next = this.epoch + 1;
    const fresh = randomBytes(32);
    const wraps = {};
    for (const [pid, peer] of this.peers) {
      if (!present.has(pid)) continue;
      const key = await wrapKey(this.pair.privateKey, peer.pub, `rekey|${next}|${this.selfId}|${pid}`);
      wraps[pid] = await wrap(key, fresh);
    }
    const current = this.epochs.get(this.epoch);
    const value = { t: "rekey", from: this.selfId, epoch: next, wraps };
    this.send("key", await seal(current.data, this.epoch, "key", value));
    await this.setEpoch(next, await nextEpochSecret(current.secret, fresh, next), this.selfId);
  }

  async onRekey({ from, epoch, wraps }, sealedWith) {
    const peer = this.peers.get(from);
    const previous = this.epochs.get(sealedWith);
    if (!peer || !previous || epoch !== sealedWith + 1 || !wraps || typeof wraps[this.selfId] !== "string") return;
    const known = this.epochs.get(epoch);
    if (known && !(from < known.from)) return; // two at once: the smaller id's key wins everywhere
    try {
      const key = await wrapKey(this.pair.privateKey, peer.pub, `rekey|${epoch}|${from}|${this.selfId}`);
      const fresh = await unwrap(key, wraps[this.selfId]);
      if (known) this.epochs.delete(epoch);
      if (known && this.epoch === epoch) this.epoch = sealedWith;
      await this.setEpoch(epoch, await nextEpochSecret(previous.secret, fresh, epoch), from);
    } catch {
      // not for us after all
    }
  }

  lost() {
    if (!this.ready) return;
    this.epoch = null; // ask the room again; until then nothing of ours leaves
    this.worker.postMessage({ type: "forget" });
    this.epochs.clear();
    this.fingerprint = "";
    this.emit("change");
    this.hello(false);
  }

  // --- captions and chat ------------------------------------------------------------------------------

  async sealData(kind, value) {
    const current = this.epochs.get(this.epoch);
    if (!current) return null;
    return seal(current.data, this.epoch, kind, value);
  }

  // A relayed `sealed` caption or chat line -> its plain value, or null when we cannot open it.
  async openData(kind, payload) {
    const epoch = envelopeEpoch(payload);
    const entry = epoch === null ? null : this.epochs.get(epoch);
    if (!entry) {
      if (epoch !== null && epoch > (this.epoch ?? -1) && epoch !== JOIN_EPOCH) this.lost();
      return null;
    }
    try {
      return await open(entry.data, kind, payload);
    } catch {
      return null;
    }
  }

  frameStats() {
    const id = Math.random().toString(36).slice(2);
    return new Promise((resolve) => {
      this.statsWaiting.set(id, resolve);
      this.worker.postMessage({ type: "stats", id });
    });
  }

  // For the tests that prove a removed member cannot read on: the secrets this browser holds, by epoch.
  heldSecrets() {
    return Object.fromEntries([...this.epochs.entries()].map(([epoch, entry]) => [epoch, b64url(entry.secret)]));
  }

  close() {
    clearInterval(this.retry);
    this.worker.postMessage({ type: "forget" });
    this.worker.terminate();
    this.epochs.clear();
  }

  emit(type) {
    this.dispatchEvent(new Event(type));
  }
}
