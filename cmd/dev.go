package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
)

func newDevCmd(o *options) *cobra.Command {
	c := &cobra.Command{Use: "dev", Short: "Helpers for local development"}
	var addr string
	redis := &cobra.Command{
		Use:   "redis",
		Short: "Run the embedded Redis on its own, so several aurora processes on this host can share it",
		Example: `  aurora dev redis --addr 127.0.0.1:6380 &
  aurora serve --roles=chat --http-addr :8081 --redis-url "redis://127.0.0.1:6380?protocol=2" &
  aurora serve --roles=chat --http-addr :8082 --redis-url "redis://127.0.0.1:6380?protocol=2"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := app.StartEmbeddedRedis(addr)
			if err != nil {
				return err
			}
			defer m.Close()
			fmt.Fprintf(o.stdout, "embedded Redis listening on redis://%s?protocol=2 (keeps nothing on disk); Ctrl-C stops it\n", m.Addr())
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			<-ctx.Done()
			return nil
		},
	}
	redis.Flags().StringVar(&addr, "addr", "127.0.0.1:6380", "address to listen on")
	c.AddCommand(redis)
	return c
}
