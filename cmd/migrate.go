package cmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
)

// migrationJSON is one migration as --json prints it.
type migrationJSON struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"appliedAt,omitempty"`
}

// migrationsJSON is the --json output of migrate status and migrate up.
type migrationsJSON struct {
	Store      string          `json:"store"`
	Migrations []migrationJSON `json:"migrations"`
	Pending    int             `json:"pending"`
	// Applied lists the versions migrate up applied in this run (never
	// null, so scripts can test its length); absent from migrate status.
	Applied *[]int `json:"applied,omitempty"`
}

func toMigrationsJSON(kind string, ms []store.MigrationStatus) migrationsJSON {
	out := migrationsJSON{Store: kind, Migrations: make([]migrationJSON, 0, len(ms))}
	for _, m := range ms {
		j := migrationJSON{Version: m.Version, Name: m.Name, Applied: m.Applied}
		if m.Applied {
			at := m.AppliedAt
			j.AppliedAt = &at
		} else {
			out.Pending++
		}
		out.Migrations = append(out.Migrations, j)
	}
	return out
}

func newMigrateCmd(o *options) *cobra.Command {
	var asJSON bool
	up := func(cmd *cobra.Command, _ []string) error {
		return openStore(cmd, o, false, func(ctx context.Context, cfg *config.Config, s store.Store) error {
			return migrateUp(ctx, o, cfg, s, asJSON)
		})
	}
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's pending schema migrations (same as 'migrate up')",
		Long: "Migrations are numbered steps recorded in the store itself (the migrations table or\n" +
			"collection). 'migrate up' applies the pending ones in order; every aurora process also\n" +
			"does so when it starts, so a new store needs no setup. On MongoDB they include upgrading\n" +
			"a database AuroraChat wrote: point --mongo-url (or MONGO_URL) at it and run 'migrate up'.\n" +
			"Migrations only roll forward. See docs/migrations.md.",
		Example: "  aurora migrate\n" +
			"  aurora migrate status\n" +
			"  MONGO_URL=mongodb://localhost:27017/aurorachat aurora migrate up --json",
		Args: cobra.NoArgs,
		RunE: up,
	}
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply the pending migrations, in order (idempotent)",
		Example: "  aurora migrate up\n" +
			"  aurora migrate up --mongo-url mongodb://localhost:27017/aurorachat --json",
		Args: cobra.NoArgs,
		RunE: up,
	}, &cobra.Command{
		Use:   "status",
		Short: "List the migrations and whether each is applied (changes nothing)",
		Example: "  aurora migrate status\n" +
			"  aurora migrate status --mongo-url mongodb://localhost:27017/aurorachat --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return openStore(cmd, o, false, func(ctx context.Context, _ *config.Config, s store.Store) error {
				ms, err := s.Migrations(ctx)
				if err != nil {
					return fmt.Errorf("read %s store migrations: %w", s.Kind(), err)
				}
				out := toMigrationsJSON(s.Kind(), ms)
				return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
					migrationTable(tw, out)
					if out.Pending > 0 {
						fmt.Fprintf(tw, "\n%d pending: 'aurora migrate up' (or starting aurora) applies them\n", out.Pending)
					}
				})
			})
		},
	})
	return c
}

// migrateUp applies the pending migrations. For people it prints one line
// (scripts match it) and logs each migration this run applied.
func migrateUp(ctx context.Context, o *options, cfg *config.Config, s store.Admin, asJSON bool) error {
	before, err := s.Migrations(ctx)
	if err != nil {
		return fmt.Errorf("read %s store migrations: %w", s.Kind(), err)
	}
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s store: %w", s.Kind(), err)
	}
	after, err := s.Migrations(ctx)
	if err != nil {
		return fmt.Errorf("read %s store migrations: %w", s.Kind(), err)
	}
	wasApplied := make(map[int]bool, len(before))
	for _, m := range before {
		wasApplied[m.Version] = m.Applied
	}
	applied := []int{}
	log := app.NewLogger(cfg.Log, o.stderr)
	for _, m := range after {
		// Applied now by this process or by another one migrating at once.
		if m.Applied && !wasApplied[m.Version] {
			applied = append(applied, m.Version)
			log.Info("migration applied", "store", s.Kind(), "version", m.Version, "name", m.Name)
		}
	}
	out := toMigrationsJSON(s.Kind(), after)
	out.Applied = &applied
	return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "%s store migrated\n", s.Kind())
	})
}

// migrationTable draws the migrations for people.
func migrationTable(tw *tabwriter.Writer, out migrationsJSON) {
	fmt.Fprintf(tw, "%s store\n", out.Store)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS\tAPPLIED AT")
	for _, m := range out.Migrations {
		status, at := "pending", ""
		if m.Applied {
			status, at = "applied", m.AppliedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.Name, status, at)
	}
}
