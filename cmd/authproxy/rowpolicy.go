package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/rbac"
	"github.com/authproxy/authproxy/usermgmt"
)

// withService opens the store and runs f with the user API over it, as an
// operator at the store needs no privilege: the rules (names, actions,
// roles, tag keys, limits) are the Service's, the same as over gRPC and
// REST.
func (f *storeFlags) withService(run func(s *usermgmt.Service, store credentials.Store) error) error {
	store, done, err := f.open()
	if err != nil {
		return err
	}
	defer done()
	s := usermgmt.NewService(usermgmt.Options{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return run(s, store)
}

// operator is the CLI's caller: not authenticated, so no privilege is
// checked, as Milvus does with authorization off.
var operator = usermgmt.Caller{Principal: rbac.Principal{User: "authproxy-cli"}}

func policyCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage row policies in the credential store (offline; a running proxy follows the file or etcd)",
	}
	sf.register(cmd)
	var db, collection string
	where := func(c *cobra.Command) {
		c.Flags().StringVar(&db, "db", "default", "database of the collection")
		c.Flags().StringVar(&collection, "collection", "", "collection the policy belongs to")
	}

	var d usermgmt.RowPolicyDraft
	var actions []string
	create := &cobra.Command{
		Use:   "create NAME --collection C --action query [--action ...] --role R [--role ...] [--using EXPR] [--check EXPR]",
		Short: "Create a row policy: the roles' rows for the actions are those of --using (reads, deletes) and --check (inserts, upserts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.Name, d.DB, d.Collection = args[0], db, collection
			d.Actions = nil
			for _, a := range actions {
				action, err := usermgmt.ParseRowPolicyAction(a)
				if err != nil {
					return err
				}
				d.Actions = append(d.Actions, action)
			}
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				return s.CreateRowPolicy(context.Background(), operator, d)
			})
		},
	}
	where(create)
	create.Flags().StringSliceVar(&actions, "action", nil, "query, search, insert, delete or upsert (repeatable)")
	create.Flags().StringSliceVar(&d.Roles, "role", nil, "role the policy applies to (repeatable)")
	create.Flags().StringVar(&d.UsingExpr, "using", "", "filter of the rows the roles may read and delete, e.g. tenant == $current_user_tags['tenant']")
	create.Flags().StringVar(&d.CheckExpr, "check", "", "condition every inserted or upserted row must meet")
	create.Flags().StringVar(&d.Description, "description", "", "what the policy is for")

	drop := &cobra.Command{
		Use:   "drop NAME --collection C",
		Short: "Drop a row policy (dropping one that does not exist succeeds)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				return s.DropRowPolicy(context.Background(), operator, db, collection, args[0])
			})
		},
	}
	where(drop)

	list := &cobra.Command{
		Use:   "list [--collection C]",
		Short: "List row policies: of one collection, or all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sf.withService(func(s *usermgmt.Service, store credentials.Store) error {
				policies := store.Current().AllRowPolicies()
				if collection != "" {
					var err error
					if policies, _, err = s.ListRowPolicies(operator, db, collection); err != nil {
						return err
					}
				}
				var rows [][]string
				for _, p := range policies {
					rows = append(rows, []string{p.DB, p.Collection, p.Name, strings.Join(p.Actions, ","), strings.Join(p.Roles, ","),
						p.UsingExpr, p.CheckExpr, p.Created.Format(time.RFC3339)})
				}
				return table(cmd.OutOrStdout(), "DB\tCOLLECTION\tNAME\tACTIONS\tROLES\tUSING\tCHECK\tCREATED", rows)
			})
		},
	}
	where(list)
	cmd.AddCommand(create, drop, list)
	return cmd
}

// tagsCmd is `authproxy user tags`.
func tagsCmd(sf *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "tags", Short: "A user's row-security tags ($current_user_tags in row policies)"}
	add := &cobra.Command{
		Use:   "add USER KEY=VALUE...",
		Short: "Add or overwrite tags of a user (the others stay)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tags := map[string]string{}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("%q: want KEY=VALUE", kv)
				}
				tags[k] = v
			}
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				return s.AddUserTags(context.Background(), operator, args[0], tags)
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete USER [KEY...]",
		Short: "Delete tags of a user; with no key, all of them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				return s.DeleteUserTags(context.Background(), operator, args[0], args[1:])
			})
		},
	}
	get := &cobra.Command{
		Use:   "get USER",
		Short: "Print a user's tags, one KEY=VALUE a line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				tags, err := s.GetUserTags(operator, args[0])
				for _, k := range slices.Sorted(maps.Keys(tags)) {
					fmt.Fprintf(cmd.OutOrStdout(), "%s=%s\n", k, tags[k])
				}
				return err
			})
		},
	}
	listUsers := &cobra.Command{
		Use:   "list-users KEY=VALUE",
		Short: "List the users whose tag KEY is VALUE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, v, ok := strings.Cut(args[0], "=")
			if !ok {
				return fmt.Errorf("%q: want KEY=VALUE", args[0])
			}
			return sf.withService(func(s *usermgmt.Service, _ credentials.Store) error {
				names, err := s.ListUsersWithTag(operator, k, v)
				for _, n := range names {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return err
			})
		},
	}
	cmd.AddCommand(add, del, get, listUsers)
	return cmd
}
