// Language names shown in menus, each in its own language.

export const LANGUAGES = {
  en: "English", es: "Español", fr: "Français", de: "Deutsch", it: "Italiano", pt: "Português",
  nl: "Nederlands", pl: "Polski", uk: "Українська", ru: "Русский", tr: "Türkçe", ar: "العربية",
  hi: "हिन्दी", zh: "中文", ja: "日本語", ko: "한국어", ca: "Català", sv: "Svenska", da: "Dansk",
  fi: "Suomi", el: "Ελληνικά", cs: "Čeština", ro: "Română", hu: "Magyar", he: "עברית",
};

export function languageName(code) {
  if (!code) return "";
  return LANGUAGES[code] || LANGUAGES[code.split("-")[0]] || code;
}

export function languageOption(code, label = languageName(code)) {
  const option = document.createElement("option");
  option.value = code;
  option.textContent = label;
  const base = code.split("-")[0];
  if (LANGUAGES[base]) option.lang = base;
  return option;
}
