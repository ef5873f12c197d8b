package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/server"
)

// storeFlags locate the credential store for the offline commands: the
// same store a running proxy follows (its credential file, or with
// credentials.store: etcd in --config, the shared etcd store), so its
// changes are picked up live.
type storeFlags struct {
	configPath, file string
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&f.configPath, "config", "c", "", "take the store from this config file (credentials.file, or credentials.etcd with store etcd)")
	cmd.PersistentFlags().StringVar(&f.file, "credentials", "", "credential file (default ./credentials.yaml)")
}

// open opens the store; done closes it.
func (f *storeFlags) open() (store credentials.Store, done func(), err error) {
	cfg := config.Default()
	if f.configPath != "" {
		if cfg, err = config.Load(f.configPath); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Credentials.Store == config.StoreEtcd && f.file == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		es, err := server.OpenEtcdStore(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
		if err != nil {
			return nil, nil, err
		}
		return es, func() { es.Close() }, nil
	}
	if f.file != "" {
		cfg.Credentials.File = f.file
	}
	rootPassword, err := cfg.Common.Security.RootPassword()
	if err != nil {
		return nil, nil, err
	}
	fs, err := credentials.OpenFile(cfg.Credentials.File, credentials.FileOptions{
		DefaultRootPassword: rootPassword,
	})
	return fs, func() {}, err
}

// update opens the store and applies one change, atomically written.
func (f *storeFlags) update(mutate func(*credentials.Set) error) error {
	store, done, err := f.open()
	if err != nil {
		return err
	}
	defer done()
	return store.Update(context.Background(), mutate)
}

// table writes aligned rows under a header, for the list commands.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func userCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users in the credential store (offline; a running proxy follows the file or etcd)",
	}
	sf.register(cmd)

	var passwordStdin bool
	var roles []string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user (password from a prompt, or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := credentials.ValidateUsername(name); err != nil {
				return err
			}
			hash, err := readPasswordHash(cmd, passwordStdin, "Password for "+name+": ")
			if err != nil {
				return err
			}
			return sf.update(func(s *credentials.Set) error {
				if _, ok := s.User(name); ok {
					return fmt.Errorf("user already exists: %s", name)
				}
				for _, r := range roles {
					if !s.RoleExists(r) {
						return fmt.Errorf("unknown role %q (admin, public, or a role created with create_role)", r)
					}
				}
				now := time.Now().UTC()
				s.PutUser(&credentials.User{Name: name, PasswordHash: hash, Roles: slices.Clone(roles), Created: now, Updated: now})
				return nil
			})
		},
	}
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (first line)")
	add.Flags().StringSliceVar(&roles, "role", nil, "built-in role to grant: admin or public (repeatable)")

	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password (no old password needed: this edits the file)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			hash, err := readPasswordHash(cmd, passwordStdin, "New password for "+name+": ")
			if err != nil {
				return err
			}
			return sf.update(func(s *credentials.Set) error {
				u, ok := s.User(name)
				if !ok {
					return fmt.Errorf("user not found: %s", name)
				}
				u.PasswordHash, u.Updated = hash, time.Now().UTC()
				return nil
			})
		},
	}
	passwd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (first line)")

	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete a user and its API keys (root cannot be deleted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == credentials.RootUser {
				return errors.New("root user cannot be deleted")
			}
			return sf.update(func(s *credentials.Set) error {
				if !s.DeleteUser(name) {
					return fmt.Errorf("user not found: %s", name)
				}
				return nil
			})
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, done, err := sf.open()
			if err != nil {
				return err
			}
			defer done()
			var rows [][]string
			for _, u := range store.Current().Users() {
				rows = append(rows, []string{u.Name, strings.Join(u.Roles, ","), u.Updated.Format(time.RFC3339)})
			}
			return table(cmd.OutOrStdout(), "NAME\tROLES\tUPDATED", rows)
		},
	}

	var replace bool
	imp := &cobra.Command{
		Use:   "import HTPASSWD_FILE",
		Short: "Import bcrypt users from an htpasswd file (nginx, Traefik, Apache htpasswd -B)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			imported, err := credentials.ParseHtpasswd(f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			err = sf.update(func(s *credentials.Set) error {
				now := time.Now().UTC()
				for _, iu := range imported {
					if u, ok := s.User(iu.Name); ok {
						if !replace {
							return fmt.Errorf("user already exists: %s (use --replace to overwrite its password)", iu.Name)
						}
						u.PasswordHash, u.Updated = iu.Hash, now
						continue
					}
					s.PutUser(&credentials.User{Name: iu.Name, PasswordHash: iu.Hash, Created: now, Updated: now})
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d users\n", len(imported))
			return nil
		},
	}
	imp.Flags().BoolVar(&replace, "replace", false, "overwrite the password of users that already exist")

	cmd.AddCommand(add, passwd, del, list, imp, tagsCmd(&sf))
	return cmd
}

// readPasswordHash reads a password from the terminal without echo, or the
// first line of stdin, applies the password rule and returns its hash.
func readPasswordHash(cmd *cobra.Command, fromStdin bool, prompt string) (string, error) {
	var password string
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		password = string(b)
	} else {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if err := credentials.ValidatePassword(password); err != nil {
		return "", err
	}
	return credentials.HashPassword(password)
}
