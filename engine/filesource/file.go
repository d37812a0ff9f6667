// Package filesource reads bus messages from files: JSON Lines of
// datagrepper /raw records (or /v2 records, or fedmsg envelopes), and JSON
// documents holding "raw_messages" (saved datagrepper pages). It is where a
// replayed message enters statscache.
//
// A file is judged line by line, never as a whole: one damaged line (a
// truncated first record, a binary blob, a page whose raw_messages is not a
// list) is rejected with its file and line number, and every other line is
// read. Only a file whose first non-blank byte, after an optional UTF-8 byte
// order mark, is "{" and whose whole content is one JSON document holding
// raw_messages is read as a saved page; anything else is JSON Lines.
package filesource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/valyala/fastjson"

	"statscache/engine"
)

// Batch is what the reader hands on: accepted messages and rejected
// records, in file order.
type Batch struct {
	Messages []*engine.Message
	// Lines holds, for each message, the line of the file where its
	// record starts (1-based).
	Lines   []int
	Rejects []engine.Reject
}

func (b *Batch) len() int { return len(b.Messages) + len(b.Rejects) }

// Reader streams records from files in batches.
type Reader struct {
	Limits    engine.Limits
	BatchSize int // messages per batch; default 5000
}

// ReadFile reads path and calls fn with each batch. A record that cannot be
// decoded is rejected with its file and line and never stops the read; only
// an I/O error or an error from fn does.
func (r *Reader) ReadFile(ctx context.Context, path string, fn func(Batch) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	return r.Read(ctx, path, f, fn)
}

// Read is ReadFile over any reader; name labels the records in rejects.
func (r *Reader) Read(ctx context.Context, name string, in io.Reader, fn func(Batch) error) error {
	br := bufio.NewReaderSize(in, 1<<20)
	doc, rest, why, err := r.sniff(br)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if doc != nil {
		return r.readDocument(ctx, name, doc, fn)
	}
	return r.readLines(ctx, name, rest, why, fn)
}

func (r *Reader) batchSize() int {
	if r.BatchSize <= 0 {
		return 5000
	}
	return r.BatchSize
}

func (r *Reader) maxBytes() int {
	if r.Limits.MaxBytes <= 0 {
		return engine.DefaultLimits.MaxBytes
	}
	return r.Limits.MaxBytes
}

// maxDocument bounds a file read whole as one document: a datagrepper page
// holds at most 100 records, so this is far above any real one.
func (r *Reader) maxDocument() int64 { return int64(r.maxBytes()) * 64 }

var bom = []byte("\xef\xbb\xbf")

// isBlank reports whether a line holds nothing but spaces, tabs and a
// carriage return. Only those are skipped silently: any other content is
// judged, and rejected if it is not a record.
func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// document is a file read as one JSON document: where each raw_messages
// value starts (its line) and its bytes.
type document struct {
	pages []docValue
	data  []byte // the whole file, for the line numbers
}

type docValue struct {
	offset int // of the value in data
	raw    []byte
}

// sniff decides how to read the file. It returns the document when the
// whole file is one JSON object holding raw_messages; otherwise a reader
// that yields the file from its start (after the byte order mark) as JSON
// Lines and, for a file that starts like a document, why it is not one.
// Telling the two apart reads a JSON Lines file only up to the end of its
// first record, because a second value, or a syntax error, ends the attempt.
func (r *Reader) sniff(br *bufio.Reader) (doc *document, lines *bufio.Reader, why string, err error) {
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		br.Discard(len(bom))
	}
	first := byte(0)
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return nil, br, "", nil
			}
			return nil, nil, "", err
		}
		if c := b[n-1]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			first = c
			break
		}
	}
	if first != '{' {
		return nil, br, "", nil
	}
	var seen bytes.Buffer
	in := &lineGuard{r: io.TeeReader(io.LimitReader(br, r.maxDocument()), &seen), max: r.maxBytes()}
	doc, err = r.parseDocument(in)
	var nd *notDocument
	if err != nil && !errors.As(err, &nd) {
		return nil, nil, "", err
	}
	if doc != nil {
		// The decoder stopped at the end of the input: seen is the file.
		doc.data = seen.Bytes()
		return doc, nil, "", nil
	}
	if nd.offset >= 0 {
		why = fmt.Sprintf("the file is not one JSON document either: %s at line %d", nd.reason, lineIndex(seen.Bytes()).at(int(nd.offset)))
	}
	return nil, bufio.NewReaderSize(io.MultiReader(&seen, br), 1<<20), why, nil
}

// notDocument says why a file that starts with "{" is not read as one
// document; offset is where the reading stopped, or -1 when the file is
// plainly JSON Lines (a whole first value without raw_messages, or
// followed by more).
type notDocument struct {
	reason string
	offset int64
}

func (e *notDocument) Error() string { return e.reason }

// lineGuard fails the read of a would-be document at a line longer than
// max, the limit of one record: a pretty-printed page has short lines,
// and a huge first line of JSON Lines must cost no more memory than the
// line reader allows it (it is then read, and rejected, as a line).
type lineGuard struct {
	r   io.Reader
	max int
	run int // bytes since the last newline
}

var errLongLine = errors.New("line over the limit")

func (g *lineGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			g.run = 0
		} else if g.run++; g.run > g.max {
			return n, errLongLine
		}
	}
	return n, err
}

