package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Sample is the repeated measurements of one quantity.
type Sample struct {
	V    []float64
	Unit string
	Prec int // decimals when printed
}

func sample(unit string, prec int, v ...float64) Sample { return Sample{V: v, Unit: unit, Prec: prec} }

func (s *Sample) Add(v float64) { s.V = append(s.V, v) }

func (s Sample) Empty() bool { return len(s.V) == 0 }

func (s Sample) sorted() []float64 {
	v := append([]float64(nil), s.V...)
	sort.Float64s(v)
	return v
}

func (s Sample) Median() float64 {
	v := s.sorted()
	if len(v) == 0 {
		return math.NaN()
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (s Sample) Min() float64 { v := s.sorted(); return v[0] }
func (s Sample) Max() float64 { v := s.sorted(); return v[len(v)-1] }

func (s Sample) num(v float64) string { return fmtNum(v, s.Prec) }

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	str := fmt.Sprintf("%.*f", prec, v)
	// Thousands separators for the integer part.
	neg := strings.HasPrefix(str, "-")
	str = strings.TrimPrefix(str, "-")
	intPart, frac, _ := strings.Cut(str, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// String is "median [min–max] unit", or the single value.
func (s Sample) String() string {
	if len(s.V) == 0 {
		return "—"
	}
	unit := ""
	if s.Unit != "" {
		unit = " " + s.Unit
	}
	if len(s.V) == 1 {
		return s.num(s.V[0]) + unit
	}
	return fmt.Sprintf("%s [%s–%s]%s", s.num(s.Median()), s.num(s.Min()), s.num(s.Max()), unit)
}

// Target kinds.
const (
	atLeastRatio = iota // median(berth)/median(ref) >= Val
	atMostRatio         // median(berth)/median(ref) <= Val
	atMostDelta         // median(berth)-median(ref) <= Val
	atMostAbs           // max(berth) <= Val
	exactlyAbs          // every berth value == Val
)

// Target is what a row must reach.
type Target struct {
	Kind int
	Val  float64
	Text string // as printed, e.g. "≥ 0.9×"
}

// Row is one measured quantity of a scenario.
type Row struct {
	Case    string
	Measure string
	Berth   Sample
	Ref     Sample
	RefName string
	NoRatio bool // the ratio means nothing (counts)
	Target  *Target
	// Why is the likely cause, printed when the row misses its target.
	Why string
	// Result is PASS, MISS, "—" (no target) or a text.
	Result string
	Ratio  string
	Short  string // by how much a MISS missed
}

func (r *Row) eval() {
	if r.Result != "" {
		return
	}
	if r.Berth.Empty() {
		r.Result = "not measured"
		return
	}
	b := r.Berth.Median()
	var ratio float64
	if !r.Ref.Empty() && r.Ref.Median() != 0 && !r.NoRatio {
		ratio = b / r.Ref.Median()
		if r.Target != nil && r.Target.Kind == atMostDelta {
			r.Ratio = fmt.Sprintf("%+.*f %s", r.Berth.Prec, b-r.Ref.Median(), r.Berth.Unit)
		} else {
			r.Ratio = fmt.Sprintf("%.2f×", ratio)
		}
	}
	if r.Target == nil {
		r.Result = "—"
		return
	}
	t := r.Target
	pass := false
	switch t.Kind {
	case atLeastRatio:
		pass = ratio >= t.Val
		if !pass {
			r.Short = fmt.Sprintf("Berth reaches %.3f× of %s, %.1f%% below the %s target", ratio, r.RefName, (1-ratio/t.Val)*100, t.Text)
		}
	case atMostRatio:
		pass = ratio <= t.Val
		if !pass {
			r.Short = fmt.Sprintf("Berth is at %.3f× of %s, %.1f%% over the %s target", ratio, r.RefName, (ratio/t.Val-1)*100, t.Text)
		}
	case atMostDelta:
		d := b - r.Ref.Median()
		pass = d <= t.Val
		if !pass {
			r.Short = fmt.Sprintf("Berth's median is %s %s above %s, %s %s over the %s target",
				r.Berth.num(d), r.Berth.Unit, r.RefName, r.Berth.num(d-t.Val), r.Berth.Unit, t.Text)
		}
	case atMostAbs:
		m := r.Berth.Max()
		pass = m <= t.Val
		if !pass {
			r.Short = fmt.Sprintf("the worst run reached %s %s, %.0f%% over the %s target", r.Berth.num(m), r.Berth.Unit, (m/t.Val-1)*100, t.Text)
		}
	case exactlyAbs:
		pass = true
		for _, v := range r.Berth.V {
			if v != t.Val {
				pass = false
			}
		}
		if !pass {
			r.Short = fmt.Sprintf("runs saw %s, the target is %s", r.Berth.String(), t.Text)
		}
	}
	r.Result = "PASS"
	if !pass {
		r.Result = "MISS"
	}
}

// Section is one scenario's results.
type Section struct {
	ID    int
	Title string
	Intro string // how it was measured
	Rows  []*Row
	Notes []string // diagnostics, always printed
	Extra string   // markdown appended as is
	Err   string   // the scenario failed or was not run
	Took  time.Duration

	// Bound is what limits the figures (CPU, disk, the link, the
	// reference); Growth how they change from small to large. Unset, they
	// come from defaultBounds.
	Bound, Growth string
}

func (s *Section) add(r *Row) *Row { s.Rows = append(s.Rows, r); return r }

func (s *Section) note(format string, a ...any) { s.Notes = append(s.Notes, fmt.Sprintf(format, a...)) }

// Report is a whole run.
type Report struct {
	Mode     string
	Command  string
	Date     time.Time
	Machine  []string
	Method   []string
	Sections []*Section
	Took     time.Duration
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func (r *Report) markdown(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Benchmarks\n\n")
	p("Where Berth stands against the physical limit of one machine: every number\n")
	p("below is Berth next to a reference that does the same work with nothing in\n")
	p("between (a plain sendfile file server, or the upstream served directly),\n")
	p("measured in the same run. This file is generated by `%s`; do not edit it by\n", r.Command)
	p("hand, run it again.\n\n")
	p("Run on %s; the whole run took %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second))
	p("## Machine\n\n")
	for _, m := range r.Machine {
		p("- %s\n", m)
	}
	p("\n## How it is measured\n\n")
	for _, m := range r.Method {
		p("- %s\n", m)
	}
	p("\n## Summary\n\n")
	p("| # | Case | Measure | Berth | Reference | Ratio | Target | Result |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Sections {
		if s.ID == 0 {
			continue
		}
		if s.Err != "" && len(s.Rows) == 0 {
			p("| %d | %s | — | — | — | — | — | %s |\n", s.ID, mdEscape(s.Title), mdEscape(s.Err))
			continue
		}
		for _, row := range s.Rows {
			if row.Target == nil && row.Result == "—" {
				continue
			}
			p("| %d | %s | %s | %s | %s | %s | %s | **%s** |\n", s.ID, mdEscape(row.Case), mdEscape(row.Measure),
				row.Berth.String(), row.Ref.String(), row.Ratio, targetText(row), row.Result)
		}
	}
	p("\nRows without a target are in the scenario sections below.\n")
	for _, s := range r.Sections {
		if s.ID > 0 {
			p("\n## %d. %s\n\n", s.ID, s.Title)
		} else {
			p("\n## %s\n\n", s.Title)
		}
		if s.Intro != "" {
			p("%s\n\n", s.Intro)
		}
		s.boundsMarkdown(p)
		if len(s.Rows) > 0 {
			p("| Case | Measure | Berth | Reference | Ratio | Target | Result |\n|---|---|---|---|---|---|---|\n")
			for _, row := range s.Rows {
				ref := row.Ref.String()
				if row.RefName != "" && !row.Ref.Empty() {
					ref = row.RefName + ": " + ref
				}
				p("| %s | %s | %s | %s | %s | %s | %s |\n", mdEscape(row.Case), mdEscape(row.Measure), row.Berth.String(),
					mdEscape(ref), row.Ratio, targetText(row), row.Result)
			}
			p("\n")
		}
		if s.Err != "" {
			p("**Not completed:** %s\n\n", s.Err)
		}
		for _, row := range s.Rows {
			if row.Result == "MISS" {
				why := row.Why
				if why == "" {
					why = "No cause was isolated by this run."
				}
				p("- **MISS, %s, %s:** %s. %s\n", row.Case, row.Measure, row.Short, why)
			}
		}
		for _, n := range s.Notes {
			p("- %s\n", n)
		}
		if s.Extra != "" {
			p("\n%s\n", strings.TrimRight(s.Extra, "\n"))
		}
	}
}

func targetText(r *Row) string {
	if r.Target == nil {
		return "—"
	}
	return r.Target.Text
}

// text prints the summary table for a terminal.
func (r *Report) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tCASE\tMEASURE\tBERTH\tREFERENCE\tRATIO\tTARGET\tRESULT")
	for _, s := range r.Sections {
		if s.ID == 0 {
			continue
		}
		if s.Err != "" {
			fmt.Fprintf(tw, "%d\t%s\t\t\t\t\t\t%s\n", s.ID, s.Title, s.Err)
		}
		for _, row := range s.Rows {
			ref := row.Ref.String()
			if row.RefName != "" && !row.Ref.Empty() {
				ref = row.RefName + ": " + ref
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, row.Case, row.Measure, row.Berth.String(),
				ref, row.Ratio, targetText(row), row.Result)
		}
	}
	tw.Flush()
	for _, s := range r.Sections {
		for _, row := range s.Rows {
			if row.Result == "MISS" {
				fmt.Fprintf(w, "MISS %d %s, %s: %s.\n", s.ID, row.Case, row.Measure, row.Short)
			}
		}
	}
}
