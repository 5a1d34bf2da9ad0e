// Before the room: the group directory, the agreement and privacy notice, and the join form with its
// camera and microphone check (preview, level meter, device choice). No device is touched before "I agree"
// and the person's own choice on the form.

import { $, el, setText } from "./dom.js";
import { currentLanguage, setGroupLanguage, t } from "./i18n.js";
import { LANGUAGES, languageName, languageOption } from "./languages.js";
import { e2eeSupported } from "./e2ee/session.js";
import { b64url, newRoomKey, secretFromLink, secretFromPassphrase } from "./e2ee/keys.js";
import { joinErrorText, joinRoom, openLocalMedia } from "./session.js";
import { showView } from "./views.js";
import { store } from "./store.js";

const ctx = store.session;


async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}

// --- 1. directory -------------------------------------------------------------------------------------

function groupCard(group) {
  const lang = group.language || undefined;
  const facts = el("dl", { class: "group-facts" });
  const fact = (term, value, valueLang) => {
    if (!value) return;
    facts.append(el("div", {}, el("dt", {}, term), el("dd", { lang: valueLang }, value)));
  };
  fact(t("directory.topic"), group.topic, lang);
  fact(t("directory.when"), group.schedule, lang);
  fact(t("directory.language"), languageName(group.language));
  if (group.max_participants) fact(t("directory.size"), t("directory.upTo", { count: group.max_participants }));
  fact(t("directory.lobby"), group.lobby ? t("directory.lobbyYes") : t("directory.lobbyNo"));
  if (group.e2ee) fact(t("directory.e2ee"), t("directory.e2eeYes"));
  const choose = el("button", { type: "button", class: "choose-group", dataset: { slug: group.slug } },
    t("directory.join"), el("span", { class: "visually-hidden" }, ` ${group.name}`));
  choose.addEventListener("click", () => chooseGroup(group.slug, group));
  return el("li", { class: "group-card", dataset: { slug: group.slug } },
    el("h2", { lang }, group.name),
    facts,
    group.description ? el("p", { class: "group-description", lang }, group.description) : null,
    choose);
}

export function renderDirectory() {
  if (!ctx.directory) return;
  const groups = ctx.directory.groups;
  $("group-list").replaceChildren(...groups.map(groupCard));
  const status = $("directory-status");
  status.textContent = groups.length ? "" : t("directory.none");
  status.hidden = groups.length > 0;
  $("adhoc").hidden = !ctx.directory.allow_adhoc_rooms;
}

export async function loadDirectory() {
  let result;
  try {
    result = await fetchJson("/api/groups");
  } catch {
    result = { ok: false };
  }
  if (!result.ok || !result.body || !Array.isArray(result.body.groups)) {
    $("directory-status").textContent = t("directory.failed");
    $("adhoc").hidden = false;
    return;
  }
  ctx.directory = result.body;
  renderDirectory();
}

export async function chooseGroup(slug, known = null, { fromAdhoc = false } = {}) {
  const errorBox = fromAdhoc ? $("adhoc-error") : $("notice");
  setText(errorBox, "");
  let group = null;
  try {
    const result = await fetchJson(`/api/groups/${encodeURIComponent(slug)}`);
    if (result.ok && result.body && result.body.slug) {
      group = result.body;
    } else if (result.status === 404 && ctx.directory && ctx.directory.adhoc) {
      // Nobody is in that room yet: joining opens it with the server's settings for rooms opened by name.
      group = { ...ctx.directory.adhoc, slug, name: slug, fresh: true };
    } else if (result.status === 404) {
      setText(errorBox, fromAdhoc ? t("directory.noSuchRoom") : t("directory.noSuchGroup"));
      if (fromAdhoc) $("room-input").focus();
      return;
    }
  } catch {
    // offline for a moment: fall back to what the directory said
  }
  group = group || known;
  if (!group) {
    setText(errorBox, t("directory.unreachable"));
    return;
  }
  ctx.group = {
    ...group,
    privacy_notice: group.privacy_notice || (ctx.directory && ctx.directory.privacy_notice) || "",
  };
  ctx.agreed = false;
  setGroupLanguage(group.language);
  history.replaceState(null, "", `#room=${encodeURIComponent(group.slug)}`);
  renderAgreement();
  showView("agreement", { title: t("agreement.pageTitle", { name: group.name }) });
}

// --- 2. agreement -------------------------------------------------------------------------------------

// Agreement text: lines starting with "- " become a bulleted list, other lines paragraphs.
function renderAgreementText(container, text, lang) {
  const blocks = [];
  let list = null;
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trim();
    if (!line) {
      list = null;
      continue;
    }
    if (/^[-*•]\s+/.test(line)) {
      if (!list) {
        list = el("ul");
        blocks.push(list);
      }
      list.append(el("li", {}, line.replace(/^[-*•]\s+/, "")));
    } else {
      list = null;
      blocks.push(el("p", {}, line));
    }
  }
  container.replaceChildren(...blocks);
  if (lang) container.lang = lang;
  else container.removeAttribute("lang");
}

