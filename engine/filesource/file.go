// Package filesource reads bus messages from files: JSON Lines of
// datagrepper /raw records (or /v2 records, or fedmsg envelopes), and JSON
// documents holding "raw_messages" (saved datagrepper pages). It is where a
// replayed message enters statscache.
package filesource

import (
	"bufio"
	"bytes"
	"context"
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
	Rejects  []engine.Reject
}

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
	path := name
	br := bufio.NewReaderSize(in, 1<<20)
	first, err := br.Peek(1)
	for err == nil && (first[0] == ' ' || first[0] == '\n' || first[0] == '\r' || first[0] == '\t') {
		br.ReadByte()
		first, err = br.Peek(1)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if first[0] == '[' || r.isDocument(br) {
		return r.readDocument(ctx, path, br, fn)
	}
	return r.readLines(ctx, path, br, fn)
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

// isDocument reports whether the file is one (pretty-printed) JSON
// document rather than JSON Lines: its first line is not a whole value.
func (r *Reader) isDocument(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Size())
	line := buf
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		line = buf[:i]
	} else if len(buf) == br.Size() {
		return false // a huge first line: treat as JSON Lines, the limit applies
	}
	return fastjson.ValidateBytes(bytes.TrimSpace(line)) != nil
}

func (r *Reader) readLines(ctx context.Context, path string, br *bufio.Reader, fn func(Batch) error) error {
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
		src := fmt.Sprintf("%s:%d", path, lineNo)
		switch {
		case tooLong:
			b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: fmt.Sprintf("line is over the limit of %d bytes", max), Record: line})
		case len(bytes.TrimSpace(line)) == 0:
		default:
			// A line may itself be a saved datagrepper page.
			if v, perr := p.ParseBytes(line); perr == nil && v.Get("raw_messages") != nil {
				r.expandPage(src, v, &dec, &b)
			} else {
				r.decodeOne(src, line, &dec, &b)
			}
		}
		if len(b.Messages)+len(b.Rejects) >= r.batchSize() {
			if err := fn(b); err != nil {
				return err
			}
			b = Batch{}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if len(b.Messages)+len(b.Rejects) > 0 {
		return fn(b)
	}
	return nil
}

func (r *Reader) decodeOne(src string, rec []byte, dec *engine.Decoder, b *Batch) {
	m, err := dec.Decode(rec)
	if err != nil {
		b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: err.Error(), Record: append([]byte(nil), rec...)})
		return
	}
	b.Messages = append(b.Messages, m)
}

func (r *Reader) expandPage(src string, v *fastjson.Value, dec *engine.Decoder, b *Batch) {
	arr, err := v.Get("raw_messages").Array()
	if err != nil {
		b.Rejects = append(b.Rejects, engine.Reject{Source: src, Reason: "raw_messages is not an array"})
		return
	}
	for i, rec := range arr {
		r.decodeOne(fmt.Sprintf("%s raw_messages[%d]", src, i), rec.MarshalTo(nil), dec, b)
	}
}

// readDocument reads a whole JSON document: an object with raw_messages,
// or an array of records.
func (r *Reader) readDocument(ctx context.Context, path string, br *bufio.Reader, fn func(Batch) error) error {
	data, err := io.ReadAll(io.LimitReader(br, int64(r.maxBytes())*64+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	dec := engine.Decoder{Limits: r.Limits}
	var b Batch
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	switch {
	case err != nil:
		b.Rejects = append(b.Rejects, engine.Reject{Source: path, Reason: fmt.Sprintf("not JSON Lines and not a JSON document: %v", err)})
	case v.Type() == fastjson.TypeArray:
		arr, _ := v.Array()
		for i, rec := range arr {
			r.decodeOne(fmt.Sprintf("%s[%d]", path, i), rec.MarshalTo(nil), &dec, &b)
		}
	case v.Get("raw_messages") != nil:
		r.expandPage(path, v, &dec, &b)
	default:
		r.decodeOne(path, data, &dec, &b)
	}
	for len(b.Messages) > 0 || len(b.Rejects) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(b.Messages), r.batchSize())
		part := Batch{Messages: b.Messages[:n], Rejects: b.Rejects}
		b.Messages, b.Rejects = b.Messages[n:], nil
		if err := fn(part); err != nil {
			return err
		}
	}
	return nil
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
