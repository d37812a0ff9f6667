package pgstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"statscache/schema"
)

// maxIdent is PostgreSQL's limit on a name (NAMEDATALEN - 1 bytes): a
// longer one is cut silently, so two long names could name one table.
const maxIdent = 63

// quote quotes a name for PostgreSQL. Names are validated by
// schema.Table.Validate, but every generated statement quotes anyway:
// column names such as "references" are reserved words.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// pgType maps a column type to its PostgreSQL type. Text orders by bytes
// ("C"), as in SQLite, so that pages by key come in the same order from
// both stores; json is jsonb.
func pgType(t schema.Type) string {
	switch t {
	case schema.Integer:
		return "BIGINT"
	case schema.Real:
		return "DOUBLE PRECISION"
	case schema.JSON:
		return "JSONB"
	default:
		return `TEXT COLLATE "C"`
	}
}

// arrayType is the array type a column's values are sent as in one
// multi-row write (jsonb goes as text and is cast per row).
func arrayType(t schema.Type) string {
	switch t {
	case schema.Integer:
		return "bigint[]"
	case schema.Real:
		return "float8[]"
	default:
		return "text[]"
	}
}

// indexName names an index of table: table_suffix, or, when that is too
// long for PostgreSQL, its start and a hash of the whole.
func indexName(table, suffix string) string {
	n := table + "_" + suffix
	if len(n) <= maxIdent {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:maxIdent-9] + "_" + hex.EncodeToString(h[:4])
}

// tableDDL returns the statements that create a model table in
// PostgreSQL: keyed by its row key, with an "id" numbering rows in the
// order they were first inserted (the store assigns it, readers page by
// it), an index on the timestamp unless the key starts with it, and the
// statement triggers that keep its row count in table_rows. The indexes of
// the columns declared with index = true come later (declaredIndexDDL,
// DB.BuildIndexes), as in SQLite (schema.Table.DeclaredIndexDDL).
func tableDDL(t *schema.Table) ([]string, error) {
	if len(t.Name) > maxIdent {
		return nil, fmt.Errorf("table name %s is %d bytes, over PostgreSQL's %d: shorten the model's name", t.Name, len(t.Name), maxIdent)
	}
	cols := []string{`"id" BIGINT NOT NULL`}
	for _, c := range t.Columns {
		s := quote(c.Name) + " " + pgType(c.Type)
		if c.NotNull {
			s += " NOT NULL"
		}
		cols = append(cols, s)
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = quote(k)
	}
	cols = append(cols, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	q := quote(t.Name)
	lit := "'" + strings.ReplaceAll(t.Name, "'", "''") + "'"
	stmts := []string{
		fmt.Sprintf("CREATE TABLE %s (\n  %s\n)", q, strings.Join(cols, ",\n  ")),
		fmt.Sprintf(`CREATE INDEX %s ON %s ("id")`, quote(indexName(t.Name, "id")), q),
	}
	if t.Key[0] != schema.TimestampColumn {
		stmts = append(stmts, indexDDL(t, schema.TimestampColumn))
	}
	stmts = append(stmts,
		fmt.Sprintf(`CREATE TRIGGER statscache_rows_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
			FOR EACH STATEMENT EXECUTE FUNCTION statscache_rows_inserted(%s)`, q, lit),
		fmt.Sprintf(`CREATE TRIGGER statscache_rows_del AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
			FOR EACH STATEMENT EXECUTE FUNCTION statscache_rows_deleted(%s)`, q, lit),
		fmt.Sprintf(`INSERT INTO table_rows (name, n) VALUES (%s, 0) ON CONFLICT (name) DO UPDATE SET n = 0`, lit),
	)
	return stmts, nil
}

// declaredIndexDDL returns the statements that create the indexes of the
// columns a model declares with index = true, each idempotent.
func declaredIndexDDL(t *schema.Table) []string {
	var stmts []string
	for _, c := range t.DeclaredIndexes() {
		stmts = append(stmts, indexDDL(t, c))
	}
	return stmts
}

func indexDDL(t *schema.Table, col string) string {
	return fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", quote(indexName(t.Name, col)), quote(t.Name), quote(col))
}
