package cli

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/federa-dev/federa/internal/fsutil"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// plotDPI turns the --width/--height pixels into the points gonum/plot
// draws in; it is vgimg's default resolution, so a PNG is exactly the size
// asked for.
const plotDPI = 96

// plotFormats are the image formats job plot writes, by file extension.
var plotFormats = map[string]string{"": "png", ".png": "png", ".svg": "svg", ".pdf": "pdf"}

func newJobPlotCmd(g *globals) *cobra.Command {
	var f clientFlags
	var out string
	var width, height int
	cmd := &cobra.Command{
		Use:   "plot ID",
		Short: "Draw a job's loss and accuracy per round into a PNG, SVG or PDF",
		Long: `Draw a job's learning curves into one image with two panels: train loss
and eval loss per round (top), eval accuracy per round (bottom). The figures
are the job's global ones, as 'federa job get' lists them: train loss is the
mean of the sites' local training losses weighted by their examples, eval
accuracy and eval loss are pooled over every site's held-out rows. For a
regression model (linreg) the losses are mean squared errors and the
bottom panel is the eval RMSE.

Each site's own train loss and eval accuracy (or RMSE) are drawn beside
them as thin dashed lines, one colour per site (grey, under one legend
entry, for more than 5 sites). The coordinator keeps them for rounds of at
most 32 sites; larger rounds show the global figures only.

The format follows the extension of --out: .png (the default, also for a
name without an extension), .svg or .pdf. Rounds nobody could score
(accuracy n/a) are left out of the accuracy panel. A running job can be
plotted: the image shows the rounds completed so far.`,
		Example: `  federa job plot job-3f2a9c81d0e4 -o curve.png --identity ids/alice
  federa job plot job-3f2a9c81d0e4 -o curve.svg --width 1200 --height 900`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				out = args[0] + ".png"
			}
			if _, err := plotFormat(out); err != nil {
				return err
			}
			if width < 200 || height < 200 {
				return fmt.Errorf("flag --width/--height: %dx%d is too small to read; want at least 200x200 pixels", width, height)
			}
			f.output = "text"
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			j, err := getFullJob(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if err := writeJobPlot(j, out, width, height); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (%d rounds of %s)\n", out, len(j.GetRounds()), j.GetId())
			return nil
		},
	}
	f.registerConn(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "image to write: .png, .svg or .pdf (default: ID.png)")
	cmd.Flags().IntVar(&width, "width", 900, "image width in pixels (96 per inch for .svg and .pdf)")
	cmd.Flags().IntVar(&height, "height", 700, "image height in pixels")
	return cmd
}

// plotFormat is the image format for path, from its extension.
func plotFormat(path string) (string, error) {
	format, ok := plotFormats[strings.ToLower(filepath.Ext(path))]
	if !ok {
		return "", fmt.Errorf("flag --out/-o: %q: want a .png, .svg or .pdf file", path)
	}
	return format, nil
}

// writeJobPlot draws j's loss and accuracy per round into path, width by
// height pixels, in the format its extension names. The whole image is
// rendered before the file is touched, so a failure leaves no half file.
func writeJobPlot(j *federav1.Job, path string, width, height int) error {
	format, err := plotFormat(path)
	if err != nil {
		return err
	}
	if len(j.GetRounds()) == 0 {
		return fmt.Errorf("job %s has no completed rounds to plot", j.GetId())
	}
	loss, acc, err := jobPlots(j)
	if err != nil {
		return fmt.Errorf("plot job %s: %w", j.GetId(), err)
	}
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / plotDPI }
	canvas, err := draw.NewFormattedCanvas(px(width), px(height), format)
	if err != nil {
		return fmt.Errorf("plot job %s: %w", j.GetId(), err)
	}
	dc := draw.New(canvas)
	// A white page: PNG is otherwise transparent, which image viewers
	// with a dark background show as black on black.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(12), PadY: vg.Points(12)}
	grid := [][]*plot.Plot{{loss}, {acc}}
	canvases := plot.Align(grid, tiles, dc)
	loss.Draw(canvases[0][0])
	acc.Draw(canvases[1][0])
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return fmt.Errorf("plot job %s: %w", j.GetId(), err)
	}
	if err := fsutil.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		// fsutil names its temporary file; the user only knows path.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return nil
}

