// Package scripts holds the shipped Lua models and a sample of real bus
// messages. They are embedded in the binary so that "statscache demo" runs
// with nothing but the binary, while the daemon reads models from a
// directory that analysts edit.
package scripts

import "embed"

// FS holds the shipped models (*.lua), their shared helpers (lib/), the
// fedmsg.meta rules (meta/) and the sample.
//
//go:embed *.lua sample/messages.jsonl all:meta all:lib
var FS embed.FS

// SamplePath is the path in FS of a few hundred real Fedora bus messages
// (datagrepper /raw records, one per line) taken from the shared corpus.
const SamplePath = "sample/messages.jsonl"
