package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/authproxy/authproxy/auth"
	"github.com/authproxy/authproxy/credentials"
	"github.com/authproxy/authproxy/edge"
	"github.com/authproxy/authproxy/privilege"
	"github.com/authproxy/authproxy/usermgmt"
)

// page is what every template gets; Data is the page's own.
type page struct {
	Title  string
	User   string
	Source string
	CSRF   string
	Nav    string
	Notice string
	Error  string
	// Secret is a new API key's secret: shown once, in the answer to the
	// change that made it, and kept nowhere.
	Secret string
	Data   any
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"rate": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"num":  func(v float64) string { return fmt.Sprintf("%.0f", v) },
	// isGroupV2: a built-in v2 group is granted with Milvus's v2 call,
	// which names no object type.
	"isGroupV2": func(p string) bool { _, ok := privilege.BuiltinGroup(p); return ok },
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages.ExecuteTemplate(w, name, p); err != nil {
		c.opts.Logger.Error("console: page", "page", name, "error", err)
	}
}

// page starts a signed-in page.
func (q *request) page(nav, title string) page {
	return page{Title: title, User: q.sess.id.User, Source: q.sess.id.Source, CSRF: q.sess.csrf, Nav: nav}
}

// result is the status and message of a change: the notice when it was
// made, the refusal and its status when not.
func result(err error, notice string) (int, page) {
	if err != nil {
		return statusOf(err), page{Error: err.Error()}
	}
	return http.StatusOK, page{Notice: notice}
}

