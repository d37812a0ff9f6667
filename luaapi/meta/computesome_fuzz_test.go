package meta

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"

	"statscache/engine"
)

// fuzzLib and fuzzCases are loaded once for every input of the fuzz test.
var (
	fuzzOnce  sync.Once
	fuzzLib   *Library
	fuzzCases []corpusCase
	fuzzErr   error
)

func fuzzSetup(t testing.TB) (*Library, []corpusCase) {
	fuzzOnce.Do(func() {
		fuzzLib, fuzzErr = Load(rulesDir, nil)
		fuzzCases = readCases(t, filepath.Join("testdata", "cases.jsonl"))
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzLib, fuzzCases
}

// mutateRecord replaces the string leaf number at (in sorted key order) of
// the record with value, or deletes its key when drop is set; the record
// is returned unchanged when it has fewer leaves.
func mutateRecord(rec []byte, at uint16, value string, drop bool) []byte {
	var v any
	if json.Unmarshal(rec, &v) != nil {
		return rec
	}
	n := int(at)
	var walk func(x any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if _, ok := x[k].(string); ok {
					if n == 0 {
						if drop {
							delete(x, k)
						} else {
							x[k] = value
						}
					}
					n--
					continue
				}
				x[k] = walk(x[k])
			}
		case []any:
			for i := range x {
				if _, ok := x[i].(string); ok {
					if n == 0 {
						x[i] = value
					}
					n--
					continue
				}
				x[i] = walk(x[i])
			}
		}
		return x
	}
	v = walk(v)
	out, err := json.Marshal(v)
	if err != nil {
		return rec
	}
	return out
}

// checkComputeSome asks ComputeSome for the helper sets of masks, in that
// order, on one message of rec, and checks every answer against Compute
// on a message of its own: each helper asked for, the processor and the
// headers' sets equal, and everything equal once all were asked for.
func checkComputeSome(t *testing.T, l *Library, topic string, rec []byte, masks []Helpers) {
	full, ferr := l.Compute(&engine.Message{Topic: topic, Raw: rec})
	if ferr == nil && full.Err != "" {
		return // stopped by a limit: the rules' time is not a fixed answer
	}
	m := &engine.Message{Topic: topic, Raw: rec}
	for _, want := range append(masks, AllHelpers) {
		r, err := l.ComputeSome(m, want)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("ComputeSome(%09b): error %v, Compute: %v", want, err, ferr)
		}
		if err != nil {
			continue
		}
		if r.Err != "" {
			return
		}
		for i, h := range helperNames {
			if want&(1<<i) == 0 {
				continue
			}
			if g, w := got(r, h), got(full, h); !reflect.DeepEqual(g, w) {
				t.Fatalf("%s asked in %09b after %v = %#v, Compute gives %#v\nrecord %s", h, want, masks, g, w, rec)
			}
		}
		if r.Processor != full.Processor || !reflect.DeepEqual(r.Groups, full.Groups) || !reflect.DeepEqual(r.Containers, full.Containers) ||
			!reflect.DeepEqual(r.Modules, full.Modules) || !reflect.DeepEqual(r.Flatpaks, full.Flatpaks) {
			t.Fatalf("processor or header sets differ after %09b: %+v, Compute %+v", want, r, full)
		}
	}
	if ferr != nil {
		return
	}
	r, _ := l.ComputeSome(m, 0)
	g, _ := json.Marshal(r)
	w, _ := json.Marshal(full)
	if !bytes.Equal(g, w) {
		t.Fatalf("after %v:\n%s\nCompute:\n%s", masks, g, w)
	}
}

// FuzzComputeSome: the bundled fedmsg.meta cases with one string field
// changed or removed, asked for helper sets in any order, answer each
// helper as Compute does, and nothing panics.
func FuzzComputeSome(f *testing.F) {
	_, cases := fuzzSetup(f)
	for i := range cases {
		f.Add(uint16(i), uint16(i*7), "ralph", false, []byte{1, 0, 8, 1, 255, 1})
		f.Add(uint16(i), uint16(i*3+1), "", true, []byte{0, 1, 2, 0, 0, 0, 6, 0})
	}
	f.Add(uint16(0), uint16(0), "org.fedoraproject.prod.bodhi.update.comment", false, []byte{16, 0, 64, 0})
	f.Fuzz(func(t *testing.T, ci, at uint16, value string, drop bool, maskBytes []byte) {
		l, cases := fuzzSetup(t)
		c := cases[int(ci)%len(cases)]
		rec := mutateRecord(c.Msg, at, value, drop)
		var masks []Helpers
		for i := 0; i+1 < len(maskBytes) && len(masks) < 12; i += 2 {
			masks = append(masks, (Helpers(maskBytes[i])|Helpers(maskBytes[i+1])<<8)&AllHelpers)
		}
		checkComputeSome(t, l, c.Topic, rec, masks)
	})
}

// TestComputeSomeShared: goroutines that ask for helper sets on the same
// messages at the same time each get the answers Compute gives (run with
// -race: the partial results are shared through the message).
func TestComputeSomeShared(t *testing.T) {
	l, cases := fuzzSetup(t)
	type msgCase struct {
		m    *engine.Message
		full *Result
	}
	var ms []msgCase
	for _, c := range cases {
		full, err := l.ComputeRecord(c.Topic, c.Msg)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, msgCase{&engine.Message{Topic: c.Topic, Raw: c.Msg}, full})
	}
	if len(ms) < 50 {
		t.Fatalf("%d cases loaded", len(ms))
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for _, i := range rng.Perm(len(ms)) {
				mc := ms[i]
				for k := 0; k < 3; k++ {
					want := Helpers(rng.IntN(int(AllHelpers) + 1))
					r, err := l.ComputeSome(mc.m, want)
					if err != nil {
						t.Error(err)
						return
					}
					for j, h := range helperNames {
						if want&(1<<j) != 0 && !reflect.DeepEqual(got(r, h), got(mc.full, h)) {
							t.Errorf("goroutine %d, %s in %09b: %#v, Compute gives %#v", g, h, want, got(r, h), got(mc.full, h))
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
