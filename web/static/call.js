// One session with the SFU (docs/protocol.md): join over the WebSocket, wait in the lobby when the group
// has one, then one peer connection. The browser offers first (its own media, sendonly, and the data
// channel); afterwards only the server offers, whenever forwarded tracks come or go. The offer carries a
// second, trackless video transceiver for a screen share (docs/protocol.md): sharing later is a
// replaceTrack and a `start-share`, never a renegotiation.

import { E2EE, e2eeSupported } from "./e2ee/session.js";
import { secretFromLink } from "./e2ee/keys.js";
import { Signaling, signalingUrl } from "./signaling.js";

const GATHER_TIMEOUT_MS = 3000;
const OUTBOX_LIMIT = 20; // requests kept while the data channel is opening
// Simulcast (docs/architecture.md, "Video layers"): three VP8 layers, smallest first; the server forwards
// each listener the one its tile, its link and the speaker call for. A browser or codec that cannot
// simulcast sends the first encoding the answer keeps, and the server treats it as one layer.
export const SIMULCAST_LAYERS = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 100000, maxFramerate: 15 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 250000, maxFramerate: 30 },
  { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 900000, maxFramerate: 30 },
];
// Chrome sends three simulcast layers only from 960x540 up (two from 640x360); the top layer is this size.
export const CAMERA_SIZE = { width: { ideal: 960 }, height: { ideal: 540 } };

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    pc.addEventListener("icegatheringstatechange", check);
    // The server does not take trickled candidates; send what we have if gathering stalls.
    setTimeout(done, GATHER_TIMEOUT_MS);
  });
}

// The room's cap over simulcast layers (docs/architecture.md): a layer taller than the cap is scaled down to
// it if that still makes it clearly bigger than the layer below, else turned off (the smallest always stays
// on); none runs faster than the cap; together they stay within its bitrate, the top one taking the rest.
function limitLayers(encodings, cap, height) {
  let top = 0;
  let below = 0; // height of the layer below
  encodings.forEach((encoding, i) => {
    const layer = SIMULCAST_LAYERS.find((l) => l.rid === encoding.rid) || SIMULCAST_LAYERS[i];
    const natural = height / layer.scaleResolutionDownBy;
    encoding.scaleResolutionDownBy = layer.scaleResolutionDownBy;
    encoding.maxFramerate = Math.min(layer.maxFramerate, cap.max_framerate);
    if (i === 0 || (height > 0 && natural <= cap.max_height)) {
      encoding.active = true;
    } else if (height > 0 && below > 0 && cap.max_height > below * 1.3) {
      encoding.active = true;
      encoding.scaleResolutionDownBy = height / cap.max_height;
    } else {
      encoding.active = false;
    }
    if (encoding.active) {
      top = i;
      below = height / encoding.scaleResolutionDownBy;
      if (below >= cap.max_height) below = Infinity; // nothing above may be turned on
    }
  });
  let left = cap.max_bitrate_bps;
  encodings.forEach((encoding, i) => {
    if (!encoding.active) return;
    const layer = SIMULCAST_LAYERS.find((l) => l.rid === encoding.rid) || SIMULCAST_LAYERS[i];
    const share = i === top ? left : left / 2;
    encoding.maxBitrate = Math.max(30000, Math.min(layer.maxBitrate, share));
    left -= encoding.maxBitrate;
  });
}

export class JoinError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Call extends EventTarget {
  constructor({ room, name, language, secret, resume, roomKey, localStream }) {
    super();
    this.request = { room, name, language, secret, resume, roomKey };
    this.e2ee = null; // an end-to-end encrypted room's keys and frame worker (e2ee/session.js)
    this.localStream = localStream;
    this.signaling = new Signaling(signalingUrl());
    this.pc = null;
    this.channel = null;
    this.participantId = null;
    this.resumeToken = null;
    this.role = "participant";
    this.group = null;
    this.tracks = {}; // mid -> { participant_id, kind, source }
    this.participants = new Map(); // id -> { id, name, role }
    this.joined = null;
    this.waiting = false; // in the lobby
    this.ended = false;
    this.senders = {};
    this.queue = Promise.resolve(); // server messages are handled strictly in order
    this.mediaStarted = false;
    this.outbox = [];
    this.videoCap = null; // the server's latest `video-cap` for our video
    this.videoCapApplied = null; // the cap our encoder runs with
    this.capQueue = Promise.resolve();
    this.offersScreen = true; // false after a server that predates screen sharing refused the screen m-line
    this.answered = false;
  }

