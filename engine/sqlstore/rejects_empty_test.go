package sqlstore

import (
	"context"
	"testing"

	"statscache/engine"
)

// TestRejectWithoutRecord keeps rejects that carry no bytes (an empty bus
// frame, a source that had nothing to keep): they are stored with an
// empty record, never refused by the NOT NULL constraint, which used to
// abort the whole batch of rejects and the replay with it.
func TestRejectWithoutRecord(t *testing.T) {
	db := openTest(t, 0)
	ctx := context.Background()
	err := db.AddRejects(ctx, []engine.Reject{
		{Source: "f:1", Reason: "nothing", Record: nil},
		{Source: "f:2", Reason: "empty", Record: []byte{}},
		{Source: "f:3", Reason: "bad", Record: []byte("x")},
	})
	if err != nil {
		t.Fatalf("AddRejects: %v", err)
	}
	var n, empty int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE length(record) = 0) FROM rejects`).Scan(&n, &empty); err != nil {
		t.Fatal(err)
	}
	if n != 3 || empty != 2 {
		t.Errorf("%d rejects kept, %d with an empty record; want 3 and 2", n, empty)
	}
}
