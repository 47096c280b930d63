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

	"github.com/auroradev/aurora/app/store"
)

// This file is the rooms, members, bans and invites collections
// (store.Rooms) and the user queries of the rooms-and-people issue.
//
// MongoDB has no transactions on a standalone server (nor on FerretDB), so
// the writes that touch two collections are ordered to fail safe:
//   - DeleteRoom deletes the room's members, bans and invitations, then
//     the room, then its members, bans and invitations again (those put
//     while it ran). Stopped before the room went, it leaves the room with
//     fewer rows, and running it again finishes; only a crash after it,
//     with a membership put in that instant, leaves a row of no room:
//     MemberRooms joins with rooms and never lists it, and callers check
//     the room before a membership.
//   - CreateRoom inserts the room (the unique name_1 index decides who
//     gets the name), then upserts the owner's member row; if that write
//     fails it deletes the room again. Only a crash between the two
//     writes leaves a room without its owner: a server administrator, who
//     may moderate every room, can still give it one (PutMember with
//     RoleOwner) or delete it. It clears nothing: a user joining the new
//     room at once (the losers of a race to create it join it) must keep
//     the membership.

// SearchUsers returns the users whose usernameKey starts with q folded: an
// anchored, quoted $regex, which the usernameKey_1 index serves.
func (s *Store) SearchUsers(ctx context.Context, q string, limit int) ([]store.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "usernameKey", Value: bson.Regex{Pattern: "^" + regexp.QuoteMeta(store.UsernameKey(q))}}}
	users, err := findAll(ctx, s.users, filter, sortBy("usernameKey").SetLimit(int64(limit)),
		func(d userDoc) (store.User, error) { return d.user(), nil })
	if err != nil {
		return nil, fmt.Errorf("search users %q: %w", q, err)
	}
	return users, nil
}

// UsersChangedSince returns the users updated at or after since, oldest
// change first (index updatedAt_1).
func (s *Store) UsersChangedSince(ctx context.Context, since time.Time) ([]store.User, error) {
	filter := bson.D{{Key: "updatedAt", Value: bson.D{{Key: "$gte", Value: since.UTC().Truncate(time.Millisecond)}}}}
	opts := options.Find().SetSort(bson.D{{Key: "updatedAt", Value: 1}, {Key: "_id", Value: 1}})
	users, err := findAll(ctx, s.users, filter, opts, func(d userDoc) (store.User, error) { return d.user(), nil })
	if err != nil {
		return nil, fmt.Errorf("users changed since %v: %w", since, err)
	}
	return users, nil
}

// FlaggedUsers returns the disabled users, the admins and those with a
// validAfter, in creation order.
func (s *Store) FlaggedUsers(ctx context.Context) ([]store.User, error) {
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "disabled", Value: true}},
		bson.D{{Key: "admin", Value: true}},
		bson.D{{Key: "validAfter", Value: bson.D{{Key: "$exists", Value: true}}}},
	}}}
	users, err := findAll(ctx, s.users, filter, sortBy("_id"), func(d userDoc) (store.User, error) { return d.user(), nil })
	if err != nil {
		return nil, fmt.Errorf("flagged users: %w", err)
	}
	return users, nil
}

type roomDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	Name      string        `bson:"name"`
	Type      string        `bson:"type"`
	Title     string        `bson:"title"`
	Topic     string        `bson:"topic"`
	CreatedBy string        `bson:"createdBy"`
	CreatedAt time.Time     `bson:"createdAt"`
	// Retention is in milliseconds (-1 forever); absent is 0, the
	// server's default.
	Retention int64 `bson:"retention,omitempty"`
}

func (d roomDoc) room() (store.Room, error) {
	typ := d.Type
	if typ == "" {
		typ = store.RoomPublic // a room written before migration 4
	}
	return store.Room{Name: d.Name, Type: typ, Title: d.Title, Topic: d.Topic, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt.UTC(),
		Retention: store.RetentionFromMillis(d.Retention)}, nil
}

// clearRoom deletes the members, bans and invitations (with their uses) of
// a room name.
func (s *Store) clearRoom(ctx context.Context, name string) error {
	for _, coll := range []*mongo.Collection{s.members, s.bans, s.invites, s.inviteUses} {
		if _, err := coll.DeleteMany(ctx, bson.D{{Key: "room", Value: name}}); err != nil {
			return fmt.Errorf("delete %s: %w", coll.Name(), err)
		}
	}
	return nil
}

