/* glassbert explorer: BERT's WordPiece tokenizer in the page (for the exported file's own what-if).

   The same pipeline as glassbert's Tokenizer (transformers' BertTokenizerFast): the special tokens typed as such
   ([MASK], [SEP], …) are kept whole; the rest is cleaned (control characters dropped, every white space a
   space), CJK characters spaced, lower-cased with accents stripped (NFD, marks removed) for an uncased
   vocabulary, split on white space and punctuation, then each word greedily into the longest pieces of the
   vocabulary ("##" for a piece inside a word). A word with no split, or over 100 characters, is one [UNK]: the
   encoding lists those words so the page can say so. [CLS] A [SEP] (B [SEP]), segment 0 then 1. */
'use strict';
(function () {
  const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const MAX_WORD = 100;  // characters; longer words are [UNK] (max_input_chars_per_word)

  function isCJK(cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
      (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
      (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
  }
  const CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}]/u, SPACE = /[\t\n\r\p{Zs}]/u, WHITE = /\s/u, PUNCT = /\p{P}/u;
  function isPunct(ch) {
    const c = ch.codePointAt(0);
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) || PUNCT.test(ch);
  }

  /* BertNormalizer (clean_text, handle_chinese_chars, strip_accents = lowercase, lowercase). */
  function normalize(text, lower) {
    let out = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0);
      if (cp === 0 || cp === 0xFFFD) continue;
      if (SPACE.test(ch)) { out += ' '; continue; }
      if (CONTROL.test(ch)) continue;
      out += isCJK(cp) ? ' ' + ch + ' ' : ch;
    }
    if (lower) out = out.normalize('NFD').replace(/\p{Mn}/gu, '').toLowerCase();
    return out;
  }

  /* BertPreTokenizer: words split on white space, each punctuation character a word of its own. */
  function preTokenize(text) {
    const words = [];
    let cur = '';
    for (const ch of text) {
      if (WHITE.test(ch)) { if (cur) words.push(cur); cur = ''; continue; }
      if (isPunct(ch)) { if (cur) words.push(cur); words.push(ch); cur = ''; continue; }
      cur += ch;
    }
    if (cur) words.push(cur);
    return words;
  }

  /* Greedy longest match; null when the word cannot be split (then it is one [UNK]). */
  function pieces(word, index) {
    const chars = Array.from(word);
    if (chars.length > MAX_WORD) return null;
    const out = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length, found = null;
      while (start < end) {
        const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        if (index.has(sub)) { found = sub; break; }
        end--;
      }
      if (found === null) return null;
      out.push(found);
      start = end;
    }
    return out;
  }

  /* A tokenizer for ``vocab`` (the token of each id). ``lower``: lower-case and strip accents (an uncased
     vocabulary); by default, when no token of the vocabulary holds an upper-case letter. */
  function makeTokenizer(vocab, lower) {
    const index = new Map();
    vocab.forEach((t, i) => { if (!index.has(t)) index.set(t, i); });
    for (const t of ['[UNK]', '[CLS]', '[SEP]', '[MASK]']) {
      if (!index.has(t)) throw new Error('the vocabulary has no ' + t);
    }
    if (lower === undefined) lower = !vocab.some((t) => !SPECIALS.includes(t) && t !== t.toLowerCase());
    const specialSplit = new RegExp('(' + SPECIALS.filter((t) => index.has(t)).map((t) => t.replace(/[[\]]/g, '\\$&')).join('|') + ')');

    function words(text, unknown) {
      const toks = [];
      for (const part of text.split(specialSplit)) {
        if (!part) continue;
        if (index.has(part) && SPECIALS.includes(part)) { toks.push(part); continue; }
        for (const w of preTokenize(normalize(part, lower))) {
          const p = pieces(w, index);
          if (p) toks.push(...p);
          else { toks.push('[UNK]'); unknown.push(w); }
        }
      }
      return toks;
    }
    /* [CLS] A [SEP] (B [SEP]): {tokens, ids, typeIds, unknown (the words that became [UNK])}. */
    function encode(text, pair) {
      const unknown = [];
      const a = words(text, unknown), b = pair ? words(pair, unknown) : null;
      const tokens = ['[CLS]'].concat(a, ['[SEP]'], b ? b.concat(['[SEP]']) : []);
      const typeIds = tokens.map((_, i) => (b && i >= a.length + 2 ? 1 : 0));
      return { tokens, ids: tokens.map((t) => index.get(t)), typeIds, unknown, lower };
    }
    return { encode, lower, id: (t) => index.get(t) };
  }

  GB.tokenize = { makeTokenizer, normalize, preTokenize, pieces };
})();
