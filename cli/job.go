package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

// rpcErr turns a gRPC status into one readable line.
func rpcErr(what string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s (%s)", what, st.Message(), st.Code())
	}
	return fmt.Errorf("%s: %w", what, err)
}

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, inspect, watch and cancel training jobs",
		Example: `  federa job submit job.yaml --watch --identity ids/alice
  federa job list
  federa job get job-3f2a9c81d0e4`,
	}
	cmd.AddCommand(newJobSubmitCmd(g), newJobListCmd(g), newJobGetCmd(g), newJobWatchCmd(g), newJobCancelCmd(g), newJobPlotCmd(g), newJobDecisionsCmd(g))
	return cmd
}

func newJobSubmitCmd(g *globals) *cobra.Command {
	var f clientFlags
	var watch bool
	cmd := &cobra.Command{
		Use:   "submit JOB.yaml",
		Short: "Submit a training job",
		Long:  "Submit a training job described in YAML (every field is documented in docs/jobs.md).\nThe spec is validated locally first, then again by the coordinator.",
		Example: `  federa job submit job.yaml --coordinator 127.0.0.1:7443 --identity ids/alice --watch

  # job.yaml
  name: breast-cancer-logreg
  dataset: breast-cancer
  label: label
  model: {type: logreg}
  rounds: 10
  local_epochs: 2
  batch_size: 16
  learning_rate: 0.1
  min_sites: 2
  round_timeout: 60s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			j, err := spec.ParseFile(args[0])
			if err != nil {
				return err
			}
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			job, err := c.SubmitJob(cmd.Context(), &federav1.SubmitJobRequest{Spec: j.Proto()})
			if err != nil {
				return rpcErr("submit job", err)
			}
			if f.output == "json" && !watch {
				return writeProto(g.stdout, job)
			}
			// First, also with --watch: scripts and the `demo --serve`
			// hints need the ID before the job ends. In JSON every event
			// line carries it as job.id.
			if f.output == "text" {
				fmt.Fprintf(g.stdout, "submitted %s (%s)\n", job.GetId(), job.GetStatus().Name())
			}
			if !watch {
				return nil
			}
			final, err := watchJob(cmd.Context(), c, job.GetId(), g.stdout, f.output)
			if err != nil {
				return err
			}
			return finalErr(final)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the job until it ends; exit non-zero unless it succeeds")
	return cmd
}

// finalErr maps a job's final state to the exit status of a waiting command.
func finalErr(j *federav1.Job) error {
	if j.GetStatus() == federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("job %s %s: %s", j.GetId(), j.GetStatus().Name(), j.GetMessage())}
}

func newJobListCmd(g *globals) *cobra.Command {
	var f clientFlags
	pages := pageFlags{noun: "jobs"}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, oldest first",
		Long: `List the jobs you may read, oldest first: id, name, status, rounds, the last
round's accuracy (RMSE for a regressor), when it was created and its message.
The coordinator sends them a page at a time (ListJobs, at most 1,000 a page);
this command follows the pages to the end, or stops after --limit jobs. With
-o json it prints one object {"jobs": [...]} whose jobs are summaries (the last
round only, no sites or features: federa job get has them); when --limit cut
the list short, its next_page_token continues it with --page-token.`,
		Example: `  federa job list --identity ids/alice
  federa job list --limit 20
  federa job list -o json | jq '.jobs[].id'
  federa job list -o json --limit 100 | jq -r .next_page_token   # then: --page-token TOKEN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			if err := pages.validate(); err != nil {
				return err
			}
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			jobs, token, err := followPages(&pages, func(token string, size int32) ([]*federav1.Job, string, error) {
				resp, err := c.ListJobs(cmd.Context(), &federav1.ListJobsRequest{PageToken: token, PageSize: size})
				if err != nil {
					return nil, "", rpcErr("list jobs", err)
				}
				return resp.GetJobs(), resp.GetNextPageToken(), nil
			})
			if err != nil {
				return err
			}
			all := &federav1.ListJobsResponse{Jobs: jobs, NextPageToken: token}
			if f.output == "json" {
				return writeProto(g.stdout, all)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tROUNDS\tACCURACY\tCREATED\tMESSAGE")
			for _, j := range all.GetJobs() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.GetId(), j.GetSpec().GetName(), j.GetStatus().Name(),
					j.GetRoundsCompleted(), j.GetSpec().GetRounds(), lastAccuracy(j), time.UnixMilli(j.GetCreatedUnixMs()).Format(time.DateTime), oneLine(j.GetMessage()))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if token != "" {
				fmt.Fprintf(g.stdout, "(more jobs: federa job list --page-token %s)\n", token)
			}
			return nil
		},
	}
	f.register(cmd)
	pages.register(cmd)
	return cmd
}

