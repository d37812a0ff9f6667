package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"statscache/engine"
)

// The journal's dedupe (see migrations 0010 and 0011): journal_keys and
// journal_keys_recent map the hash of every journaled key to the time of
// the first key with that hash (a hash is in one of the two), and
// journal_collisions holds the keys whose hash an earlier, different key
// already had. A key is journaled when its hash is new; when the hash is
// taken, when its row (time, key) is not at the recorded time and it is not
// among the collisions yet. New hashes go to journal_keys_recent, which is
// merged into journal_keys in hash order once it holds recentKeysMerge.

// recentKeysMerge is how many hashes journal_keys_recent holds before they
// are merged into journal_keys: about 4 MiB of table, so that an append
// writes few of its pages, and a merge every 25 appends of 10,000.
var recentKeysMerge int64 = 250_000 // a variable for the tests

// rowsPerInsert bounds the rows of one multi-row INSERT (6 bound values a
// journal row, well under SQLite's limit of 32,766).
const rowsPerInsert = 500

// newKeys records the keys of msgs and returns the messages that are new
// to the journal, in the order given, and how many were duplicates (of the
// journal, or of an earlier message of msgs: the first one wins).
func newKeys(ctx context.Context, tx *sql.Tx, msgs []*engine.Message) ([]*engine.Message, int, error) {
	type cand struct {
		m *engine.Message
		h int64
	}
	var (
		dups  int
		first = make(map[int64]string, len(msgs)) // hash -> key of its first message here
		cands = make([]cand, 0, len(msgs))
		slow  []*engine.Message // the hash of an earlier, different key of msgs
	)
	for _, m := range msgs {
		h := keyHash(m.Key)
		if k, ok := first[h]; ok {
			if k == m.Key {
				dups++
			} else {
				slow = append(slow, m)
			}
			continue
		}
		first[h] = m.Key
		cands = append(cands, cand{m, h})
	}
	// The hashes journal_keys holds already are taken; the others are
	// claimed in journal_keys_recent, many at a time: RETURNING lists the
	// rows inserted, not the ones DO NOTHING skipped.
	old := make(map[int64]bool)
	for i := 0; i < len(cands); i += rowsPerInsert {
		part := cands[i:min(i+rowsPerInsert, len(cands))]
		args := make([]any, len(part))
		for j, c := range part {
			args[j] = c.h
		}
		q := `SELECT h FROM journal_keys WHERE h IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(part)), ", ") + `)`
		if err := queryHashes(tx, q, args, old); err != nil {
			return nil, 0, err
		}
	}
	var claim []cand
	for _, c := range cands {
		if !old[c.h] {
			claim = append(claim, c)
		}
	}
	// Claimed in hash order: journal_keys_recent is keyed by the hash, and
	// hashes in order walk its B-tree from left to right instead of
	// jumping all over it. Over 1,000,000 messages the claims took 14.7 s
	// in the order given (their cost per message grew from 6 to 15 µs as
	// the table filled), and 3.3 s in hash order (a journal-only replay
	// with the statements timed, one run each on a busy machine).
	slices.SortFunc(claim, func(a, b cand) int { return cmp.Compare(a.h, b.h) })
	claimed := make(map[int64]bool, len(cands))
	for i := 0; i < len(claim); i += rowsPerInsert {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		part := claim[i:min(i+rowsPerInsert, len(claim))]
		args := make([]any, 0, 2*len(part))
		for _, c := range part {
			args = append(args, c.h, c.m.TimeUS)
		}
		q := `INSERT INTO journal_keys_recent (h, time_us) VALUES ` + tuples("(?, ?)", len(part)) + ` ON CONFLICT DO NOTHING RETURNING h`
		if err := queryHashes(tx, q, args, claimed); err != nil {
			return nil, 0, err
		}
	}
	fresh := make([]*engine.Message, 0, len(cands))
	var taken []*engine.Message // hash already journaled: the key may be too
	for _, c := range cands {
		if claimed[c.h] {
			fresh = append(fresh, c.m)
		} else {
			taken = append(taken, c.m)
		}
	}
	if len(taken) == 0 && len(slow) == 0 {
		return fresh, dups, nil
	}
	// A key whose hash is taken is journaled when its row is at the
	// hash's recorded time, or among the collisions. The keys of this
	// call that claimed a hash are not in the journal yet: a colliding key
	// of the same call is checked against them by name.
	claimedKey := make(map[string]bool, len(fresh))
	for _, m := range fresh {
		claimedKey[m.Key] = true
	}
	for _, m := range append(taken, slow...) {
		if claimedKey[m.Key] {
			dups++
			continue
		}
		isNew, err := newCollidingKey(ctx, tx, m)
		if err != nil {
			return nil, 0, err
		}
		if !isNew {
			dups++
			continue
		}
		claimedKey[m.Key] = true
		fresh = append(fresh, m)
	}
	return fresh, dups, nil
}

// queryHashes runs a statement that returns hashes and adds them to into.
func queryHashes(tx *sql.Tx, q string, args []any, into map[int64]bool) error {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return fmt.Errorf("journal keys: %w", err)
		}
		into[h] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("journal keys: %w", err)
	}
	return rows.Close()
}

// mergeRecentKeys moves the hashes of journal_keys_recent into
// journal_keys, in hash order; it runs in an append's transaction, so a
// hash is always in exactly one of the two tables. held is about how many
// the table holds (DB.recentKeys); below recentKeysMerge it does nothing.
func mergeRecentKeys(ctx context.Context, tx *sql.Tx, held int64) (bool, error) {
	if held < recentKeysMerge {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO journal_keys (h, time_us) SELECT h, time_us FROM journal_keys_recent ORDER BY h`); err != nil {
		return false, fmt.Errorf("merge journal keys: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM journal_keys_recent`); err != nil {
		return false, fmt.Errorf("merge journal keys: %w", err)
	}
	return true, nil
}

