// Checks of web/static/rooms.js, the page's rules of rooms and people, run
// in Chromium by TestClientRules (no Aurora server involved). Each check
// that fails adds a line to window.failures; window.checks counts them all.

import {
  canDeleteRoom, canManageRoom, canSend, eventText, httpRefusal, inviteFrom, inviteRoom,
  inviteToken, inviteURL, isDirectName, memberActions, refusalText, removedText, rfc3339After,
  roomLabel,
} from '/rooms.js';

window.failures = [];
window.checks = 0;

function eq(what, got, want) {
  window.checks++;
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) window.failures.push(`${what}: got ${g}, want ${w}`);
}

function ok(what, cond) {
  eq(what, !!cond, true);
}

const ME = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const OTHER = 'bbbbbbbbbbbbbbbbbbbbbbbb';
const ROLES = ['owner', 'admin', 'member', 'readonly'];

// memberActions: who may act on whom, over every viewer, target and room type.
for (const type of ['public', 'private', 'direct']) {
  for (const serverAdmin of [false, true]) {
    for (const viewer of [...ROLES, '']) {
      for (const target of ROLES) {
        const a = memberActions({ role: viewer, serverAdmin, type }, { userId: OTHER, role: target }, ME);
        const what = `${type} ${serverAdmin ? 'server admin ' : ''}${viewer || 'non-member'} on ${target}`;
        let may;
        let roles;
        if (type === 'direct') {
          may = false;
        } else if (serverAdmin) {
          may = true;
        } else if (viewer === 'owner') {
          may = target !== 'owner';
        } else if (viewer === 'admin') {
          may = target === 'member' || target === 'readonly';
        } else {
          may = false;
        }
        if (!may) roles = [];
        else if (serverAdmin || viewer === 'owner') roles = ['admin', 'member', 'readonly', 'owner'].filter((r) => r !== target);
        else roles = ['member', 'readonly'].filter((r) => r !== target);
        eq(what + ': kick', a.kick, may);
        eq(what + ': ban', a.ban, may);
        eq(what + ': mute', a.mute, may);
        eq(what + ': roles', a.roles, roles);
      }
      const self = memberActions({ role: viewer, serverAdmin, type }, { userId: ME, role: viewer || 'member' }, ME);
      eq(`${type} ${viewer}: nothing on oneself`, self, { kick: false, ban: false, mute: false, roles: [] });
      const manage = type !== 'direct' && (serverAdmin || viewer === 'owner' || viewer === 'admin');
      eq(`${type} ${serverAdmin ? 'server admin ' : ''}${viewer}: manage`, canManageRoom({ role: viewer, serverAdmin, type }), manage);
      const del = type !== 'direct' && (serverAdmin || viewer === 'owner');
      eq(`${type} ${serverAdmin ? 'server admin ' : ''}${viewer}: delete`, canDeleteRoom({ role: viewer, serverAdmin, type }), del);
    }
  }
}
eq('readonly cannot send', canSend({ role: 'readonly' }), false);
eq('member can send', canSend({ role: 'member' }), true);

// Room events as system lines.
const ev = (event, extra = {}) => eventText({ type: 'room_event', event, user: 'alice', targetName: 'bob', ...extra });
eq('created', ev('room_created', { roomType: 'private' }), 'alice created the private room');
eq('created public', ev('room_created', { roomType: 'public' }), 'alice created the room');
eq('topic', ev('room_updated', { topic: 'Q3' }), 'alice set the topic to “Q3”');
eq('title and topic', ev('room_updated', { title: 'Plans', topic: '' }), 'alice renamed the room to “Plans” and cleared the topic');
eq('deleted', ev('room_deleted'), 'alice deleted the room');
eq('joined', eventText({ event: 'member_joined', user: 'carol' }), 'carol joined');
eq('left', eventText({ event: 'member_left', user: 'carol' }), 'carol left');
eq('invited', ev('member_invited'), 'alice invited bob');
eq('kicked', ev('member_kicked'), 'alice kicked bob');
eq('kicked with reason', ev('member_kicked', { reason: 'spam' }), 'alice kicked bob: spam');
eq('banned for good', ev('member_banned'), 'alice banned bob for good');
ok('banned until', /^alice banned bob until .+: spam$/.test(ev('member_banned', { until: Date.now() + 3600e3, reason: 'spam' })));
ok('muted until', /^alice muted bob until /.test(ev('member_muted', { until: Date.now() + 600e3 })));
eq('unbanned', ev('member_unbanned'), 'alice lifted the ban on bob');
eq('role admin', ev('role_changed', { role: 'admin' }), 'alice made bob an admin');
eq('role readonly', ev('role_changed', { role: 'readonly' }), 'alice made bob read-only');
eq('owner', ev('owner_transferred'), 'alice made bob the owner');
eq('unknown event: the server text', eventText({ event: 'future_thing', user: 'alice', text: 'alice did a new thing' }), 'alice did a new thing');
eq('user text stays text', ev('member_kicked', { reason: '<b>x</b>' }), 'alice kicked bob: <b>x</b>');

