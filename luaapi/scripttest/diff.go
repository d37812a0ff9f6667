package scripttest

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"statscache/engine"
	"statscache/schema"
)

// Diff compares the expected rows of a table (as decoded from a want file,
// numbers as json.Number) with the rows a model wrote, as sets matched on
// the row key, and returns one line per difference: a missing row, an
// unexpected row, a row whose values changed, or a malformed expected row.
// It returns nothing when they agree.
func Diff(t *schema.Table, want []map[string]any, got []engine.Row) []string {
	var out []string
	wantBy := map[string]map[string]any{}
	var wantKeys []string
	for i, w := range want {
		var bad []string
		for _, c := range t.Columns {
			if _, ok := w[c.Name]; !ok {
				bad = append(bad, fmt.Sprintf("no column %q (write null for NULL)", c.Name))
			}
		}
		for c := range w {
			if _, ok := t.Column(c); !ok {
				bad = append(bad, fmt.Sprintf("column %q is not in the table", c))
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			out = append(out, fmt.Sprintf("bad expected row %d %s: %s", i+1, renderRow(t, w), strings.Join(bad, "; ")))
			continue
		}
		k := keyOf(t, w)
		if _, dup := wantBy[k]; dup {
			out = append(out, fmt.Sprintf("bad expected row %d %s: its key is listed twice", i+1, renderRow(t, w)))
			continue
		}
		wantBy[k] = w
		wantKeys = append(wantKeys, k)
	}
	if len(out) > 0 {
		return out
	}
	gotBy := map[string]engine.Row{}
	for _, g := range got {
		gotBy[keyOf(t, g)] = g
	}
	type line struct {
		row  map[string]any
		text string
	}
	var lines []line
	for _, k := range wantKeys {
		w := wantBy[k]
		g, ok := gotBy[k]
		if !ok {
			lines = append(lines, line{w, "missing row     " + renderRow(t, w)})
			continue
		}
		var changed []string
		for _, c := range t.Columns {
			if t.IsKey(c.Name) {
				continue
			}
			if !equalValue(g[c.Name], w[c.Name]) {
				changed = append(changed, fmt.Sprintf("%s = %s, want %s", c.Name, render(g[c.Name]), render(w[c.Name])))
			}
		}
		if len(changed) > 0 {
			lines = append(lines, line{w, "changed row     " + renderKey(t, w) + ": " + strings.Join(changed, "; ")})
		}
	}
	for _, g := range got {
		if _, ok := wantBy[keyOf(t, g)]; !ok {
			lines = append(lines, line{g, "unexpected row  " + renderRow(t, g)})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return rowLess(t, lines[i].row, lines[j].row) })
	for _, l := range lines {
		out = append(out, l.text)
	}
	return out
}

func diffRows(t *schema.Table, want []map[string]any, got []engine.Row) []string {
	return Diff(t, want, got)
}

func asWant(rows []engine.Row) []map[string]any {
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out
}

// sortRows orders rows by timestamp, then by the rest of the key.
func sortRows(t *schema.Table, rows []engine.Row) []engine.Row {
	sort.SliceStable(rows, func(i, j int) bool { return rowLess(t, rows[i], rows[j]) })
	return rows
}

func rowLess(t *schema.Table, a, b map[string]any) bool {
	ta, _ := num(a[schema.TimestampColumn])
	tb, _ := num(b[schema.TimestampColumn])
	if ta != tb {
		return ta < tb
	}
	return keyOf(t, a) < keyOf(t, b)
}

// keyOf encodes the row key so that equal values match whatever their Go
// type: numbers by value, strings by content.
func keyOf(t *schema.Table, r map[string]any) string {
	var sb strings.Builder
	for _, k := range t.Key {
		sb.WriteString(canon(r[k]))
		sb.WriteByte(0)
	}
	return sb.String()
}

func canon(v any) string {
	if f, ok := num(v); ok {
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return render(v)
}

func num(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// equalValue compares a stored value with an expected one: numbers by
// value, JSON arrays and objects element by element.
func equalValue(a, b any) bool {
	if fa, ok := num(a); ok {
		fb, ok := num(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValue(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

// renderRow writes a row as a JSON object with the table's columns in
// order (then any others), ready to paste into a want file.
func renderRow(t *schema.Table, r map[string]any) string {
	var parts []string
	done := map[string]bool{}
	for _, c := range t.Columns {
		if v, ok := r[c.Name]; ok {
			parts = append(parts, strconv.Quote(c.Name)+": "+render(v))
			done[c.Name] = true
		}
	}
	var rest []string
	for c := range r {
		if !done[c] {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	for _, c := range rest {
		parts = append(parts, strconv.Quote(c)+": "+render(r[c]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// renderKey writes only the key columns of a row.
func renderKey(t *schema.Table, r map[string]any) string {
	var parts []string
	for _, k := range t.Key {
		parts = append(parts, strconv.Quote(k)+": "+render(r[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// render writes a value as JSON, numbers in plain decimal.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return x.String()
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		if math.Abs(x) < 1e21 {
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		var sb strings.Builder
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		enc.Encode(x)
		return strings.TrimSuffix(sb.String(), "\n")
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = render(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = strconv.Quote(k) + ": " + render(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
