package mongostore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/store"
)

// This file is a message's life on MongoDB. A messages document gains,
// each only when set: messageId (the target of an edit, delete, react or
// read), emoji and on (a reaction's), replyTo, mentions (an array of user
// ids, indexed for unread mention counts), edited (Date) with editId,
// editMs and editSeq (the edit applied last), deleted (true). attachments
// holds {url, fileType, size, filename} subdocuments. Collections:
// reactions {room, messageId, userId, emoji, on, eventId, eventMs,
// eventSeq}, one per (room, messageId, userId, emoji); reads {room,
// userId, msgId, msgMs, msgSeq}, one per (room, userId). rooms gain
// retention (milliseconds, -1 forever; absent: the server's default).
//
// Nothing here runs in a transaction (FerretDB v1 has none): every write
// is a single-document conditional update whose condition is the rule
// (a later edit or reaction wins, a marker only moves forward), so
// re-applying an entry, after a crash or a redelivery, changes nothing.
//
// Search is $regex over text, every term regexp.QuoteMeta'd and matched
// case-insensitively: FerretDB v1 has no text index, so terms match as
// substrings (docs/protocol.md#search).

// Collections of a message's life. Waiting holds {_id: room/eventId,
// room, messageId, eventId}: a life entry stored before the message it
// acts on (ingest workers commit out of stream order when two share a
// group, or a killed worker's batch is claimed after later ones); the
// message's insert applies it and removes the document, so the
// collection is empty but for those moments.
const (
	Reactions = "reactions"
	Reads     = "reads"
	Waiting   = "lifeWaiting"
)

func (s *Store) reactions() *mongo.Collection { return s.db.Collection(Reactions) }
func (s *Store) reads() *mongo.Collection     { return s.db.Collection(Reads) }
func (s *Store) waiting() *mongo.Collection   { return s.db.Collection(Waiting) }

// waitingDoc is a document of Waiting.
type waitingDoc struct {
	ID        string `bson:"_id"`
	Room      string `bson:"room"`
	MessageID string `bson:"messageId"`
	EventID   string `bson:"eventId"`
}

// wait records that life entry e found no message to act on.
func (s *Store) wait(ctx context.Context, e store.Message) error {
	_, err := s.waiting().InsertOne(ctx, waitingDoc{ID: e.RoomID + "/" + e.ID.String(), Room: e.RoomID,
		MessageID: e.MessageID.String(), EventID: e.ID.String()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("record %s %s waiting for message %s: %w", e.Type, e.ID, e.MessageID, err)
	}
	return nil
}

// waitingFor returns the life entries waiting for msgs (chat messages just
// inserted, or inserted again) and the Waiting documents that named them,
// to be removed once they are applied. Waiting is all but empty, so
// matching the ids by $in costs nothing even where FerretDB scans.
func (s *Store) waitingFor(ctx context.Context, msgs []store.Message) ([]store.Message, []string, error) {
	ids := make(bson.A, 0, len(msgs))
	inBatch := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		ids = append(ids, m.ID.String())
		inBatch[m.RoomID+"/"+m.ID.String()] = true
	}
	docs, err := findAll(ctx, s.waiting(), bson.D{{Key: "messageId", Value: bson.D{{Key: "$in", Value: ids}}}}, nil,
		func(d waitingDoc) (waitingDoc, error) { return d, nil })
	if err != nil {
		return nil, nil, fmt.Errorf("read life entries waiting for their message: %w", err)
	}
	var out []store.Message
	var done []string
	for _, d := range docs {
		if !inBatch[d.Room+"/"+d.MessageID] {
			continue // the same id in another room
		}
		got, err := s.findMessages(ctx, bson.D{{Key: "roomId", Value: d.Room}, {Key: "msgId", Value: d.EventID}}, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("read life entry %s waiting for message %s: %w", d.EventID, d.MessageID, err)
		}
		out = append(out, got...)
		done = append(done, d.ID)
	}
	return out, done, nil
}

