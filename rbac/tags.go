package rbac

import (
	"maps"

	"github.com/authproxy/authproxy/credentials"
)

// TagsOf is the caller's row-security tags ($current_user_tags): a local
// user's from the store; an external identity's are those the store
// holds for its name (as its role bindings are added) overlaid by those
// its directory or token gives, which decide the keys they carry. Nothing
// of root's applies to an external "root", as for roles.
func (a *Authorizer) TagsOf(who Principal) map[string]string {
	return tagsOf(a.policy().set, who)
}

func tagsOf(set *credentials.Set, who Principal) map[string]string {
	var tags map[string]string
	if u, ok := set.User(who.User); ok && !(who.External() && who.User == credentials.RootUser) {
		tags = maps.Clone(u.Tags)
	}
	if !who.External() || len(who.Tags) == 0 {
		return tags
	}
	if tags == nil {
		tags = map[string]string{}
	}
	maps.Copy(tags, who.Tags)
	return tags
}