export function renderAgreement() {
  const group = ctx.group;
  if (!group) return;
  $("agreement-title").textContent = t("agreement.title", { name: group.name });
  const meta = [group.topic, group.schedule, languageName(group.language)].filter(Boolean).join(" · ");
  $("agreement-group-meta").textContent = meta;
  renderAgreementText($("agreement-text"), group.agreement || "", group.language);
  // The server's notice is English; in another interface language the catalog's translation of it is shown.
  const privacy = currentLanguage() === "en" && group.privacy_notice ? group.privacy_notice : t("privacy.notice");
  $("privacy-text").textContent = privacy;
  $("details-title").textContent = t("details.title", { name: group.name });
}

function onAgree() {
  if (!ctx.group) return;
  ctx.agreed = true;
  const group = ctx.group;
  const language = $("spoken-language");
  if (!language.dataset.touched) language.value = LANGUAGES[group.language] ? group.language : "";
  const secret = ctx.link && ctx.link.room === group.slug ? ctx.link.secret : null;
  if (secret) {
    $("secret-input").value = secret;
    $("facilitator-details").open = true;
  } else if (ctx.secretFor && ctx.secretFor !== group.slug) {
    $("secret-input").value = "";
  }
  setText($("join-error"), "");
  renderE2eeField(group);
  showView("details", { title: t("details.title", { name: group.name }) });
}

// --- end-to-end encrypted groups ------------------------------------------------------------------

function linkKey(group) {
  return ctx.link && ctx.link.room === group.slug && secretFromLink(ctx.link.key || "") ? ctx.link.key : null;
}

// An encrypted group says so on the join form and, without a key in the link, asks for the passphrase.
// Built here (index.html has no place for it) and removed for any other group.
function renderE2eeField(group) {
  const old = $("e2ee-field");
  if (old) old.remove();
  if (!group.e2ee) return;
  const field = el("div", { id: "e2ee-field", class: "field e2ee-field" },
    el("p", { class: "e2ee-note" }, t("e2ee.note")));
  if (!e2eeSupported()) {
    field.append(el("p", { class: "error" }, t("joinError.e2ee-unsupported")));
  } else if (!linkKey(group)) {
    field.append(
      el("label", { for: "e2ee-passphrase" }, t("e2ee.passphrase")),
      el("input", { id: "e2ee-passphrase", type: "password", autocomplete: "off", spellcheck: "false",
        maxlength: "200", "aria-describedby": "e2ee-passphrase-help" }),
      el("p", { id: "e2ee-passphrase-help", class: "help" },
        group.fresh ? `${t("e2ee.passphraseHelp")} ${t("e2ee.freshHelp")}` : t("e2ee.passphraseHelp")));
  } else {
    field.append(el("p", { class: "help" }, t("e2ee.linkKey")));
  }
  $("join-error").before(field);
}

// The room key for an encrypted group (base64url), or a JoinError-like refusal before anything is opened.
async function roomKeyFor(group) {
  // A link with a key promises encryption: refuse a room that does not encrypt before anything is said there.
  const promised = ctx.link && ctx.link.room === group.slug && ctx.link.key;
  if (!group.e2ee) return promised ? { refusal: "e2ee-not-encrypted" } : { key: null };
  if (!e2eeSupported()) return { refusal: "e2ee-unsupported" };
  const fromLink = linkKey(group);
  if (fromLink) return { key: fromLink };
  const input = $("e2ee-passphrase");
  const passphrase = input ? input.value : "";
  if (passphrase) return { key: b64url(await secretFromPassphrase(passphrase, group.slug)) };
  if (group.fresh) return { key: newRoomKey(), fresh: true }; // a new room: a new random key, shared by its link
  return { refusal: "e2ee-no-key" };
}

export function backToDirectory() {
  stopPreview();
  ctx.group = null;
  ctx.agreed = false;
  setGroupLanguage(null);
  history.replaceState(null, "", location.pathname + location.search);
  showView("directory");
}

// --- 3. join form and device check --------------------------------------------------------------------

const preview = { stream: null, meter: null, audio: null, key: "" };

function previewKey() {
  return JSON.stringify([$("join-mic").checked, $("join-camera").checked, $("mic-device").value, $("camera-device").value]);
}

function stopPreview() {
  if (preview.meter) cancelAnimationFrame(preview.meter);
  preview.meter = null;
  if (preview.audio) preview.audio.close().catch(() => {});
  preview.audio = null;
  if (preview.stream) for (const track of preview.stream.getTracks()) track.stop();
  preview.stream = null;
  $("preview-video").srcObject = null;
  $("preview").hidden = true;
  $("mic-level").value = 0;
}

