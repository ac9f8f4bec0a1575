package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/internal/config"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
)

// approvalFlags locate a site's state directory: from its site.yaml, or
// given directly.
// With --site they go through the coordinator instead, as a site-admin
// (ApprovalService): the coordinator's access policy admits only
// site-admin:<site>, and the site records only admins its config lists.
type approvalFlags struct {
	config string
	state  string
	output string
	site   string
	remote clientFlags
}

func (f *approvalFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", envOr("FEDERA_SITE_CONFIG", ""), "the site's site.yaml (env FEDERA_SITE_CONFIG)")
	cmd.Flags().StringVar(&f.state, "state", "", "the site's state directory (instead of --config)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&f.site, "site", "", "decide through the coordinator as site-admin of this site (e.g. eu/paris), instead of locally")
	f.remote.registerConn(cmd)
}

// approvalsRemote dials the coordinator's ApprovalService.
func (f *approvalFlags) approvalsRemote() (federav1.ApprovalServiceClient, func(), error) {
	if err := checkOutput(f.output); err != nil {
		return nil, nil, err
	}
	f.remote.output = f.output
	cc, err := f.remote.dial()
	if err != nil {
		return nil, nil, err
	}
	return federav1.NewApprovalServiceClient(cc), func() { cc.Close() }, nil
}

// approvals opens the site's approval queue. Only the state_dir is read
// from site.yaml, so an operator needs no identity files to approve.
func (f *approvalFlags) approvals() (*site.Approvals, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, err
	}
	dir := f.state
	if dir == "" {
		if f.config == "" {
			return nil, errors.New("flag --config (the site's site.yaml) or --state (its state directory) is required")
		}
		// Only state_dir is needed: no identity files, so an operator can
		// approve from a host that holds none.
		var file map[string]any
		if err := config.DecodeFile(f.config, &file); err != nil {
			return nil, err
		}
		stateDir, _ := file["state_dir"].(string)
		if stateDir == "" {
			return nil, fmt.Errorf("config %s: field state_dir: not set; approvals live in the site's state directory", f.config)
		}
		dir = stateDir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(f.config), dir)
		}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("site state directory %s: not found (is this the site's state_dir?)", dir)
	}
	return site.OpenApprovals(dir), nil
}

func operatorName() string {
	if u, err := user.Current(); err == nil {
		host, _ := os.Hostname()
		return u.Username + "@" + host
	}
	return "operator"
}

func newSitePendingCmd(g *globals) *cobra.Command {
	var f approvalFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List jobs waiting for this site's operator to approve or reject them",
		Example: "  federa site pending --config site.yaml\n  federa site pending --state /var/lib/federa/site --all -o json\n" +
			"  # as site-admin, through the coordinator:\n  federa site pending --site eu/paris --coordinator coord:7443 --identity ~/.federa/admin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.site != "" {
				return f.pendingRemote(cmd, g)
			}
			q, err := f.approvals()
			if err != nil {
				return err
			}
			list, err := q.List()
			if err != nil {
				return err
			}
			var shown []site.Approval
			for _, a := range list {
				if all || a.Status == site.ApprovalPending {
					shown = append(shown, a)
				}
			}
			if f.output == "json" {
				if shown == nil {
					shown = []site.Approval{}
				}
				return json.NewEncoder(g.stdout).Encode(shown)
			}
			if len(shown) == 0 {
				fmt.Fprintln(g.stdout, "no jobs waiting for approval")
				return nil
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tNAME\tREQUESTER\tDATASET\tFEATURES\tROUNDS\tSTATUS\tSINCE\tWHY")
			for _, a := range shown {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", a.JobID, a.JobName, a.Requester, a.Dataset, len(a.Features), a.Rounds,
					a.Status, a.CreatedAt.Local().Format(time.DateTime), oneLine(strings.Join(a.Reasons, "; ")))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include jobs already approved or rejected")
	return cmd
}

func newSiteDecideCmd(g *globals, approve bool) *cobra.Command {
	var f approvalFlags
	var reason string
	verb := "reject"
	if approve {
		verb = "approve"
	}
	cmd := &cobra.Command{
		Use:   verb + " JOB --reason TEXT",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a job held for this site's approval",
		Example: fmt.Sprintf("  federa site %s job-3f2a9c81d0e4 --reason 'IRB 2026-114' --config site.yaml\n"+
			"  # as site-admin, through the coordinator:\n  federa site %s job-3f2a9c81d0e4 --reason 'IRB 2026-114' --site eu/paris --identity ~/.federa/admin", verb, verb),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.site != "" {
				return f.decideRemote(cmd, g, args[0], approve, reason)
			}
			q, err := f.approvals()
			if err != nil {
				return err
			}
			ap, err := q.Decide(args[0], approve, reason, operatorName())
			if err != nil {
				return err
			}
			if f.output == "json" {
				return json.NewEncoder(g.stdout).Encode(ap)
			}
			fmt.Fprintf(g.stdout, "%s %s by %s: %s\n", ap.JobID, ap.Status, ap.DecidedBy, ap.Reason)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded with the decision)")
	return cmd
}

func (f *approvalFlags) pendingRemote(cmd *cobra.Command, g *globals) error {
	c, done, err := f.approvalsRemote()
	if err != nil {
		return err
	}
	defer done()
	resp, err := c.ListPending(cmd.Context(), &federav1.ListPendingRequest{Site: f.site})
	if err != nil {
		return rpcErr("list pending", err)
	}
	if f.output == "json" {
		return writeProto(g.stdout, resp)
	}
	if len(resp.GetPending()) == 0 {
		fmt.Fprintf(g.stdout, "no jobs waiting for approval at %s\n", f.site)
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAME\tREQUESTER\tDATASET\tSINCE\tWHY")
	for _, p := range resp.GetPending() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.GetJobId(), p.GetJobName(), p.GetRequester(), p.GetDataset(),
			time.UnixMilli(p.GetCreatedUnixMs()).Local().Format(time.DateTime), oneLine(strings.Join(p.GetReasons(), "; ")))
	}
	return tw.Flush()
}

func (f *approvalFlags) decideRemote(cmd *cobra.Command, g *globals, job string, approve bool, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return errors.New("flag --reason: required; it is recorded with the decision")
	}
	c, done, err := f.approvalsRemote()
	if err != nil {
		return err
	}
	defer done()
	resp, err := c.Decide(cmd.Context(), &federav1.DecideRequest{Site: f.site, JobId: job, Approve: approve, Reason: reason})
	if err != nil {
		return rpcErr("decide", err)
	}
	if f.output == "json" {
		return writeProto(g.stdout, resp)
	}
	fmt.Fprintf(g.stdout, "%s %s at %s by %s: %s\n", resp.GetJobId(), resp.GetStatus(), resp.GetSite(), resp.GetDecidedBy(), reason)
	return nil
}