// CreateRoom inserts the room, then its owner's member row (see the file
// comment for why that is safe without a transaction).
func (s *Store) CreateRoom(ctx context.Context, r store.Room, owner *store.Member) (store.Room, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = r.CreatedAt.UTC().Truncate(time.Millisecond)
	if r.Type == "" {
		r.Type = store.RoomPublic
	}
	_, err := s.rooms.InsertOne(ctx, roomDoc{
		ID: bson.NewObjectID(), Name: r.Name, Type: r.Type, Title: r.Title, Topic: r.Topic,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
	})
	if mongo.IsDuplicateKeyError(err) {
		return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, store.ErrRoomExists)
	}
	if err != nil {
		return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, err)
	}
	if owner != nil {
		m := *owner
		m.Room = r.Name
		err = s.PutMember(ctx, m)
	}
	if err != nil {
		// Give the name back rather than leave a room half made; the
		// caller's context may be what failed.
		undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := s.rooms.DeleteOne(undo, bson.D{{Key: "name", Value: r.Name}}); derr != nil {
			return store.Room{}, fmt.Errorf("create room %q: %w (and deleting it again: %v)", r.Name, err, derr)
		}
		return store.Room{}, fmt.Errorf("create room %q: %w", r.Name, err)
	}
	return r, nil
}

// Room finds a room by name.
func (s *Store) Room(ctx context.Context, name string) (store.Room, error) {
	var d roomDoc
	err := s.rooms.FindOne(ctx, bson.D{{Key: "name", Value: name}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Room{}, fmt.Errorf("room %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Room{}, fmt.Errorf("find room %q: %w", name, err)
	}
	return d.room()
}

// UpdateRoom sets a room's title and topic.
func (s *Store) UpdateRoom(ctx context.Context, r store.Room) error {
	res, err := s.rooms.UpdateOne(ctx, bson.D{{Key: "name", Value: r.Name}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "title", Value: r.Title}, {Key: "topic", Value: r.Topic},
	}}})
	if err != nil {
		return fmt.Errorf("update room %q: %w", r.Name, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update room %q: %w", r.Name, store.ErrNotFound)
	}
	return nil
}

// ListRooms returns every room ordered by name.
func (s *Store) ListRooms(ctx context.Context) ([]store.Room, error) {
	rooms, err := findAll(ctx, s.rooms, bson.D{}, sortBy("name"), roomDoc.room)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	return rooms, nil
}

// Directory pages through the public rooms by name (index type_1_name_1);
// q is quoted (regexp.QuoteMeta) and matched as a case-insensitive $regex.
func (s *Store) Directory(ctx context.Context, q, after string, limit int) ([]store.Room, error) {
	if limit <= 0 {
		return nil, nil
	}
	filter := bson.D{{Key: "type", Value: store.RoomPublic}, {Key: "name", Value: bson.D{{Key: "$gt", Value: after}}}}
	if q != "" {
		re := bson.Regex{Pattern: regexp.QuoteMeta(q), Options: "i"}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "name", Value: re}}, bson.D{{Key: "title", Value: re}}, bson.D{{Key: "topic", Value: re}},
		}})
	}
	rooms, err := findAll(ctx, s.rooms, filter, sortBy("name").SetLimit(int64(limit)), roomDoc.room)
	if err != nil {
		return nil, fmt.Errorf("room directory q=%q after %q: %w", q, after, err)
	}
	return rooms, nil
}

