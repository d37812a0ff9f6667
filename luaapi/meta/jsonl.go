package meta

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/valyala/fastjson"
)

// RunJSONL reads JSONL from r and writes, for each non-blank line, one JSON
// line with every helper's output, in input order. A line is a message
// (a fedmsg envelope or datagrepper record with topic and msg/body) or a
// corpus case (a line with a "case" key, the message under "msg"). A line
// that cannot be read gives {"error": ..., "line": N} and the run goes on.
// The error returned is only for reading r or writing w.
func RunJSONL(r io.Reader, w io.Writer, lib *Library) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	bw := bufio.NewWriter(w)
	var p fastjson.Parser
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(trimSpace(line)) == 0 {
			continue
		}
		out, err := computeLine(lib, &p, line)
		if err != nil {
			out, _ = json.Marshal(map[string]any{"error": err.Error(), "line": n})
		}
		bw.Write(out)
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		bw.Flush()
		return err
	}
	return bw.Flush()
}

func computeLine(lib *Library, p *fastjson.Parser, line []byte) ([]byte, error) {
	v, err := p.ParseBytes(line)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("not a JSON object but %s", v.Type())
	}
	rec := v
	if v.Get("case") != nil {
		rec = v.Get("msg")
		if rec == nil || rec.Type() != fastjson.TypeObject {
			return nil, fmt.Errorf("corpus case without a msg object")
		}
	}
	tv := rec.Get("topic")
	if tv == nil || tv.Type() != fastjson.TypeString {
		return nil, fmt.Errorf("no string topic")
	}
	if rec.Get("msg") == nil && rec.Get("body") == nil {
		return nil, fmt.Errorf("no msg or body")
	}
	res, err := lib.ComputeRecord(string(tv.GetStringBytes()), rec.MarshalTo(nil))
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
