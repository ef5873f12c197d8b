// Package config loads and validates authproxy's YAML configuration. Keys
// that Milvus also has keep milvus.yaml's names (common.security.*). Unknown
// keys are errors that name the key and the line; every value is checked by
// Validate with a message naming the key. It does not watch the file: the
// server reloads it (Read, then Effective) and applies it.
//
// Adding a section: its struct, defaults and validation in a file of its
// own (config/<section>.go), a field in Config, a line in Default and a call
// in Validate. Then say how each key takes effect in the effects table
// (apply.go; TestEveryFieldIsClassified fails on a key it does not name):
// Restart keys are read once by server.New; a Live key needs a builder in
// server/build.go's sectionBuilders, which names the keys it applies and
// whose build checks the section and returns the swap that puts it in
// force. Start and reload both run the builders, all builds before any
// swap; TestBuildersCoverTheLiveKeys fails on a Live key without a builder,
// and test/integration's TestEveryLiveKeyAppliesOnReload on a Live key no
// step changes through a reload of the binary.
package config
