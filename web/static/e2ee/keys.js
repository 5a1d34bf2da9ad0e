// Key derivations for end-to-end encrypted rooms (docs/architecture.md, "End-to-end encrypted rooms").
// Pure WebCrypto, used by the page and by the frame worker. Nothing here ever leaves the browser except as
// ciphertext: the room secret comes from the link's fragment (never sent) or from a passphrase.

const enc = new TextEncoder();
const dec = new TextDecoder();

export const VERSION = "peerwell-e2ee-v1";
// Passphrase -> room secret: PBKDF2-HMAC-SHA-256, 600,000 iterations (OWASP 2023 for SHA-256), salt
// "peerwell-e2ee-v1|<room name>" so one passphrase gives different secrets in different rooms.
export const PBKDF2_ITERATIONS = 600000;
export const SECRET_BYTES = 32;
export const JOIN_EPOCH = 0xffffffff; // envelope "epoch" of hello/welcome: sealed with the join key

export function b64url(bytes) {
  let text = "";
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64url(text) {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  const out = new Uint8Array(plain.length);
  for (let i = 0; i < plain.length; i += 1) out[i] = plain.charCodeAt(i);
  return out;
}

export function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

export function newRoomKey() {
  return b64url(randomBytes(SECRET_BYTES));
}

// The `key=` of a link: 32 bytes, base64url. Anything else is refused (a truncated link must not "work").
export function secretFromLink(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  const bytes = unb64url(text);
  return bytes.length === SECRET_BYTES ? bytes : null;
}

export async function secretFromPassphrase(passphrase, room) {
  const base = await crypto.subtle.importKey("raw", enc.encode(passphrase.normalize("NFC")), "PBKDF2", false,
    ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: enc.encode(`${VERSION}|${room}`),
    iterations: PBKDF2_ITERATIONS }, base, SECRET_BYTES * 8);
  return new Uint8Array(bits);
}

export async function hkdf(ikm, salt, info, bytes = 32) {
  const key = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: enc.encode(info) }, key,
    bytes * 8);
  return new Uint8Array(bits);
}

// Epoch 0 and the join key come from the room secret; later epochs from the previous one and fresh randomness.
export function roomSalt(room) {
  return enc.encode(`${VERSION}|${room}`);
}

export function firstEpochSecret(secret, room) {
  return hkdf(secret, roomSalt(room), `${VERSION} epoch 0`);
}

export function joinSecret(secret, room) {
  return hkdf(secret, roomSalt(room), `${VERSION} join`);
}

export function nextEpochSecret(previous, fresh, epoch) {
  return hkdf(fresh, previous, `${VERSION} epoch ${epoch}`);
}

// One AES-GCM key and 12-byte salt per (epoch, sender, source): the frame counter never repeats under a key.
export async function mediaKey(epochSecret, participantId, source) {
  const bytes = await hkdf(epochSecret, new Uint8Array(0), `${VERSION} media|${participantId}|${source}`, 44);
  const key = await crypto.subtle.importKey("raw", bytes.subarray(0, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, salt: bytes.slice(32) };
}

export async function aesKey(raw) {
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function dataKey(epochSecret) {
  return aesKey(await hkdf(epochSecret, new Uint8Array(0), `${VERSION} data`));
}

// A sealed data-channel payload: [1][epoch u32][iv 12][AES-GCM(json)], base64url. AAD = kind, so a chat line
// cannot be replayed as a caption.
export async function seal(key, epoch, kind, value) {
  const iv = randomBytes(12);
  const body = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(kind) },
    key, enc.encode(JSON.stringify(value))));
  const out = new Uint8Array(17 + body.length);
  out[0] = 1;
  new DataView(out.buffer).setUint32(1, epoch);
  out.set(iv, 5);
  out.set(body, 17);
  return b64url(out);
}

export function envelopeEpoch(payload) {
  const bytes = unb64url(payload);
  if (bytes.length < 17 + 16 || bytes[0] !== 1) return null;
  return new DataView(bytes.buffer).getUint32(1);
}

export async function open(key, kind, payload) {
  const bytes = unb64url(payload);
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(5, 17), additionalData: enc.encode(kind) },
    key, bytes.subarray(17));
  return JSON.parse(dec.decode(plain));
}

// Per-pair wrapping key for handing an epoch secret to one member: ECDH P-256 + HKDF, bound to both ids.
export async function wrapKey(privateKey, publicKey, info) {
  const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, privateKey, 256));
  return aesKey(await hkdf(shared, new Uint8Array(0), `${VERSION} wrap|${info}`));
}

export async function wrap(key, secret) {
  const iv = randomBytes(12);
  const body = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, secret));
  const out = new Uint8Array(12 + body.length);
  out.set(iv);
  out.set(body, 12);
  return b64url(out);
}

export async function unwrap(key, text) {
  const bytes = unb64url(text);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(0, 12) }, key, bytes.subarray(12)));
}

// The fingerprint people compare: 6 symbols (36 bits) of the current epoch secret. Same symbols = same key.
export const FINGERPRINT_SYMBOLS = [
  "🍎", "🍌", "🍇", "🍉", "🍋", "🍒", "🍓", "🥝", "🥕", "🌽", "🍄", "🥨", "🧀", "🍕", "🍩", "🍪",
  "🐶", "🐱", "🐭", "🐰", "🦊", "🐻", "🐼", "🐨", "🐯", "🦁", "🐮", "🐷", "🐸", "🐵", "🐔", "🐧",
  "🐢", "🐙", "🐳", "🐝", "🦋", "🐞", "🌵", "🌲", "🌻", "🌙", "⭐", "🔥", "🌈", "❄️", "☂️", "⚓",
  "🚲", "🚀", "⛵", "🎈", "🎁", "🎸", "🎲", "🔑", "💡", "📚", "✏️", "⏰", "🔔", "🧩", "🪁", "🧭",
];

export async function fingerprint(epochSecret) {
  const bytes = await hkdf(epochSecret, new Uint8Array(0), `${VERSION} fingerprint`, 6);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  const out = [];
  for (let i = 0; i < 6; i += 1) out.push(FINGERPRINT_SYMBOLS[Number((bits >> BigInt(42 - 6 * i)) & 63n)]);
  return out.join(" ");
}
