package credentials

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fileVersion is what encodeFile writes. Version 1 files (users and API
// keys only) are read as they are and upgraded on their first write.
const fileVersion = 2

const fileHeader = "# authproxy credential file: hashes only. Edit with `authproxy user ...` or by hand.\n"

// fileDoc is the on-disk layout; see doc.go.
type fileDoc struct {
	Version         int          `yaml:"version"`
	Users           []fileUser   `yaml:"users,omitempty"`
	APIKeys         []fileKey    `yaml:"apiKeys,omitempty"`
	Roles           []fileRole   `yaml:"roles,omitempty"`
	Grants          []fileGrant  `yaml:"grants,omitempty"`
	PrivilegeGroups []fileGroup  `yaml:"privilegeGroups,omitempty"`
	RowPolicies     []filePolicy `yaml:"rowPolicies,omitempty"`
}

type filePolicy struct {
	DB          string   `yaml:"db"`
	Collection  string   `yaml:"collection"`
	Name        string   `yaml:"name"`
	Actions     []string `yaml:"actions,flow"`
	Roles       []string `yaml:"roles,flow"`
	UsingExpr   string   `yaml:"usingExpr,omitempty"`
	CheckExpr   string   `yaml:"checkExpr,omitempty"`
	Description string   `yaml:"description,omitempty"`
	Created     stamp    `yaml:"created,omitempty"`
}

type fileRole struct {
	Name    string `yaml:"name"`
	Created stamp  `yaml:"created,omitempty"`
}

type fileGrant struct {
	Role       string `yaml:"role"`
	Object     string `yaml:"object"`
	ObjectName string `yaml:"objectName"`
	DB         string `yaml:"db"`
	Privilege  string `yaml:"privilege"`
	Grantor    string `yaml:"grantor,omitempty"`
	V2         bool   `yaml:"v2,omitempty"`
	Created    stamp  `yaml:"created,omitempty"`
}

type fileGroup struct {
	Name       string   `yaml:"name"`
	Privileges []string `yaml:"privileges,flow"`
	Created    stamp    `yaml:"created,omitempty"`
}

type fileUser struct {
	Name         string            `yaml:"name"`
	PasswordHash quoted            `yaml:"passwordHash"`
	Roles        []string          `yaml:"roles,flow,omitempty"`
	Description  string            `yaml:"description,omitempty"`
	Tags         map[string]string `yaml:"tags,omitempty"`
	Created      stamp             `yaml:"created,omitempty"`
	Updated      stamp             `yaml:"updated,omitempty"`
}

type fileKey struct {
	Name    string `yaml:"name"`
	User    string `yaml:"user"`
	Digest  quoted `yaml:"digest"`
	Created stamp  `yaml:"created,omitempty"`
	Expires stamp  `yaml:"expires,omitempty"`
}

// quoted is written double-quoted: '$' and ':' in hashes read better quoted.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(q)}, nil
}

// stamp is an RFC 3339 time whose parse errors carry the line, which
// yaml.v3 omits for time.Time.
type stamp time.Time

func (s *stamp) UnmarshalYAML(n *yaml.Node) error {
	t, err := time.Parse(time.RFC3339Nano, n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: want an RFC 3339 time such as 2026-11-22T05:00:00Z", n.Line)
	}
	*s = stamp(t)
	return nil
}

func (s stamp) MarshalYAML() (any, error) { return time.Time(s), nil }

func (s stamp) IsZero() bool { return time.Time(s).IsZero() }

// typeNames turns yaml.v3's Go type names into words a file editor knows.
var typeNames = strings.NewReplacer(
	"in type credentials.fileDoc", "at top level",
	"in type credentials.fileUser", "in a users entry",
	"in type credentials.fileKey", "in an apiKeys entry",
	"in type credentials.fileRole", "in a roles entry",
	"in type credentials.fileGrant", "in a grants entry",
	"in type credentials.fileGroup", "in a privilegeGroups entry",
	"in type credentials.filePolicy", "in a rowPolicies entry",
)

