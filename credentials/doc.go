// Package credentials is authproxy's credential store: users with password
// hashes and roles, and API keys stored as digests, behind the Store
// interface so that a file (FileStore) or, later, a store shared by replicas
// can hold them. It also owns the one implementation of Milvus's user name and
// password rules (ValidateUsername, ValidatePassword), password hashing and
// verification, and htpasswd import. It does not authenticate requests, cache
// verifications, limit concurrent hashing, check permissions beyond
// Set.IsAdmin, or watch the file for changes: callers do that and call
// Reload.
//
// # File format
//
// The file is YAML, mode 0600, and never holds a plaintext secret:
//
//	# authproxy credential file: hashes only. Edit with `authproxy user ...` or by hand.
//	version: 1
//	users:
//	  - name: root
//	    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$<b64 salt>$<b64 key>"
//	    created: 2026-11-22T05:00:00Z
//	    updated: 2026-11-22T05:00:00Z
//	apiKeys:
//	  - name: ci
//	    user: root
//	    digest: "sha256:<64 hex>"
//	    created: 2026-11-22T05:00:00Z
//
// passwordHash is argon2id in PHC format (unpadded standard base64 salt and
// key; HashPassword uses OWASP's m=19456 KiB, t=2, p=1, so all 256 bytes of a
// password count) or a bcrypt $2a$/$2b$/$2y$ hash imported from htpasswd;
// bcrypt compares only the first 72 bytes of a password. roles holds built-in
// roles only (admin, public). An API key's digest is "sha256:" and the hex
// SHA-256 of the key (see NewAPIKey); its user must exist. users and apiKeys
// may be empty or absent; created and updated are optional. Version 2 adds
// roles, grants, privilegeGroups, a user's tags (row-security attributes,
// $current_user_tags) and rowPolicies (db, collection, name, actions,
// roles, usingExpr, checkExpr, description), each checked by Set.validate.
//
// Parsing is strict: unknown fields, duplicate user or key names, duplicate
// digests, invalid names, unknown roles or hash formats are errors naming the
// file and line. The file is rewritten sorted by name, without comments
// other than the header.
//
// # Writes and concurrent edits
//
// FileStore writes atomically (temp file in the same directory, fsync, rename,
// fsync of the directory), so readers and crashes see a complete old or new
// file. A symlinked file (Kubernetes: file -> ..data/file) is written through
// to its final target, so the links stay and later ..data swaps are seen.
//
// Update holds an exclusive flock on ".<name>.lock" beside the configured
// path from its read to its rename, in the proxy and in every `authproxy
// user`/`apikey` command alike, so writers in any number of processes apply
// their changes one after another to what is on disk, and none is lost. Under
// the lock it compares the SHA-256 of the file on disk with that of the
// version it last loaded or wrote: if someone edited the file meanwhile,
// Update re-reads and validates it and applies the change to that version; if
// the edited file is invalid, Update refuses until it is fixed. A hand edit
// takes no lock: one saved during the milliseconds of an Update's read and
// rename can still be overwritten. The lock file is never removed (two
// writers must always lock the same inode); where the directory is read-only,
// as on a Secret mount, the lock file cannot be created and Update reports
// ErrReadOnly, which it would at the write anyway. Because the digest of each
// write is remembered, the Reload that a file watcher triggers after our own
// write reports changed=false without parsing.
package credentials
