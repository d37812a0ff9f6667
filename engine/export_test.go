package engine

import "time"

// SetIndexRetryWait sets how long a model waits to build its declared
// indexes again after a failure, for a test that cannot wait a minute; it
// returns a function that restores the wait. Call it before the engine
// runs and restore after it stopped.
func SetIndexRetryWait(d time.Duration) (restore func()) {
	old := indexRetryWait
	indexRetryWait = d
	return func() { indexRetryWait = old }
}