  async start() {
    await this.signaling.connect();
    this.signaling.addEventListener("message", (event) => this.receive(event.detail));
    this.signaling.addEventListener("close", () => this.fail("signaling closed"));
    const join = {
      type: "join",
      room: this.request.room,
      name: this.request.name,
      accept_agreement: true, // the person chose "I agree" before we got here
    };
    if (this.request.language) join.language = this.request.language;
    if (this.request.resume) join.resume = this.request.resume;
    if (this.request.secret) join.secret = this.request.secret;
    const joined = new Promise((resolve, reject) => {
      this.pendingJoin = { resolve, reject };
    });
    this.signaling.send(join);
    return joined;
  }

  receive(message) {
    // A goodbye is followed at once by the socket closing: mark it before the close handler runs, so
    // the app does not mistake it for a dropped connection and try to reconnect.
    if (message.type === "bye") this.ended = true;
    this.queue = this.queue
      .then(() => this.onSignal(message))
      .catch((error) => console.warn("peerwell: handling", message.type, "failed:", error));
  }

  async onSignal(message) {
    switch (message.type) {
      case "joined":
        this.onJoined(message);
        break;
      case "lobby":
        this.waiting = true;
        this.emit("lobby", message);
        break;
      case "admitted":
        this.waiting = false;
        if (message.resume) this.resumeToken = message.resume; // several nodes: it also survives a failover
        if (Array.isArray(message.participants)) this.setParticipants(message.participants);
        this.emit("admitted", message);
        this.emit("participants");
        await this.startMedia();
        break;
      case "lobby-update":
        this.emit("lobby-update", message);
        break;
      case "answer":
        this.answered = true;
        await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      case "offer":
        await this.onServerOffer(message);
        break;
      case "participant-joined":
        this.participants.set(message.participant.id, message.participant);
        this.emit("participant-joined", message.participant);
        this.emit("participants");
        break;
      case "participant-left": {
        const left = this.participants.get(message.participant_id);
        this.participants.delete(message.participant_id);
        // Someone left or was removed: the next epoch's key is made without them (e2ee/session.js).
        if (this.e2ee) this.e2ee.participantLeft(message.participant_id).catch((e) => console.warn("peerwell: rekey", e));
        this.emit("participant-left", left || { id: message.participant_id });
        this.emit("participants");
        break;
      }
      case "error":
        if (this.pendingJoin) {
          this.pendingJoin.reject(new JoinError(message.code, message.message));
          this.pendingJoin = null;
        } else if (message.code === "negotiation-failed" && !this.answered && this.offersScreen && this.pc) {
          // A server without screen sharing refuses a second video m-line: offer again without it.
          this.offersScreen = false;
          this.pc.close();
          this.pc = null;
          this.mediaStarted = false;
          await this.startMedia();
        } else if (message.code === "in-lobby") {
          // We offered too early: wait for "admitted", which sends the offer again.
          this.waiting = true;
          this.mediaStarted = false;
        } else {
          this.emit("server-error", message);
        }
        break;
      case "bye":
        this.ended = true;
        this.emit("bye", message);
        break;
      case "server-shutdown":
        // The server is restarting: its restart ticket takes our place back on the next server.
        if (message.resume) this.resumeToken = message.resume;
        break;
      default:
        this.emit("signal", message);
    }
  }

  setParticipants(list) {
    this.participants.clear();
    for (const p of list) this.participants.set(p.id, p);
  }

  // An end-to-end encrypted room needs script transforms and the room's key; a key for a room that is not
  // encrypted means the link promised something the room does not do. Either way: leave before any media.
  e2eeRefusal(message) {
    const encrypted = Boolean(message.group && message.group.e2ee);
    if (!encrypted) return this.request.roomKey ? "e2ee-not-encrypted" : null;
    if (!e2eeSupported()) return "e2ee-unsupported";
    if (!secretFromLink(this.request.roomKey || "")) return "e2ee-no-key";
    return null;
  }

