package engine

import "context"

// Settings is a small durable key/value store for facts the daemon must
// remember across restarts that belong to no model, such as the name of
// its AMQP queue: a queue named anew at every start would leave the
// messages published while the daemon was down in a queue nobody reads.
type Settings interface {
	// Setting returns the value stored under key, and whether there is one.
	Setting(ctx context.Context, key string) (string, bool, error)
	// InitSetting stores value under key unless the key already holds a
	// value, and returns the value now stored. Two processes racing to
	// initialise the same key end up with the same value.
	InitSetting(ctx context.Context, key, value string) (string, error)
	// PutSetting stores value under key, replacing any value there.
	PutSetting(ctx context.Context, key, value string) error
}