func newJobGetCmd(g *globals) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one job: status, per-round table, sites, bytes moved",
		Long: `Show one job: its status, a table of every round, its sites and the bytes
they moved. The coordinator's GetJob sends the newest rounds and the first
sites and features that fit its budget; this command reads the rest page
by page (ListRounds, ListJobSites, ListFeatures), so with -o json the record
is complete (rounds_omitted, sites_omitted and features_omitted are then 0).`,
		Example: "  federa job get job-3f2a9c81d0e4 --identity ids/alice\n  federa job get job-3f2a9c81d0e4 -o json | jq '.rounds | length'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			j, err := getFullJob(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeProto(g.stdout, j)
			}
			printJob(g.stdout, j)
			// The decisions are not on the record; say how many there are.
			if d, err := c.ListDecisions(cmd.Context(), &federav1.ListDecisionsRequest{JobId: j.GetId(), PageSize: 1}); err == nil && d.GetTotal() > 0 {
				fmt.Fprintf(g.stdout, "\nPolicy decisions: %d by the sites (federa job decisions %s)\n", d.GetTotal(), j.GetId())
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newJobWatchCmd(g *globals) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "watch ID",
		Short:   "Follow a job's progress until it ends",
		Example: "  federa job watch job-3f2a9c81d0e4 --identity ids/alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			final, err := watchJob(cmd.Context(), c, args[0], g.stdout, f.output)
			if err != nil {
				return err
			}
			return finalErr(final)
		},
	}
	f.register(cmd)
	return cmd
}

func newJobCancelCmd(g *globals) *cobra.Command {
	var f clientFlags
	var reason string
	cmd := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a pending or running job",
		Example: "  federa job cancel job-3f2a9c81d0e4 --reason 'wrong dataset' --identity ids/alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			j, err := c.CancelJob(cmd.Context(), &federav1.CancelJobRequest{Id: args[0], Reason: reason})
			if err != nil {
				return rpcErr("cancel job", err)
			}
			if f.output == "json" {
				return writeProto(g.stdout, j)
			}
			fmt.Fprintf(g.stdout, "%s %s: %s\n", j.GetId(), j.GetStatus().Name(), j.GetMessage())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the job)")
	return cmd
}