// lifeSchema is migration 6: the indexes of the reactions and reads
// collections, of life entries by target (a delete clears its edits) and
// of mentions (Unread). Existing documents need no rewrite: every new
// field is absent when unset.
func (s *Store) lifeSchema(ctx context.Context) error {
	return ensureIndexes(ctx, []index{
		{coll: s.reactions(), name: "room_1_messageId_1_userId_1_emoji_1", keys: keys("room", 1, "messageId", 1, "userId", 1, "emoji", 1), unique: true},
		{coll: s.reads(), name: "room_1_userId_1", keys: keys("room", 1, "userId", 1), unique: true},
		{coll: s.reads(), name: "userId_1", keys: keys("userId", 1)},
		{coll: s.messages, name: "roomId_1_messageId_1", keys: keys("roomId", 1, "messageId", 1), sparse: true},
		{coll: s.messages, name: "roomId_1_mentions_1_createdAt_1_msgSeq_1", keys: keys("roomId", 1, "mentions", 1, "createdAt", 1, "msgSeq", 1), sparse: true},
	})
}

// attachmentDoc is an attachments subdocument (AuroraChat's field names).
type attachmentDoc struct {
	URL      string `bson:"url"`
	FileType string `bson:"fileType"`
	Size     int64  `bson:"size"`
	Filename string `bson:"filename"`
}

func attachmentsValue(as []bus.Attachment) bson.A {
	out := make(bson.A, len(as))
	for i, a := range as {
		out[i] = attachmentDoc(a)
	}
	return out
}

// attachmentsOf reads an attachments field leniently: an AuroraChat
// document may hold entries of another shape, which are skipped rather
// than making the message unreadable.
func attachmentsOf(v bson.RawValue) []bus.Attachment {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil
	}
	vals, err := arr.Values()
	if err != nil {
		return nil
	}
	var out []bus.Attachment
	for _, e := range vals {
		var d attachmentDoc
		if e.Type != bson.TypeEmbeddedDocument || e.Unmarshal(&d) != nil || d.URL == "" {
			continue
		}
		out = append(out, bus.Attachment(d))
	}
	return out
}

// notAfter is the filter that the id in fields msField, seqField is at
// most id (absent fields: none applied yet).
func notAfter(msField, seqField string, id bus.ID) bson.D {
	ms, seq := int64(id.Ms), int64(id.Seq)
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{missing(msField)},
		bson.D{{Key: msField, Value: bson.D{{Key: "$lt", Value: ms}}}},
		bson.D{{Key: msField, Value: ms}, {Key: seqField, Value: bson.D{{Key: "$lte", Value: seq}}}},
	}}}
}

// lifeTarget is the part of a message applyLife decides on.
type lifeTarget struct {
	Type        string        `bson:"type"`
	Deleted     bool          `bson:"deleted"`
	Attachments bson.RawValue `bson:"attachments"`
}

// applyLife applies one life entry to its message (store.MessageWriter's
// rules) and returns the attachments a delete removed.
func (s *Store) applyLife(ctx context.Context, e store.Message) ([]bus.Attachment, error) {
	room, id := e.RoomID, e.MessageID
	if e.Type == bus.TypeRead {
		return nil, s.moveMarker(ctx, e)
	}
	var t lifeTarget
	err := s.messages.FindOne(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "msgId", Value: id.String()}},
		options.FindOne().SetProjection(bson.D{{Key: "type", Value: 1}, {Key: "deleted", Value: 1}, {Key: "attachments", Value: 1}})).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Not stored yet (or never: the chat role checked it was sent).
		return nil, s.wait(ctx, e)
	}
	if err != nil {
		return nil, fmt.Errorf("find message %s: %w", id, err)
	}
	if t.Type != "" {
		return nil, nil // a room event or a life entry: nothing to act on
	}
	target := bson.D{{Key: "roomId", Value: room}, {Key: "msgId", Value: id.String()}}
	switch e.Type {
	case bus.TypeEdit:
		if t.Deleted {
			// The delete removed the message's text; this edit's goes too.
			_, err := s.messages.UpdateOne(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "msgId", Value: e.ID.String()}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: ""}}}})
			if err != nil {
				return nil, fmt.Errorf("clear edit of deleted message: %w", err)
			}
			return nil, nil
		}
		filter := append(target, bson.E{Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}},
			bson.E{Key: "$and", Value: bson.A{notAfter("editMs", "editSeq", e.ID)}})
		if _, err := s.messages.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "text", Value: e.Text},
			{Key: "edited", Value: bson.DateTime(int64(e.ID.Ms))},
			{Key: "editId", Value: e.ID.String()},
			{Key: "editMs", Value: int64(e.ID.Ms)},
			{Key: "editSeq", Value: int64(e.ID.Seq)},
			{Key: "updatedAt", Value: now()},
		}}}); err != nil {
			return nil, fmt.Errorf("edit: %w", err)
		}
	case bus.TypeDelete:
		// The attachments stay in the document (reads hide them) so a
		// redelivered delete, or expiry, names the objects again: a crash
		// may have kept the caller from deleting them the first time.
		removed := attachmentsOf(t.Attachments)
		if _, err := s.messages.UpdateOne(ctx, target, bson.D{
			{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}, {Key: "text", Value: ""}, {Key: "updatedAt", Value: now()}}},
			// edited goes with the text: a tombstone is the same whether an
			// edit was applied before the delete or, out of order, not.
			{Key: "$unset", Value: bson.D{{Key: "mentions", Value: ""}, {Key: "edited", Value: ""}}},
		}); err != nil {
			return nil, fmt.Errorf("delete: %w", err)
		}
		if _, err := s.messages.UpdateMany(ctx,
			bson.D{{Key: "roomId", Value: room}, {Key: "messageId", Value: id.String()}, {Key: "type", Value: bus.TypeEdit}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "text", Value: ""}}}}); err != nil {
			return nil, fmt.Errorf("delete: clear edits: %w", err)
		}
		if _, err := s.reactions().DeleteMany(ctx, bson.D{{Key: "room", Value: room}, {Key: "messageId", Value: id.String()}}); err != nil {
			return nil, fmt.Errorf("delete: reactions: %w", err)
		}
		return removed, nil
	case bus.TypeReact:
		if t.Deleted {
			return nil, nil
		}
		return nil, s.react(ctx, e)
	}
	return nil, nil
}

