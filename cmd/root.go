// Package cmd is aurora's command line (cobra): serve, version, config,
// migrate and the operator commands. Every command reads the same
// configuration as serve.
package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/config"

	// The modules register themselves with app: the shared infrastructure
	// (redis, store, tokens) and each role. A new role is one more import.
	_ "github.com/auroradev/aurora/app/infra"
	_ "github.com/auroradev/aurora/modules/auth"
	_ "github.com/auroradev/aurora/modules/chat"
	_ "github.com/auroradev/aurora/modules/ingest"
)

// Execute runs the command line and returns the process exit code.
func Execute() int {
	return Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs the command line with args; tests call it in process.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "aurora:", err)
		return 1
	}
	return 0
}

// options are the flags every command shares.
type options struct {
	configFile string
	stdout     io.Writer
	stderr     io.Writer
}

// load reads the configuration, with the flags the user set on cmd, and
// builds the logger. The roles it accepts are the registry's.
func (o *options) load(cmd *cobra.Command) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(o.configFile, cmd.Flags(), app.Roles())
	if err != nil {
		return nil, nil, err
	}
	return cfg, app.NewLogger(cfg.Log, o.stderr), nil
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	o := &options{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "aurora",
		Short:         "Aurora: a horizontally scalable real-time chat server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&o.configFile, "config", "", "config file (YAML), e.g. aurora.yaml")
	pf.String("log-level", "", "log level: debug, info, warn, error")
	pf.String("data-dir", "", "directory of the embedded store and generated secret (default ./data)")
	pf.String("redis-url", "", "Redis URL, e.g. redis://localhost:6379 (default: embedded)")
	pf.String("mongo-url", "", "MongoDB URL, e.g. mongodb://localhost:27017/aurorachat (default: embedded SQLite)")

	root.AddCommand(
		newServeCmd(o),
		newVersionCmd(o),
		newConfigCmd(o),
		newMigrateCmd(o),
		newDevCmd(o),
		newStreamsCmd(o),
		newUsersCmd(o),
		newRoomsCmd(o),
		newCheckCmd(o),
		newBenchCmd(o),
	)
	return root
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// kills the process at once.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			signal.Stop(ch)
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "aurora: second signal, exiting now")
			os.Exit(130)
		case <-parent.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
