package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// withMembership runs fn with the room actions of an operator: the
// configured store (migrated) and, when a Redis is reachable, the message
// stream (room events) and the replicas' change announcements. With no
// Redis the change is made in the store alone, and replicas see it once
// their cached copy runs out (membership.CacheTTL); the command says so.
func withMembership(cmd *cobra.Command, o *options, fn func(ctx context.Context, svc *membership.Service, s store.Store) error) error {
	return openStoreLog(cmd, o, true, func(ctx context.Context, cfg *config.Config, log *slog.Logger, s store.Store) error {
		svc := &membership.Service{Store: s, Log: log}
		if c, err := dialRedis(cfg); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: no Redis reachable (%v): the change is stored, but no room event is appended "+
				"and running chat replicas apply it within %s\n", err, membership.CacheTTL)
		} else {
			defer c.Close()
			svc.Events = membership.StreamEvents{Client: c, Shards: bus.Shards(cfg.Bus.Shards)}
			svc.Changes = membership.RedisPublisher{Client: c}
		}
		return fn(ctx, svc, s)
	})
}

// userID resolves a username given on the command line.
func userID(ctx context.Context, s store.Users, name string) (store.User, error) {
	u, err := s.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return u, fmt.Errorf("no user %q", name)
	}
	if err != nil {
		return u, fmt.Errorf("find user %q: %w", name, err)
	}
	return u, nil
}

// onMember is the RunE of a subcommand acting on one member (ROOM
// USERNAME [more]): the username resolved, then act with the membership
// service; rest is what follows the username on the command line.
func onMember(o *options, act func(ctx context.Context, svc *membership.Service, room string, u store.User, rest []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return withMembership(cmd, o, func(ctx context.Context, svc *membership.Service, s store.Store) error {
			u, err := userID(ctx, s, args[1])
			if err != nil {
				return err
			}
			return act(ctx, svc, args[0], u, args[2:])
		})
	}
}

type memberJSON struct {
	UserID     string     `json:"userId"`
	Username   string     `json:"username"`
	Role       string     `json:"role"`
	JoinedAt   time.Time  `json:"joinedAt"`
	MutedUntil *time.Time `json:"mutedUntil,omitempty"`
}