// react sets one reaction key to e unless a later event set it: a
// conditional update, or an insert when the key is new (a duplicate key
// then means another write created it meanwhile: it is retried once as
// an update).
func (s *Store) react(ctx context.Context, e store.Message) error {
	key := bson.D{{Key: "room", Value: e.RoomID}, {Key: "messageId", Value: e.MessageID.String()},
		{Key: "userId", Value: e.UserID}, {Key: "emoji", Value: e.Emoji}}
	set := bson.D{{Key: "on", Value: e.On}, {Key: "eventId", Value: e.ID.String()},
		{Key: "eventMs", Value: int64(e.ID.Ms)}, {Key: "eventSeq", Value: int64(e.ID.Seq)}}
	doc := append(append(bson.D{}, key...), set...)
	return s.upsertLater(ctx, s.reactions(), key, "eventMs", "eventSeq", e.ID, set, doc)
}

// moveMarker moves the user's read marker of the room to e.MessageID
// unless it is there or beyond.
func (s *Store) moveMarker(ctx context.Context, e store.Message) error {
	key := bson.D{{Key: "room", Value: e.RoomID}, {Key: "userId", Value: e.UserID}}
	id := e.MessageID
	set := bson.D{{Key: "msgId", Value: id.String()}, {Key: "msgMs", Value: int64(id.Ms)}, {Key: "msgSeq", Value: int64(id.Seq)}}
	doc := append(append(bson.D{}, key...), set...)
	if err := s.upsertLater(ctx, s.reads(), key, "msgMs", "msgSeq", id, set, doc); err != nil {
		return fmt.Errorf("move read marker: %w", err)
	}
	return nil
}

// upsertLater writes set on the document of coll with key when its id
// (msField, seqField) is not after id, or inserts doc when there is none.
func (s *Store) upsertLater(ctx context.Context, coll *mongo.Collection, key bson.D, msField, seqField string, id bus.ID, set, doc bson.D) error {
	for attempt := 0; attempt < 2; attempt++ {
		filter := append(append(bson.D{}, key...), bson.E{Key: "$and", Value: bson.A{notAfter(msField, seqField, id)}})
		r, err := coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return fmt.Errorf("update %s: %w", coll.Name(), err)
		}
		if r.MatchedCount > 0 {
			return nil
		}
		n, err := coll.CountDocuments(ctx, key)
		if err != nil {
			return fmt.Errorf("find %s: %w", coll.Name(), err)
		}
		if n > 0 {
			return nil // a later one is applied
		}
		_, err = coll.InsertOne(ctx, doc)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("insert %s: %w", coll.Name(), err)
		}
	}
	return nil
}