func newJobDecisionsCmd(g *globals) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "decisions ID",
		Short: "List every policy decision the sites reported for a job",
		Long: `List the admission and egress decisions the sites' policies made for a job,
oldest first: site, the site's sequence number, kind, task, allowed or not,
and the reasons. They are read page by page (ListDecisions), so a job of
many sites and rounds lists in full. The audit log holds the same records
signed, and also the dry run each site made when the job was submitted.
With -o json, one JSON object per decision and line.`,
		Example: "  federa job decisions job-3f2a9c81d0e4 --identity ids/alice\n  federa job decisions job-3f2a9c81d0e4 -o json | jq -c 'select(.record.allow | not)'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			c, closeFn, err := f.jobs()
			if err != nil {
				return err
			}
			defer closeFn()
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			if f.output == "text" {
				fmt.Fprintln(tw, "SITE\tSEQ\tKIND\tTASK\tALLOWED\tREASONS")
			}
			token := ""
			for {
				resp, err := c.ListDecisions(cmd.Context(), &federav1.ListDecisionsRequest{JobId: args[0], PageToken: token, PageSize: 500})
				if err != nil {
					return rpcErr("list decisions", err)
				}
				for _, d := range resp.GetDecisions() {
					if f.output == "json" {
						if err := writeProto(g.stdout, d); err != nil {
							return err
						}
						continue
					}
					r := d.GetRecord()
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%t\t%s\n", d.GetSite(), r.GetSeq(), r.GetKind(), taskLabel(r.GetTaskId()), r.GetAllow(), oneLine(strings.Join(r.GetReasons(), "; ")))
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if f.output == "text" {
				return tw.Flush()
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// taskLabel is the readable part of a task id, "r3/train" of
// "job-…/r3/train/eu/paris/nonce.seal".
func taskLabel(id string) string {
	parts := strings.SplitN(id, "/", 4)
	if len(parts) < 3 {
		return id
	}
	return parts[1] + "/" + parts[2]
}

// watchJob prints each change of a job until it ends and returns the final
// record.
func watchJob(ctx context.Context, c federav1.JobServiceClient, id string, w io.Writer, output string) (*federav1.Job, error) {
	stream, err := c.WatchJob(ctx, &federav1.WatchJobRequest{Id: id})
	if err != nil {
		return nil, rpcErr("watch job", err)
	}
	var last *federav1.Job
	lastMsg := ""
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if last == nil {
				return nil, fmt.Errorf("watch job %s: stream ended with no news", id)
			}
			return last, nil
		}
		if err != nil {
			return nil, rpcErr("watch job", err)
		}
		last = ev.GetJob()
		if output == "json" {
			if err := writeProto(w, ev); err != nil {
				return nil, err
			}
			continue
		}
		if ev.GetMessage() != lastMsg && ev.GetMessage() != "" {
			lastMsg = ev.GetMessage()
			fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), ev.GetMessage())
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func lastAccuracy(j *federav1.Job) string {
	if n := len(j.GetRounds()); n > 0 {
		if r := j.GetRounds()[n-1]; r.Regression() {
			return fmt.Sprintf("RMSE %.4g", r.GetEvalRmse())
		}
		return federav1.FormatAccuracy(j.GetRounds()[n-1].GetEvalAccuracy())
	}
	return "-"
}

// secAggSummary says how the last secure round ran and how many rounds
// needed a dropped site's masks reconstructed.
func secAggSummary(rounds []*federav1.RoundSummary) string {
	var last *federav1.SecAggRound
	recon := 0
	for _, r := range rounds {
		if sa := r.GetSecagg(); sa != nil {
			last = sa
			if len(sa.GetReconstructed()) > 0 {
				recon++
			}
		}
	}
	if last == nil {
		return ""
	}
	what := fmt.Sprintf("clip %g", last.GetClip())
	if s := last.GetDpNoiseMultiplier(); s > 0 {
		what = fmt.Sprintf("distributed DP noise: σ %.3g carried whole by the sum only, sampling rate %g", s, last.GetDpSamplingRate())
	}
	return fmt.Sprintf(" (last round: threshold %d, %d of %d sites summed, %s; %d round(s) recovered from dropouts)",
		last.GetThreshold(), len(last.GetMasked()), len(last.GetAdvertised()), what, recon)
}

// printJob is the human view of a job.
func printJob(w io.Writer, j *federav1.Job) {
	fmt.Fprintf(w, "Job:        %s (%s)\n", j.GetId(), j.GetSpec().GetName())
	fmt.Fprintf(w, "Status:     %s — %s\n", j.GetStatus().Name(), j.GetMessage())
	fmt.Fprintf(w, "Requester:  %s\n", j.GetRequester())
	fmt.Fprintf(w, "Dataset:    %s (label %q, %d features, classes %v)\n", j.GetSpec().GetDataset(), j.GetSpec().GetLabel(), len(j.GetFeatures()), j.GetClasses())
	fmt.Fprintf(w, "Rounds:     %d of %d\n", j.GetRoundsCompleted(), j.GetSpec().GetRounds())
	if dp := j.GetSpec().GetPrivacy().GetDp(); dp != nil {
		fmt.Fprintf(w, "Privacy:    DP-SGD at each site, epsilon %.4g spent of %g (delta %g; the most any site spent)\n", epsilonSpent(j), dp.GetEpsilon(), dp.GetDelta())
	}
	if j.GetSpec().GetPrivacy().GetSecureAggregation() {
		fmt.Fprintf(w, "Secure agg: the coordinator saw only the sum of the updates%s\n", secAggSummary(j.GetRounds()))
	}
	if j.GetModelSha256() != "" {
		fmt.Fprintf(w, "Model:      sha256:%s (%d bytes)\n", j.GetModelSha256(), j.GetModelBytes())
	}
	if len(j.GetRounds()) > 0 {
		fmt.Fprintln(w)
		printRounds(w, j.GetRounds())
	}
	if len(j.GetSites()) > 0 {
		fmt.Fprintln(w)
		printSites(w, j)
	}
}

// getFullJob is GetJob with what the record's view left out read back
// page by page: every round summary the record keeps, every site and
// every feature.
func getFullJob(ctx context.Context, c federav1.JobServiceClient, id string) (*federav1.Job, error) {
	j, err := c.GetJob(ctx, &federav1.GetJobRequest{Id: id})
	if err != nil {
		return nil, rpcErr("get job", err)
	}
	if j.GetRoundsOmitted() > 0 {
		var rounds []*federav1.RoundSummary
		for token := ""; ; {
			resp, err := c.ListRounds(ctx, &federav1.ListRoundsRequest{JobId: id, PageToken: token, PageSize: 1000})
			if err != nil {
				return nil, rpcErr("list rounds", err)
			}
			rounds = append(rounds, resp.GetRounds()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		j.Rounds, j.RoundsOmitted = rounds, 0
	}
	if j.GetSitesOmitted() > 0 {
		var sites []*federav1.SiteSummary
		for token := ""; ; {
			resp, err := c.ListJobSites(ctx, &federav1.ListJobSitesRequest{JobId: id, PageToken: token, PageSize: 1000})
			if err != nil {
				return nil, rpcErr("list sites", err)
			}
			sites = append(sites, resp.GetSites()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		j.Sites, j.SitesOmitted = sites, 0
	}
	if j.GetFeaturesOmitted() > 0 {
		var features []string
		for token := ""; ; {
			resp, err := c.ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: id, PageToken: token, PageSize: 100_000})
			if err != nil {
				return nil, rpcErr("list features", err)
			}
			features = append(features, resp.GetFeatures()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		j.Features, j.FeaturesOmitted = features, 0
	}
	return j, nil
}

// printRounds is the per-round table of a job, for job get and the demo.
func printRounds(w io.Writer, rounds []*federav1.RoundSummary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// A regressor's rounds show RMSE and R² where a classifier's show
	// accuracy and cross-entropy.
	regression := slices.ContainsFunc(rounds, (*federav1.RoundSummary).Regression)
	if regression {
		fmt.Fprintln(tw, "ROUND\tSITES\tTRAIN MSE\tEVAL RMSE\tEVAL R²\tDURATION\tMISSING")
	} else {
		fmt.Fprintln(tw, "ROUND\tSITES\tTRAIN LOSS\tEVAL ACC\tEVAL LOSS\tDURATION\tMISSING")
	}
	for _, r := range rounds {
		a, b := federav1.FormatAccuracy(r.GetEvalAccuracy()), formatLoss(r.GetEvalLoss())
		if regression {
			a, b = formatLoss(r.GetEvalRmse()), federav1.FormatAccuracy(r.GetEvalR2())
			if r.GetEvalExamples() == 0 {
				a, b = "n/a", "n/a"
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%.4f\t%s\t%s\t%s\t%s\n", r.GetRound(), len(r.GetParticipants()), r.GetTrainLoss(), a, b,
			(time.Duration(r.GetDurationMs()) * time.Millisecond).String(), strings.Join(r.GetMissing(), ","))
	}
	tw.Flush()
}

// formatLoss prints a loss, or "n/a" for a round nobody could score (NaN).
func formatLoss(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}

// printSites shows what federa is for: the raw data stayed, only
// aggregates left.
func printSites(w io.Writer, j *federav1.Job) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// A DP job also shows what each site spent: the job's own ε, and its
	// dataset's lifetime ε across every job and query there.
	dp := j.GetSpec().GetPrivacy().GetDp() != nil
	if dp {
		fmt.Fprintln(tw, "SITE\tRAW DATA (STAYED)\tLEFT THE SITE\tLEFT / RAW\tROUNDS\tJOB ε\tDATASET ε (LIFETIME)\t")
	} else {
		fmt.Fprintln(tw, "SITE\tRAW DATA (STAYED)\tLEFT THE SITE\tLEFT / RAW\tROUNDS\t")
	}
	for _, s := range j.GetSites() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t", s.GetSite(), humanBytes(s.GetRawBytes()), humanBytes(s.GetBytesSent()), share(s.GetBytesSent(), s.GetRawBytes()), s.GetRoundsParticipated())
		if dp {
			fmt.Fprintf(tw, "%.4g\t%.4g\t", s.GetEpsilonSpent(), s.GetDatasetEpsilonSpent())
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// epsilonSpent is the most any site spent on the job: the job's ε as a
// whole (each site's guarantee is about its own rows).
func epsilonSpent(j *federav1.Job) float64 {
	var most float64
	for _, s := range j.GetSites() {
		most = max(most, s.GetEpsilonSpent())
	}
	return most
}

func share(part, whole int64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