  onJoined(message) {
    const refusal = this.e2eeRefusal(message);
    if (refusal) {
      this.ended = true;
      this.signaling.send({ type: "leave" });
      this.signaling.close();
      if (this.pendingJoin) this.pendingJoin.reject(new JoinError(refusal, refusal));
      this.pendingJoin = null;
      return;
    }
    if (message.group && message.group.e2ee && !this.e2ee) {
      this.e2ee = new E2EE({
        room: this.request.room, secret: secretFromLink(this.request.roomKey),
        send: (kind, payload, final = false) => this.sendControl({ type: "sealed", kind, payload, final }),
      });
      this.e2ee.addEventListener("change", () => this.emit("e2ee"));
    }
    this.joined = message;
    this.participantId = message.participant_id;
    this.resumeToken = message.resume;
    this.role = message.role || "participant";
    this.group = message.group || null;
    this.setParticipants(message.participants || []);
    // The server puts a non-facilitator into the lobby of a group that has one, except when they take
    // back their own place (resume). A "lobby" message follows in that case; wait for "admitted".
    this.waiting = Boolean(this.group && this.group.lobby) && this.role !== "facilitator" && !this.request.resume;
    if (this.pendingJoin) {
      this.pendingJoin.resolve(message);
      this.pendingJoin = null;
    }
    this.emit("participants");
    if (!this.waiting) this.startMedia().catch((error) => this.fail(`media setup failed: ${error}`));
  }

