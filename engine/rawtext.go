package engine

import (
	"fmt"
	"unicode/utf8"
)

// checkText refuses a record whose bytes are not clean UTF-8 JSON text:
// invalid UTF-8, a raw control character inside a string (JSON forbids
// them; lenient parsers let them through), or a NUL in any form, raw or
// escaped as \u0000. Such records are rejected rather than repaired:
// repairing would change the bytes every model and every consumer of the
// journal sees, and a record that carries them was damaged on its way (a
// truncated copy, a binary file), so its other fields cannot be trusted
// either. What is left after this check can be stored as text and served
// as UTF-8 as it is. It returns the reason, or "" for a clean record.
func checkText(b []byte) string {
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				return fmt.Sprintf("invalid UTF-8 at byte %d", i)
			}
			i += n - 1
		case c == 0:
			return fmt.Sprintf("NUL byte at byte %d", i)
		case c < 0x20:
			if inStr || (c != '\t' && c != '\n' && c != '\r') {
				return fmt.Sprintf("raw control character 0x%02x at byte %d", c, i)
			}
		case !inStr:
			inStr = c == '"'
		case c == '"':
			inStr = false
		case c == '\\':
			if i+5 < len(b) && b[i+1] == 'u' && string(b[i+2:i+6]) == "0000" {
				return fmt.Sprintf("NUL (\\u0000) in a string at byte %d", i)
			}
			if i+1 < len(b) && (b[i+1] == '"' || b[i+1] == '\\') {
				i++ // an escaped quote or backslash neither ends the string nor escapes
			}
		}
	}
	return ""
}