// withState completes msgs (of room) with their state as a reader sees
// it: a deleted message without attachments or mentions, and every
// message's reactions, read with one query for the whole page.
func (s *Store) withState(ctx context.Context, room string, msgs []store.Message, viewer string) error {
	var ids bson.A
	for i := range msgs {
		m := &msgs[i]
		if m.Deleted {
			m.Text, m.Attachments, m.Mentions = "", nil, nil
			continue
		}
		if m.Type == "" {
			ids = append(ids, m.ID.String())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	type reactionDoc struct {
		MessageID string `bson:"messageId"`
		UserID    string `bson:"userId"`
		Emoji     string `bson:"emoji"`
	}
	rows, err := findAll(ctx, s.reactions(),
		bson.D{{Key: "room", Value: room}, {Key: "messageId", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "on", Value: true}},
		options.Find().SetSort(bson.D{{Key: "eventMs", Value: 1}, {Key: "eventSeq", Value: 1}}),
		func(d reactionDoc) (store.ReactionRow, error) { return store.ReactionRow(d), nil })
	if err != nil {
		return fmt.Errorf("read reactions: %w", err)
	}
	agg := store.AggregateReactions(rows, viewer)
	for i := range msgs {
		msgs[i].Reactions = agg[msgs[i].ID.String()]
	}
	return nil
}

// Message finds one document of room by msgId, in its current state.
func (s *Store) Message(ctx context.Context, room string, id bus.ID) (store.Message, error) {
	msgs, err := s.findMessages(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "msgId", Value: id.String()}}, options.Find().SetLimit(1))
	if err != nil {
		return store.Message{}, fmt.Errorf("find message %s of room %q: %w", id, room, err)
	}
	if len(msgs) == 0 {
		return store.Message{}, fmt.Errorf("message %s of room %q: %w", id, room, store.ErrNotFound)
	}
	if err := s.withState(ctx, room, msgs, ""); err != nil {
		return store.Message{}, fmt.Errorf("find message %s of room %q: %w", id, room, err)
	}
	return msgs[0], nil
}

// chatOnly selects chat messages that are not deleted: no type (room
// events and life entries have one), no deleted flag.
func chatOnly() bson.D {
	return bson.D{missing("type"), {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}}
}

// Search matches every term as a case-insensitive substring of text.
func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Message, bool, error) {
	if len(q.Rooms) == 0 || len(q.Terms) == 0 {
		return nil, false, nil
	}
	size := q.Limit
	if size <= 0 {
		size = store.DefaultPageLimit
	}
	rooms := make(bson.A, len(q.Rooms))
	for i, r := range q.Rooms {
		rooms[i] = r
	}
	conds := bson.A{chatOnly()}
	for _, t := range q.Terms {
		conds = append(conds, bson.D{{Key: "text", Value: bson.D{{Key: "$regex", Value: regexp.QuoteMeta(t)}, {Key: "$options", Value: "i"}}}})
	}
	if q.UserID != "" {
		conds = append(conds, bson.D{{Key: "userId", Value: userIDValue(q.UserID)}})
	}
	if q.Before != nil {
		if b := bound("$lt", *q.Before); len(b) > 0 {
			conds = append(conds, b)
		}
	}
	if q.After != nil {
		conds = append(conds, bound("$gt", *q.After))
	}
	var roomCond any = bson.D{{Key: "$in", Value: rooms}}
	if len(q.Rooms) == 1 {
		roomCond = q.Rooms[0]
	}
	msgs, err := s.findMessages(ctx, bson.D{{Key: "roomId", Value: roomCond}, {Key: "$and", Value: conds}}, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "msgSeq", Value: -1}}).
		SetLimit(int64(size)+1))
	if err != nil {
		return nil, false, fmt.Errorf("search %q: %w", q.Terms, err)
	}
	more := len(msgs) > size
	if more {
		msgs = msgs[:size]
	}
	err = store.EachRoom(msgs, func(room string, part []store.Message) error {
		return s.withState(ctx, room, part, q.Viewer)
	})
	if err != nil {
		return nil, false, fmt.Errorf("search %q: %w", q.Terms, err)
	}
	return msgs, more, nil
}

// ReadMarkers returns the user's marker per room (index userId_1).
func (s *Store) ReadMarkers(ctx context.Context, userID string) (map[string]bus.ID, error) {
	type readDoc struct {
		Room   string `bson:"room"`
		MsgMs  int64  `bson:"msgMs"`
		MsgSeq int64  `bson:"msgSeq"`
	}
	docs, err := findAll(ctx, s.reads(), bson.D{{Key: "userId", Value: userID}}, nil, func(d readDoc) (readDoc, error) { return d, nil })
	if err != nil {
		return nil, fmt.Errorf("read markers of %s: %w", userID, err)
	}
	out := make(map[string]bus.ID, len(docs))
	for _, d := range docs {
		out[d.Room] = bus.ID{Ms: uint64(d.MsgMs), Seq: uint64(d.MsgSeq)}
	}
	return out, nil
}

