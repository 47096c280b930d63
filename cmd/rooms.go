package cmd

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// withStore opens the configured store, migrated, for one operator command.
func withStore(cmd *cobra.Command, o *options, fn func(ctx context.Context, cfg *config.Config, s store.Store) error) error {
	return openStore(cmd, o, true, fn)
}

// openStore opens the configured store for one operator command, migrating
// it first when migrate is set ('migrate status' must see it as it is).
func openStore(cmd *cobra.Command, o *options, migrate bool, fn func(ctx context.Context, cfg *config.Config, s store.Store) error) error {
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
	return fn(ctx, cfg, s)
}

type roomJSON struct {
	Name      string    `json:"name"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func newRoomsCmd(o *options) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "rooms",
		Short: "List, create and delete rooms",
		Long: "Rooms listed here were created explicitly. Any authenticated user may also join a room\n" +
			"by name without it being listed; deleting a room removes its entry, not its messages.",
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
					out = append(out, roomJSON(r))
				}
				return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "NAME\tCREATED BY\tCREATED AT")
					for _, r := range out {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.CreatedBy, r.CreatedAt.Format(time.RFC3339))
					}
				})
			})
		},
	})
	c.AddCommand(&cobra.Command{
		Use:     "create NAME",
		Short:   "Create a room (" + bus.RoomRule + ")",
		Example: "  aurora rooms create dev\n  aurora rooms create announcements --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !bus.ValidRoom(name) {
				return fmt.Errorf("room name %q: %s", name, bus.RoomRule)
			}
			return withStore(cmd, o, func(ctx context.Context, _ *config.Config, s store.Store) error {
				r, err := s.CreateRoom(ctx, store.Room{Name: name, CreatedBy: "aurora-cli"})
				if errors.Is(err, store.ErrRoomExists) {
					return fmt.Errorf("room %q already exists", name)
				}
				if err != nil {
					return fmt.Errorf("create room %q: %w", name, err)
				}
				return output(o.stdout, asJSON, roomJSON(r), func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "created room %s\n", r.Name)
				})
			})
		},
	})
	c.AddCommand(&cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a room's entry (its messages stay)",
		Example: "  aurora rooms delete dev",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return withStore(cmd, o, func(ctx context.Context, _ *config.Config, s store.Store) error {
				err := s.DeleteRoom(ctx, name)
				if errors.Is(err, store.ErrNotFound) {
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
	return c
}