// jobPlots builds the two panels: losses, and accuracy.
func jobPlots(j *federav1.Job) (loss, acc *plot.Plot, err error) {
	var train, eval, accuracy plotter.XYs
	// A regressor's bottom panel is its RMSE (its losses are MSEs).
	regression := slices.ContainsFunc(j.GetRounds(), (*federav1.RoundSummary).Regression)
	// Each site's own curves, from the rounds that kept them.
	siteTrain, siteEval := map[string]plotter.XYs{}, map[string]plotter.XYs{}
	for _, r := range j.GetRounds() {
		x := float64(r.GetRound())
		for _, sr := range r.GetSiteRounds() {
			if v := sr.GetTrainLoss(); finite(v) {
				siteTrain[sr.GetSite()] = append(siteTrain[sr.GetSite()], plotter.XY{X: x, Y: v})
			}
			v := sr.GetEvalAccuracy()
			if regression {
				v = sr.GetEvalRmse()
			}
			if finite(v) && sr.GetEvalTotal() > 0 {
				siteEval[sr.GetSite()] = append(siteEval[sr.GetSite()], plotter.XY{X: x, Y: v})
			}
		}
		if v := r.GetTrainLoss(); finite(v) {
			train = append(train, plotter.XY{X: x, Y: v})
		}
		if v := r.GetEvalLoss(); finite(v) {
			eval = append(eval, plotter.XY{X: x, Y: v})
		}
		v := r.GetEvalAccuracy()
		if regression {
			v = r.GetEvalRmse()
		}
		if finite(v) && r.GetEvalExamples() > 0 {
			accuracy = append(accuracy, plotter.XY{X: x, Y: v})
		}
	}
	first, last := float64(j.GetRounds()[0].GetRound()), float64(j.GetRounds()[len(j.GetRounds())-1].GetRound())
	title := j.GetId()
	if name := j.GetSpec().GetName(); name != "" {
		title = fmt.Sprintf("%s (%s)", name, j.GetId())
	}

	loss = roundPlot(fmt.Sprintf("%s: loss per round", title), "loss", first, last)
	if err := addSiteLines(loss, "train loss", siteTrain); err != nil {
		return nil, nil, err
	}
	if err := addLine(loss, "train loss", train, 0); err != nil {
		return nil, nil, err
	}
	if err := addLine(loss, "eval loss", eval, 1); err != nil {
		return nil, nil, err
	}
	loss.Y.Min = 0

	if regression {
		acc = roundPlot("eval RMSE per round", "RMSE", first, last)
		if err := addSiteLines(acc, "eval RMSE", siteEval); err != nil {
			return nil, nil, err
		}
		if err := addLine(acc, "eval RMSE", accuracy, 2); err != nil {
			return nil, nil, err
		}
		acc.Y.Min = 0
		acc.Legend.Top = false
		return loss, acc, nil
	}
	acc = roundPlot("eval accuracy per round", "accuracy", first, last)
	if err := addSiteLines(acc, "eval accuracy", siteEval); err != nil {
		return nil, nil, err
	}
	if err := addLine(acc, "eval accuracy", accuracy, 2); err != nil {
		return nil, nil, err
	}
	acc.Y.Min, acc.Y.Max = 0, 1
	acc.Legend.Top = false
	return loss, acc, nil
}

// roundPlot is an empty panel with rounds on the X axis, one tick per
// round when they fit.
func roundPlot(title, ylabel string, first, last float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "round"
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = first-0.5, last+0.5
	if last-first < 20 {
		p.X.Tick.Marker = roundTicks{}
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// lineColors are distinguishable in print and for the common colour
// blindnesses (Okabe–Ito).
var lineColors = []color.Color{
	color.RGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xff}, // blue
	color.RGBA{R: 0xD5, G: 0x5E, B: 0x00, A: 0xff}, // vermillion
	color.RGBA{R: 0x00, G: 0x9E, B: 0x73, A: 0xff}, // green
}

// addLine draws pts with a marker at each round, so a one-round job still
// shows a point.
func addLine(p *plot.Plot, name string, pts plotter.XYs, i int) error {
	if len(pts) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	c := lineColors[i%len(lineColors)]
	line.Color, line.Width = c, vg.Points(1.5)
	points.Color, points.Shape, points.Radius = c, draw.CircleGlyph{}, vg.Points(2.5)
	p.Add(line, points)
	p.Legend.Add(name, line, points)
	return nil
}

// siteColors tell up to maxSiteLegend sites apart (the rest of the
// Okabe–Ito palette); more sites are drawn grey under one legend entry.
var siteColors = []color.Color{
	color.RGBA{R: 0xE6, G: 0x9F, B: 0x00, A: 0xff}, // orange
	color.RGBA{R: 0x56, G: 0xB4, B: 0xE9, A: 0xff}, // sky blue
	color.RGBA{R: 0xCC, G: 0x79, B: 0xA7, A: 0xff}, // reddish purple
	color.RGBA{R: 0xF0, G: 0xE4, B: 0x42, A: 0xff}, // yellow
	color.RGBA{R: 0x00, G: 0x00, B: 0x00, A: 0xff}, // black
}

const maxSiteLegend = 5

// addSiteLines draws each site's curve of a figure thin and dashed, under
// the global one.
func addSiteLines(p *plot.Plot, what string, bySite map[string]plotter.XYs) error {
	sites := slices.Sorted(maps.Keys(bySite))
	many := len(sites) > maxSiteLegend
	for i, s := range sites {
		line, err := plotter.NewLine(bySite[s])
		if err != nil {
			return fmt.Errorf("%s of %s: %w", what, s, err)
		}
		line.Width, line.Dashes = vg.Points(1), []vg.Length{vg.Points(4), vg.Points(2)}
		if many {
			line.Color = color.Gray{Y: 0xa0}
		} else {
			line.Color = siteColors[i]
		}
		p.Add(line)
		switch {
		case !many:
			p.Legend.Add(s, line)
		case i == 0:
			p.Legend.Add(fmt.Sprintf("each of %d sites", len(sites)), line)
		}
	}
	return nil
}

// roundTicks labels every whole round in range.
type roundTicks struct{}

func (roundTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for r := math.Ceil(lo); r <= hi; r++ {
		ts = append(ts, plot.Tick{Value: r, Label: fmt.Sprintf("%d", int(r))})
	}
	return ts
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
