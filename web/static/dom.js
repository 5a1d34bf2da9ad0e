// Tiny DOM helpers. User-provided text only ever becomes text nodes or textContent, never markup.

export const $ = (id) => document.getElementById(id);

// el("li", { class: "x", "aria-label": label }, "text", child) — strings become text nodes.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (typeof value === "boolean" || typeof value === "number") node[key] = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(element, visible) {
  element.hidden = !visible;
}

export function setText(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

// Polite announcements for screen readers (status changes that are not otherwise focused).
let announceTimer = null;
export function announce(message) {
  const region = $("announcer");
  if (!region || !message) return;
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export function clockTime(date = new Date()) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function storageGet(key, fallback = null) {
  try {
    const value = localStorage.getItem(key);
    return value === null ? fallback : value;
  } catch {
    return fallback;
  }
}

export function storageSet(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, String(value));
  } catch {
    // storage disabled (private mode, policy): settings simply are not remembered
  }
}
