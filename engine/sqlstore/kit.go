package sqlstore

import "statscache/engine/sqlkit"

// What this store shares with the PostgreSQL store (engine/sqlkit).
var (
	rejectOrigin  = sqlkit.RejectOrigin
	rejectKey     = sqlkit.RejectKey
	lag           = sqlkit.Lag
	keyArgs       = sqlkit.KeyArgs
	checkRowQuery = sqlkit.CheckRowQuery
	fromSQL       = sqlkit.FromSQL
)
