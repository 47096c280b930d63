package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app/embeddedredis"
)

func newDevCmd(o *options) *cobra.Command {
	c := &cobra.Command{Use: "dev", Short: "Helpers for local development"}
	var addr, password string
	redis := &cobra.Command{
		Use:   "redis",
		Short: "Run the embedded Redis on its own, so several aurora processes on this host can share it",
		Long: "Runs the Redis that `aurora serve` embeds, on its own: on loopback only, with a password\n" +
			"(random unless --password gives one) that the printed URL carries. Keys expire on the wall clock as in Redis.",
		Example: `  aurora dev redis --addr 127.0.0.1:6380 &
  aurora serve --roles=chat --http-addr :8081 --redis-url "redis://:PASSWORD@127.0.0.1:6380?protocol=2" &
  aurora serve --roles=chat --http-addr :8082 --redis-url "redis://:PASSWORD@127.0.0.1:6380?protocol=2"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := embeddedredis.Start(addr, embeddedredis.Options{Password: password})
			if err != nil {
				return err
			}
			defer m.Close()
			fmt.Fprintf(o.stdout, "embedded Redis listening on %s (keeps nothing on disk); Ctrl-C stops it\n", m.URL())
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			<-ctx.Done()
			return nil
		},
	}
	redis.Flags().StringVar(&addr, "addr", "127.0.0.1:6380", "loopback address to listen on")
	redis.Flags().StringVar(&password, "password", "", "password clients must give (default: a random one, printed in the URL)")
	c.AddCommand(redis)
	return c
}