// parseDocument reads in as one JSON object and returns its raw_messages
// values. Any syntax error, a second value after the first, or an object
// without raw_messages gives a *notDocument; only an I/O error is returned
// as it is.
func (r *Reader) parseDocument(in io.Reader) (*document, error) {
	dec := json.NewDecoder(in)
	syntax := func(err error) error {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return &notDocument{reason: se.Error(), offset: se.Offset}
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return &notDocument{reason: "it ends early", offset: dec.InputOffset()}
		case errors.Is(err, errLongLine):
			return &notDocument{reason: "JSON Lines with a line over the limit", offset: -1}
		}
		return err
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, syntax(err)
	}
	doc := &document{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntax(err)
		}
		if tok == "raw_messages" {
			doc.pages = append(doc.pages, docValue{offset: int(dec.InputOffset()) - len(raw), raw: raw})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) || len(doc.pages) == 0 {
		// More than one value, trailing garbage, or a record.
		return nil, &notDocument{reason: "JSON Lines", offset: -1}
	}
	return doc, nil
}

// readDocument hands on the records of a document's raw_messages lists,
// each named by the line where it starts and its index.
func (r *Reader) readDocument(ctx context.Context, path string, doc *document, fn func(Batch) error) error {
	dec := engine.Decoder{Limits: r.Limits}
	var b Batch
	lines := lineIndex(doc.data)
	for _, pg := range doc.pages {
		line := lines.at(pg.offset)
		src := fmt.Sprintf("%s:%d", path, line)
		if len(pg.raw) == 0 || pg.raw[0] != '[' {
			b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: "raw_messages is not a list of records", Record: pg.raw})
			continue
		}
		ed := json.NewDecoder(bytes.NewReader(pg.raw))
		ed.Token() // '[': the document parsed already
		for i := 0; ed.More(); i++ {
			var rec json.RawMessage
			if err := ed.Decode(&rec); err != nil {
				return fmt.Errorf("read %s: raw_messages[%d]: %w", path, i, err) // cannot happen: parsed already
			}
			line := lines.at(pg.offset + int(ed.InputOffset()) - len(rec))
			r.decodeOne(fmt.Sprintf("%s:%d raw_messages[%d]", path, line, i), line, rec, &dec, &b)
			if b.len() >= r.batchSize() {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(b); err != nil {
					return err
				}
				b = Batch{}
			}
		}
	}
	if b.len() > 0 {
		return fn(b)
	}
	return nil
}

// lineIndex maps byte offsets of a document to line numbers.
type lineIndex []byte

func (l lineIndex) at(off int) int {
	off = max(0, min(off, len(l)))
	return 1 + bytes.Count(l[:off], []byte{'\n'})
}

// readLines reads JSON Lines. why, when the file looked like a document
// and is not one, is added to the reason of its first line if that is
// rejected: it is most likely a saved page with an error in it.
func (r *Reader) readLines(ctx context.Context, path string, br *bufio.Reader, why string, fn func(Batch) error) error {
	dec := engine.Decoder{Limits: r.Limits}
	var b Batch
	lineNo := 0
	max := r.maxBytes()
	var p fastjson.Parser
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, tooLong, err := readLine(br, max)
		if len(line) == 0 && errors.Is(err, io.EOF) && !tooLong {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s:%d: %w", path, lineNo+1, err)
		}
		lineNo++
		// A byte order mark may start any line: files that had one are
		// often concatenated.
		line = bytes.TrimPrefix(line, bom)
		switch {
		case tooLong:
			b.Rejects = append(b.Rejects, engine.Reject{Source: fmt.Sprintf("%s:%d", path, lineNo), Reason: fmt.Sprintf("line is over the limit of %d bytes", max), Record: line})
		case isBlank(line):
		default:
			src := fmt.Sprintf("%s:%d", path, lineNo)
			// A line may itself be a saved datagrepper page.
			if v, perr := p.ParseBytes(line); perr == nil && v.Type() == fastjson.TypeObject && v.Get("raw_messages") != nil {
				r.expandPage(src, lineNo, line, v, &dec, &b)
			} else {
				r.decodeOne(src, lineNo, line, &dec, &b)
			}
			if why != "" && len(b.Rejects) > 0 && b.Rejects[len(b.Rejects)-1].Source == src {
				b.Rejects[len(b.Rejects)-1].Reason += " (" + why + ")"
			}
			why = ""
		}
		if b.len() >= r.batchSize() {
			if err := fn(b); err != nil {
				return err
			}
			b = Batch{}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if b.len() > 0 {
		return fn(b)
	}
	return nil
}

func (r *Reader) decodeOne(src string, line int, rec []byte, dec *engine.Decoder, b *Batch) {
	m, err := dec.Decode(rec)
	if err != nil {
		b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: err.Error(), Record: append([]byte(nil), rec...)})
		return
	}
	b.Messages = append(b.Messages, m)
	b.Lines = append(b.Lines, line)
}

// expandPage reads the records of a page saved on one line.
func (r *Reader) expandPage(src string, line int, rec []byte, v *fastjson.Value, dec *engine.Decoder, b *Batch) {
	arr, err := v.Get("raw_messages").Array()
	if err != nil {
		b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: "raw_messages is not a list of records", Record: append([]byte(nil), rec...)})
		return
	}
	for i, el := range arr {
		r.decodeOne(fmt.Sprintf("%s raw_messages[%d]", src, i), line, el.MarshalTo(nil), dec, b)
	}
}

// readLine returns the next line without its newline. A line longer than
// max is consumed whole but only its first max bytes are returned, with
// tooLong set, so one huge record costs no more than max bytes of memory.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, e := br.ReadLine()
		if len(line)+len(chunk) > max {
			tooLong = true
			if room := max - len(line); room > 0 {
				line = append(line, chunk[:room]...)
			}
		} else {
			line = append(line, chunk...)
		}
		if e != nil {
			return line, tooLong, e
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}
