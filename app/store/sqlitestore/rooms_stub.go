package sqlitestore

import (
	"context"
	"errors"
	"time"

	"github.com/auroradev/aurora/app/store"
)

// errTODO marks the room, member, ban and invite operations not built yet
// (the rooms-and-people issue's store layer replaces this file).
var errTODO = errors.New("not implemented yet")

func (s *Store) UsersChangedSince(context.Context, time.Time) ([]store.User, error) {
	return nil, errTODO
}
func (s *Store) SearchUsers(context.Context, string, int) ([]store.User, error) { return nil, errTODO }
func (s *Store) FlaggedUsers(context.Context) ([]store.User, error)             { return nil, errTODO }
func (s *Store) Room(context.Context, string) (store.Room, error)               { return store.Room{}, errTODO }
func (s *Store) UpdateRoom(context.Context, store.Room) error                   { return errTODO }
func (s *Store) Directory(context.Context, string, string, int) ([]store.Room, error) {
	return nil, errTODO
}
func (s *Store) PutMember(context.Context, store.Member) error { return errTODO }
func (s *Store) Member(context.Context, string, string) (store.Member, error) {
	return store.Member{}, errTODO
}
func (s *Store) Members(context.Context, string) ([]store.Member, error)         { return nil, errTODO }
func (s *Store) RemoveMember(context.Context, string, string) error              { return errTODO }
func (s *Store) MemberRooms(context.Context, string) ([]store.MemberRoom, error) { return nil, errTODO }
func (s *Store) PutBan(context.Context, store.Ban) error                         { return errTODO }
func (s *Store) Ban(context.Context, string, string) (store.Ban, error)          { return store.Ban{}, errTODO }
func (s *Store) Bans(context.Context, string) ([]store.Ban, error)               { return nil, errTODO }
func (s *Store) RemoveBan(context.Context, string, string) error                 { return errTODO }
func (s *Store) CreateInvite(context.Context, store.Invite) error                { return errTODO }
func (s *Store) Invite(context.Context, string) (store.Invite, error)            { return store.Invite{}, errTODO }
func (s *Store) RevokeInvite(context.Context, string) error                      { return errTODO }
func (s *Store) Invites(context.Context, string) ([]store.Invite, error)         { return nil, errTODO }
func (s *Store) UseInvite(context.Context, string, time.Time) (store.Invite, error) {
	return store.Invite{}, errTODO
}
func (s *Store) UserInvites(context.Context, string, time.Time) ([]store.Invite, error) {
	return nil, errTODO
}
