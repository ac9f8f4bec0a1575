package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

var funcs = template.FuncMap{
	"status":      func(s federav1.JobStatus) string { return strings.ToUpper(s.Name()) },
	"statusClass": func(s federav1.JobStatus) string { return "st-" + s.Name() },
	"unixms": func(ms int64) string {
		if ms == 0 {
			return ""
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
	},
	"utc":   func(t time.Time) string { return t.Format("2006-01-02 15:04:05Z") },
	"bytes": humanBytes,
	"fig": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "n/a"
		}
		return fmt.Sprintf("%.4f", v)
	},
	"ms": func(v float64) string { return fmt.Sprintf("%.0f ms", v) },
	"join": func(s []string) string {
		if len(s) == 0 {
			return "—"
		}
		return strings.Join(s, ", ")
	},
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"dataset": func(j *federav1.Job) string { return j.GetSpec().GetDataset() },
	"model":   func(j *federav1.Job) string { return j.GetSpec().GetModel().GetType() },
	"rounds":  func(j *federav1.Job) int32 { return j.GetSpec().GetRounds() },
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
