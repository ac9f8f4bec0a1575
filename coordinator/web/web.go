// Package web is the coordinator's read-only page: its jobs and their
// status, a job's rounds with per-site participation and learning
// curves, and the audit log's size and last verified checkpoint. It is
// rendered on the server with html/template from files embedded in the
// binary (no JavaScript, no build step), and it only reads: it offers no
// action and answers GET and HEAD only (httpserve refuses the rest).
//
// The coordinator mounts it on its opt-in HTTP address beside /metrics,
// behind that listener's bearer token (or, for federa demo --serve only,
// loopback without one, which the footer says).
package web

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Source is what the page shows, read at each request.
type Source interface {
	// Jobs are every job, newest first.
	Jobs() []*federav1.Job
	// Job is one job, or false if there is none by that ID.
	Job(id string) (*federav1.Job, bool)
	// Audit describes the audit log.
	Audit() Audit
}

// Audit is the audit log as the page shows it.
type Audit struct {
	Entries int64
	Bytes   int64
	// Checkpoint is the latest signed checkpoint, checked against the log
	// key and the log's own tree hash at its size; nil before the first.
	Checkpoint *Checkpoint
	// Problem says why the latest checkpoint does not verify, if it does
	// not.
	Problem string
}

// Checkpoint is a verified signed tree head.
type Checkpoint struct {
	Size      int64
	Root      string // base64, as in the checkpoint note
	Witnesses int    // site co-signatures verified on it
}

// Options configure the page.
type Options struct {
	// Dev says the page is served to loopback without a token (federa
	// demo --serve); the footer says so.
	Dev bool
	// Addr is the coordinator's gRPC address, shown for the commands.
	Addr string
	Log  *slog.Logger
	Now  func() time.Time
}

type page struct {
	tmpl *template.Template
	src  Source
	opts Options
}

// Register adds the page's routes to mux: / (jobs), /jobs/{id} (one job)
// and /static/.
func Register(mux *http.ServeMux, src Source, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("web templates: %w", err)
	}
	p := &page{tmpl: t, src: src, opts: opts}
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("GET /jobs/{id}", p.job)
	return nil
}

// common is what every page's layout needs.
type common struct {
	Title    string
	Dev      bool
	Addr     string
	Rendered time.Time
}

func (p *page) common(title string) common {
	return common{Title: title, Dev: p.opts.Dev, Addr: p.opts.Addr, Rendered: p.opts.Now().UTC()}
}

func (p *page) index(w http.ResponseWriter, r *http.Request) {
	jobs := p.src.Jobs()
	p.render(w, "index.html", struct {
		common
		Jobs  []*federav1.Job
		Audit Audit
	}{p.common("federa coordinator"), jobs, p.src.Audit()})
}

func (p *page) job(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	j, ok := p.src.Job(id)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		p.render(w, "notfound.html", struct {
			common
			ID string
		}{p.common("no job " + id), id})
		return
	}
	p.render(w, "job.html", struct {
		common
		Job           *federav1.Job
		Participation participation
		Curves        template.HTML
	}{p.common("job " + j.GetId()), j, participationOf(j), curves(j)})
}

func (p *page) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:")
	if err := p.tmpl.ExecuteTemplate(w, name, data); err != nil {
		p.opts.Log.Warn("render page", "page", name, "err", err)
	}
}
