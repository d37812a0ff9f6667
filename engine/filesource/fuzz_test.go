package filesource

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

var sourceRe = regexp.MustCompile(`^f:(\d+)( raw_messages\[\d+\])?$`)

// FuzzRead feeds arbitrary files to the reader. It must never panic or
// fail, every accepted message must be clean text, and the counts must add
// up: in a JSON Lines file every non-blank line is journaled or rejected,
// under its own line number, and a line gives more than one outcome only
// when it is a page.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	rec := `{"msg_id": "2015-a", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`
	for _, s := range []string{"", "\n", "\xef\xbb\xbf", "{", "{\n}", `{"raw_messages": []}`, `{"raw_messages": [` + rec + `, 1]}` + "\n" + rec,
		rec + "\r\n\r\n" + rec[:30] + "\n\xef\xbb\xbf" + rec, "\x00\xff\n" + rec, "{\n" + rec + "\n}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := engine.Limits{MaxBytes: 1024, MaxDepth: 8}
		r := Reader{Limits: lim, BatchSize: 3}
		covered := map[int]int{}
		err := r.Read(context.Background(), "f", bytes.NewReader(data), func(b Batch) error {
			if len(b.Lines) != len(b.Messages) {
				t.Fatalf("%d messages with %d lines", len(b.Messages), len(b.Lines))
			}
			if n := len(b.Messages) + len(b.Rejects); n == 0 || n > 3+1 {
				t.Fatalf("batch of %d outcomes with batch size 3", n)
			}
			for i, m := range b.Messages {
				covered[b.Lines[i]]++
				if !utf8.Valid(m.Raw) || bytes.IndexByte(m.Raw, 0) >= 0 {
					t.Fatalf("line %d: accepted a record that is not clean text: %q", b.Lines[i], m.Raw)
				}
			}
			for _, rj := range b.Rejects {
				sm := sourceRe.FindStringSubmatch(rj.Source)
				if sm == nil {
					t.Fatalf("reject source %q names no line", rj.Source)
				}
				if rj.Reason == "" || rj.Record == nil {
					t.Fatalf("reject %s without a reason or a record", rj.Source)
				}
				n, _ := strconv.Atoi(sm[1])
				covered[n]++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		lines := bytes.Split(bytes.TrimPrefix(data, bom), []byte("\n"))
		doc, _, _, err := (&Reader{Limits: lim}).sniff(bufio.NewReaderSize(bytes.NewReader(data), 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		for n := range covered {
			if n < 1 || n > len(lines) {
				t.Fatalf("outcome for line %d of %d", n, len(lines))
			}
		}
		if doc != nil {
			return
		}
		for i, line := range lines {
			n := i + 1
			blank := isBlank(bytes.TrimPrefix(line, bom))
			switch {
			case blank && covered[n] > 0:
				t.Fatalf("blank line %d has %d outcomes", n, covered[n])
			case !blank && covered[n] == 0 && !emptyPage(line):
				t.Fatalf("line %d (%q) was neither journaled nor rejected", n, line)
			case covered[n] > 1 && !bytes.Contains(line, []byte("raw_messages")):
				t.Fatalf("line %d (%q) has %d outcomes and is not a page", n, line, covered[n])
			}
		}
	})
}

// emptyPage reports whether a line is a page without records, the one
// non-blank line that gives no outcome.
func emptyPage(line []byte) bool {
	v, err := fastjson.ParseBytes(bytes.TrimPrefix(line, bom))
	if err != nil || v.Type() != fastjson.TypeObject {
		return false
	}
	a, err := v.Get("raw_messages").Array()
	return err == nil && len(a) == 0
}
