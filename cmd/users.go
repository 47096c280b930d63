package cmd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app/audit"
	"github.com/auroradev/aurora/app/membership"
	"github.com/auroradev/aurora/app/store"
	"github.com/auroradev/aurora/config"
	"github.com/auroradev/aurora/modules/auth"
)

type userOut struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Disabled  bool      `json:"disabled"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"createdAt"`
	// Password is set only when the command generated one.
	Password string `json:"password,omitempty"`
}

func toUserOut(u store.User) userOut {
	return userOut{ID: u.ID, Username: u.Username, Disabled: u.Disabled, Admin: u.Admin, CreatedAt: u.CreatedAt}
}

// passwordFlags are how create and reset-password take a password: a flag,
// standard input (keeps it out of shell history), or generated and printed.
type passwordFlags struct {
	value string
	stdin bool
}

func (p *passwordFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&p.value, "password", "", "the password (visible in shell history; prefer --password-stdin)")
	c.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of standard input")
}

// get returns the password and whether it was generated.
func (p *passwordFlags) get(in io.Reader) (string, bool, error) {
	switch {
	case p.stdin && p.value != "":
		return "", false, errors.New("give --password or --password-stdin, not both")
	case p.stdin:
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	case p.value != "":
		return p.value, false, nil
	}
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), true, nil
}

func newUsersCmd(o *options) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{Use: "users", Short: "Create, list, disable and reset users"}
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	var createPw passwordFlags
	create := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user (the same rules as registration)",
		Example: `  aurora users create alice --password-stdin < pw.txt
  aurora users create bob            # generates and prints a password
  aurora users create carol --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := createPw.get(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return withAudit(cmd, o, func(ctx context.Context, cfg *config.Config, s store.Store, record func(audit.Entry)) error {
				nu, err := auth.NewUser(args[0], pw, cfg.Auth.BcryptCost)
				if err != nil {
					return err
				}
				u, err := s.CreateUser(ctx, nu)
				if errors.Is(err, store.ErrUserExists) {
					return fmt.Errorf("user %q already exists", args[0])
				}
				if err != nil {
					return fmt.Errorf("create user %q: %w", args[0], err)
				}
				record(audit.Entry{Event: audit.UserCreate, User: u.Username, UserID: u.ID})
				out := toUserOut(u)
				if generated {
					out.Password = pw
				}
				return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "created user %s (id %s)\n", u.Username, u.ID)
					if generated {
						fmt.Fprintf(tw, "password: %s\n", pw)
					}
				})
			})
		},
	}
	createPw.add(create)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Example: "  aurora users list\n  aurora users list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, o, func(ctx context.Context, _ *config.Config, s store.Store) error {
				users, err := s.ListUsers(ctx)
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				out := make([]userOut, 0, len(users))
				for _, u := range users {
					out = append(out, toUserOut(u))
				}
				return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tUSERNAME\tDISABLED\tCREATED AT")
					for _, u := range out {
						fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", u.ID, u.Username, u.Disabled, u.CreatedAt.Format(time.RFC3339))
					}
				})
			})
		},
	}

	// update loads a user by name, lets change modify it, stores it,
	// audits it as event and prints it with what was done; change may set
	// fields of the output.
	update := func(cmd *cobra.Command, name, done string, event audit.Event, change func(cfg *config.Config, u *store.User, out *userOut) error) error {
		return withAudit(cmd, o, func(ctx context.Context, cfg *config.Config, s store.Store, record func(audit.Entry)) error {
			u, err := s.UserByName(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %q", name)
			}
			if err != nil {
				return fmt.Errorf("find user %q: %w", name, err)
			}
			var out userOut
			if err := change(cfg, &u, &out); err != nil {
				return err
			}
			if err := s.UpdateUser(ctx, u); err != nil {
				return fmt.Errorf("update user %q: %w", name, err)
			}
			record(audit.Entry{Event: event, User: u.Username, UserID: u.ID})
			pw := out.Password
			out = toUserOut(u)
			out.Password = pw
			return output(o.stdout, asJSON, out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%s user %s\n", done, u.Username)
				if pw != "" {
					fmt.Fprintf(tw, "password: %s\n", pw)
				}
			})
		})
	}

	var enable bool
	disable := &cobra.Command{
		Use:   "disable USERNAME",
		Short: "Disable a user: logins fail, tokens already issued stop working and every chat replica closes their connections within seconds",
		Example: `  aurora users disable mallory
  aurora users disable mallory --enable   # undo`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			verb, event := "disabled", audit.UserDisable
			if enable {
				verb, event = "enabled", audit.UserEnable
			}
			var id string
			err := update(cmd, args[0], verb, event, func(_ *config.Config, u *store.User, _ *userOut) error {
				u.Disabled = !enable
				if !enable {
					// Tokens issued until now stop working, also once
					// the user is enabled again.
					u.ValidAfter = time.Now()
				}
				id = u.ID
				return nil
			})
			if err != nil || enable {
				return err
			}
			// Replicas see it at their next poll of the store (within a
			// second); told over Redis when one is reachable, they cut
			// the user's connections at once.
			announceDisabled(cmd, o, id)
			return nil
		},
	}
	disable.Flags().BoolVar(&enable, "enable", false, "enable the user again")

	var resetPw passwordFlags
	reset := &cobra.Command{
		Use:   "reset-password USERNAME",
		Short: "Set a new password (generated and printed unless given)",
		Example: `  aurora users reset-password alice --password-stdin < pw.txt
  aurora users reset-password alice --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := resetPw.get(cmd.InOrStdin())
			if err != nil {
				return err
			}
			return update(cmd, args[0], "reset the password of", audit.UserResetPassword, func(cfg *config.Config, u *store.User, out *userOut) error {
				hash, err := auth.HashPassword(pw, cfg.Auth.BcryptCost)
				if err != nil {
					return err
				}
				u.PasswordHash = hash
				if generated {
					out.Password = pw
				}
				return nil
			})
		},
	}
	resetPw.add(reset)

	admin := func(use, short, verb string, event audit.Event, on bool) *cobra.Command {
		return &cobra.Command{
			Use:     use + " USERNAME",
			Short:   short,
			Example: "  aurora users " + use + " alice",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return update(cmd, args[0], verb, event, func(_ *config.Config, u *store.User, _ *userOut) error {
					u.Admin = on
					return nil
				})
			},
		}
	}
	promote := admin("promote", "Make a user a server administrator: they may moderate every public and private room",
		"made a server administrator of", audit.UserPromote, true)
	demote := admin("demote", "Make a server administrator a plain user again", "made a plain user of", audit.UserDemote, false)

	c.AddCommand(create, list, disable, reset, promote, demote)
	return c
}

// announceDisabled tells running chat replicas, over Redis when one is
// reachable, that userID was disabled; without Redis they find out from
// the store within membership.PollInterval.
func announceDisabled(cmd *cobra.Command, o *options, userID string) {
	cfg, _, err := o.load(cmd)
	if err != nil {
		return
	}
	c, err := dialRedis(cfg)
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	ch := membership.Change{UserID: userID, Removed: membership.RemovedDisabled}
	if err := (membership.RedisPublisher{Client: c}).Publish(ctx, ch); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v: replicas close the user's connections at their next poll of the store (within %s)\n",
			err, membership.PollInterval)
	}
}