// parseFile decodes and validates a whole credential file. Errors name the
// line but not the file; callers add the path.
func parseFile(data []byte) (*Set, error) {
	// The node tree gives line numbers; the strict struct decode rejects
	// unknown fields and wrong types.
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty file: want at least \"version: %d\"", fileVersion)
		}
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, errors.New(typeNames.Replace(strings.Join(te.Errors, "; ")))
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
	}

	top := root.Content[0]
	switch {
	case doc.Version != 1 && doc.Version != fileVersion:
		return nil, fmt.Errorf("line %d: version must be 1 or %d", lineOf(top, "version"), fileVersion)
	case doc.Version == 1 && len(doc.Roles)+len(doc.Grants)+len(doc.PrivilegeGroups)+len(doc.RowPolicies) > 0:
		return nil, fmt.Errorf("line %d: roles, grants, privilegeGroups and rowPolicies need version %d", lineOf(top, "version"), fileVersion)
	}
	userLines := entryLines(top, "users", len(doc.Users))
	keyLines := entryLines(top, "apiKeys", len(doc.APIKeys))

	// Here: what only the file can say (duplicates, lines). The rules of
	// the entries and between them are Set.validate's, with the line added.
	s := NewSet()
	lines := map[string]int{} // "kind\x00name" → line
	first := func(kind, name string, line int) error {
		key := kind + "\x00" + name
		if at, dup := lines[key]; dup {
			return fmt.Errorf("duplicate %s %q at line %d (first defined at line %d)", kind, name, line, at)
		}
		lines[key] = line
		return nil
	}
	for i, fu := range doc.Users {
		if err := first("user", fu.Name, userLines[i]); err != nil {
			return nil, err
		}
		s.users[fu.Name] = &User{Name: fu.Name, PasswordHash: string(fu.PasswordHash), Roles: fu.Roles, Description: fu.Description, Tags: fu.Tags,
			Created: time.Time(fu.Created), Updated: time.Time(fu.Updated)}
	}
	for i, fk := range doc.APIKeys {
		if err := first("api key", fk.Name, keyLines[i]); err != nil {
			return nil, err
		}
		k := &APIKey{Name: fk.Name, User: fk.User, Digest: string(fk.Digest), Created: time.Time(fk.Created), Expires: time.Time(fk.Expires)}
		s.keys[k.Name] = k
		s.byDigest[k.Digest] = k
	}
	roleLines := entryLines(top, "roles", len(doc.Roles))
	for i, fr := range doc.Roles {
		if err := first("role", fr.Name, roleLines[i]); err != nil {
			return nil, err
		}
		s.rbac.roles[fr.Name] = &Role{Name: fr.Name, Created: time.Time(fr.Created)}
	}
	groupLines := entryLines(top, "privilegeGroups", len(doc.PrivilegeGroups))
	for i, fg := range doc.PrivilegeGroups {
		if err := first("privilege group", fg.Name, groupLines[i]); err != nil {
			return nil, err
		}
		s.rbac.groups[fg.Name] = &PrivilegeGroup{Name: fg.Name, Privileges: fg.Privileges, Created: time.Time(fg.Created)}
	}
	grantLines := entryLines(top, "grants", len(doc.Grants))
	for i, fg := range doc.Grants {
		g := &Grant{Role: fg.Role, Object: fg.Object, ObjectName: fg.ObjectName, DB: fg.DB, Privilege: fg.Privilege,
			Grantor: fg.Grantor, V2: fg.V2, Created: time.Time(fg.Created)}
		if err := first("grant", g.describe(), grantLines[i]); err != nil {
			return nil, err
		}
		s.rbac.grants[g.Key()] = g
	}
	policyLines := entryLines(top, "rowPolicies", len(doc.RowPolicies))
	for i, fp := range doc.RowPolicies {
		p := &RowPolicy{DB: fp.DB, Collection: fp.Collection, Name: fp.Name, Actions: fp.Actions, Roles: fp.Roles,
			UsingExpr: fp.UsingExpr, CheckExpr: fp.CheckExpr, Description: fp.Description, Created: time.Time(fp.Created)}
		if err := first("row policy", p.describe(), policyLines[i]); err != nil {
			return nil, err
		}
		s.policies[p.Key()] = p
	}
	if err := s.validate(); err != nil {
		var e *entryError
		if errors.As(err, &e) {
			return nil, fmt.Errorf("%s %q at line %d: %w", e.kind, e.name, lines[e.kind+"\x00"+e.name], e.err)
		}
		return nil, err
	}
	return s, nil
}

// lineOf returns the line of key in mapping m, or m's own line if absent.
func lineOf(m *yaml.Node, key string) int {
	if v := valueOf(m, key); v != nil {
		return v.Line
	}
	return m.Line
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// entryLines returns the line of each of the n entries of the sequence under
// key. Entries the node tree cannot place (YAML merge keys) get the line of
// the key or of the mapping.
func entryLines(m *yaml.Node, key string, n int) []int {
	lines := make([]int, n)
	v := valueOf(m, key)
	for i := range lines {
		lines[i] = lineOf(m, key)
	}
	if v == nil {
		return lines
	}
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	for i, e := range v.Content {
		if i < n {
			lines[i] = e.Line
		}
	}
	return lines
}

// encodeFile renders s deterministically (entries sorted by name), so equal
// Sets give equal bytes and equal digests.
func encodeFile(s *Set) ([]byte, error) {
	doc := fileDoc{Version: fileVersion}
	for _, u := range s.Users() {
		doc.Users = append(doc.Users, fileUser{Name: u.Name, PasswordHash: quoted(u.PasswordHash),
			Roles: u.Roles, Description: u.Description, Tags: u.Tags, Created: stamp(u.Created), Updated: stamp(u.Updated)})
	}
	for _, r := range s.Roles() {
		doc.Roles = append(doc.Roles, fileRole{Name: r.Name, Created: stamp(r.Created)})
	}
	for _, g := range s.PrivilegeGroups() {
		doc.PrivilegeGroups = append(doc.PrivilegeGroups, fileGroup{Name: g.Name, Privileges: g.Privileges, Created: stamp(g.Created)})
	}
	for _, g := range s.Grants() {
		doc.Grants = append(doc.Grants, fileGrant{Role: g.Role, Object: g.Object, ObjectName: g.ObjectName, DB: g.DB,
			Privilege: g.Privilege, Grantor: g.Grantor, V2: g.V2, Created: stamp(g.Created)})
	}
	for _, p := range s.AllRowPolicies() {
		doc.RowPolicies = append(doc.RowPolicies, filePolicy{DB: p.DB, Collection: p.Collection, Name: p.Name, Actions: p.Actions, Roles: p.Roles,
			UsingExpr: p.UsingExpr, CheckExpr: p.CheckExpr, Description: p.Description, Created: stamp(p.Created)})
	}
	for _, k := range s.APIKeys() {
		doc.APIKeys = append(doc.APIKeys, fileKey{Name: k.Name, User: k.User, Digest: quoted(k.Digest), Created: stamp(k.Created), Expires: stamp(k.Expires)})
	}
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	return buf.Bytes(), nil
}
