// Package config loads and validates authproxy's YAML configuration. Keys
// that Milvus also has keep milvus.yaml's names (common.security.*). Unknown
// keys are errors that name the key and the line; every value is checked by
// Validate with a message naming the key. It does not watch the file: the
// caller reloads it and decides what may change live.
package config
