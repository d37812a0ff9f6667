package schema

import (
	"encoding/json"
	"fmt"
	"math"
)

// StoreValue converts a value a model writes (float64, int64, string, bool,
// nil, or any JSON value for json columns) to what the column stores, with
// an error naming the column when it does not fit. Every store (SQLite, the
// in-memory one of statscache test) converts through it, so they agree.
// A value that is already what the column stores is returned as it came,
// not boxed again: a replay converts millions of them.
func StoreValue(c Column, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case Integer:
		switch x := v.(type) {
		case int64:
			return v, nil
		case int:
			return int64(x), nil
		case float64:
			if x != math.Trunc(x) || math.IsInf(x, 0) || math.Abs(x) > 1<<53 {
				return nil, fmt.Errorf("column %q: %v is not an integer", c.Name, x)
			}
			return int64(x), nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case Real:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("column %q: %v is not a finite number", c.Name, x)
			}
			return v, nil
		case int64:
			return float64(x), nil
		case int:
			return float64(x), nil
		}
	case Text:
		if _, ok := v.(string); ok {
			return v, nil
		}
	case JSON:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: cannot encode as JSON: %v", c.Name, err)
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("column %q (%s): cannot store a %T (%v)", c.Name, c.Type, v, v)
}
