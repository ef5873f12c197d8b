package server

import (
	"google.golang.org/grpc"

	"github.com/authproxy/authproxy/config"
	"github.com/authproxy/authproxy/rbac"
)

func rbacOptions(cfg *config.Config) rbac.Options {
	sec := cfg.Common.Security
	return rbac.Options{
		EnablePublicPrivilege:  sec.EnablePublicPrivilege,
		RootShouldBindRole:     sec.RootShouldBindRole,
		OtherServicesAdminOnly: sec.OtherServices == config.OtherServicesAdmin,
	}
}

// localMethods says which methods the in-process server answers: the
// proxy's own (users, roles, grants).
func localMethods(srv *grpc.Server) func(method string) bool {
	local := map[string]bool{}
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			local["/"+svc+"/"+m.Name] = true
		}
	}
	return func(method string) bool { return local[method] }
}