async function fillDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, id, label] of [["audioinput", "mic-device", "devices.micN"], ["videoinput", "camera-device", "devices.cameraN"]]) {
    const select = $(id);
    const before = select.value;
    const list = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...list.map((d, i) => el("option", { value: d.deviceId }, d.label || t(label, { n: i + 1 }))));
    if (list.some((d) => d.deviceId === before)) select.value = before;
  }
}

function startMeter(stream) {
  const track = stream.getAudioTracks()[0];
  if (!track) return;
  preview.audio = new AudioContext();
  const analyser = preview.audio.createAnalyser();
  analyser.fftSize = 512;
  preview.audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const tick = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    $("mic-level").value = Math.min(100, Math.round(rms * 300));
    preview.meter = requestAnimationFrame(tick);
  };
  tick();
}

// The person asked to check their devices: open them with the form's choices and show what others will get.
async function startPreview() {
  stopPreview();
  const mic = $("join-mic").checked;
  const camera = $("join-camera").checked;
  if (!mic && !camera) {
    setText($("preview-status"), t("preview.nothing"));
    return;
  }
  const stream = await openLocalMedia(mic, camera, { audio: $("mic-device").value, video: $("camera-device").value });
  if (!stream) {
    setText($("preview-status"), t("preview.failed"));
    return;
  }
  preview.stream = stream;
  await fillDevices();
  preview.key = previewKey();
  $("preview").hidden = false;
  $("preview-video").srcObject = stream.getVideoTracks().length ? new MediaStream(stream.getVideoTracks()) : null;
  $("preview-video").hidden = !stream.getVideoTracks().length;
  $("mic-level-field").hidden = !stream.getAudioTracks().length;
  setText($("preview-status"), "");
  startMeter(stream);
}

async function onJoin(event) {
  event.preventDefault();
  if (!ctx.group || !ctx.agreed) {
    backToDirectory();
    return;
  }
  const name = $("name-input").value.replace(/\s+/g, " ").trim();
  if (!name || name.length > 40) {
    setText($("join-error"), t("details.badName"));
    $("name-input").setAttribute("aria-invalid", "true");
    $("name-input").focus();
    return;
  }
  $("name-input").removeAttribute("aria-invalid");
  setText($("join-error"), "");
  const button = $("join-button");
  button.disabled = true;
  button.textContent = t("details.joining");
  const secret = $("secret-input").value.trim() || null;
  ctx.secretFor = secret ? ctx.group.slug : null;
  const devices = { audio: $("mic-device").value || null, video: $("camera-device").value || null };
  // Encrypted group: no key (or no script transforms) is refused here, before any device or the server is touched.
  if (ctx.group.e2ee) setText($("join-error"), t("e2ee.deriving"));
  const e2ee = await roomKeyFor(ctx.group);
  if (e2ee.refusal) {
    setText($("join-error"), joinErrorText({ code: e2ee.refusal }));
    button.disabled = false;
    button.textContent = t("details.join");
    return;
  }
  setText($("join-error"), "");
  const request = {
    room: ctx.group.slug, name, language: $("spoken-language").value || null, secret,
    mic: $("join-mic").checked, camera: $("join-camera").checked, devices, roomKey: e2ee.key,
  };
  // The checked preview stream becomes the call's media (same devices); otherwise open them now.
  let stream = null;
  if (preview.stream && preview.key === previewKey()) {
    stream = preview.stream;
    preview.stream = null;
  }
  stopPreview();
  try {
    await joinRoom(request, stream);
  } catch (error) {
    setText($("join-error"), joinErrorText(error));
    button.disabled = false;
    button.focus(); // disabling it while joining dropped the focus
  } finally {
    button.disabled = false;
    button.textContent = t("details.join");
  }
}

function fillLanguages() {
  const select = $("spoken-language");
  for (const [code, label] of Object.entries(LANGUAGES)) select.append(languageOption(code, label));
  select.addEventListener("change", () => {
    select.dataset.touched = "1";
  });
}

export function initOnboarding() {
  fillLanguages();
  $("adhoc-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room-input").value.trim().toLowerCase();
    const rule = ctx.directory && ctx.directory.room_name; // the server's one rule; without it, the server decides
    if (rule && !new RegExp(rule.pattern).test(room)) {
      setText($("adhoc-error"), t("directory.badRoomName"));
      $("room-input").setAttribute("aria-invalid", "true");
      $("room-input").focus();
      return;
    }
    $("room-input").removeAttribute("aria-invalid");
    chooseGroup(room, null, { fromAdhoc: true });
  });
  $("agree-button").addEventListener("click", onAgree);
  $("agreement-back").addEventListener("click", backToDirectory);
  $("details-back").addEventListener("click", backToDirectory);
  $("join-form").addEventListener("submit", onJoin);
  $("goodbye-back").addEventListener("click", backToDirectory);
  $("preview-start").addEventListener("click", startPreview);
  for (const id of ["mic-device", "camera-device"]) {
    $(id).addEventListener("change", () => {
      if (preview.stream) startPreview();
    });
  }
}
