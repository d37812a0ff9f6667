package luaapi_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"statscache/engine"
	"statscache/luaapi"
)

// declCounts is a model whose rows are keyed by the timestamp and two
// columns of any type, as counting models' are.
const declCounts = `model {name = "t", summary = "s", description = "d", interval = "1m", columns = {` +
	`{name = "a", type = "json", key = true}, {name = "b", type = "json", key = true}, {name = "n", type = "real"}}}`

// TestDBAddCountsEqualsLoop: db:add_counts writes exactly what the Lua loop
// over drain with db:add writes (the same rows, values and Go types, in the
// same order), for keys of strings, numbers and booleans and over several
// batches, and empties the counter as drain does.
func TestDBAddCountsEqualsLoop(t *testing.T) {
	body := func(drain string) []byte {
		return lines(declCounts,
			"local c = counter()",
			"function process(msg)",
			"  local ts = bucket(msg.time)",
			"  c:inc(ts, msg.category, msg.topic)",
			`  c:add(ts, #msg.topic, msg.topic:find("bodhi") ~= nil, 0.25)`,
			"  c:inc(ts, 7, msg.id)",
			"end",
			"function update(db)",
			drain,
			`  db:add{timestamp = 1, a = "left", b = c:len(), n = 0}`,
			"end")
	}
	loop := body(`  for ts, a, b, n in c:drain() do db:add{timestamp = ts, a = a, b = b, n = n} end`)
	fast := body(`  db:add_counts(c, {"timestamp", "a", "b"}, "n")`)
	topics := []string{"org.fedoraproject.prod.buildsys.tag", "org.fedoraproject.prod.bodhi.update", "short", "org.fedoraproject.prod.buildsys.tag"}
	var recs [][]string
	for batch := 0; batch < 3; batch++ {
		var b []string
		for i := 0; i < 40; i++ {
			b = append(b, rawRecord(fmt.Sprintf("m%d-%d", batch, i%7), topics[i%len(topics)], float64(batch*600+i*17), "{}"))
		}
		recs = append(recs, b)
	}
	run := func(src []byte) *recWriter {
		m := openSource(t, "m.lua", src, quiet)
		all := &recWriter{}
		for _, batch := range recs {
			for _, rec := range batch {
				if err := m.Process(context.Background(), decode(t, rec)); err != nil {
					t.Fatal(err)
				}
			}
			w := &recWriter{}
			if err := m.Flush(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			all.ops = append(all.ops, w.ops...)
			all.rows = append(all.rows, w.rows...)
		}
		return all
	}
	want, got := run(loop), run(fast)
	if len(want.rows) < 100 {
		t.Fatalf("the loop wrote only %d rows", len(want.rows))
	}
	if !reflect.DeepEqual(got.ops, want.ops) {
		t.Fatalf("ops differ:\n%v\nwant\n%v", got.ops, want.ops)
	}
	for i := range want.rows {
		if !reflect.DeepEqual(got.rows[i], want.rows[i]) {
			t.Fatalf("row %d: %#v, want %#v", i, got.rows[i], want.rows[i])
		}
	}
}

func TestDBAddCountsErrors(t *testing.T) {
	tests := []struct {
		name, counts, update, wantErr string
		limits                        luaapi.Limits
	}{
		{"ErrKeyParts", `c:inc(1, "x")`, `db:add_counts(c, {"timestamp", "a", "b"}, "n")`, "a key of 2 values for 3 key columns", luaapi.Limits{}},
		{"ErrNoColumns", `c:inc(1)`, `db:add_counts(c, {}, "n")`, "want 1 to 4 key columns, got 0", luaapi.Limits{}},
		{"ErrColumnName", `c:inc(1)`, `db:add_counts(c, {1}, "n")`, "key column 1 is not a string", luaapi.Limits{}},
		{"ErrNotACounter", `c:inc(1)`, `db:add_counts({}, {"timestamp"}, "n")`, "userdata expected", luaapi.Limits{}},
		{"ErrInfinite", `c:add(1, "x", "y", 1/0)`, `db:add_counts(c, {"timestamp", "a", "b"}, "n")`, `column "n": +Inf is not a finite number`, luaapi.Limits{}},
		{"ErrStringCap", `c:inc(1, "` + strings.Repeat("x", 40) + `", "y")`, `db:add_counts(c, {"timestamp", "a", "b"}, "n")`, `column "a": the value is over 32 bytes of JSON`, luaapi.Limits{MaxString: 32}},
		{"ErrStoreRefuses", `c:inc(1, "x")`, `db:add_counts(c, {"timestamp", "a"}, "n")`, `row key column "b" is missing`, luaapi.Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := lines(declCounts, "local c = counter()", "function process(msg)", "  "+tt.counts, "end",
				"function update(db)", "  "+tt.update, "end")
			opts := quiet
			opts.Limits = tt.limits
			m := openSource(t, "m.lua", src, opts)
			if err := m.Process(context.Background(), decode(t, rawRecord("a", "a.b.c.d", 1, "{}"))); err != nil {
				t.Fatal(err)
			}
			err := m.Flush(context.Background(), &checkingWriter{key: []string{"timestamp", "a", "b"}})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Flush: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// checkingWriter is a recWriter that refuses a row missing a key column,
// as the engine's row buffer does.
type checkingWriter struct {
	recWriter
	key []string
}

func (w *checkingWriter) Add(r engine.Row) error {
	for _, k := range w.key {
		if _, ok := r[k]; !ok {
			return fmt.Errorf("row key column %q is missing", k)
		}
	}
	return w.recWriter.Add(r)
}
