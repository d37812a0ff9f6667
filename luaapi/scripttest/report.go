package scripttest

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Report prints one line per model ("ok" or "FAIL", its ident and script),
// the differences under each failure, a line per script without examples
// ("--") or that failed to load, and a summary. With verbose it also
// prints the rows of the models that passed. It reports whether anything
// failed.
func Report(w io.Writer, results []*ScriptResult, verbose bool) (failed bool) {
	width := 0
	for _, r := range results {
		for _, m := range r.Models {
			width = max(width, len(m.Ident))
		}
	}
	var models, bad, noEx, badScripts int
	for _, r := range results {
		switch {
		case r.Err != nil:
			badScripts++
			fmt.Fprintf(w, "FAIL  %s\n", r.Script)
			for _, l := range strings.Split(r.Err.Error(), "\n") {
				fmt.Fprintf(w, "        %s\n", l)
			}
			continue
		case r.NoExamples:
			noEx++
			in, want := ExamplePaths(r.Script)
			fmt.Fprintf(w, "--    %-*s  %s: no examples (%s, %s)\n", width, strings.TrimSuffix(filepath.Base(r.Script), ".lua"), r.Script, in, want)
			continue
		}
		for _, m := range r.Models {
			models++
			status := "ok  "
			if m.Failed() {
				status = "FAIL"
				bad++
			}
			fmt.Fprintf(w, "%s  %-*s  %s: %d messages, %d rows\n", status, width, m.Ident, r.Script, r.Messages, len(m.Rows))
			for _, p := range m.Problems {
				fmt.Fprintf(w, "        %s\n", p)
			}
			if m.NoWant || verbose {
				fmt.Fprintf(w, "        rows written:\n")
				writeRows(w, m, "          ")
			}
		}
	}
	switch {
	case bad > 0 || badScripts > 0:
		fmt.Fprintf(w, "FAIL: %d of %d models failed", bad, models)
		if badScripts > 0 {
			fmt.Fprintf(w, ", %d script(s) failed", badScripts)
		}
	default:
		fmt.Fprintf(w, "ok: %d models passed", models)
	}
	if noEx > 0 {
		fmt.Fprintf(w, ", %d script(s) without examples", noEx)
	}
	fmt.Fprintln(w)
	return bad > 0 || badScripts > 0
}

// writeRows prints rows as a JSON list, in the want file's form.
func writeRows(w io.Writer, m *ModelResult, indent string) {
	if len(m.Rows) == 0 {
		fmt.Fprintf(w, "%s%q: []\n", indent, m.Ident)
		return
	}
	fmt.Fprintf(w, "%s%q: [\n", indent, m.Ident)
	for i, r := range m.Rows {
		sep := ","
		if i == len(m.Rows)-1 {
			sep = ""
		}
		fmt.Fprintf(w, "%s  %s%s\n", indent, renderRow(&m.Table, r), sep)
	}
	fmt.Fprintf(w, "%s]\n", indent)
}
