package cli

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

func plotJob(rounds int) *federav1.Job {
	j := &federav1.Job{Id: "job-0123456789ab", Spec: &federav1.JobSpec{Name: "breast-cancer-logreg", Rounds: int32(rounds)}}
	for r := 1; r <= rounds; r++ {
		acc := 0.7 + 0.25*(1-math.Exp(-float64(r)/2))
		if r == 2 {
			acc = math.NaN() // a round nobody could score is left out, not drawn as 0
		}
		j.Rounds = append(j.Rounds, &federav1.RoundSummary{
			Round: int32(r), Participants: []string{"eu/paris", "us/boston"},
			TrainLoss: 0.7 * math.Exp(-float64(r)/3), EvalLoss: 0.75 * math.Exp(-float64(r)/3.5),
			EvalAccuracy: acc, DurationMs: int64(1200 + 10*r),
		})
	}
	return j
}

// TestWriteJobPlot: the image a user gets is a real PNG of the size asked
// for, with something drawn on it.
func TestWriteJobPlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curve.png")
	if err := writeJobPlot(plotJob(10), path, 900, 700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 700 {
		t.Fatalf("image is %dx%d, want 900x700", b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}]++
		}
	}
	// White page, black axes and text, three line colours, anti-aliasing.
	if len(colours) < 5 {
		t.Fatalf("image has %d colours: blank or nearly", len(colours))
	}
}

func TestWriteJobPlotFormats(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, magic string }{
		{"curve.svg", "<?xml"},
		{"curve.pdf", "%PDF-"},
		{"curve", "\x89PNG"}, // no extension: PNG
		{"CURVE.PNG", "\x89PNG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := writeJobPlot(plotJob(1), path, 400, 300); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte(tc.magic)) {
				t.Fatalf("%s starts %q, want %q", tc.name, b[:min(len(b), 8)], tc.magic)
			}
		})
	}
}

func TestWriteJobPlotErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		job  *federav1.Job
		path string
		want string
	}{
		{"no rounds", plotJob(0), filepath.Join(dir, "a.png"), "job job-0123456789ab has no completed rounds to plot"},
		{"bad extension", plotJob(2), filepath.Join(dir, "a.jpg"), `want a .png, .svg or .pdf file`},
		{"unwritable", plotJob(2), filepath.Join(dir, "no", "such", "dir", "a.png"), "write plot " + filepath.Join(dir, "no", "such", "dir", "a.png")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writeJobPlot(tc.job, tc.path, 400, 300)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line containing %q", err, tc.want)
			}
			if _, err := os.Stat(tc.path); err == nil {
				t.Fatalf("%s was written", tc.path)
			}
		})
	}
}

// TestPrintRounds: job get and the demo list every round with its figures.
func TestPrintRounds(t *testing.T) {
	var b bytes.Buffer
	printRounds(&b, plotJob(3).GetRounds())
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rounds:\n%s", b.String())
	}
	for _, h := range []string{"ROUND", "SITES", "TRAIN LOSS", "EVAL ACC", "EVAL LOSS", "DURATION"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("header lacks %q: %s", h, lines[0])
		}
	}
	if f := strings.Fields(lines[2]); f[0] != "2" || f[1] != "2" || f[3] != "n/a" || f[5] != "1.22s" {
		t.Errorf("round 2 row: %q", lines[2])
	}
}

// withSites gives every round of j each site's own figures, as the
// coordinator keeps them.
func withSites(j *federav1.Job) *federav1.Job {
	for _, r := range j.GetRounds() {
		for i, s := range r.GetParticipants() {
			f := 1 + 0.3*float64(i)
			r.SiteRounds = append(r.SiteRounds, &federav1.SiteRound{Site: s, TrainLoss: r.GetTrainLoss() * f, TrainExamples: 100,
				EvalTotal: 20, EvalAccuracy: 0.6 + 0.03*float64(r.GetRound())/f, EvalLoss: r.GetEvalLoss() * f, EvalRmse: math.NaN()})
		}
	}
	return j
}

// sitePixels counts the pixels of a PNG plot drawn in the first two site
// colours.
func sitePixels(t *testing.T, j *federav1.Job) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "curve.png")
	if err := writeJobPlot(j, path, 900, 700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for _, c := range siteColors[:2] {
				cr, cg, cb, _ := c.RGBA()
				if r == cr && g == cg && bl == cb {
					n++
				}
			}
		}
	}
	return n
}

// TestJobPlotDrawsEachSite: the per-site curves are in the image when the
// rounds kept them, and named in the legend.
func TestJobPlotDrawsEachSite(t *testing.T) {
	if n := sitePixels(t, plotJob(6)); n != 0 {
		t.Fatalf("%d site-coloured pixels without per-site figures", n)
	}
	if n := sitePixels(t, withSites(plotJob(6))); n < 100 {
		t.Fatalf("only %d site-coloured pixels: the per-site lines are missing", n)
	}
	path := filepath.Join(t.TempDir(), "curve.svg")
	if err := writeJobPlot(withSites(plotJob(4)), path, 900, 700); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eu/paris", "us/boston", "eval accuracy per round"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the SVG plot does not say %q", want)
		}
	}
}

// regressionJob is plotJob as a regressor's rounds: RMSE and R², no
// accuracy.
func regressionJob(rounds int) *federav1.Job {
	j := plotJob(rounds)
	for _, r := range j.GetRounds() {
		r.EvalAccuracy, r.EvalExamples = math.NaN(), 40
		r.EvalRmse, r.EvalR2 = 60/float64(r.GetRound()), 0.1*float64(r.GetRound())
		r.EvalLoss = r.EvalRmse * r.EvalRmse
	}
	return j
}

func TestRegressionRoundsShowRMSE(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curve.svg")
	if err := writeJobPlot(regressionJob(3), path, 900, 700); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("eval RMSE per round")) || bytes.Contains(svg, []byte("eval accuracy")) {
		t.Errorf("a regressor's plot should show RMSE, not accuracy")
	}
	var b bytes.Buffer
	printRounds(&b, regressionJob(3).GetRounds())
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if !strings.Contains(lines[0], "EVAL RMSE") || !strings.Contains(lines[0], "EVAL R²") || strings.Contains(lines[0], "EVAL ACC") {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[2]); f[3] != "30.0000" || f[4] != "0.2000" {
		t.Errorf("round 2 row: %q", lines[2])
	}
}
