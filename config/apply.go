package config

import (
	"reflect"
	"strings"
)

// Effect is how a change of a config field takes effect on a running proxy.
type Effect string

const (
	// Live: a reload (file change, SIGHUP) applies it to the next call.
	Live Effect = "live"
	// Restart: the running value is kept until the process restarts.
	Restart Effect = "restart"
)

// effects classifies every field by its YAML path; a pointer to a section
// (tls, backend.tls, tls.clientIdentity) is classified itself, for turning
// the section on or off, and so is each of its fields. A field missing
// here fails TestEveryFieldIsClassified.
var effects = map[string]Effect{
	"listen":                                Restart,
	"forwarding":                            Restart,
	"backend.address":                       Restart,
	"backend.rest":                          Restart,
	"backend.tls":                           Restart,
	"backend.tls.caFile":                    Restart,
	"backend.tls.serverName":                Restart,
	"backend.tls.certFile":                  Restart,
	"backend.tls.keyFile":                   Restart,
	"common.security.authorizationEnabled":  Live,
	"common.security.superUsers":            Live,
	"common.security.defaultRootPassword":   Restart, // read when the store is created, at start
	"common.security.enablePublicPrivilege": Live,
	"common.security.rootShouldBindRole":    Live,
	"common.security.otherServices":         Live,
	"credentials.file":                      Live,
	"credentials.store":                     Restart,
	"credentials.etcd.endpoints":            Restart,
	"credentials.etcd.prefix":               Restart,
	"credentials.etcd.dialTimeout":          Restart,
	"credentials.etcd.requestTimeout":       Restart,
	"credentials.etcd.tls":                  Restart,
	"credentials.etcd.tls.caFile":           Restart,
	"credentials.etcd.tls.certFile":         Restart,
	"credentials.etcd.tls.keyFile":          Restart,
	"credentials.etcd.username":             Restart,
	"credentials.etcd.passwordFile":         Restart,
	"credentials.etcd.passwordEnv":          Restart,
	"cache.size":                            Live,
	"cache.ttl":                             Live,
	"auth.identityHeader":                   Live,
	"auth.maxConcurrentVerifications":       Restart,
	"auth.bruteForce.enabled":               Restart,
	"auth.bruteForce.threshold":             Restart,
	"auth.bruteForce.backoff":               Restart,
	"auth.bruteForce.maxBackoff":            Restart,
	"auth.bruteForce.forgive":               Restart,
	"auth.bruteForce.tracked":               Restart,
	"identities.ldap":                       Live, // on, off or changed: the cache of binds is emptied
	"identities.ldap.url":                   Live,
	"identities.ldap.startTLS":              Live,
	"identities.ldap.caFile":                Live,
	"identities.ldap.serverName":            Live,
	"identities.ldap.realm":                 Live,
	"identities.ldap.bindDN":                Live,
	"identities.ldap.userSearch":            Live,
	"identities.ldap.userSearch.baseDN":     Live,
	"identities.ldap.userSearch.filter":     Live,
	"identities.ldap.groupAttribute":        Live,
	"identities.ldap.groupSearch":           Live,
	"identities.ldap.groupSearch.baseDN":    Live,
	"identities.ldap.groupSearch.filter":    Live,
	"identities.ldap.groups":                Live,
	"identities.ldap.cacheTTL":              Live,
	"identities.ldap.timeout":               Live,
	"identities.ldap.maxConcurrentBinds":    Live,
	"identities.oidc":                       Live,
	"identities.oidc.issuers":               Live,
	"identities.tags.ldap":                  Live, // the providers are rebuilt, the cache of binds emptied
	"identities.tags.oidc":                  Live,
	"grpc.maxRecvMsgSize":                   Restart,
	"grpc.maxSendMsgSize":                   Restart,
	"tls":                                   Restart, // on or off
	"tls.certFile":                          Live,
	"tls.keyFile":                           Live,
	"tls.clientCAFile":                      Live,
	"tls.clientAuth":                        Live,
	"tls.minVersion":                        Live,
	"tls.clientIdentity":                    Live,
	"tls.clientIdentity.source":             Live,
	"tls.clientIdentity.users":              Live,
	"admin.listen":                          Restart,
	"console.listen":                        Restart,
	"console.idleTimeout":                   Restart,
	"console.maxSessions":                   Restart,
	"console.oidc":                          Restart,
	"console.oidc.issuer":                   Restart,
	"console.oidc.clientID":                 Restart,
	"console.oidc.redirectURL":              Restart,
	"log.level":                             Live,
	"log.format":                            Restart,
	"log.accessLog":                         Restart,
	"shutdown.gracePeriod":                  Live, // read when the shutdown starts
	"rateLimits.exempt.users":               Live,
	"rateLimits.exempt.roles":               Live,
	"rateLimits.limits":                     Live, // a changed limit starts with full buckets

	// Apart, as the longest key, so that the table above keeps its alignment.
	"common.security.defaultRootPasswordFile": Restart, // read when the store is created, at start
}

// EffectOf is how a change of the field at path takes effect.
func EffectOf(path string) (Effect, bool) {
	e, ok := effects[path]
	return e, ok
}

// Effective is the config a reload puts in force: next, with every field
// that takes effect only at a restart kept at prev's value, so that no
// part of the proxy can read a restart-only change before the restart (a
// section turned on or off is kept whole). restart lists those fields by
// YAML path. next is not written to. prev nil (the start) gives next.
func Effective(prev, next *Config) (effective *Config, restart []string) {
	if prev == nil {
		return next, nil
	}
	out := *next
	walkChanges(reflect.ValueOf(prev).Elem(), reflect.ValueOf(&out).Elem(), "", func(path string, was, now reflect.Value) {
		if effects[path] != Live {
			restart = append(restart, path)
			now.Set(was)
		}
	})
	return &out, restart
}

// walkChanges calls changed with the path and both values of each field,
// section or leaf, that differs between a and b (two values of one struct
// type; b settable). A section turned on or off is reported as itself, not
// field by field. A section behind a pointer in b is replaced by a copy
// before it is walked, so that changed may set b's fields without writing
// to the config b was copied from.
func walkChanges(a, b reflect.Value, prefix string, changed func(path string, a, b reflect.Value)) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		path := yamlPath(prefix, f)
		av, bv := a.Field(i), b.Field(i)
		switch {
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			switch {
			case av.IsNil() != bv.IsNil():
				changed(path, av, bv)
			case !av.IsNil():
				section := reflect.New(f.Type.Elem())
				section.Elem().Set(bv.Elem())
				bv.Set(section)
				walkChanges(av.Elem(), section.Elem(), path, changed)
			}
		case f.Type.Kind() == reflect.Struct:
			walkChanges(av, bv, path, changed)
		case !reflect.DeepEqual(av.Interface(), bv.Interface()):
			changed(path, av, bv)
		}
	}
}

// Fields lists every classifiable path of Config: each leaf, and each
// pointer to a section.
func Fields() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			path := yamlPath(prefix, f)
			switch {
			case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
				out = append(out, path)
				walk(f.Type.Elem(), path)
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, path)
			default:
				out = append(out, path)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

func yamlPath(prefix string, f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// LiveKeys lists the fields a reload applies, by YAML path: the server's
// section builders must cover exactly these.
func LiveKeys() []string {
	var out []string
	for _, path := range Fields() {
		if effects[path] == Live {
			out = append(out, path)
		}
	}
	return out
}
