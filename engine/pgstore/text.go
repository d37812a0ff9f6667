package pgstore

import (
	"strings"
	"unicode/utf8"
)

// safeText makes s storable in a PostgreSQL text column, which refuses NUL
// and invalid UTF-8: used only for descriptions the store writes for
// people (reject sources and reasons, error messages), never for data a
// model or the journal counts on, which is stored exactly or refused.
func safeText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", `\x00`)
}
