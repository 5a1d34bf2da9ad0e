// What this tab is doing, outside the room state in store.js: the chosen group, the join request, the live
// Call and local media. One object, owned here, read by the onboarding, session and room modules.

import { storageGet } from "./dom.js";

export const ctx = {
  directory: null, // { groups, allow_adhoc_rooms, privacy_notice }
  group: null, // the chosen group (with privacy_notice)
  agreed: false,
  link: null, // { room, secret } from a facilitator link; the secret only ever goes into "join"
  request: null, // { room, name, language, secret, mic, camera, devices: { audio, video } }
  call: null,
  localStream: null,
  leaving: false,
  facilitator: null, // FacilitatorPanel while our role is facilitator
  subtitleLanguage: storageGet("peerwell.subtitleLanguage", "") || null,
  subtitleLanguages: null, // null until the server says; [] when nothing can be offered
  hideName: storageGet("peerwell.hideName", "0") === "1",
  captionMode: storageGet("peerwell.captionMode", "both"),
  audioOnly: storageGet("peerwell.audioOnly", "0") === "1",
};