type banJSON struct {
	UserID    string     `json:"userId"`
	Reason    string     `json:"reason,omitempty"`
	By        string     `json:"by,omitempty"`
	At        time.Time  `json:"at"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// addModerationCmds adds the member and moderation subcommands of
// `aurora rooms`. Each runs as membership.Operator (a server
// administrator's rights) and is audited like the same action over HTTP.
func addModerationCmds(c *cobra.Command, o *options, asJSON *bool) {
	done := func(msg string, v any) error {
		return output(o.stdout, *asJSON, v, func(tw *tabwriter.Writer) { fmt.Fprintln(tw, msg) })
	}
	c.AddCommand(&cobra.Command{
		Use:     "members ROOM",
		Short:   "List a room's members and their roles",
		Example: "  aurora rooms members dev\n  aurora rooms members dev --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMembership(cmd, o, func(ctx context.Context, svc *membership.Service, _ store.Store) error {
				ms, err := svc.Members(ctx, membership.Operator, args[0])
				if err != nil {
					return err
				}
				now := time.Now()
				out := make([]memberJSON, 0, len(ms))
				for _, m := range ms {
					j := memberJSON{UserID: m.UserID, Username: m.Username, Role: m.Role, JoinedAt: m.JoinedAt}
					if m.MutedUntil.After(now) {
						j.MutedUntil = &m.MutedUntil
					}
					out = append(out, j)
				}
				return output(o.stdout, *asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "USERNAME\tROLE\tJOINED\tMUTED UNTIL")
					for _, m := range out {
						muted := "-"
						if m.MutedUntil != nil {
							muted = m.MutedUntil.Format(time.RFC3339)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Username, m.Role, m.JoinedAt.Format(time.RFC3339), muted)
					}
				})
			})
		},
	})

	var addRole string
	add := &cobra.Command{
		Use:     "add ROOM USERNAME",
		Short:   "Make a user a member of a room without an invitation (private rooms included)",
		Example: "  aurora rooms add ops alice\n  aurora rooms add ops bob --role admin",
		Args:    cobra.ExactArgs(2),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, _ []string) error {
			if err := svc.AddMember(ctx, membership.Operator, room, u.ID, addRole); err != nil {
				return err
			}
			return done("added "+u.Username+" to "+room+" as "+addRole, map[string]any{"added": u.ID, "room": room, "role": addRole})
		}),
	}
	add.Flags().StringVar(&addRole, "role", store.RoleMember, "admin, member or readonly (make an owner with: rooms role ROOM USERNAME owner)")

	var reason string
	kick := &cobra.Command{
		Use:     "kick ROOM USERNAME",
		Short:   "Remove a member from a room (they may rejoin a public room; ban to keep them out)",
		Example: `  aurora rooms kick dev mallory --reason "spam"`,
		Args:    cobra.ExactArgs(2),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, _ []string) error {
			if err := svc.Kick(ctx, membership.Operator, room, u.ID, reason); err != nil {
				return err
			}
			return done("kicked "+u.Username+" from "+room, map[string]any{"kicked": u.ID, "room": room})
		}),
	}
	kick.Flags().StringVar(&reason, "reason", "", "why (shown to the member and in the audit log)")

	var banReason string
	var banFor time.Duration
	ban := &cobra.Command{
		Use:     "ban ROOM USERNAME",
		Short:   "Ban a user from a room: removed, and cannot rejoin or be invited until unbanned or the ban ends",
		Example: `  aurora rooms ban dev mallory --reason "spam" --for 24h`,
		Args:    cobra.ExactArgs(2),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, _ []string) error {
			var until time.Time
			if banFor > 0 {
				until = time.Now().Add(banFor)
			}
			if err := svc.Ban(ctx, membership.Operator, room, u.ID, banReason, until); err != nil {
				return err
			}
			return done("banned "+u.Username+" from "+room, map[string]any{"banned": u.ID, "room": room, "expiresAt": optTime(until)})
		}),
	}
	ban.Flags().StringVar(&banReason, "reason", "", "why")
	ban.Flags().DurationVar(&banFor, "for", 0, "how long (0: until unbanned)")

	unban := &cobra.Command{
		Use:     "unban ROOM USERNAME",
		Short:   "Lift a ban",
		Example: "  aurora rooms unban dev mallory",
		Args:    cobra.ExactArgs(2),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, _ []string) error {
			if err := svc.Unban(ctx, membership.Operator, room, u.ID); err != nil {
				return err
			}
			return done("unbanned "+u.Username+" from "+room, map[string]any{"unbanned": u.ID, "room": room})
		}),
	}

	bans := &cobra.Command{
		Use:     "bans ROOM",
		Short:   "List a room's bans",
		Example: "  aurora rooms bans dev --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMembership(cmd, o, func(ctx context.Context, svc *membership.Service, _ store.Store) error {
				bs, err := svc.Bans(ctx, membership.Operator, args[0])
				if err != nil {
					return err
				}
				now := time.Now()
				out := make([]banJSON, 0, len(bs))
				for _, b := range bs {
					if b.Active(now) {
						out = append(out, banJSON{UserID: b.UserID, Reason: b.Reason, By: b.By, At: b.At, ExpiresAt: optTime(b.ExpiresAt)})
					}
				}
				return output(o.stdout, *asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "USER ID\tREASON\tAT\tEXPIRES")
					for _, b := range out {
						exp := "never"
						if b.ExpiresAt != nil {
							exp = b.ExpiresAt.Format(time.RFC3339)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.UserID, b.Reason, b.At.Format(time.RFC3339), exp)
					}
				})
			})
		},
	}

	var muteFor time.Duration
	mute := &cobra.Command{
		Use:     "mute ROOM USERNAME",
		Short:   "Stop a member sending to a room for a while (--for 0 unmutes)",
		Example: "  aurora rooms mute dev mallory --for 1h\n  aurora rooms mute dev mallory --for 0",
		Args:    cobra.ExactArgs(2),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, _ []string) error {
			var until time.Time
			if muteFor > 0 {
				until = time.Now().Add(muteFor)
			}
			if err := svc.Mute(ctx, membership.Operator, room, u.ID, until); err != nil {
				return err
			}
			return done("muted "+u.Username+" in "+room, map[string]any{"muted": u.ID, "room": room, "until": optTime(until)})
		}),
	}
	mute.Flags().DurationVar(&muteFor, "for", time.Hour, "how long")

	role := &cobra.Command{
		Use:     "role ROOM USERNAME ROLE",
		Short:   "Set a member's role: admin, member or readonly; owner transfers ownership",
		Example: "  aurora rooms role dev alice admin\n  aurora rooms role dev bob owner",
		Args:    cobra.ExactArgs(3),
		RunE: onMember(o, func(ctx context.Context, svc *membership.Service, room string, u store.User, rest []string) error {
			if err := svc.SetRole(ctx, membership.Operator, room, u.ID, rest[0]); err != nil {
				return err
			}
			return done(u.Username+" is "+rest[0]+" of "+room, map[string]any{"userId": u.ID, "room": room, "role": rest[0]})
		}),
	}
	c.AddCommand(add, kick, ban, unban, bans, mute, role)
}
