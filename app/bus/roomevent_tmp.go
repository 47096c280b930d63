package bus

// Placeholder of the room event shape until the events branch lands (it
// owns the real definition; this file is deleted at that merge).

// RoomEvent is the event object of a room event entry.
type RoomEvent struct {
	Event      string `json:"event"`
	Target     string `json:"target,omitempty"`
	TargetName string `json:"targetName,omitempty"`
	Role       string `json:"role,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Until      int64  `json:"until,omitempty"`
	Title      string `json:"title,omitempty"`
	Topic      string `json:"topic,omitempty"`
	RoomType   string `json:"roomType,omitempty"`
}

// Room event names.
const (
	EventRoomCreated      = "room_created"
	EventRoomUpdated      = "room_updated"
	EventRoomDeleted      = "room_deleted"
	EventMemberJoined     = "member_joined"
	EventMemberLeft       = "member_left"
	EventMemberInvited    = "member_invited"
	EventMemberKicked     = "member_kicked"
	EventMemberBanned     = "member_banned"
	EventMemberUnbanned   = "member_unbanned"
	EventMemberMuted      = "member_muted"
	EventRoleChanged      = "role_changed"
	EventOwnerTransferred = "owner_transferred"
)
