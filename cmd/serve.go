package cmd

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/web"
)

func newServeCmd(o *options) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run Aurora's roles (default: all of them)",
		Example: `  aurora serve                       # every role, embedded stores
  aurora serve --roles=chat          # one role, e.g. one Kubernetes replica set
  aurora serve --redis-url redis://localhost:6379 --mongo-url mongodb://localhost:27017/aurorachat`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := o.load(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd.Context())
			defer cancel()
			// The runtime imports neither the web UI nor a certificate
			// source: both are handed in.
			opts := []app.Option{app.WithPage(http.FileServerFS(web.Files))}
			tlsSrc, err := infra.ServerTLS(cfg, log)
			if err != nil {
				return err
			}
			if tlsSrc != nil {
				opts = append(opts, app.WithTLS(tlsSrc))
			}
			return app.New(cfg, log, opts...).Run(ctx)
		},
	}
	c.Flags().StringSlice("roles", nil, "roles to run: "+strings.Join(app.Roles(), ", ")+" (comma separated; default all)")
	c.Flags().String("http-addr", "", "HTTP listen address (default :8080, or :$PORT)")
	return c
}
