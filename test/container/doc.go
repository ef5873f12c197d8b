// Package container holds the Milvus Go SDK checks that run.sh runs against
// the authproxy image; they build only with the "container" tag.
package container