  // The one client offer: sendonly audio + camera video (either may be trackless), the screen's video
  // (trackless until a share) and the data channel.
  async startMedia() {
    if (this.mediaStarted || this.ended) return;
    this.mediaStarted = true;
    if (this.pc) {
      // Rejected earlier with in-lobby: the same offer is still valid.
      this.signaling.send({ type: "offer", sdp: this.pc.localDescription.sdp });
      return;
    }
    if (this.e2ee && !this.e2ee.selfId) {
      // Alone in the room: the first epoch comes from the room secret; otherwise a member hands us the current one.
      const others = () => [...this.participants.keys()].filter((id) => id !== this.participantId);
      await this.e2ee.start(this.participantId, others, others().length === 0);
    }
    this.pc = new RTCPeerConnection({ iceServers: this.joined.ice_servers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("track", (event) => {
      if (this.e2ee) this.e2ee.attachReceiver(event.transceiver); // every frame we receive is opened first
      this.emit("tracks");
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc && this.pc.connectionState === "failed") this.fail("media connection failed");
    });
    for (const kind of ["audio", "video"]) {
      const track = this.localStream ? this.localStream.getTracks().find((t) => t.kind === kind) : null;
      const init = { direction: "sendonly" };
      if (kind === "video") init.sendEncodings = SIMULCAST_LAYERS.map((layer) => ({ ...layer }));
      const transceiver = this.pc.addTransceiver(track || kind, init);
      this.senders[kind] = transceiver.sender;
      if (this.e2ee) this.e2ee.attachSender(transceiver.sender, kind, kind === "audio" ? "audio" : "camera");
    }
    // The screen: one layer (no simulcast), no track until the person shares.
    this.senders.screen = this.offersScreen ? this.pc.addTransceiver("video", { direction: "sendonly" }).sender : null;
    if (this.e2ee && this.senders.screen) this.e2ee.attachSender(this.senders.screen, "video", "screen");
    this.channel = this.pc.createDataChannel("peerwell");
    this.channel.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data && data.type === "video-cap") this.setVideoCap(data);
      if (data && data.type === "sealed" && data.kind === "key") {
        if (this.e2ee) this.e2ee.receive(data);
        return;
      }
      if (data && typeof data.type === "string") this.emit("event", data);
    });
    this.channel.addEventListener("open", () => {
      if (this.e2ee) this.e2ee.channelOpen(); // our key first: the others hand us the room's
      this.emit("channel-open"); // preferences first, then anything asked for meanwhile
      this.flushOutbox();
    });
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await waitForIceGathering(this.pc);
    if (this.ended) return;
    this.signaling.send({ type: "offer", sdp: this.pc.localDescription.sdp });
    this.emit("media-started");
  }

  async onServerOffer(message) {
    this.tracks = message.tracks;
    if (this.e2ee) this.e2ee.setTracks(message.tracks); // whose key opens which transceiver's frames
    await this.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.signaling.send({ type: "answer", sdp: this.pc.localDescription.sdp });
    this.emit("tracks");
  }

  // Remote tracks grouped by participant, from the mid -> participant map of the latest offer:
  // { audio, video, screen } (a "screen" source is their shared screen, docs/protocol.md).
  remoteTracks() {
    const byParticipant = new Map();
    if (!this.pc) return byParticipant;
    for (const transceiver of this.pc.getTransceivers()) {
      const info = transceiver.mid !== null ? this.tracks[transceiver.mid] : undefined;
      if (!info || transceiver.currentDirection === "inactive") continue;
      const entry = byParticipant.get(info.participant_id) || {};
      const slot = info.kind === "video" && info.source === "screen" ? "screen" : info.kind;
      entry[slot] = transceiver.receiver.track;
      byParticipant.set(info.participant_id, entry);
    }
    return byParticipant;
  }

  // A data channel request. While the channel is still opening, a few requests wait for it; false when
  // there is no channel (lobby, closed).
  sendControl(message) {
    if (this.channel && this.channel.readyState === "open") {
      this.channel.send(JSON.stringify(message));
      return true;
    }
    if (!this.ended && !this.failed && (!this.channel || this.channel.readyState === "connecting")
        && (this.mediaStarted || this.channel) && this.outbox.length < OUTBOX_LIMIT) {
      this.outbox.push(message);
      return true;
    }
    return false;
  }

  flushOutbox() {
    const pending = this.outbox;
    this.outbox = [];
    for (const message of pending) this.channel.send(JSON.stringify(message));
  }

  admit(participantId) {
    this.signaling.send({ type: "admit", participant_id: participantId });
  }

  deny(participantId) {
    this.signaling.send({ type: "deny", participant_id: participantId });
  }

  // Our screen share's track (null: stop sending it). The caller sends start-share / stop-share.
  async setScreenTrack(track) {
    if (!this.senders.screen) throw new Error("no screen transceiver");
    await this.senders.screen.replaceTrack(track);
  }

  async replaceLocalTrack(kind, track) {
    if (this.senders[kind]) await this.senders[kind].replaceTrack(track);
    if (kind === "video") this.setVideoCap(this.videoCap); // the scale depends on the camera's height
  }

  // The most our video may use (docs/protocol.md, `video-cap`); with simulcast, over all layers together
  // (limitLayers). Only the encoder is limited, so the
  // self-view keeps the camera's quality. Chained: Chrome refuses a setParameters while one is pending.
  setVideoCap(cap) {
    const valid = (n) => Number.isFinite(n) && n > 0;
    if (!cap || !valid(cap.max_bitrate_bps) || !valid(cap.max_framerate) || !valid(cap.max_height)) return;
    this.videoCap = cap;
    this.capQueue = this.capQueue
      .then(() => this.applyVideoCap())
      .catch((error) => console.warn("peerwell: video cap not applied:", error));
  }

  async applyVideoCap() {
    const sender = this.senders.video;
    const cap = this.videoCap;
    if (!sender || !cap) return;
    const parameters = sender.getParameters();
    if (!parameters.encodings || !parameters.encodings.length) return;
    const height = sender.track ? sender.track.getSettings().height || 0 : 0;
    if (parameters.encodings.length > 1) {
      limitLayers(parameters.encodings, cap, height);
    } else {
      const encoding = parameters.encodings[0];
      encoding.maxBitrate = cap.max_bitrate_bps;
      encoding.maxFramerate = cap.max_framerate;
      encoding.scaleResolutionDownBy = height > cap.max_height ? height / cap.max_height : 1;
    }
    await sender.setParameters(parameters);
    this.videoCapApplied = cap;
  }

  fail(reason) {
    if (this.ended || this.failed) return;
    this.failed = true;
    if (this.pendingJoin) {
      this.pendingJoin.reject(new JoinError("connection", reason));
      this.pendingJoin = null;
    }
    this.emit("failed", { reason });
  }

  leave() {
    this.ended = true;
    this.signaling.send({ type: "leave" });
    this.close();
  }

  close() {
    this.signaling.close();
    if (this.pc) this.pc.close();
    if (this.e2ee) this.e2ee.close(); // the keys go with the call
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