// newCollidingKey reports whether m's key, whose hash is already in
// journal_keys, is new to the journal, and records it as a collision if so.
func newCollidingKey(ctx context.Context, tx *sql.Tx, m *engine.Message) (bool, error) {
	var found int
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM
		(SELECT time_us FROM journal_keys WHERE h = ?2 UNION ALL SELECT time_us FROM journal_keys_recent WHERE h = ?2) k
		JOIN journal j ON j.time_us = k.time_us AND j.key = ?1)`,
		m.Key, keyHash(m.Key)).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("journal key %s: %w", m.ID, err)
	}
	if found == 1 {
		return false, nil
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO journal_collisions (key) VALUES (?) ON CONFLICT DO NOTHING`, m.Key)
	if err != nil {
		return false, fmt.Errorf("journal key %s: %w", m.ID, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("journal key %s: %w", m.ID, err)
	}
	return n == 1, nil
}

// journalRow is one new journal row, its record as stored.
type journalRow struct {
	m    *engine.Message
	raw  []byte
	late int
}

// insertJournal writes new rows, many to a statement. Their keys are new
// (newKeys), so a conflict means journal_keys and the journal disagree:
// it fails the append instead of dropping a message.
func insertJournal(ctx context.Context, tx *sql.Tx, rows []journalRow) error {
	return insertRows(ctx, tx, "journal", rows)
}

// insertRows writes rows into table, a journal, many to a statement.
func insertRows(ctx context.Context, tx *sql.Tx, table string, rows []journalRow) error {
	for i := 0; i < len(rows); i += rowsPerInsert {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		part := rows[i:min(i+rowsPerInsert, len(rows))]
		args := make([]any, 0, 6*len(part))
		for _, r := range part {
			args = append(args, r.m.TimeUS, r.m.Key, r.m.ID, r.m.Topic, r.raw, r.late)
		}
		if _, err := tx.Exec(`INSERT INTO `+table+` (time_us, key, id, topic, raw, late) VALUES `+tuples("(?, ?, ?, ?, ?, ?)", len(part)), args...); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

// tuples returns n copies of tuple separated by commas.
func tuples(tuple string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(tuple) + 2))
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	return b.String()
}

// clusterJournal completes migration 0010: it copies the old journal into
// journal_next in order, records compressed (with a dictionary made from
// the first ones) and keys hashed as Append does, then journal_next
// replaces it. The old journal's keys are unique, so a hash already taken
// is a collision.
func clusterJournal(ctx context.Context, tx *sql.Tx) error {
	c, err := newCodec(nil)
	if err != nil {
		return err
	}
	var first [][]byte
	var topics []string
	rows, err := tx.QueryContext(ctx, `SELECT raw, topic FROM journal ORDER BY time_us, key LIMIT 1000`)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	for rows.Next() {
		var raw []byte
		var topic string
		if err := rows.Scan(&raw, &topic); err != nil {
			rows.Close()
			return fmt.Errorf("read journal: %w", err)
		}
		first, topics = append(first, raw), append(topics, topic)
	}
	rows.Close()
	if d := dictContent(first, topics); d != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO journal_dicts (id, dict) VALUES (1, ?)`, d); err != nil {
			return fmt.Errorf("journal dictionary: %w", err)
		}
		if c, err = c.with(1, d); err != nil {
			return err
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT time_us, key, id, topic, raw, late FROM journal ORDER BY time_us, key`)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	defer rows.Close()
	var batch []journalRow
	flush := func() error {
		c.packAll(batch)
		if err := insertRows(ctx, tx, "journal_next", batch); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		m := &engine.Message{}
		var late int
		if err := rows.Scan(&m.TimeUS, &m.Key, &m.ID, &m.Topic, &m.Raw, &late); err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO journal_keys (h, time_us) VALUES (?, ?) ON CONFLICT DO NOTHING`, keyHash(m.Key), m.TimeUS)
		if err != nil {
			return fmt.Errorf("journal key %s: %w", m.ID, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO journal_collisions (key) VALUES (?)`, m.Key); err != nil {
				return fmt.Errorf("journal key %s: %w", m.ID, err)
			}
		}
		batch = append(batch, journalRow{m: m, late: late})
		if len(batch) == rowsPerInsert {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	rows.Close()
	if err := flush(); err != nil {
		return err
	}
	for _, q := range []string{`DROP TABLE journal`, `ALTER TABLE journal_next RENAME TO journal`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replace journal: %w", err)
		}
	}
	return nil
}
