package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"statscache/engine"
	"statscache/engine/pgstore"
	"statscache/engine/pgstore/pgtest"
	"statscache/engine/sqlstore"
)

// store is what every case uses: everything both stores implement.
type store interface {
	engine.Store
	engine.SpanJournal
	engine.Settings
	ListModels(ctx context.Context) ([]engine.ModelInfo, error)
	ModelInfo(ctx context.Context, ident string) (engine.ModelInfo, error)
	Rows(ctx context.Context, ident string, q engine.RowQuery) (engine.RowPage, error)
	JournalStats(ctx context.Context) (engine.JournalStats, error)
	RejectTotals(ctx context.Context) (map[string]int64, error)
	CountRows(ctx context.Context, ident string) (int64, error)
	Close() error
}

type kind struct {
	name string
	open func(t *testing.T, opts opts) store
	// reopen opens db's database a second time, as another process would.
	reopen func(t *testing.T, db store) store
}

type opts struct{ keep int }

var kinds = []kind{
	{"sqlite", func(t *testing.T, o opts) store {
		db, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"), sqlstore.Options{KeepErrors: o.keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}, func(t *testing.T, s store) store {
		db, err := sqlstore.Open(t.Context(), s.(*sqlstore.DB).Path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
	{"postgres", func(t *testing.T, o opts) store {
		db, err := pgstore.Open(t.Context(), pgtest.URL(t), pgstore.Options{KeepErrors: o.keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}, func(t *testing.T, s store) store {
		db, err := pgstore.Open(t.Context(), s.(*pgstore.DB).URL(), pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

// each runs fn against a fresh database of every store.
func each(t *testing.T, fn func(t *testing.T, db store)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { fn(t, k.open(t, opts{})) })
	}
}

// both runs fn against a fresh database of every store and returns what
// each returned, for a comparison.
func both[T any](t *testing.T, fn func(t *testing.T, db store) T) map[string]T {
	out := map[string]T{}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { out[k.name] = fn(t, k.open(t, opts{})) })
	}
	return out
}
