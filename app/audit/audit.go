// Package audit is the one vocabulary of Aurora's audit log: the events an
// operator may have to account for later (who registered, who logged in or
// failed to and from where, who disabled a user or created or deleted a
// room), each written as one structured INFO line with msg "audit" into the
// process's normal log, so `jq 'select(.msg=="audit")'` finds them all.
//
// Every audit line comes from Log, so the names of the events, the reasons
// and the attributes are fixed here and nowhere else; the auth role and the
// operator commands only fill in an Entry. User-supplied text (usernames,
// room names) is bounded and cleaned with app.UserInput, and there is no
// field a password could go into.
package audit

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"strconv"

	"github.com/auroradev/aurora/app"
)

// Msg is the message of every audit line.
const Msg = "audit"

// Event names what happened: the value of the "event" attribute.
type Event string

// The audited events. Actions over HTTP carry the client's address, those
// of operator commands the actor.
const (
	UserRegister      Event = "user.register"       // POST /api/auth/register created a user
	UserLogin         Event = "user.login"          // POST /api/auth/login issued a token
	UserLoginFailed   Event = "user.login_failed"   // POST /api/auth/login refused; Reason says why
	UserCreate        Event = "user.create"         // aurora users create
	UserDisable       Event = "user.disable"        // aurora users disable
	UserEnable        Event = "user.enable"         // aurora users disable --enable
	UserResetPassword Event = "user.password_reset" // aurora users reset-password
	UserPromote       Event = "user.promote"        // aurora users promote: a server administrator
	UserDemote        Event = "user.demote"         // aurora users demote
	RoomCreate        Event = "room.create"         // aurora rooms create, POST /api/rooms
	RoomDelete        Event = "room.delete"         // aurora rooms delete, DELETE /api/rooms/{room}
	RoomRetention     Event = "room.retention"      // aurora rooms retention (Note: the new retention)
	// Moderation: Actor/ActorID is the moderator, UserID the target, Note
	// the moderator's reason.
	RoomKick     Event = "room.kick"
	RoomBan      Event = "room.ban"
	RoomUnban    Event = "room.unban"
	RoomMute     Event = "room.mute"
	RoomRole     Event = "room.role"     // a member's role changed (Note: the new role)
	RoomTransfer Event = "room.transfer" // ownership given to UserID
	UserBan      Event = "user.ban"      // POST /api/users/{userId}/disable by a server administrator
)

// Reason says why a login failed: the value of the "reason" attribute.
type Reason string

// The reasons a login fails. The client gets the same 401 for the first
// three; only the audit log tells them apart.
const (
	UnknownUser   Reason = "unknown_user"
	WrongPassword Reason = "wrong_password"
	Disabled      Reason = "disabled"
	// Throttled: the username reached auth.login_max_failures; the
	// password was not checked.
	Throttled Reason = "throttled"
	// IPLimited: the client's address reached auth.login_per_ip; neither
	// the username nor the password was checked.
	IPLimited Reason = "ip_limited"
)

// Actor is who ran an operator command.
type Actor struct {
	// Kind is "cli" for the aurora command line.
	Kind string
	// OSUser is the operating-system account the command ran as, and
	// SudoUser the one that ran it through sudo ($SUDO_USER), if any. Both
	// are what the machine says, not an authentication: whoever can run
	// the command can also change its environment.
	OSUser   string
	SudoUser string
}

// CLI is the actor of an aurora command run on this machine: the OS user
// it runs as (its uid when the account has no name).
func CLI() Actor {
	a := Actor{Kind: "cli", SudoUser: os.Getenv("SUDO_USER")}
	if u, err := user.Current(); err == nil && u.Username != "" {
		a.OSUser = u.Username
	} else {
		a.OSUser = "uid:" + strconv.Itoa(os.Getuid())
	}
	return a
}

// Entry is one audited action. Empty fields are left out of the line.
type Entry struct {
	Event Event
	// User is the username as the client sent it (a failed login) or as
	// stored; it is logged bounded (app.UserInput).
	User   string
	UserID string
	// Room is the room's name, logged bounded.
	Room string
	// IP is the client's address (app.ClientIP, which honours
	// http.trusted_proxies), for actions over HTTP.
	IP     netip.Addr
	Reason Reason
	// Actor is set for operator commands.
	Actor Actor
	// ActorID is the user id of who acted over the API (a moderator).
	ActorID string
	// Note is free text a moderator gave (a kick's or ban's reason),
	// logged bounded.
	Note string
}

// Log writes e as one INFO line with msg "audit" to log. Over HTTP, pass the
// request's logger (app.Logger), so the line carries the request id ("req")
// like every other line of that request.
func Log(ctx context.Context, log *slog.Logger, e Entry) {
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs, slog.String("event", string(e.Event)))
	if e.User != "" {
		attrs = append(attrs, slog.Any("user", app.UserInput(e.User)))
	}
	if e.UserID != "" {
		attrs = append(attrs, slog.String("user_id", e.UserID))
	}
	if e.Room != "" {
		attrs = append(attrs, slog.Any("room", app.UserInput(e.Room)))
	}
	if e.IP.IsValid() {
		attrs = append(attrs, slog.String("ip", e.IP.String()))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", string(e.Reason)))
	}
	if e.ActorID != "" {
		attrs = append(attrs, slog.String("actor_id", e.ActorID))
	}
	if e.Note != "" {
		attrs = append(attrs, slog.Any("note", app.UserInput(e.Note)))
	}
	if e.Actor.Kind != "" {
		attrs = append(attrs, slog.String("actor", e.Actor.Kind))
		if e.Actor.OSUser != "" {
			attrs = append(attrs, slog.Any("os_user", app.UserInput(e.Actor.OSUser)))
		}
		if e.Actor.SudoUser != "" {
			attrs = append(attrs, slog.Any("sudo_user", app.UserInput(e.Actor.SudoUser)))
		}
	}
	log.LogAttrs(ctx, slog.LevelInfo, Msg, attrs...)
}
