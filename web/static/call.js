// One peer connection to the SFU. The browser offers first (its own media, sendonly, and the data
// channel); afterwards only the server offers, whenever forwarded tracks come or go.

import { Signaling, signalingUrl } from "./signaling.js";

const GATHER_TIMEOUT_MS = 3000;

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

export class Call extends EventTarget {
  constructor({ room, name, language, resume, localStream }) {
    super();
    this.request = { room, name, language, resume };
    this.localStream = localStream;
    this.signaling = new Signaling(signalingUrl());
    this.pc = null;
    this.channel = null;
    this.participantId = null;
    this.resumeToken = null;
    this.tracks = {}; // mid -> { participant_id, kind }
    this.participants = new Map(); // id -> { id, name, role }
    this.joined = null;
    this.ended = false;
    this.senders = {};
  }

  async start() {
    await this.signaling.connect();
    this.signaling.addEventListener("message", (event) => this.onSignal(event.detail));
    this.signaling.addEventListener("close", () => this.fail("signaling closed"));
    const join = { type: "join", room: this.request.room, name: this.request.name };
    if (this.request.language) join.language = this.request.language;
    if (this.request.resume) join.resume = this.request.resume;
    this.signaling.send(join);
    return new Promise((resolve, reject) => {
      this.pendingJoin = { resolve, reject };
    });
  }

  async onSignal(message) {
    switch (message.type) {
      case "joined":
        await this.onJoined(message);
        break;
      case "answer":
        await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      case "offer":
        await this.onServerOffer(message);
        break;
      case "participant-joined":
        this.participants.set(message.participant.id, message.participant);
        this.emit("participants");
        break;
      case "participant-left":
        this.participants.delete(message.participant_id);
        this.emit("participants");
        break;
      case "error":
        if (this.pendingJoin) {
          this.pendingJoin.reject(Object.assign(new Error(message.message), { code: message.code }));
          this.pendingJoin = null;
        } else {
          this.emit("server-error", message);
        }
        break;
      case "bye":
        this.ended = true;
        this.emit("bye", message);
        break;
      default:
        this.emit("signal", message);
    }
  }

  async onJoined(message) {
    this.joined = message;
    this.participantId = message.participant_id;
    this.resumeToken = message.resume;
    for (const p of message.participants) this.participants.set(p.id, p);
    this.pc = new RTCPeerConnection({ iceServers: message.ice_servers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("track", () => this.emit("tracks"));
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") this.fail("media connection failed");
    });
    for (const kind of ["audio", "video"]) {
      const track = this.localStream ? this.localStream.getTracks().find((t) => t.kind === kind) : null;
      const transceiver = this.pc.addTransceiver(track || kind, { direction: "sendonly" });
      this.senders[kind] = transceiver.sender;
    }
    this.channel = this.pc.createDataChannel("peerwell");
    this.channel.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("event", { detail: data }));
    });
    this.channel.addEventListener("open", () => this.emit("channel-open"));
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await waitForIceGathering(this.pc);
    this.signaling.send({ type: "offer", sdp: this.pc.localDescription.sdp });
    if (this.pendingJoin) {
      this.pendingJoin.resolve(message);
      this.pendingJoin = null;
    }
    this.emit("participants");
  }

  async onServerOffer(message) {
    this.tracks = message.tracks;
    await this.pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.signaling.send({ type: "answer", sdp: this.pc.localDescription.sdp });
    this.emit("tracks");
  }

  // Remote tracks grouped by participant, from the mid -> participant map of the latest offer.
  remoteTracks() {
    const byParticipant = new Map();
    if (!this.pc) return byParticipant;
    for (const transceiver of this.pc.getTransceivers()) {
      const info = transceiver.mid !== null ? this.tracks[transceiver.mid] : undefined;
      if (!info || transceiver.currentDirection === "inactive") continue;
      const entry = byParticipant.get(info.participant_id) || {};
      entry[info.kind] = transceiver.receiver.track;
      byParticipant.set(info.participant_id, entry);
    }
    return byParticipant;
  }

  sendControl(message) {
    if (this.channel && this.channel.readyState === "open") {
      this.channel.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  async replaceLocalTrack(kind, track) {
    if (this.senders[kind]) await this.senders[kind].replaceTrack(track);
  }

  fail(reason) {
    if (this.ended || this.failed) return;
    this.failed = true;
    if (this.pendingJoin) {
      this.pendingJoin.reject(new Error(reason));
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
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