// Refusals.
eq('not_found', refusalText('not_found', 'secret'), '#secret does not exist, or it is private and you are not a member.');
eq('banned', refusalText('banned', 'dev'), 'You are banned from #dev.');
eq('forbidden', refusalText('forbidden', 'dev', ''), 'You are not allowed to do that in #dev.');
eq('forbidden, the server\'s reason', refusalText('forbidden', 'dev', 'join dev first'), 'Not allowed in #dev: join dev first.');
eq('forbidden readonly', refusalText('forbidden', 'dev', 'you can read dev but not write in it'), 'You can only read #dev: you cannot write in it.');
ok('muted with a time', /^You are muted in #dev until .+\.$/.test(refusalText('muted', 'dev', 'muted until 2030-01-01T10:00:00Z')));
eq('muted without a time', refusalText('muted', 'dev', 'muted'), 'You are muted in #dev.');
eq('other codes are the server\'s', refusalText('text_too_long', 'dev', 'x'), null);
eq('403', httpRefusal(403, 'only admins may invite'), 'Not allowed: only admins may invite.');
eq('403 bare', httpRefusal(403, 'HTTP 403'), 'You are not allowed to do that.');
eq('404', httpRefusal(404, 'room not found'), 'Not found: the room or user does not exist, or you cannot see it.');
eq('409', httpRefusal(409, 'already a member'), 'Already a member.');
eq('400', httpRefusal(400, 'invalid room name'), 'Invalid room name.');
eq('0', httpRefusal(0, 'Cannot reach the server.'), 'Cannot reach the server.');
eq('removed kicked', removedText({ room: 'dev', reason: 'kicked', detail: 'off topic' }), 'You were removed from #dev. Reason: off topic');
eq('removed banned', removedText({ room: 'dev', reason: 'banned' }), 'You were banned from #dev.');
eq('removed deleted', removedText({ room: 'dev', reason: 'deleted' }), '#dev was deleted.');

// Invite links and invitations.
eq('link', inviteURL('https://chat.example', 'tok_1-2'), 'https://chat.example/#invite=tok_1-2');
eq('token back', inviteToken('#invite=tok_1-2'), 'tok_1-2');
eq('round trip', inviteToken(new URL(inviteURL('http://h', 'a.b~c')).hash), 'a.b~c');
eq('no token', inviteToken('#room=dev'), '');
eq('junk token', inviteToken('#invite=<script>'), '');
eq('empty', inviteToken(''), '');
eq('from a name', inviteFrom({ by: 'alice' }), 'alice');
eq('from a user', inviteFrom({ by: { userId: OTHER, username: 'alice' } }), 'alice');
eq('from an id only', inviteFrom({ by: OTHER }), '');
eq('room name', inviteRoom({ room: 'dev' }), 'dev');
eq('room object', inviteRoom({ room: { name: 'dev' } }), 'dev');

// Labels and names.
eq('direct label', roomLabel({ type: 'direct', peer: { username: 'bob' } }, 'dm-x'), 'bob');
eq('title label', roomLabel({ type: 'public', title: 'Plans' }, 'plans'), 'Plans');
eq('name label', roomLabel({ type: 'public', title: '' }, 'plans'), 'plans');
eq('dm name', isDirectName(`dm-${ME}-${OTHER}`), true);
eq('not a dm name', isDirectName('dm-plans'), false);
eq('no end', rfc3339After(0), '');
eq('an end', rfc3339After(60000, Date.UTC(2030, 0, 1)), '2030-01-01T00:01:00.000Z');

document.getElementById('results').textContent = window.failures.join('\n') || `${window.checks} checks passed`;
window.done = true;
