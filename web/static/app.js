// peerwell browser client, the entry point. The page is split along its seams:
//   onboarding.js  directory, agreement, join form and device check
//   session.js     joining, reconnecting, resuming after a reload, leaving
//   room.js        data-channel events -> store.js -> stage (stage.js, tiles.js), bar and panels (bar.js),
//                  screen sharing (share.js), facilitator tools (facilitator.js)
// app.js wires session.js and room.js together with callbacks; neither imports the other. The one store is
// store.js; preferences are read and written in prefs.js only.
// Plain ES modules, no build step. Every piece of user-provided text is rendered as text, never markup.

import { $ } from "./dom.js";
import { chooseLanguage, chosenLanguage, loadCatalogs, onLanguageChange, uiLanguages } from "./i18n.js";
import { initNotices } from "./notices.js";
import { chooseGroup, initOnboarding, loadDirectory, renderAgreement, renderDirectory } from "./onboarding.js";
import {
  captions, chat, configureRoom, enterRoom, handleEvent, initRoom, renderSubtitleMenu, resetRoom, sendPreferences,
  setupRole, tiles,
} from "./room.js";
import { configureSession, leave, resumeFromTab, savedPlace, savePlace } from "./session.js";
import { initDisplaySettings } from "./settings.js";
import { store } from "./store.js";
import { currentView, showView } from "./views.js";

const ctx = store.session;

// "#room=SLUG" opens a group; "#room=SLUG&secret=..." is a facilitator link. The secret is taken out of
// the address bar at once and only ever sent in the join message (and kept in this tab, see session.js).
// "&key=..." is an end-to-end encrypted room's key: a fragment never reaches any server; it is taken out of
// the address bar too and only ever used in this browser (e2ee/).
function readFragment() {
  const raw = location.hash.slice(1);
  if (!raw) return null;
  if (!raw.includes("=")) return { room: decodeURIComponent(raw), secret: null, key: null };
  const params = new URLSearchParams(raw);
  const room = params.get("room");
  if (!room) return null;
  return { room, secret: params.get("secret") || null, key: params.get("key") || null };
}

function fillInterfaceLanguages() {
  const select = $("ui-language");
  const options = Object.entries(uiLanguages()).map(([code, name]) => {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    option.lang = code;
    return option;
  });
  select.append(...options);
  select.value = chosenLanguage();
  select.addEventListener("change", () => chooseLanguage(select.value));
}

// A new interface language: re-render what was built from catalog texts.
function relabel() {
  renderDirectory();
  renderAgreement();
  renderSubtitleMenu();
  tiles.relabel();
  chat.updateCounter();
  if (ctx.call && ctx.call.joined) captions.setStatus(ctx.call.joined.captions);
  store.update(() => {});
  const view = currentView();
  if (view) showView(view, { focus: false, title: view === "room" && ctx.group ? ctx.group.name : undefined });
}

async function init() {
  initDisplaySettings(); // before anything is fetched: no flash of the wrong size or contrast
  await loadCatalogs();
  initNotices($("notices"));
  fillInterfaceLanguages();
  initOnboarding();
  configureRoom({ leave, savePlace });
  configureSession({ enterRoom, handleEvent, resetRoom, sendPreferences, setupRole });
  initRoom();
  onLanguageChange(relabel);
  // Reload or tab closed: end the media at once (the server stops forwarding it), but send no `leave`, so
  // the seat is held for the grace period and a reload takes it back (session.js).
  window.addEventListener("pagehide", () => {
    if (ctx.call) ctx.call.close();
  });
  chat.updateCounter(); // built before the catalogs arrived

  const link = readFragment();
  if (link && (link.secret || link.key)) {
    ctx.link = link;
    history.replaceState(null, "", `#room=${encodeURIComponent(link.room)}`);
  }
  const place = savedPlace();
  if (place && (!link || link.room === place.request.room)) {
    resumeFromTab(place);
    loadDirectory();
    return;
  }
  showView("directory", { focus: false });
  const loaded = loadDirectory();
  if (link) loaded.then(() => chooseGroup(link.room, null));
}

init();
