package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// series is one line of a chart.
type series struct {
	name  string
	class string // CSS class: its colour and dash
	pts   [][2]float64
}

// curves draws a job's learning curves as inline SVG: train and eval loss
// per round, and eval accuracy (RMSE for a regressor). Drawn here, from
// numbers and fixed labels only, so the page needs no script and no
// plotting library at the reader's end. Empty for a job with no rounds.
func curves(j *federav1.Job) template.HTML {
	rounds := j.GetRounds()
	if len(rounds) == 0 {
		return ""
	}
	regression := false
	for _, r := range rounds {
		regression = regression || r.Regression()
	}
	var train, eval, score series
	train = series{name: "train loss", class: "s-train"}
	eval = series{name: "eval loss", class: "s-eval"}
	score = series{name: "eval accuracy", class: "s-acc"}
	if regression {
		score.name = "eval RMSE"
	}
	for _, r := range rounds {
		x := float64(r.GetRound())
		add := func(s *series, v float64) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				s.pts = append(s.pts, [2]float64{x, v})
			}
		}
		add(&train, r.GetTrainLoss())
		add(&eval, r.GetEvalLoss())
		if regression {
			add(&score, r.GetEvalRmse())
		} else {
			add(&score, r.GetEvalAccuracy())
		}
	}
	var b strings.Builder
	b.WriteString(chart("Loss per round", []series{train, eval}))
	b.WriteString(chart(score.name+" per round", []series{score}))
	return template.HTML(b.String()) // #nosec G203 -- built from numbers and fixed labels only
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 560.0, 220.0
	padL, padR     = 56.0, 16.0
	padT, padB     = 28.0, 34.0
)

// chart is one SVG line chart of ss against the round number.
func chart(title string, ss []series) string {
	minX, maxX := math.Inf(1), math.Inf(-1)
	minY, maxY := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, p := range s.pts {
			minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
			minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart"><svg role="img" aria-label="%s" viewBox="0 0 %g %g" width="%g" height="%g" xmlns="http://www.w3.org/2000/svg">`,
		template.HTMLEscapeString(title), chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<text class="title" x="%g" y="18">%s</text>`, padL, template.HTMLEscapeString(title))
	if math.IsInf(minX, 1) {
		fmt.Fprintf(&b, `<text x="%g" y="%g">no figures yet</text></svg></figure>`, padL, chartH/2)
		return b.String()
	}
	if maxX == minX {
		minX, maxX = minX-1, maxX+1
	}
	if maxY == minY {
		minY, maxY = minY-0.5, maxY+0.5
	}
	// A little air above and below the lines.
	span := maxY - minY
	minY, maxY = minY-0.05*span, maxY+0.05*span
	px := func(x float64) float64 { return padL + (x-minX)/(maxX-minX)*(chartW-padL-padR) }
	py := func(y float64) float64 { return chartH - padB - (y-minY)/(maxY-minY)*(chartH-padT-padB) }
	// Axes and ticks: five on y, the rounds (thinned) on x.
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(&b, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, padL, padT, padL, chartH-padB)
	for i := 0; i <= 4; i++ {
		v := minY + float64(i)/4*(maxY-minY)
		y := py(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(&b, `<text class="tick" x="%g" y="%.1f" text-anchor="end">%.3g</text>`, padL-6, y+4, v)
	}
	step := math.Max(1, math.Ceil((maxX-minX)/10))
	for x := math.Ceil(minX); x <= maxX; x += step {
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%g" text-anchor="middle">%g</text>`, px(x), chartH-padB+16, x)
	}
	fmt.Fprintf(&b, `<text class="tick" x="%g" y="%g" text-anchor="middle">round</text>`, (padL+chartW-padR)/2, chartH-4)
	for i, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(&b, `<polyline class="line %s" points="%s"><title>%s</title></polyline>`, s.class, strings.Join(pts, " "), template.HTMLEscapeString(s.name))
		for _, p := range s.pts {
			fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="2.5"><title>%s, round %g: %.4g</title></circle>`,
				s.class, px(p[0]), py(p[1]), template.HTMLEscapeString(s.name), p[0], p[1])
		}
		// The legend sits on the title's line, clear of the lines.
		lx := padL + 200 + float64(i)*120
		ly := 14.0
		fmt.Fprintf(&b, `<line class="line %s" x1="%g" y1="%g" x2="%g" y2="%g"/><text class="legend" x="%g" y="%g">%s</text>`,
			s.class, lx, ly, lx+18, ly, lx+24, ly+4, template.HTMLEscapeString(s.name))
	}
	b.WriteString(`</svg></figure>`)
	return b.String()
}
