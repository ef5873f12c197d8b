// Package watch tells callers when a configuration, credential or TLS file
// may have changed. It watches the directory of each file with fsnotify (never
// the file itself, so editors' rename-on-save and Kubernetes ConfigMap/Secret
// `..data` symlink swaps keep working), debounces bursts into one call per
// file, never runs two calls for the same file at once, re-adds a directory
// watch that disappears, and re-hashes every file periodically as a safety net
// for lost events (queue overflow, network filesystems, symlink targets in
// unwatched directories). It does not read, parse or validate anything: the
// callback is only a hint, and the caller re-reads the file and keeps its last
// good version on error. A Docker single-file bind mount pins the inode and
// misses rename-on-save (mount the directory instead), and Kubernetes subPath
// mounts are never updated by the kubelet: neither can be fixed here.
package watch
