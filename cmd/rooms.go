package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/audit"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// withStore opens the configured store, migrated, for one operator command.
func withStore(cmd *cobra.Command, o *options, fn func(ctx context.Context, cfg *config.Config, s store.Store) error) error {
	return openStore(cmd, o, true, fn)
}

// withAudit is withStore for a command that changes users or rooms: its
// record writes the change's audit line (audit.Log) to the command's log,
// with the actor filled in (actor "cli" and the OS user). Call it once the
// change is made.
func withAudit(cmd *cobra.Command, o *options, fn func(ctx context.Context, cfg *config.Config, s store.Store, record func(audit.Entry)) error) error {
	return openStoreLog(cmd, o, true, func(ctx context.Context, cfg *config.Config, log *slog.Logger, s store.Store) error {
		actor := audit.CLI()
		return fn(ctx, cfg, s, func(e audit.Entry) {
			e.Actor = actor
			audit.Log(ctx, log, e)
		})
	})
}

// openStore opens the configured store for one operator command, migrating
// it first when migrate is set ('migrate status' must see it as it is).
func openStore(cmd *cobra.Command, o *options, migrate bool, fn func(ctx context.Context, cfg *config.Config, s store.Store) error) error {
	return openStoreLog(cmd, o, migrate, func(ctx context.Context, cfg *config.Config, _ *slog.Logger, s store.Store) error {
		return fn(ctx, cfg, s)
	})
}