// statusOf is the HTTP status of a refused change.
func statusOf(err error) int {
	var e *usermgmt.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError
	}
	switch e.Kind {
	case usermgmt.KindPermissionDenied:
		return http.StatusForbidden
	case usermgmt.KindNotFound:
		return http.StatusNotFound
	case usermgmt.KindExists:
		return http.StatusConflict
	case usermgmt.KindUnavailable:
		return http.StatusServiceUnavailable
	case usermgmt.KindInternal, usermgmt.KindReadOnly:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// --- now ---

type nowData struct {
	Rate       Point
	Reasons    []ReasonCount
	Lockouts   []auth.Lockout
	Denials    []edge.Denial
	AllDenials bool
	Status     Status
}

func (c *Console) nowPage(q *request) { c.showNow(q, http.StatusOK, "", nil) }

func (c *Console) showNow(q *request, status int, notice string, err error) {
	p := q.page("now", "Now")
	if err != nil {
		p.Error, status = err.Error(), statusOf(err)
	} else {
		p.Notice = notice
	}
	all := c.opts.Users.SeesEveryUser(q.caller)
	var denials []edge.Denial
	for _, d := range c.opts.Denials.Last() {
		// A user who may not list users sees only their own denials.
		if all || d.User == q.caller.User {
			denials = append(denials, d)
		}
	}
	p.Data = nowData{
		Rate: c.history.rateNow(), Reasons: reasons(readTotals(c.opts.Gatherer).ByReason),
		Lockouts: c.opts.Users.Lockouts(q.caller), Denials: denials, AllDenials: all, Status: c.opts.Status(),
	}
	c.render(q.w, status, "now", p)
}

func (c *Console) series(q *request) {
	q.w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(q.w).Encode(struct {
		Step   int     `json:"step"`
		Points []Point `json:"points"`
	}{int(historyStep / time.Second), c.history.series()})
}

func (c *Console) unlock(q *request) {
	user, addr := q.r.PostFormValue("user"), q.r.PostFormValue("address")
	err := c.opts.Users.Unlock(q.caller, user, addr)
	who := user
	if who == "" {
		who = "every user"
	}
	c.showNow(q, http.StatusOK, fmt.Sprintf("Unlocked %s from %s.", who, addr), err)
}

// --- users ---

type userRow struct {
	Name        string
	Description string
	Roles       []string
}

type usersData struct {
	Users    []userRow
	All      bool // the caller may list every user
	Roles    []string
	ForceOld bool // the caller must give the old password (not a superuser)
}

func (c *Console) usersPage(q *request) { c.showUsers(q, http.StatusOK, page{}) }

func (c *Console) showUsers(q *request, status int, result page) {
	p := q.page("users", "Users")
	p.Notice, p.Error = result.Notice, result.Error
	d := usersData{}
	var names []string
	names, d.All = c.usersSeen(q)
	for _, n := range names {
		roles, found, err := c.opts.Users.DescribeUser(q.caller, n)
		if err != nil || !found {
			continue
		}
		d.Users = append(d.Users, userRow{Name: n, Description: c.opts.Users.Description(n), Roles: roles})
	}
	if infos, err := c.opts.Users.SelectRole(q.caller, "", false); err == nil {
		for _, r := range infos {
			d.Roles = append(d.Roles, r.Name)
		}
	}
	p.Data = d
	c.render(q.w, status, "users", p)
}

// usersSeen are the users the caller may list (all reports every one),
// else the caller alone: Milvus lets everyone describe themself.
func (c *Console) usersSeen(q *request) (names []string, all bool) {
	if names, err := c.opts.Users.SelectAllUsers(q.caller); err == nil {
		return names, true
	}
	return []string{q.caller.User}, false
}

func (c *Console) usersChange(q *request) {
	f := q.r.PostFormValue
	ctx, name := q.r.Context(), f("name")
	var err error
	var notice string
	switch q.r.PathValue("op") {
	case "create":
		err = c.opts.Users.CreateUser(ctx, q.caller, name, f("password"), f("description"))
		notice = "Created user " + name + "."
	case "password":
		err = c.opts.Users.UpdatePassword(ctx, q.caller, name, f("old"), f("password"))
		notice = "Changed the password of " + name + "."
	case "drop":
		err = c.opts.Users.DropUser(ctx, q.caller, name)
		notice = "Dropped user " + name + "."
	case "grant-role":
		err = c.opts.Users.GrantRole(ctx, q.caller, name, f("role"))
		notice = "Bound role " + f("role") + " to " + name + "."
	case "revoke-role":
		err = c.opts.Users.RevokeRole(ctx, q.caller, name, f("role"))
		notice = "Unbound role " + f("role") + " from " + name + "."
	default:
		http.NotFound(q.w, q.r)
		return
	}
	status, p := result(err, notice)
	c.showUsers(q, status, p)
}

// --- roles and grants ---

type cell struct {
	Granted   bool
	Privilege string
}

type matrixRow struct {
	Role, Object, ObjectName, DB string
	Cells                        []cell
}

type rolesData struct {
	DB         string
	Roles      []rolesRole
	Columns    []string
	Rows       []matrixRow
	Privileges []string
	Groups     []privilege.Group
	Custom     []string // the custom groups, which may be changed
	All        bool
}

type rolesRole struct {
	Name  string
	Users []string
}

func (c *Console) rolesPage(q *request) { c.showRoles(q, http.StatusOK, page{}) }

// showRoles draws the matrix of role x object x privilege for one
// database ("*": every grant): a row per (role, object), a column per
// privilege granted anywhere in it, plus the built-in groups.
func (c *Console) showRoles(q *request, status int, result page) {
	p := q.page("roles", "Roles and grants")
	p.Notice, p.Error = result.Notice, result.Error
	db := q.r.FormValue("db")
	if db == "" {
		db = privilege.Any
	}
	d := rolesData{DB: db, Privileges: privilege.Names()}
	infos, err := c.opts.Users.SelectRole(q.caller, "", true)
	if err == nil {
		d.All = true
	} else {
		// Not allowed to list roles: the caller's own, whose grants
		// Milvus lets them see.
		roles, _, _ := c.opts.Users.DescribeUser(q.caller, q.caller.User)
		for _, r := range roles {
			infos = append(infos, usermgmt.RoleInfo{Name: r})
		}
	}
	var grants []usermgmt.GrantInfo
	for _, r := range infos {
		d.Roles = append(d.Roles, rolesRole{Name: r.Name, Users: r.Users})
		g, err := c.opts.Users.SelectGrant(q.caller, r.Name, "", "", db)
		if err == nil {
			grants = append(grants, g...)
		}
	}
	columns := []string{}
	for _, g := range privilege.BuiltinGroups() {
		columns = append(columns, g.Name)
	}
	for _, g := range grants {
		if !slices.Contains(columns, g.Privilege) {
			columns = append(columns, g.Privilege)
		}
	}
	d.Columns = columns
	type rowKey struct{ role, object, name, db string }
	index := map[rowKey]int{}
	for _, g := range grants {
		k := rowKey{g.Role, g.Object, g.ObjectName, g.DB}
		i, ok := index[k]
		if !ok {
			i = len(d.Rows)
			index[k] = i
			row := matrixRow{Role: g.Role, Object: g.Object, ObjectName: g.ObjectName, DB: g.DB}
			for _, col := range columns {
				row.Cells = append(row.Cells, cell{Privilege: col})
			}
			d.Rows = append(d.Rows, row)
		}
		d.Rows[i].Cells[slices.Index(columns, g.Privilege)].Granted = true
	}
	// Roles without a grant still get a row to grant from.
	for _, r := range d.Roles {
		if !slices.ContainsFunc(d.Rows, func(m matrixRow) bool { return m.Role == r.Name }) {
			row := matrixRow{Role: r.Name, Object: privilege.Global, ObjectName: privilege.Any, DB: dbOrAny(db)}
			for _, col := range columns {
				row.Cells = append(row.Cells, cell{Privilege: col})
			}
			d.Rows = append(d.Rows, row)
		}
	}
	if groups, err := c.opts.Users.ListPrivilegeGroups(q.caller); err == nil {
		d.Groups = groups
		for _, g := range groups {
			if _, builtin := privilege.BuiltinGroup(g.Name); !builtin {
				d.Custom = append(d.Custom, g.Name)
			}
		}
	}
	p.Data = d
	c.render(q.w, status, "roles", p)
}

func dbOrAny(db string) string {
	if db == "" {
		return privilege.Any
	}
	return db
}

func (c *Console) rolesChange(q *request) {
	f := q.r.PostFormValue
	ctx := q.r.Context()
	var err error
	var notice string
	switch op := q.r.PathValue("op"); op {
	case "create":
		err = c.opts.Users.CreateRole(ctx, q.caller, f("role"))
		notice = "Created role " + f("role") + "."
	case "drop":
		err = c.opts.Users.DropRole(ctx, q.caller, f("role"), f("force") == "on")
		notice = "Dropped role " + f("role") + "."
	case "create-group":
		err = c.opts.Users.CreatePrivilegeGroup(ctx, q.caller, f("group"))
		notice = "Created privilege group " + f("group") + "."
	case "drop-group":
		err = c.opts.Users.DropPrivilegeGroup(ctx, q.caller, f("group"))
		notice = "Dropped privilege group " + f("group") + "."
	case "add-to-group", "remove-from-group":
		add := op == "add-to-group"
		err = c.opts.Users.OperatePrivilegeGroup(ctx, q.caller, f("group"), []string{f("privilege")}, add)
		notice = fmt.Sprintf("Removed %s from privilege group %s.", f("privilege"), f("group"))
		if add {
			notice = fmt.Sprintf("Added %s to privilege group %s.", f("privilege"), f("group"))
		}
	case "grant", "revoke":
		pv := usermgmt.Privilege{Role: f("role"), Object: f("object"), ObjectName: f("objectName"), DB: dbOrAny(f("grantDB")), Privilege: f("privilege")}
		// No object type is Milvus's v2 call (grant_privilege_v2: a
		// collection in a database); with one, the v1 call.
		pv.V2 = pv.Object == ""
		err = c.opts.Users.GrantPrivilege(ctx, q.caller, pv, op == "grant")
		if op == "revoke" {
			notice = fmt.Sprintf("Revoked %s on %s %s in %s from role %s.", pv.Privilege, pv.Object, pv.ObjectName, pv.DB, pv.Role)
		} else {
			notice = fmt.Sprintf("Granted %s on %s %s in %s to role %s.", pv.Privilege, pv.Object, pv.ObjectName, pv.DB, pv.Role)
		}
	default:
		http.NotFound(q.w, q.r)
		return
	}
	status, p := result(err, notice)
	c.showRoles(q, status, p)
}

// --- API keys ---

type keysData struct {
	Keys  []usermgmt.APIKeyInfo
	Users []string
	Now   time.Time
}

func (c *Console) keysPage(q *request) { c.showKeys(q, http.StatusOK, page{}) }

func (c *Console) showKeys(q *request, status int, result page) {
	p := q.page("apikeys", "API keys")
	p.Notice, p.Error, p.Secret = result.Notice, result.Error, result.Secret
	d := keysData{Keys: c.opts.Users.ListAPIKeys(q.caller), Now: time.Now()}
	d.Users, _ = c.usersSeen(q)
	p.Data = d
	c.render(q.w, status, "apikeys", p)
}

func (c *Console) keysChange(q *request) {
	f := q.r.PostFormValue
	ctx, name := q.r.Context(), f("name")
	var p page
	var err error
	switch q.r.PathValue("op") {
	case "create":
		var lifetime time.Duration
		if lifetime, err = parseLifetime(f("expires")); err == nil {
			p.Secret, err = c.opts.Users.CreateAPIKey(ctx, q.caller, name, f("user"), lifetime)
		}
		p.Notice = "Created API key " + name + ". Copy its secret now: it is not shown again."
	case "rotate":
		p.Secret, err = c.opts.Users.RotateAPIKey(ctx, q.caller, name)
		p.Notice = "Rotated API key " + name + ": the old secret no longer works. Copy the new one now: it is not shown again."
	case "revoke":
		err = c.opts.Users.RevokeAPIKey(ctx, q.caller, name)
		p.Notice = "Revoked API key " + name + "."
	default:
		http.NotFound(q.w, q.r)
		return
	}
	status := http.StatusOK
	if err != nil {
		p.Notice, p.Secret, p.Error, status = "", "", err.Error(), statusOf(err)
	}
	c.showKeys(q, status, p)
}

// parseLifetime is the key lifetime field: the CLI's --expires format.
func parseLifetime(s string) (time.Duration, error) {
	d, err := credentials.ParseLifetime(s)
	if err != nil {
		return 0, &usermgmt.Error{Kind: usermgmt.KindInvalidParameter, Reason: "expires " + err.Error()}
	}
	return d, nil
}
