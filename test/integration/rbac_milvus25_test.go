package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/milvuspb"
	"github.com/milvus-io/milvus/client/v2/entity"
	"github.com/milvus-io/milvus/client/v2/milvusclient"
	"github.com/milvus-io/milvus/pkg/v2/util/merr"

	"github.com/authproxy/authproxy/test/harness"
)

// wantStatus checks a reply's status: an OK gRPC call whose status has
// Milvus's code and reason.
func wantReplyStatus(t *testing.T, what string, st *commonpb.Status, err error, code int32, reason string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: gRPC error %v, want an OK reply with status %d %q", what, err, code, reason)
		return
	}
	if st.GetCode() != code || st.GetReason() != reason {
		t.Errorf("%s: status %d %q, want %d %q", what, st.GetCode(), st.GetReason(), code, reason)
	}
}

// The answers that differed from Milvus 2.5.24 (issue 27), each as Milvus
// gives it: code and message, from Milvus's source (internal/proxy/impl.go,
// internal/proxy/util.go, internal/rootcoord/root_coord.go,
// internal/rootcoord/meta_table.go, internal/rootcoord/describe_*_task.go
// on the 2.5 branch).
func TestRBACAnswersAsMilvus25(t *testing.T) {
	fake, p := startPair(t, harness.Options{})
	ctx := testCtx(t, 120*time.Second)
	root := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "root", Password: "Milvus"})
	createVectors(t, ctx, root, "secret", 4)
	raw := milvuspb.NewMilvusServiceClient(dial(t, p.Addr, nil))
	asRoot := withToken(ctx, "root:Milvus")

	must(t, root.CreateRole(ctx, milvusclient.NewCreateRoleOption("maker")))
	must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("maker", "Global", "CreateCollection", "*")))
	harness.Password("maya", "Maya-pw-1")
	must(t, root.CreateUser(ctx, milvusclient.NewCreateUserOption("maya", "Maya-pw-1")))
	must(t, root.GrantRole(ctx, milvusclient.NewGrantRoleOption("maya", "maker")))
	maya := sdkClient(t, ctx, &milvusclient.ClientConfig{Address: p.Addr, Username: "maya", Password: "Maya-pw-1"})
	asMaya := withToken(ctx, "maya:Maya-pw-1")

	t.Run("1 has_collection of a missing collection is false, then it can be created", func(t *testing.T) {
		has, err := maya.HasCollection(ctx, milvusclient.NewHasCollectionOption("fresh"))
		if err != nil || has {
			t.Fatalf("HasCollection(fresh) by maya = %v, %v; want false, nil (Milvus: collection not found)", has, err)
		}
		resp, err := raw.DescribeCollection(asMaya, &milvuspb.DescribeCollectionRequest{CollectionName: "fresh"})
		if err != nil || merr.Code(merr.Error(resp.GetStatus())) != merr.Code(merr.ErrCollectionNotFound) ||
			resp.GetStatus().GetReason() != "can't find collection[database=default][collection=fresh]" {
			t.Errorf("describe fresh: %v %v, want the backend's collection not found", resp.GetStatus(), err)
		}
		schema := entity.NewSchema().
			WithField(entity.NewField().WithName("id").WithDataType(entity.FieldTypeInt64).WithIsPrimaryKey(true)).
			WithField(entity.NewField().WithName("vec").WithDataType(entity.FieldTypeFloatVector).WithDim(4))
		must(t, maya.CreateCollection(ctx, milvusclient.NewCreateCollectionOption("fresh", schema)))
	})

	t.Run("2 describing an invisible collection or database is an OK reply with status 1401", func(t *testing.T) {
		resp, err := raw.DescribeCollection(asMaya, &milvuspb.DescribeCollectionRequest{CollectionName: "secret"})
		wantReplyStatus(t, "describe secret", resp.GetStatus(), err, 1401, "not allowed to access collection, collection name: secret: privilege not permitted")
		if resp.GetSchema() != nil || resp.GetCollectionID() != 0 {
			t.Errorf("the refusal carries the collection: %v", resp)
		}
		_, err = maya.DescribeCollection(ctx, milvusclient.NewDescribeCollectionOption("secret"))
		wantNotPermitted(t, "SDK describe secret", err, "collection", "secret")
		must(t, root.CreateDatabase(ctx, milvusclient.NewCreateDatabaseOption("db2")))
		// Through public, maya may call DescribeDatabase anywhere; public's
		// grants show no database (RootCoord skips public), so db2 stays
		// invisible to her.
		st, err := raw.OperatePrivilege(asRoot, &milvuspb.OperatePrivilegeRequest{Entity: &milvuspb.GrantEntity{
			Role: &milvuspb.RoleEntity{Name: "public"}, Object: &milvuspb.ObjectEntity{Name: "Global"}, ObjectName: "*", DbName: "*",
			Grantor: &milvuspb.GrantorEntity{Privilege: &milvuspb.PrivilegeEntity{Name: "DescribeDatabase"}}}, Type: milvuspb.OperatePrivilegeType_Grant})
		wantReplyStatus(t, "grant public DescribeDatabase", st, err, 0, "")
		db, err := raw.DescribeDatabase(asMaya, &milvuspb.DescribeDatabaseRequest{DbName: "db2"})
		wantReplyStatus(t, "describe db2", db.GetStatus(), err, 1401, "not allowed to access database, db name: db2: privilege not permitted")
		if got := len(fake.Recorder().CallsTo("DescribeCollection")); got == 0 {
			t.Error("the backend was not asked whether the collection exists")
		}
	})

	t.Run("3 list_users needs SelectUser on User *", func(t *testing.T) {
		must(t, root.GrantPrivilege(ctx, milvusclient.NewGrantPrivilegeOption("maker", "User", "SelectUser", "*")))
		resp, err := raw.SelectUser(asMaya, &milvuspb.SelectUserRequest{})
		if err != nil || resp.GetStatus().GetCode() != 0 || len(resp.GetResults()) < 2 {
			t.Fatalf("SelectUser() by maya: %v %v", resp, err)
		}
		must(t, root.RevokePrivilege(ctx, milvusclient.NewRevokePrivilegeOption("maker", "User", "SelectUser", "*")))
		_, err = raw.SelectUser(asMaya, &milvuspb.SelectUserRequest{})
		wantDenied(t, "SelectUser() without the grant", err, deny("PrivilegeSelectUser", "maya", "default"))
	})

	t.Run("4 root holds no role", func(t *testing.T) {
		u, err := root.DescribeUser(ctx, milvusclient.NewDescribeUserOption("root"))
		must(t, err)
		if len(u.Roles) != 0 {
			t.Errorf("root's roles %v, want none", u.Roles)
		}
		roles, err := raw.SelectRole(asRoot, &milvuspb.SelectRoleRequest{Role: &milvuspb.RoleEntity{Name: "admin"}, IncludeUserInfo: true})
		must(t, err)
		for _, r := range roles.GetResults() {
			for _, u := range r.GetUsers() {
				if u.GetName() == "root" {
					t.Error("admin's users list root")
				}
			}
		}
	})

	t.Run("5 removing a missing user from a role succeeds", func(t *testing.T) {
		st, err := raw.OperateUserRole(asRoot, &milvuspb.OperateUserRoleRequest{Username: "ghost", RoleName: "maker", Type: milvuspb.OperateUserRoleType_RemoveUserFromRole})
		wantReplyStatus(t, "remove ghost from maker", st, err, 0, "")
		st, err = raw.OperateUserRole(asRoot, &milvuspb.OperateUserRoleRequest{Username: "ghost", RoleName: "maker", Type: milvuspb.OperateUserRoleType_AddUserToRole})
		wantReplyStatus(t, "add ghost to maker", st, err, 65535, "not found the user, maybe the user isn't existed or internal system error")
	})

	t.Run("6 list_grant of an unknown object type", func(t *testing.T) {
		resp, err := raw.SelectGrant(asRoot, &milvuspb.SelectGrantRequest{Entity: &milvuspb.GrantEntity{
			Role: &milvuspb.RoleEntity{Name: "maker"}, Object: &milvuspb.ObjectEntity{Name: "Partition"}, ObjectName: "p1"}})
		wantReplyStatus(t, "select grant on Partition", resp.GetStatus(), err, 65535,
			"not found the object type[name: Partition], supported the object types: [Collection Global User]")
		if resp.GetStatus().GetErrorCode() != commonpb.ErrorCode_SelectGrantFailure {
			t.Errorf("legacy code %v, want SelectGrantFailure", resp.GetStatus().GetErrorCode())
		}
	})

	t.Run("7 root resetting a missing user's password", func(t *testing.T) {
		st, err := raw.UpdateCredential(asRoot, &milvuspb.UpdateCredentialRequest{Username: "ghost", OldPassword: "b2xkLXB3MQ==", NewPassword: "bmV3LXB3LTE="})
		wantReplyStatus(t, "update ghost's password", st, err, 1400, "old password not correct for ghost: not authenticated")
	})

	t.Run("8 dropping admin or public", func(t *testing.T) {
		for _, role := range []string{"admin", "public"} {
			st, err := raw.DropRole(asRoot, &milvuspb.DropRoleRequest{RoleName: role})
			wantReplyStatus(t, "drop "+role, st, err, 1401, "the role["+role+"] is a default role, which can't be dropped: privilege not permitted")
		}
	})

	t.Run("9 dropping a built-in privilege group is a silent success", func(t *testing.T) {
		st, err := raw.DropPrivilegeGroup(asRoot, &milvuspb.DropPrivilegeGroupRequest{GroupName: "CollectionReadWrite"})
		wantReplyStatus(t, "drop CollectionReadWrite", st, err, 0, "")
		groups, err := root.ListPrivilegeGroups(ctx, milvusclient.NewListPrivilegeGroupsOption())
		must(t, err)
		if !slices.ContainsFunc(groups, func(g *entity.PrivilegeGroup) bool { return g.GroupName == "CollectionReadWrite" }) {
			t.Error("CollectionReadWrite is gone")
		}
	})

	t.Run("10 names Milvus refuses", func(t *testing.T) {
		st, err := raw.CreatePrivilegeGroup(asRoot, &milvuspb.CreatePrivilegeGroupRequest{GroupName: "a$b"})
		wantReplyStatus(t, "group a$b", st, err, 1100, "privilege group name a$b can only contain numbers, letters and underscores: invalid parameter")
		for db, reason := range map[string]string{
			"db-1": "database name can only contain numbers, letters and underscores: invalid database name[database=db-1]",
			"db$1": "database name can only contain numbers, letters and underscores: invalid database name[database=db$1]",
			"1db":  "the first character of a database name must be an underscore or letter: invalid database name[database=1db]",
		} {
			st, err := raw.OperatePrivilegeV2(asRoot, &milvuspb.OperatePrivilegeV2Request{Role: &milvuspb.RoleEntity{Name: "maker"},
				Grantor: &milvuspb.GrantorEntity{Privilege: &milvuspb.PrivilegeEntity{Name: "Search"}}, CollectionName: "books", DbName: db,
				Type: milvuspb.OperatePrivilegeType_Grant})
			wantReplyStatus(t, "grant v2 in db "+db, st, err, 802, reason)
		}
	})

	t.Run("11 error texts", func(t *testing.T) {
		st, err := raw.CreateRole(asRoot, &milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: "1bad"}})
		wantReplyStatus(t, "role 1bad", st, err, 1100, "the first character of role name must be an underscore or letter: invalid parameter[expected=95][actual=49]")
		st, err = raw.CreateRole(asRoot, &milvuspb.CreateRoleRequest{Entity: &milvuspb.RoleEntity{Name: "a-b"}})
		wantReplyStatus(t, "role a-b", st, err, 1100, "role name can only contain numbers, letters, dollars and underscores, found - at 1: invalid parameter")
		roles, err := raw.SelectRole(asRoot, &milvuspb.SelectRoleRequest{Role: &milvuspb.RoleEntity{Name: "a b"}})
		wantReplyStatus(t, "select role 'a b'", roles.GetStatus(), err, 1100,
			"role name can only contain numbers, letters, dollars and underscores, found   at 1: invalid parameter")
		users, err := raw.SelectUser(asRoot, &milvuspb.SelectUserRequest{User: &milvuspb.UserEntity{Name: "a-b"}})
		wantReplyStatus(t, "select user a-b", users.GetStatus(), err, 1100,
			"invalid user name a-b, username must contain only numbers, letters and underscores, but got -: invalid parameter")
		// The name is validated before the group is looked up.
		st, err = raw.OperatePrivilegeGroup(asRoot, &milvuspb.OperatePrivilegeGroupRequest{GroupName: "1x",
			Privileges: []*milvuspb.PrivilegeEntity{{Name: "Search"}}, Type: milvuspb.OperatePrivilegeGroupType_AddPrivilegesToGroup})
		wantReplyStatus(t, "add to group 1x", st, err, 1402,
			"1x: invalid privilege group name[privilegeGroup=the first character of a privilege group name %s must be an underscore or letter]")
		st, err = raw.OperatePrivilegeGroup(asRoot, &milvuspb.OperatePrivilegeGroupRequest{GroupName: "nogroup",
			Privileges: []*milvuspb.PrivilegeEntity{{Name: "Search"}}, Type: milvuspb.OperatePrivilegeGroupType_RemovePrivilegesFromGroup})
		wantReplyStatus(t, "remove from nogroup", st, err, 1100, "there is no privilege group name [nogroup] to operate: invalid parameter")
		st, err = raw.OperatePrivilegeV2(asRoot, &milvuspb.OperatePrivilegeV2Request{Role: &milvuspb.RoleEntity{Name: "maker"},
			Grantor: &milvuspb.GrantorEntity{Privilege: &milvuspb.PrivilegeEntity{Name: "ClusterReadOnly"}}, CollectionName: "books", DbName: "*",
			Type: milvuspb.OperatePrivilegeType_Grant})
		wantReplyStatus(t, "ClusterReadOnly on books", st, err, 1100, "dbName and collectionName should be * for the cluster level privilege: ClusterReadOnly: invalid parameter")
	})

	t.Run("12 granting on an unknown object type", func(t *testing.T) {
		st, err := raw.OperatePrivilege(asRoot, &milvuspb.OperatePrivilegeRequest{Entity: &milvuspb.GrantEntity{
			Role: &milvuspb.RoleEntity{Name: "maker"}, Object: &milvuspb.ObjectEntity{Name: "Partition"}, ObjectName: "p1",
			Grantor: &milvuspb.GrantorEntity{Privilege: &milvuspb.PrivilegeEntity{Name: "Search"}}}, Type: milvuspb.OperatePrivilegeType_Grant})
		wantReplyStatus(t, "grant on Partition", st, err, 65535, "the object entity in the request is nil or invalid")
	})
}