// DeleteRoom deletes the room's rows, the room, and its rows again (see
// the file comment).
func (s *Store) DeleteRoom(ctx context.Context, name string) error {
	if err := s.clearRoom(ctx, name); err != nil {
		return fmt.Errorf("delete room %q: %w", name, err)
	}
	res, err := s.rooms.DeleteOne(ctx, bson.D{{Key: "name", Value: name}})
	if err != nil {
		return fmt.Errorf("delete room %q: %w", name, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete room %q: %w", name, store.ErrNotFound)
	}
	if err := s.clearRoom(ctx, name); err != nil {
		return fmt.Errorf("delete room %q: %w", name, err)
	}
	return nil
}

// memberDoc is a members document (its _id is the server's).
type memberDoc struct {
	Room       string     `bson:"room"`
	UserID     string     `bson:"userId"`
	Username   string     `bson:"username"`
	Role       string     `bson:"role"`
	JoinedAt   time.Time  `bson:"joinedAt"`
	MutedUntil *time.Time `bson:"mutedUntil,omitempty"`
}

func (d memberDoc) member() (store.Member, error) {
	return store.Member{
		Room: d.Room, UserID: d.UserID, Username: d.Username, Role: d.Role,
		JoinedAt: d.JoinedAt.UTC(), MutedUntil: fromOpt(d.MutedUntil),
	}, nil
}

// memberKey is the filter on a room and user id (members and bans).
func memberKey(room, userID string) bson.D {
	return bson.D{{Key: "room", Value: room}, {Key: "userId", Value: userID}}
}

// upsert replaces the document of coll that filter selects, inserting it
// when there is none. Two concurrent upserts of a new key may both try the
// insert; the unique index refuses the second, which then replaces.
func upsert(ctx context.Context, coll *mongo.Collection, filter bson.D, doc any) error {
	opts := options.Replace().SetUpsert(true)
	_, err := coll.ReplaceOne(ctx, filter, doc, opts)
	if mongo.IsDuplicateKeyError(err) {
		_, err = coll.ReplaceOne(ctx, filter, doc, opts)
	}
	return err
}

// PutMember upserts the member document of (m.Room, m.UserID).
func (s *Store) PutMember(ctx context.Context, m store.Member) error {
	if m.JoinedAt.IsZero() {
		m.JoinedAt = now()
	}
	d := memberDoc{
		Room: m.Room, UserID: m.UserID, Username: m.Username, Role: m.Role,
		JoinedAt: m.JoinedAt.UTC().Truncate(time.Millisecond), MutedUntil: opt(m.MutedUntil),
	}
	if err := upsert(ctx, s.members, memberKey(m.Room, m.UserID), d); err != nil {
		return fmt.Errorf("put member %s of room %q: %w", m.UserID, m.Room, err)
	}
	return nil
}

// Member finds one membership.
func (s *Store) Member(ctx context.Context, room, userID string) (store.Member, error) {
	var d memberDoc
	err := s.members.FindOne(ctx, memberKey(room, userID)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Member{}, fmt.Errorf("member %s of room %q: %w", userID, room, store.ErrNotFound)
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("find member %s of room %q: %w", userID, room, err)
	}
	return d.member()
}

// Members returns a room's members by joinedAt, then userId.
func (s *Store) Members(ctx context.Context, room string) ([]store.Member, error) {
	opts := options.Find().SetSort(bson.D{{Key: "joinedAt", Value: 1}, {Key: "userId", Value: 1}})
	ms, err := findAll(ctx, s.members, bson.D{{Key: "room", Value: room}}, opts, memberDoc.member)
	if err != nil {
		return nil, fmt.Errorf("members of room %q: %w", room, err)
	}
	return ms, nil
}

// RemoveMember deletes one membership.
func (s *Store) RemoveMember(ctx context.Context, room, userID string) error {
	return deleteOne(ctx, s.members, memberKey(room, userID), fmt.Sprintf("remove member %s of room %q", userID, room))
}

// deleteOne deletes the document filter selects; ErrNotFound when none.
func deleteOne(ctx context.Context, coll *mongo.Collection, filter bson.D, what string) error {
	res, err := coll.DeleteOne(ctx, filter)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// MemberRooms reads the user's member documents (index userId_1), then
// their rooms in one $in query; a member document whose room is gone is
// not listed.
func (s *Store) MemberRooms(ctx context.Context, userID string) ([]store.MemberRoom, error) {
	ms, err := findAll(ctx, s.members, bson.D{{Key: "userId", Value: userID}}, nil, memberDoc.member)
	if err != nil {
		return nil, fmt.Errorf("rooms of member %s: %w", userID, err)
	}
	if len(ms) == 0 {
		return nil, nil
	}
	byRoom := make(map[string]store.Member, len(ms))
	names := make(bson.A, 0, len(ms))
	for _, m := range ms {
		byRoom[m.Room] = m
		names = append(names, m.Room)
	}
	rooms, err := findAll(ctx, s.rooms, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: names}}}}, sortBy("name"), roomDoc.room)
	if err != nil {
		return nil, fmt.Errorf("rooms of member %s: %w", userID, err)
	}
	out := make([]store.MemberRoom, 0, len(rooms))
	for _, r := range rooms {
		out = append(out, store.MemberRoom{Room: r, Member: byRoom[r.Name]})
	}
	return out, nil
}

