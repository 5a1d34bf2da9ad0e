// The crisis detector's phrase layer (safety/detector.py), for a facilitator's browser in an end-to-end
// encrypted room, where the server cannot read captions or chat. The rules are data exported from the same
// compiled phrase sets the server uses (`python -m safety.export`, served as /static/e2ee/vendor/phrases.json);
// this file ports the normalisation and the phrase-layer decision only. The learned model stays on the server
// and is off in encrypted rooms, so a phrase match softened by a cue (past tense, someone else, topic, joke)
// does not alert here, exactly as the server decides without its learned layer. tests/test_e2ee_phrases.py
// checks this port against the Python detector line by line.

const CLAUSE = "|";
const WORD = "[\\p{L}\\p{N}_]";
const TOKEN_RE = new RegExp(`(${WORD}+(?:'${WORD}+)*)|([.!?;:…]+)|(,)`, "gu");
const STRETCH_RE = new RegExp(`(${WORD})\\1{2,}`, "gu");
const INFINITIVE_RE = /^[a-z]+(?:ar|er|ir)(?:me|te|se|lo|la)?$/;

function bisectLeft(list, value) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class PhraseMatcher {
  constructor(data = null) {
    this.previous = new Map(); // "participant|source" -> their previous line (context for continuations)
    this.quiet = new Set(); // "participant|pattern": dismissed as not a concern, for this session
    this.raised = new Map(); // alert id -> its quiet key
    this.resources = "";
    if (data) this.use(data);
  }

  async load(url = new URL("./vendor/phrases.json", import.meta.url)) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`phrase rules: HTTP ${response.status}`);
    this.use(await response.json());
  }

  use(data) {
    const n = data.normalise;
    this.n = {
      apostrophes: n.apostrophes, aposSpecial: n.apos_special, isBeforeS: new Set(n.is_before_s),
      suffixes: n.suffixes, wordMap: n.word_map, illVerbs: new Set(n.ill_verbs), selfCompounds: new Set(n.self_compounds),
      bigrams: new Map(n.bigrams.map(([a, b, v]) => [`${a} ${b}`, v])), fillers: new Set(n.fillers),
      fillerBigrams: new Set(n.filler_bigrams.map(([a, b]) => `${a} ${b}`)), fillerSingle: new Set(n.filler_single),
      likeKeep: new Set(n.like_keep), esteNext: new Set(n.este_filler_next), units: n.units, tens: n.tens,
      ambiguous: new Set(n.ambiguous_numbers),
    };
    this.confidence = data.confidence;
    this.cued = new Set(data.cued_categories);
    this.firstPerson = new Set(data.first_person);
    this.speakerWords = new Set(data.speaker_words);
    this.sets = data.sets.map((set) => ({
      language: set.language,
      rules: set.rules.map((r) => ({ ...r, re: new RegExp(r.regex, "g") })),
      hard: set.hard.map((h) => new RegExp(h, "g")),
      cues: Object.fromEntries(Object.entries(set.cues).map(([kind, list]) => [kind, list.map((c) => new RegExp(c, "g"))])),
      prefilter: set.prefilter ? new RegExp(set.prefilter) : null,
      negation: { words: new Set(set.negation.words), scope: new Set(set.negation.scope), window: set.negation.window },
    }));
  }

  // --- normalisation (safety/detector.py _normalise) --------------------------------------------------

  fold(token) {
    let word = token.toLowerCase();
    if (/[^\x00-\x7f]/.test(word)) word = word.normalize("NFKD").replace(/\p{M}/gu, "");
    return word.length > 2 ? word.replace(STRETCH_RE, "$1") : word;
  }

  expand(word, next) {
    const n = this.n;
    if (word.includes("'")) {
      if (n.aposSpecial[word]) return n.aposSpecial[word];
      if (word.endsWith("n't")) return [word.slice(0, -3), "not"];
      for (const [suffix, full] of n.suffixes) if (word.endsWith(suffix)) return [word.slice(0, -suffix.length), full];
      if (word.endsWith("'s")) {
        const stem = word.slice(0, -2);
        return n.isBeforeS.has(stem) ? [stem, "is"] : [stem];
      }
      return [word.replace(/'/g, "")];
    }
    if (word === "ill" && n.illVerbs.has(next)) return ["i", "will"];
    return n.wordMap[word] || [word];
  }

  numberAt(words, i) {
    const n = this.n;
    const w = words[i];
    const next = i + 1 < words.length ? words[i + 1] : "";
    if (w in n.tens) {
      const value = n.tens[w];
      if (next in n.units && n.units[next] < 10) return [value + n.units[next], 2];
      if (next === "y" && i + 2 < words.length && (n.units[words[i + 2]] ?? 10) < 10) return [value + n.units[words[i + 2]], 3];
      if (value === 20 && (next in n.tens || (10 <= (n.units[next] || 0) && (n.units[next] || 0) < 20))) {
        return [2000 + (n.tens[next] || n.units[next]), 2];
      }
      return [value, 1];
    }
    if (w in n.units && !n.ambiguous.has(w)) {
      if (next === "hundred") return [n.units[w] * 100, 2];
      return [n.units[w], 1];
    }
    return null;
  }

  spokenCleanup(words, orig, commaBefore) {
    const n = this.n;
    const outW = [];
    const outO = [];
    const outC = [];
    let pending = false;
    let i = 0;
    while (i < words.length) {
      const w = words[i];
      const next = i + 1 < words.length ? words[i + 1] : "";
      const prev = outW.length ? outW[outW.length - 1] : "";
      if (n.fillers.has(w) || n.fillerSingle.has(w)) {
        pending = pending || commaBefore[i];
        i += 1;
        continue;
      }
      if (n.fillerBigrams.has(`${w} ${next}`) && !(w === "kind" && ["what", "that", "this", "any"].includes(prev))) {
        pending = pending || commaBefore[i];
        i += 2;
        continue;
      }
      if (w === "like" && !n.likeKeep.has(prev)) {
        pending = pending || commaBefore[i];
        i += 1;
        continue;
      }
      if (w === "este" && (n.esteNext.has(next) || n.fillers.has(next) || !next || INFINITIVE_RE.test(next))) {
        pending = pending || commaBefore[i];
        i += 1;
        continue;
      }
      const num = w !== CLAUSE ? this.numberAt(words, i) : null;
      if (num) {
        const [value, used] = num;
        outW.push(String(value));
        outO.push([orig[i][0], orig[i + used - 1][1]]);
        outC.push(commaBefore[i] || pending);
        pending = false;
        i += used;
        continue;
      }
      outW.push(w);
      outO.push(orig[i]);
      outC.push(commaBefore[i] || pending);
      pending = false;
      i += 1;
      for (const size of [1, 2, 3, 4, 5]) {
        if (outW.length < 2 * size) continue;
        const last = outW.slice(-size);
        const before = outW.slice(-2 * size, -size);
        if (last.every((x, k) => x === before[k]) && !last.includes(CLAUSE)) {
          if (size === 1 && /^\d+$/.test(last[0])) continue;
          outW.splice(-size);
          outO.splice(-size);
          outC.splice(-size);
          break;
        }
      }
    }
    return [outW, outO, outC];
  }

  normalise(input) {
    const n = this.n;
    const text = [...input].map((c) => n.apostrophes[c] || c).join("");
    const raw = [];
    for (const m of text.matchAll(TOKEN_RE)) {
      if (m[1] !== undefined) raw.push([this.fold(m[1]), m.index, m.index + m[0].length, "w"]);
      else if (m[2] !== undefined) raw.push([CLAUSE, m.index, m.index + m[0].length, "p"]);
      else raw.push([",", m.index, m.index + m[0].length, "c"]);
    }
    let words = [];
    let orig = [];
    let commaBefore = [];
    let pending = false;
    raw.forEach(([tok, start, end, kind], i) => {
      if (kind === "c") {
        pending = true;
        return;
      }
      if (kind === "p") {
        if (words.length && words[words.length - 1] !== CLAUSE) {
          words.push(CLAUSE);
          orig.push([start, end]);
          commaBefore.push(false);
        }
        pending = false;
        return;
      }
      const next = i + 1 < raw.length && raw[i + 1][3] === "w" ? raw[i + 1][0] : null;
      this.expand(tok, next).forEach((w, j) => {
        const key = words.length ? `${words[words.length - 1]} ${w}` : "";
        if (j === 0 && words.length && !pending && n.bigrams.has(key) && !(w === "self" && n.selfCompounds.has(next))) {
          const merged = n.bigrams.get(key);
          const prevStart = orig[orig.length - 1][0];
          words.pop();
          orig.pop();
          const firstComma = commaBefore.pop();
          merged.forEach((mw, k) => {
            words.push(mw);
            orig.push([prevStart, end]);
            commaBefore.push(k === 0 ? firstComma : false);
          });
          return;
        }
        words.push(w);
        orig.push([start, end]);
        commaBefore.push(pending && j === 0);
      });
      pending = false;
    });
    while (words.length && words[words.length - 1] === CLAUSE) {
      words.pop();
      orig.pop();
      commaBefore.pop();
    }
    [words, orig, commaBefore] = this.spokenCleanup(words, orig, commaBefore);
    const starts = [];
    let pos = 1;
    for (const w of words) {
      starts.push(pos);
      pos += w.length + 1;
    }
    return { text: ` ${words.join(" ")} `, words, starts, orig, commaBefore };
  }

  // --- the phrase layer (safety/detector.py _PhraseSet.find, CrisisDetector.check without the learned layer) ---

  find(set, norm, original, contextRules = false) {
    if (!set.prefilter || !set.prefilter.test(norm.text)) return null;
    let hardSpans = null;
    let best = null;
    for (const rule of set.rules) {
      if (rule.needs_context !== contextRules) continue;
      for (const m of norm.text.matchAll(rule.re)) {
        const start = m.index;
        const end = m.index + m[0].length - 1;
        if (best && start >= best[0]) break;
        if (hardSpans === null) {
          hardSpans = [];
          for (const h of set.hard) for (const hm of norm.text.matchAll(h)) hardSpans.push([hm.index, hm.index + hm[0].length - 1]);
        }
        if (hardSpans.some(([hs, he]) => hs < end && start < he)) continue;
        if (rule.negatable && this.negated(set, norm, start)) continue;
        best = [start, end, rule];
        break;
      }
    }
    if (!best) return null;
    const [start, end, rule] = best;
    const first = bisectLeft(norm.starts, start);
    const last = bisectLeft(norm.starts, end) - 1;
    const [oStart, oEnd] = [norm.orig[first][0], norm.orig[last][1]];
    return { category: rule.category, phrase: original.slice(oStart, oEnd), pattern: rule.source, language: set.language,
      cues: this.cues(set, norm, first, last, rule.category), layer: "phrase" };
  }

  hasCue(set, norm, kind) {
    return (set.cues[kind] || []).some((re) => {
      re.lastIndex = 0;
      return re.test(norm.text);
    });
  }

  cues(set, norm, first, last, category) {
    if (!this.cued.has(category)) return [];
    const found = [];
    if (this.hasCue(set, norm, "past") && !this.hasCue(set, norm, "present")) found.push("past");
    const matchStart = norm.starts[first];
    const bySpeaker = norm.words.slice(first, last + 1).some((w) => this.speakerWords.has(w));
    if (!bySpeaker) {
      const head = norm.text.slice(0, matchStart + 1);
      outer: for (const re of set.cues.other || []) {
        for (const m of head.matchAll(re)) {
          const mEnd = m.index + m[0].length;
          const between = norm.text.slice(mEnd, matchStart).split(/\s+/).filter(Boolean);
          if (mEnd <= matchStart + 1 && between.length <= 6 && !between.some((w) => this.firstPerson.has(w))) {
            found.push("other");
            break outer;
          }
        }
      }
    }
    for (const kind of ["topic", "joke"]) if (this.hasCue(set, norm, kind)) found.push(kind);
    return found;
  }

  negated(set, norm, start) {
    const neg = set.negation;
    let i = bisectLeft(norm.starts, start);
    if (neg.words.has(norm.words[i])) return false;
    for (let step = 0; step < neg.window; step += 1) {
      if (i === 0 || norm.commaBefore[i]) return false;
      i -= 1;
      const word = norm.words[i];
      if (neg.words.has(word)) return true;
      if (!neg.scope.has(word)) return false;
    }
    return false;
  }

  ordered(language) {
    const primary = language ? language.toLowerCase().replace("_", "-").split("-")[0] : null;
    const sets = [...this.sets];
    const index = sets.findIndex((s) => s.language === primary);
    if (index > 0) sets.unshift(...sets.splice(index, 1));
    return sets;
  }

  // { category, triggers, confidence, layer } when `text` should alert, else null (CrisisDetector.check, phrases only).
  decide(text, language = null, context = null) {
    if (!text || !text.trim()) return null;
    const norm = this.normalise(text);
    const sets = this.ordered(language);
    let hit = null;
    for (const set of sets) if ((hit = this.find(set, norm, text))) break;
    if (!hit && context) {
      let cont = null;
      for (const set of sets) if ((cont = this.find(set, norm, text, true))) break;
      if (cont) {
        const previous = this.decide(context, language);
        if (previous) hit = { ...cont, category: previous.category, layer: "context" };
      }
    }
    if (!hit || hit.cues.length) return null;
    return { category: hit.category, triggers: [hit.phrase], confidence: this.confidence, layer: hit.layer,
      pattern: hit.pattern };
  }

  // One final caption or chat line of one person, with their previous line as context; dismissed words stay quiet.
  check(participantId, text, language = null, source = "caption") {
    const key = `${participantId}|${source}`;
    const context = this.previous.get(key) || null;
    this.previous.set(key, text);
    const match = this.decide(text, language, context);
    if (!match) return null;
    const quiet = `${participantId}|${match.pattern || text.toLowerCase().split(/\s+/).join(" ")}`;
    if (this.quiet.has(quiet)) return null;
    match.quietKey = quiet;
    return match;
  }

  raisedAs(alertId, match) {
    this.raised.set(alertId, match.quietKey);
  }

  dismiss(alertId) {
    const key = this.raised.get(alertId);
    if (key) this.quiet.add(key);
  }
}
