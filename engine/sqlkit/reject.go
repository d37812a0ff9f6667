// Package sqlkit holds what the SQL stores (engine/sqlstore on SQLite,
// engine/pgstore on PostgreSQL) share and what needs no driver: how a
// rejected record is identified, how a client's row query is checked, how
// a stored value reads back. Both stores call these, so they answer alike.
package sqlkit

import (
	"crypto/sha256"
	"strings"
)

// RejectOrigin is where a rejected record came from, the unit the rejects
// table keeps the newest records of: the file (its source without the line
// or index), the bus endpoint, the AMQP queue, or the archive.
func RejectOrigin(source string) string {
	switch {
	case strings.HasPrefix(source, "bus "):
		return source // "bus tcp://host:port"
	case strings.HasPrefix(source, "datagrepper "):
		return "datagrepper"
	case strings.HasPrefix(source, "amqp "):
		// "amqp QUEUE ROUTING-KEY": the queue is the source.
		if f := strings.Fields(source); len(f) >= 2 {
			return "amqp " + f[1]
		}
		return source
	}
	s := source
	if i := strings.LastIndex(s, " raw_messages["); i >= 0 && strings.HasSuffix(s, "]") {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '['); i > 0 && strings.HasSuffix(s, "]") && allDigits(s[i+1:len(s)-1]) {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 && allDigits(s[i+1:]) {
		s = s[:i]
	}
	return s
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RejectKey is a rejected record's identity: a hash of where it was (the
// source, with its line: two bad lines of a file are two rejects) and of
// the record. The archive names its records by window and page, which
// change when a window is split or fetched again, so there the origin
// stands for the place.
func RejectKey(source, origin string, record []byte) []byte {
	place := source
	if origin == "datagrepper" {
		place = origin
	}
	h := sha256.New()
	h.Write([]byte(place))
	h.Write([]byte{0})
	h.Write(record)
	return h.Sum(nil)[:16]
}