// banDoc is a bans document.
type banDoc struct {
	Room      string     `bson:"room"`
	UserID    string     `bson:"userId"`
	Reason    string     `bson:"reason"`
	By        string     `bson:"by"`
	At        time.Time  `bson:"at"`
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

func (d banDoc) ban() (store.Ban, error) {
	return store.Ban{Room: d.Room, UserID: d.UserID, Reason: d.Reason, By: d.By, At: d.At.UTC(), ExpiresAt: fromOpt(d.ExpiresAt)}, nil
}

// PutBan upserts the ban document of (b.Room, b.UserID).
func (s *Store) PutBan(ctx context.Context, b store.Ban) error {
	if b.At.IsZero() {
		b.At = now()
	}
	d := banDoc{
		Room: b.Room, UserID: b.UserID, Reason: b.Reason, By: b.By,
		At: b.At.UTC().Truncate(time.Millisecond), ExpiresAt: opt(b.ExpiresAt),
	}
	if err := upsert(ctx, s.bans, memberKey(b.Room, b.UserID), d); err != nil {
		return fmt.Errorf("ban %s from room %q: %w", b.UserID, b.Room, err)
	}
	return nil
}

// Ban finds a ban, expired or not.
func (s *Store) Ban(ctx context.Context, room, userID string) (store.Ban, error) {
	var d banDoc
	err := s.bans.FindOne(ctx, memberKey(room, userID)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Ban{}, fmt.Errorf("ban of %s from room %q: %w", userID, room, store.ErrNotFound)
	}
	if err != nil {
		return store.Ban{}, fmt.Errorf("find ban of %s from room %q: %w", userID, room, err)
	}
	return d.ban()
}

// Bans returns a room's bans by at, then userId.
func (s *Store) Bans(ctx context.Context, room string) ([]store.Ban, error) {
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: 1}, {Key: "userId", Value: 1}})
	bans, err := findAll(ctx, s.bans, bson.D{{Key: "room", Value: room}}, opts, banDoc.ban)
	if err != nil {
		return nil, fmt.Errorf("bans of room %q: %w", room, err)
	}
	return bans, nil
}

// RemoveBan deletes a ban.
func (s *Store) RemoveBan(ctx context.Context, room, userID string) error {
	return deleteOne(ctx, s.bans, memberKey(room, userID), fmt.Sprintf("unban %s from room %q", userID, room))
}

// inviteDoc is an invites document.
type inviteDoc struct {
	Token     string     `bson:"token"`
	Room      string     `bson:"room"`
	UserID    string     `bson:"userId"`
	By        string     `bson:"by"`
	CreatedAt time.Time  `bson:"createdAt"`
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
	MaxUses   int64      `bson:"maxUses"`
	Uses      int64      `bson:"uses"`
	Revoked   bool       `bson:"revoked"`
}

func (d inviteDoc) invite() (store.Invite, error) {
	return store.Invite{
		Token: d.Token, Room: d.Room, UserID: d.UserID, By: d.By, CreatedAt: d.CreatedAt.UTC(),
		ExpiresAt: fromOpt(d.ExpiresAt), MaxUses: int(d.MaxUses), Uses: int(d.Uses), Revoked: d.Revoked,
	}, nil
}

// CreateInvite inserts an invitation; the unique token_1 index refuses a
// token in use.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = now()
	}
	_, err := s.invites.InsertOne(ctx, inviteDoc{
		Token: inv.Token, Room: inv.Room, UserID: inv.UserID, By: inv.By,
		CreatedAt: inv.CreatedAt.UTC().Truncate(time.Millisecond), ExpiresAt: opt(inv.ExpiresAt),
		MaxUses: int64(inv.MaxUses), Uses: int64(inv.Uses), Revoked: inv.Revoked,
	})
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("create invitation to room %q: token taken", inv.Room)
	}
	if err != nil {
		return fmt.Errorf("create invitation to room %q: %w", inv.Room, err)
	}
	return nil
}

