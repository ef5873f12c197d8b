// Package usermgmt answers Milvus's user API (create_user, describe_user,
// update_password, drop_user, list_users, grant_role, revoke_role and the
// built-in roles) from authproxy's credential store, never from the backend.
// One Service holds every rule, permission check, persistence step and audit
// line; the gRPC adapter (MilvusService methods) and the REST adapter
// (/v2/vectordb/users/*) only translate requests and replies.
package usermgmt
