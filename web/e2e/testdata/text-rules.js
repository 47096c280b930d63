// Checks of the message-life rules of web/static/text.js (search marks,
// @-completion, mentions, attachments), run in Chromium by
// TestClientTextRules. Each check that fails adds a line to
// window.failures; window.checks counts them all.

import {
  attachmentPath, formatSize, isPreviewable, markedParts, mentionAt, REACTIONS, renderText,
} from '/text.js';

window.failures = [];
window.checks = 0;

function eq(what, got, want) {
  window.checks++;
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) window.failures.push(`${what}: got ${g}, want ${w}`);
}

const marked = (text, hl) => markedParts(text, hl).map((p) => (p.mark ? `[${p.text}]` : p.text)).join('');

// markedParts: UTF-16 offsets, as the server sends them.
eq('one match', marked('the meeting is at 11', [{ start: 4, end: 11 }]), 'the [meeting] is at 11');
eq('two matches', marked('a b a', [{ start: 0, end: 1 }, { start: 4, end: 5 }]), '[a] b [a]');
eq('unsorted', marked('a b a', [{ start: 4, end: 5 }, { start: 0, end: 1 }]), '[a] b [a]');
// 😀 is two UTF-16 code units: "x😀 café" has café at 4..8.
eq('after an astral character', marked('x😀 café', [{ start: 4, end: 8 }]), 'x😀 [café]');
eq('an astral character marked whole', marked('x😀y', [{ start: 1, end: 3 }]), 'x[😀]y');
eq('overlapping spans merge', markedParts('abcdef', [{ start: 1, end: 4 }, { start: 2, end: 5 }]).filter((p) => p.mark).map((p) => p.text).join(''), 'bcde');
eq('past the end clamped', marked('abc', [{ start: 1, end: 99 }]), 'a[bc]');
eq('before the start clamped', marked('abc', [{ start: -3, end: 1 }]), '[a]bc');
eq('empty and reversed spans ignored', marked('abc', [{ start: 1, end: 1 }, { start: 2, end: 1 }]), 'abc');
eq('garbage ignored', marked('abc', [null, 'x', { start: 'a', end: 2 }, { start: 0.5, end: 2 }]), 'abc');
eq('no highlights', marked('abc', undefined), 'abc');
eq('not an array', marked('abc', { start: 0, end: 1 }), 'abc');
eq('whole text', marked('abc', [{ start: 0, end: 3 }]), '[abc]');
eq('parts cover the text', markedParts('hello world', [{ start: 6, end: 11 }]).map((p) => p.text).join(''), 'hello world');

// mentionAt: the @name being typed at the caret.
eq('at the start', mentionAt('@bo', 3), { start: 0, query: 'bo' });
eq('after a space', mentionAt('hi @al', 6), { start: 3, query: 'al' });
eq('just the @', mentionAt('hi @', 4), { start: 3, query: '' });
eq('in the middle, caret after the name', mentionAt('hi @al there', 6), { start: 3, query: 'al' });
eq('an e-mail address is no mention', mentionAt('mail a@b', 8), null);
eq('after the name and a space', mentionAt('@bob ', 5), null);
eq('no @', mentionAt('hello', 5), null);
eq('after a bracket', mentionAt('(@ca', 4), { start: 1, query: 'ca' });

// renderText with mentions: spans for mentioned names only, text nodes
// for everything else (never HTML).
function rendered(text, names, me) {
  const div = document.createElement('div');
  renderText(div, text, names ? new Set(names) : null, me);
  return [...div.childNodes].map((n) => (n.nodeType === Node.TEXT_NODE ? n.data : `<${n.tagName.toLowerCase()}.${n.className}>${n.textContent}`)).join('|');
}
eq('a mention', rendered('hi @bob!', ['bob'], 'alice'), 'hi |<span.mention>@bob|!');
eq('my mention', rendered('@Alice look', ['alice'], 'alice'), '<span.mention mention-me>@Alice| look');
eq('an unresolved name stays text', rendered('hi @carol', ['bob'], 'alice'), 'hi @carol');
eq('no mentions: plain text', rendered('hi @bob', null, 'alice'), 'hi @bob');
eq('a sentence ending after the name', rendered('ask @bob.', ['bob'], 'alice'), 'ask |<span.mention>@bob|.');
eq('a mention next to a link', rendered('@bob https://example.com/x', ['bob'], ''), '<span.mention>@bob| |<a.>https://example.com/x');
eq('HTML stays text', rendered('<img src=x onerror=alert(1)> @bob', ['bob'], ''), '<img src=x onerror=alert(1)> |<span.mention>@bob');

// attachmentPath: only this origin's attachment route gets the token.
eq('the route', attachmentPath('/api/rooms/general/attachments/0123abcdef456789'), '/api/rooms/general/attachments/0123abcdef456789');
for (const bad of ['https://evil.example/api/rooms/general/attachments/x', '//evil.example/api/rooms/g/attachments/x',
  '/api/rooms/general/attachments/x?y=1', '/api/rooms/general/attachments/', '/api/auth/me', '/api/rooms/a/b/attachments/x',
  'javascript:alert(1)', '', null, 42, '/api/rooms/general/attachments/x#y', '/api/rooms/general/attachments/..',
  '/api/rooms/General/attachments/0123abcdef456789', '/api/rooms/general/attachments/0123abcdef45678g']) {
  eq(`refused attachment url ${JSON.stringify(bad)}`, attachmentPath(bad), '');
}

// isPreviewable: the server's inline image types, nothing else.
for (const t of ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'IMAGE/PNG', 'image/png; charset=binary']) eq(`preview ${t}`, isPreviewable(t), true);
for (const t of ['image/svg+xml', 'text/html', 'application/pdf', '', undefined, 'image/bmp']) eq(`no preview ${t}`, isPreviewable(t), false);

eq('bytes', formatSize(80), '80 B');
eq('kilobytes', formatSize(1536), '1.5 KB');
eq('megabytes', formatSize(10 * 1024 * 1024), '10 MB');
eq('garbage size', formatSize('x'), '0 B');

// The picker's emoji: the common ones, each one grapheme.
for (const e of ['👍', '❤️', '😂', '🎉', '😮', '😢']) eq(`picker has ${e}`, REACTIONS.includes(e), true);
const seg = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
for (const e of REACTIONS) eq(`${e} is one grapheme`, [...seg.segment(e)].length, 1);

document.getElementById('results').textContent = window.failures.join('\n') || `${window.checks} checks passed`;
window.done = true;
