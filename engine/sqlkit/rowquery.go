package sqlkit

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"statscache/engine"
	"statscache/schema"
)

// Lag computes ModelInfo.LagSeconds; see its documentation.
func Lag(cursor engine.Position, oldest, newest int64, ok bool) float64 {
	if !ok {
		return 0
	}
	from := cursor.TimeUS
	if cursor.IsZero() {
		from = oldest
	}
	if newest <= from {
		return 0
	}
	return float64(newest-from) / 1e6
}

// KeyArgs checks a client's After against the order columns and
// converts each value to the column's stored type. Values may come
// decoded from JSON (float64 or json.Number for numbers) or as stored.
func KeyArgs(t *schema.Table, order []string, key []any, field string) ([]any, error) {
	if key == nil {
		return nil, nil
	}
	if len(key) != len(order) {
		return nil, &engine.KeyError{Field: field, Reason: fmt.Sprintf("%d values for the %d order columns (%s)",
			len(key), len(order), strings.Join(order, ", "))}
	}
	out := make([]any, len(key))
	for i, name := range order {
		c, _ := t.Column(name)
		bad := &engine.KeyError{Field: field, Reason: fmt.Sprintf("value %d (%s) must be of type %s, got %v", i+1, name, c.Type, key[i])}
		switch c.Type {
		case schema.Integer:
			switch v := key[i].(type) {
			case int64:
				out[i] = v
			case json.Number:
				n, err := v.Int64()
				if err != nil {
					return nil, bad
				}
				out[i] = n
			case float64:
				if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
					return nil, bad
				}
				out[i] = int64(v)
			default:
				return nil, bad
			}
		case schema.Real:
			switch v := key[i].(type) {
			case float64:
				out[i] = v
			case int64:
				out[i] = float64(v)
			case json.Number:
				f, err := v.Float64()
				if err != nil || math.IsInf(f, 0) {
					return nil, bad
				}
				out[i] = f
			default:
				return nil, bad
			}
		default:
			v, ok := key[i].(string)
			if !ok {
				return nil, bad
			}
			out[i] = v
		}
	}
	return out, nil
}

// CheckRowQuery refuses queries that SQL would silently misread: NaN
// bounds bind as NULL and match nothing, negative offsets and limits mean
// "no offset" and "no limit" to SQLite.
func CheckRowQuery(q engine.RowQuery) error {
	for _, b := range []struct {
		name string
		v    *float64
	}{{"start", q.Start}, {"stop", q.Stop}} {
		if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
			return fmt.Errorf("%s must be a finite number, got %v", b.name, *b.v)
		}
	}
	if q.Limit < 0 {
		return fmt.Errorf("limit must not be negative, got %d", q.Limit)
	}
	if q.Offset < 0 {
		return fmt.Errorf("offset must not be negative, got %d", q.Offset)
	}
	if q.End < 0 {
		return fmt.Errorf("end must not be negative, got %d", q.End)
	}
	return nil
}

// FromSQL converts a stored value back to what a model or the API expects.
func FromSQL(c schema.Column, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		v = string(x)
	}
	switch c.Type {
	case schema.Integer:
		switch x := v.(type) {
		case float64:
			return int64(x)
		}
	case schema.Real:
		switch x := v.(type) {
		case int64:
			return float64(x)
		}
	case schema.JSON:
		if s, ok := v.(string); ok {
			var out any
			if err := json.Unmarshal([]byte(s), &out); err == nil {
				return out
			}
		}
	}
	return v
}