// openStoreLog is openStore also handing fn the command's logger.
func openStoreLog(cmd *cobra.Command, o *options, migrate bool, fn func(ctx context.Context, cfg *config.Config, log *slog.Logger, s store.Store) error) error {
	cfg, log, err := o.load(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	s, err := infra.OpenStore(ctx, &app.Host{Config: cfg, Log: log})
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	if migrate {
		if err := s.Migrate(ctx); err != nil {
			return fmt.Errorf("prepare %s store: %w", s.Kind(), err)
		}
	}
	return fn(ctx, cfg, log, s)
}

type roomJSON struct {
	Name      string    `json:"name"`
	Type      string    `json:"type,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func toRoomJSON(r store.Room) roomJSON {
	return roomJSON{Name: r.Name, Type: r.Type, Topic: r.Topic, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
}

func newRoomsCmd(o *options) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "rooms",
		Short: "List, create and delete rooms; list members; kick, ban, mute; set roles",
		Long: "Rooms are public (in the directory, anyone may join), private (by invitation) or direct\n" +
			"(two users). A WebSocket join of an unused name creates a public room unless\n" +
			"chat.create_on_join is false. Deleting a room removes it and its members, not its messages.\n" +
			"The member and moderation commands act with a server administrator's rights.",
	}
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(&cobra.Command{
		Use:     "list",
		Short:   "List rooms",
		Example: "  aurora rooms list\n  aurora rooms list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, o, func(ctx context.Context, _ *config.Config, s store.Store) error {
				rooms, err := s.ListRooms(ctx)
				if err != nil {
					return fmt.Errorf("list rooms: %w", err)
				}
				out := make([]roomJSON, 0, len(rooms))
				for _, r := range rooms {
					out = append(out, toRoomJSON(r))
				}
				return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "NAME\tTYPE\tCREATED BY\tCREATED AT\tTOPIC")
					for _, r := range out {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Type, r.CreatedBy, r.CreatedAt.Format(time.RFC3339), r.Topic)
					}
				})
			})
		},
	})
	var roomType, topic string
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a room (" + bus.RoomRule + ")",
		Example: "  aurora rooms create dev\n  aurora rooms create announcements --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !bus.ValidRoom(name) {
				return fmt.Errorf("room name %q: %s", name, bus.RoomRule)
			}
			return withAudit(cmd, o, func(ctx context.Context, _ *config.Config, s store.Store, record func(audit.Entry)) error {
				if roomType != store.RoomPublic && roomType != store.RoomPrivate {
					return fmt.Errorf("--type must be public or private")
				}
				r, err := s.CreateRoom(ctx, store.Room{Name: name, Type: roomType, Topic: topic, CreatedBy: "aurora-cli"}, nil)
				if errors.Is(err, store.ErrRoomExists) {
					return fmt.Errorf("room %q already exists", name)
				}
				if err != nil {
					return fmt.Errorf("create room %q: %w", name, err)
				}
				record(audit.Entry{Event: audit.RoomCreate, Room: r.Name})
				return output(o.stdout, asJSON, toRoomJSON(r), func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "created room %s\n", r.Name)
				})
			})
		},
	}
	create.Flags().StringVar(&roomType, "type", store.RoomPublic, "public or private")
	create.Flags().StringVar(&topic, "topic", "", "the room's topic")
	c.AddCommand(create)
	c.AddCommand(&cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a room's entry (its messages stay)",
		Example: "  aurora rooms delete dev",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return withMembership(cmd, o, func(ctx context.Context, svc *membership.Service, _ store.Store) error {
				// The service tells running replicas, so members' connections
				// leave the room; it also writes the audit line.
				err := svc.DeleteRoom(ctx, membership.Operator, name)
				if errors.Is(err, membership.ErrNotFound) {
					return fmt.Errorf("room %q does not exist", name)
				}
				if err != nil {
					return fmt.Errorf("delete room %q: %w", name, err)
				}
				return output(o.stdout, asJSON, map[string]any{"deleted": name}, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "deleted room %s\n", name)
				})
			})
		},
	})
	c.AddCommand(newRetentionCmd(o, &asJSON))
	addModerationCmds(c, o, &asJSON)
	return c
}

// retentionJSON is a room's retention as `aurora rooms retention` prints
// it: the room's own setting ("default", "forever" or a duration) and what
// applies with the server's default (ingest.retention).
type retentionJSON struct {
	Room      string `json:"room"`
	Retention string `json:"retention"`
	Effective string `json:"effective"`
	// EffectiveSeconds is Effective in seconds; 0 keeps forever.
	EffectiveSeconds int64 `json:"effectiveSeconds"`
}

func toRetentionJSON(name string, d, def time.Duration) retentionJSON {
	out := retentionJSON{Room: name}
	eff := d
	switch d {
	case store.RetainForever:
		out.Retention, eff = "forever", 0
	case 0:
		out.Retention, eff = "default", max(def, 0)
	default:
		out.Retention = d.String()
	}
	out.Effective = "forever"
	if eff > 0 {
		out.Effective, out.EffectiveSeconds = eff.String(), int64(eff/time.Second)
	}
	return out
}

// parseRetention reads a retention value: forever, default, a Go duration
// (720h) or a number of days (30d), positive.
func parseRetention(s string) (time.Duration, error) {
	switch s {
	case "forever":
		return store.RetainForever, nil
	case "default":
		return 0, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && !strings.ContainsAny(days, "hmsµun.") {
		var n int64
		n, err = strconv.ParseInt(days, 10, 64)
		if err == nil && (n < 1 || n > int64(math.MaxInt64/(24*time.Hour))) {
			err = errors.New("out of range")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention %q: want a positive duration (720h, 30d), forever or default", s)
	}
	if d < time.Minute {
		return 0, fmt.Errorf("retention %q: at least 1m", s)
	}
	return d, nil
}

func newRetentionCmd(o *options, asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "retention ROOM [DURATION|forever|default]",
		Short: "Show or set how long a room's messages are kept",
		Long: "Messages (and their attachments) older than a room's retention are deleted by the ingest\n" +
			"role in the background. A room keeps the server's default (ingest.retention, 0: forever)\n" +
			"unless set here: a duration (720h, 30d), forever, or default to follow the server's again.",
		Example: "  aurora rooms retention general\n  aurora rooms retention general 30d\n" +
			"  aurora rooms retention announcements forever --json\n  aurora rooms retention general default",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !bus.ValidRoom(name) {
				return fmt.Errorf("room name %q: %s", name, bus.RoomRule)
			}
			var set *time.Duration
			if len(args) == 2 {
				d, err := parseRetention(args[1])
				if err != nil {
					return err
				}
				set = &d
			}
			return withAudit(cmd, o, func(ctx context.Context, cfg *config.Config, s store.Store, record func(audit.Entry)) error {
				if set != nil {
					err := s.SetRetention(ctx, name, *set)
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("room %q does not exist", name)
					}
					if err != nil {
						return fmt.Errorf("set the retention of room %q: %w", name, err)
					}
					record(audit.Entry{Event: audit.RoomRetention, Room: name, Note: args[1]})
				}
				r, err := s.Room(ctx, name)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("room %q does not exist", name)
				}
				if err != nil {
					return fmt.Errorf("read room %q: %w", name, err)
				}
				out := toRetentionJSON(name, r.Retention, cfg.Ingest.Retention)
				return output(o.stdout, *asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ROOM\tRETENTION\tEFFECTIVE")
					fmt.Fprintf(tw, "%s\t%s\t%s\n", out.Room, out.Retention, out.Effective)
				})
			})
		},
	}
}
