package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
)

func newMigrateCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "migrate",
		Short:   "Create the store's tables, collections and indexes (idempotent)",
		Example: "  aurora migrate\n  aurora migrate --mongo-url mongodb://localhost:27017/aurorachat",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := o.load(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := app.OpenStore(ctx, &app.Host{Config: cfg, Log: log})
			if err != nil {
				return err
			}
			defer s.Close(ctx)
			if err := s.Migrate(ctx); err != nil {
				return fmt.Errorf("migrate %s store: %w", s.Kind(), err)
			}
			_, err = fmt.Fprintf(o.stdout, "%s store migrated\n", s.Kind())
			return err
		},
	}
}
