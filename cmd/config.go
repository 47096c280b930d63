package cmd

import (
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newConfigCmd(o *options) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect the configuration"}
	print := &cobra.Command{
		Use:     "print",
		Short:   "Print the effective configuration, secrets masked",
		Example: "  aurora config print --config aurora.yaml\n  AURORA_REDIS_URL=redis://localhost:6379 aurora config print",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := o.load(cmd)
			if err != nil {
				return err
			}
			enc := yaml.NewEncoder(o.stdout)
			enc.SetIndent(2)
			if err := enc.Encode(cfg.Masked().Map()); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	c.AddCommand(print)
	return c
}
