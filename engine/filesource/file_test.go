package filesource

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"statscache/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// outcome is what the reader made of one line or record, as one text line:
// "<source>: message <id>" or "<source>: rejected: <reason>".
func readAll(t testing.TB, r *Reader, name string, data []byte) (out []string, b Batch) {
	t.Helper()
	err := r.Read(context.Background(), name, bytes.NewReader(data), func(part Batch) error {
		if len(part.Lines) != len(part.Messages) {
			t.Fatalf("batch with %d messages and %d lines", len(part.Messages), len(part.Lines))
		}
		for i, m := range part.Messages {
			out = append(out, fmt.Sprintf("%s:%d: message %s", name, part.Lines[i], m.ID))
		}
		for _, rj := range part.Rejects {
			out = append(out, fmt.Sprintf("%s: rejected: %s", rj.Source, rj.Reason))
			if rj.Record == nil {
				t.Errorf("%s: reject without its record", rj.Source)
			}
		}
		b.Messages = append(b.Messages, part.Messages...)
		b.Lines = append(b.Lines, part.Lines...)
		b.Rejects = append(b.Rejects, part.Rejects...)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return lineOf(out[i]) < lineOf(out[j]) })
	return out, b
}

var lineRe = regexp.MustCompile(`^[^:]*:(\d+)`)

func lineOf(s string) int {
	m := lineRe.FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestFiles reads every file in testdata/ and compares what became of each
// line with the file's golden .out: bad lines first, in the middle and
// last, a byte order mark, CRLF line ends, pages on one line and
// pretty-printed, a page whose raw_messages is not a list, and a document
// that is not one (read as JSON Lines).
func TestFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := readAll(t, &Reader{BatchSize: 2}, filepath.Base(path), data)
			got := strings.Join(out, "\n") + "\n"
			golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".out"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
			}
		})
	}
}

// TestDocumentOrLines checks how a file is told to be a document: only a
// single JSON object holding raw_messages is one.
func TestDocumentOrLines(t *testing.T) {
	rec := `{"msg_id": "2015-a", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`
	for _, tt := range []struct {
		name, data string
		doc        bool
	}{
		{"page", `{"raw_messages": [` + rec + `]}`, true},
		{"page with BOM and blank lines", "\xef\xbb\xbf\n\n  {\"raw_messages\": [" + rec + "]}\n\n", true},
		{"pretty page", "{\n  \"total\": 1,\n  \"raw_messages\": [\n    " + rec + "\n  ]\n}\n", true},
		{"not a list", `{"raw_messages": 5}`, true},
		{"record", rec, false},
		{"pretty record", "{\n\"msg_id\": \"2015-a\", \"topic\": \"a.b.c.d\",\n\"timestamp\": 1, \"msg\": {}}", false},
		{"page then a line", `{"raw_messages": []}` + "\n" + rec, false},
		{"page then garbage", `{"raw_messages": []} x`, false},
		{"truncated page", `{"raw_messages": [` + rec, false},
		{"array", `[` + rec + `]`, false},
		{"empty", "", false},
		{"blank", " \n\t\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r Reader
			doc, rest, _, err := r.sniff(newBuf(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := doc != nil; got != tt.doc {
				t.Fatalf("document = %v, want %v", got, tt.doc)
			}
			if doc == nil {
				// The lines reader sees the file from its start, after a
				// byte order mark.
				all := new(bytes.Buffer)
				all.ReadFrom(rest)
				if want := strings.TrimPrefix(tt.data, "\xef\xbb\xbf"); all.String() != want {
					t.Fatalf("lines reader yields %q, want %q", all.String(), want)
				}
			}
		})
	}
}

func newBuf(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 1<<20) }

// TestLimits checks that a line over the byte limit is rejected, with its
// number, and does not disturb the next line.
func TestLimits(t *testing.T) {
	rec := `{"msg_id": "2015-a", "topic": "a.b.c.d", "timestamp": 1, "msg": {}}`
	big := `{"msg_id": "2015-b", "topic": "a.b.c.d", "timestamp": 1, "msg": {"x": "` + strings.Repeat("y", 5000) + `"}}`
	r := Reader{Limits: engine.Limits{MaxBytes: 1024}}
	out, b := readAll(t, &r, "f", []byte(big+"\n"+rec+"\n"+big))
	want := []string{
		"f:1: rejected: line is over the limit of 1024 bytes",
		"f:2: message 2015-a",
		"f:3: rejected: line is over the limit of 1024 bytes",
	}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(out, "\n"), strings.Join(want, "\n"))
	}
	if len(b.Rejects[0].Record) != 1024 {
		t.Errorf("kept %d bytes of the long line, want its first 1024", len(b.Rejects[0].Record))
	}

	// A page is a document only with lines within the limit: on one long
	// line it is a line over the limit (the reader never holds more than
	// the limit of a line it has not judged).
	recs := strings.Repeat(rec+",\n", 40) + rec
	out, _ = readAll(t, &r, "f", []byte(`{"raw_messages": [`+strings.ReplaceAll(recs, "\n", "")+`]}`))
	if want := "f:1: rejected: line is over the limit of 1024 bytes"; strings.Join(out, "\n") != want {
		t.Errorf("a page on one line over the limit: got\n%s\nwant\n%s", strings.Join(out, "\n"), want)
	}
	out, b = readAll(t, &r, "f", []byte("{\"raw_messages\": [\n"+recs+"\n]}\n"))
	if len(b.Messages) != 41 || len(b.Rejects) != 0 || out[40] != "f:42: message 2015-a" {
		t.Errorf("a pretty-printed page larger than the limit: %d messages, %d rejects, last %q", len(b.Messages), len(b.Rejects), out[len(out)-1])
	}
}
