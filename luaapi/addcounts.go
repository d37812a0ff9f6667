package luaapi

import (
	"fmt"
	"math"

	lua "github.com/yuin/gopher-lua"

	"statscache/engine"
	"statscache/luaapi/sandbox"
)

// dbAddCounts is db:add_counts(c, {col1, ..., coln}, col): it drains the
// counter c into the model's table, doing what
//
//	for k1, ..., kn, sum in c:drain() do
//	  db:add{[col1] = k1, ..., [coln] = kn, [col] = sum}
//	end
//
// does, row for row and in the same order, without a Lua table per row:
// building those tables (a hash part, gopher-lua's key index and a boxed
// key per field) and converting them back to Go was most of what a
// counting model's update cost, and a counting model writes one row per
// key and batch. A key with another number of parts than columns is an
// error, as are the limits db:add applies to a row (the string cap, finite
// numbers). Like drain, it empties the counter first, so a failed update
// loses the sums with the batch it fails.
func dbAddCounts(m *Model, db *lua.LTable) lua.LGFunction {
	return func(L *lua.LState) int {
		base := 1
		if L.Get(1) == db { // db:add_counts(...) as well as db.add_counts(...)
			base = 2
		}
		if m.writer == nil {
			L.RaiseError("db.add_counts: the db is only usable inside update(db)")
		}
		c := checkCounterAt(L, base, "counter expected: db:add_counts(counter, {key columns}, column)")
		colsT := L.CheckTable(base + 1)
		sumCol := L.CheckString(base + 2)
		n := colsT.Len()
		if n < 1 || n > maxKeyParts {
			L.ArgError(base+1, fmt.Sprintf("want 1 to %d key columns, got %d", maxKeyParts, n))
		}
		cols := make([]string, n)
		for i := range cols {
			s, ok := colsT.RawGetInt(i + 1).(lua.LString)
			if !ok {
				L.ArgError(base+1, fmt.Sprintf("key column %d is not a string", i+1))
			}
			cols[i] = string(s)
		}
		m.guard.charge(L, 64)
		order, sums := c.take()
		max := m.guard.maxString()
		// One map serves every row: the writer keeps a copy of what it
		// keeps (engine.RowWriter).
		row := make(engine.Row, n+1)
		for i := range order {
			if i%4096 == 4095 {
				sandbox.Interrupted(L) // the call's time limit, as a Lua loop would see it
			}
			k := &order[i]
			if int(k.n) != n {
				L.RaiseError("db.add_counts: a key of %d values for %d key columns", k.n, n)
			}
			clear(row)
			budget := max
			for j := 0; j < n; j++ {
				v := k.goValue(j)
				switch x := v.(type) {
				case string:
					budget -= len(x) + 2
				case bool:
					budget -= 5
				default:
					budget -= 8
				}
				if budget < 0 {
					L.RaiseError("db.add_counts: column %q: the value is over %d bytes of JSON, the limit", cols[j], max)
				}
				row[cols[j]] = v
			}
			sum := sums[i]
			if math.IsNaN(sum) || math.IsInf(sum, 0) {
				L.RaiseError("db.add_counts: column %q: %v is not a finite number", sumCol, sum)
			}
			if budget -= 8; budget < 0 {
				L.RaiseError("db.add_counts: column %q: the value is over %d bytes of JSON, the limit", sumCol, max)
			}
			row[sumCol] = sum
			if err := m.writer.Add(row); err != nil {
				L.RaiseError("db.add_counts: %v", err)
			}
		}
		// The writer copied every row: the slices can serve the next batch.
		c.recycle(order, sums)
		return 0
	}
}