// Unread counts with a limit: each count reads at most limit _ids from an
// index range after the marker (roomId_1_createdAt_-1_msgSeq_-1, and
// roomId_1_mentions_1_createdAt_1_msgSeq_1 for mentions).
func (s *Store) Unread(ctx context.Context, userID, room string, marker bus.ID, limit int) (store.UnreadCount, error) {
	var c store.UnreadCount
	if limit <= 0 {
		return c, nil
	}
	base := bson.A{bound("$gt", marker), chatOnly(),
		bson.D{{Key: "userId", Value: bson.D{{Key: "$ne", Value: userIDValue(userID)}}}}}
	count := func(conds bson.A) (int, error) {
		// roomId at the top level, not in $and: FerretDB v1 pushes only
		// top-level equalities down to its backend.
		// Unsorted: a capped count needs any limit matches, not the
		// first, and FerretDB v1 sorts a whole collection in memory.
		cur, err := s.messages.Find(ctx, bson.D{{Key: "roomId", Value: room}, {Key: "$and", Value: conds}}, options.Find().
			SetProjection(bson.D{{Key: "_id", Value: 1}}).
			SetLimit(int64(limit)))
		if err != nil {
			return 0, err
		}
		defer cur.Close(context.WithoutCancel(ctx))
		n := 0
		for cur.Next(ctx) {
			n++
		}
		return n, cur.Err()
	}
	var err error
	if c.Unread, err = count(base); err != nil {
		return c, fmt.Errorf("unread of %s in room %q: %w", userID, room, err)
	}
	if c.Mentions, err = count(append(base, bson.D{{Key: "mentions", Value: userID}})); err != nil {
		return c, fmt.Errorf("mentions of %s in room %q: %w", userID, room, err)
	}
	return c, nil
}

// ExpireMessages deletes the oldest documents of room created before
// before, up to limit: their reactions first, then the documents, so a
// crash in between leaves rows that the next batch expires again.
func (s *Store) ExpireMessages(ctx context.Context, room string, before time.Time, limit int) ([]store.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	docs, err := findAll(ctx, s.messages,
		bson.D{{Key: "roomId", Value: room}, {Key: "createdAt", Value: bson.D{{Key: "$lt", Value: bson.DateTime(store.CutoffMillis(before))}}}},
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "msgSeq", Value: 1}}).SetLimit(int64(limit)),
		func(d bson.Raw) (bson.Raw, error) { return d, nil })
	if err != nil {
		return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
	}
	if len(docs) == 0 {
		return nil, nil
	}
	msgs := make([]store.Message, len(docs))
	oids := make(bson.A, len(docs))
	msgIDs := make(bson.A, len(docs))
	for i, raw := range docs {
		var d messageRead
		if err := bson.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
		}
		if msgs[i], err = d.message(); err != nil {
			return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
		}
		oids[i] = raw.Lookup("_id")
		msgIDs[i] = msgs[i].ID.String()
	}
	if _, err := s.reactions().DeleteMany(ctx, bson.D{{Key: "room", Value: room}, {Key: "messageId", Value: bson.D{{Key: "$in", Value: msgIDs}}}}); err != nil {
		return nil, fmt.Errorf("expire messages of room %q: reactions: %w", room, err)
	}
	if _, err := s.messages.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}}); err != nil {
		return nil, fmt.Errorf("expire messages of room %q: %w", room, err)
	}
	return msgs, nil
}

// SetRetention sets rooms.retention.
func (s *Store) SetRetention(ctx context.Context, name string, d time.Duration) error {
	if err := store.CheckRetention(d); err != nil {
		return fmt.Errorf("set retention of room %q: %w", name, err)
	}
	r, err := s.rooms.UpdateOne(ctx, bson.D{{Key: "name", Value: name}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "retention", Value: store.RetentionMillis(d)}}}})
	if err != nil {
		return fmt.Errorf("set retention of room %q: %w", name, err)
	}
	if r.MatchedCount == 0 {
		return fmt.Errorf("set retention of room %q: %w", name, store.ErrNotFound)
	}
	return nil
}