// Invite finds an invitation by token. The token is not in the error: it
// is the invitation's secret, and errors end up in logs.
func (s *Store) Invite(ctx context.Context, token string) (store.Invite, error) {
	var d inviteDoc
	err := s.invites.FindOne(ctx, bson.D{{Key: "token", Value: token}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Invite{}, fmt.Errorf("invitation: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("find invitation: %w", err)
	}
	inv, _ := d.invite()
	if err := s.uses(ctx, &inv); err != nil {
		return store.Invite{}, err
	}
	return inv, nil
}

// useDoc is an inviteUses document: one accepted use of an invitation.
// For an invitation with maxUses its _id is "<token>/<n>", n the use's
// number (1..maxUses), so the _id's uniqueness lets exactly one use take
// each number; an unlimited invitation's uses get ObjectIds.
type useDoc struct {
	ID    any       `bson:"_id"`
	Token string    `bson:"token"`
	Room  string    `bson:"room"` // so DeleteRoom finds them
	At    time.Time `bson:"at"`
}

// uses is the number of uses of inv: the uses it was created with plus its
// inviteUses documents.
func (s *Store) uses(ctx context.Context, inv *store.Invite) error {
	n, err := s.inviteUses.CountDocuments(ctx, bson.D{{Key: "token", Value: inv.Token}})
	if err != nil {
		return fmt.Errorf("count uses of invitation: %w", err)
	}
	inv.Uses += int(n)
	return nil
}

// UseInvite records a use as an insert, not an update: a conditional
// update (findOneAndUpdate with the usability in its filter) is atomic on
// MongoDB but not on FerretDB, which reads the document, then writes it
// back by _id, so concurrent uses of a one-use link all succeed there.
// An insert under a unique key is atomic on both: a use of a limited
// invitation inserts the inviteUses document of the next free use number
// up to maxUses, and of concurrent uses each number goes to exactly one.
// The invitation document itself is never rewritten by a use, so a use
// cannot undo a concurrent RevokeInvite either. A revocation that lands
// between the check and the insert lets that one use through, as if it
// came first.
func (s *Store) UseInvite(ctx context.Context, token string, at time.Time) (store.Invite, error) {
	inv, err := s.Invite(ctx, token)
	if err != nil {
		return store.Invite{}, fmt.Errorf("use %w", err)
	}
	if !inv.Usable(at) {
		return store.Invite{}, fmt.Errorf("use invitation: %w", store.ErrInviteSpent)
	}
	use := useDoc{ID: bson.NewObjectID(), Token: token, Room: inv.Room, At: now()}
	if inv.MaxUses == 0 {
		if _, err := s.inviteUses.InsertOne(ctx, use); err != nil {
			return store.Invite{}, fmt.Errorf("use invitation: %w", err)
		}
		inv.Uses++
		return inv, nil
	}
	for n := inv.Uses + 1; n <= inv.MaxUses; n++ {
		use.ID = fmt.Sprintf("%s/%d", token, n)
		_, err := s.inviteUses.InsertOne(ctx, use)
		if mongo.IsDuplicateKeyError(err) {
			continue // another use took n
		}
		if err != nil {
			return store.Invite{}, fmt.Errorf("use invitation: %w", err)
		}
		inv.Uses = n
		return inv, nil
	}
	return store.Invite{}, fmt.Errorf("use invitation: %w", store.ErrInviteSpent)
}

// RevokeInvite marks an invitation revoked.
func (s *Store) RevokeInvite(ctx context.Context, token string) error {
	res, err := s.invites.UpdateOne(ctx, bson.D{{Key: "token", Value: token}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked", Value: true}}}})
	if err != nil {
		return fmt.Errorf("revoke invitation: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("revoke invitation: %w", store.ErrNotFound)
	}
	return nil
}

// findInvites returns the invitations filter selects by createdAt, then
// token, with their uses counted.
func (s *Store) findInvites(ctx context.Context, filter bson.D) ([]store.Invite, error) {
	opts := options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "token", Value: 1}})
	invs, err := findAll(ctx, s.invites, filter, opts, inviteDoc.invite)
	if err != nil {
		return nil, err
	}
	for i := range invs {
		if err := s.uses(ctx, &invs[i]); err != nil {
			return nil, err
		}
	}
	return invs, nil
}

// Invites returns a room's invitations by createdAt, then token (index room_1).
func (s *Store) Invites(ctx context.Context, room string) ([]store.Invite, error) {
	invs, err := s.findInvites(ctx, bson.D{{Key: "room", Value: room}})
	if err != nil {
		return nil, fmt.Errorf("invitations of room %q: %w", room, err)
	}
	return invs, nil
}

// UserInvites returns the usable direct invitations of a user (index
// userId_1; a user has few, so usability is checked here).
func (s *Store) UserInvites(ctx context.Context, userID string, at time.Time) ([]store.Invite, error) {
	if userID == "" {
		return nil, nil // links have no userId; they are nobody's invitations
	}
	invs, err := s.findInvites(ctx, bson.D{{Key: "userId", Value: userID}, {Key: "revoked", Value: false}})
	if err != nil {
		return nil, fmt.Errorf("invitations of user %s: %w", userID, err)
	}
	out := invs[:0]
	for _, inv := range invs {
		if inv.Usable(at) {
			out = append(out, inv)
		}
	}
	return out, nil
}
