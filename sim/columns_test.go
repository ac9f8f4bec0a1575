package sim_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestSpacedColumnNamesAreRefused: the pen-test's " mean_radius" (and its
// other whitespace forms) ran at a site whose policy refuses mean_radius
// without DP. Now the spec refuses the name at submit, naming the field, and
// no job is stored; the same column written correctly is still refused by
// the EU site's policy, so the name decides nothing.
func TestSpacedColumnNamesAreRefused(t *testing.T) {
	n, _ := startNet(t, sim.Options{Sites: healthSites()})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	for _, name := range []string{" mean_radius", "mean_radius ", "\tmean_radius", "mean_radius\r\n", "\u00a0mean_radius", "\u200bmean_radius"} {
		for _, asLabel := range []bool{false, true} {
			j := demoSpec()
			field := "features[0]"
			j.Features = []string{name, "mean_texture"}
			if asLabel {
				field, j.Features, j.Label = "label", []string{"mean_texture"}, name
			}
			_, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field "+field) {
				t.Errorf("%s %q: %v; want InvalidArgument naming the field", field, name, err)
			}
		}
	}
	j := demoSpec()
	j.Features = []string{"mean_radius", "mean_texture"}
	_, err = c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "special") {
		t.Fatalf("mean_radius without DP: %v; want the EU site's refusal", err)
	}
	if list, _ := c.ListJobs(context.Background(), &federav1.ListJobsRequest{}); len(list.GetJobs()) != 0 {
		t.Fatalf("refused jobs were stored: %v", list.GetJobs())
	}
}

// TestLabelIsNotAnExfiltrationChannel: `label: mean_area` would send the
// column's 121 distinct values out as class names. Every site refuses it
// at submit, naming the label, without saying how many values it has.
func TestLabelIsNotAnExfiltrationChannel(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Label, j.Features = "mean_area", []string{"mean_smoothness"}
	_, err = c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("label mean_area: %v; want refused", err)
	}
	for _, s := range []string{"eu/paris", "us/boston", "sg/singapore"} {
		if !strings.Contains(err.Error(), "site "+s+": ") {
			t.Errorf("site %s did not refuse: %v", s, err)
		}
	}
	if !strings.Contains(err.Error(), `label "mean_area" is numeric with more than 10 distinct values`) {
		t.Errorf("refusal does not name the label as a numeric measurement: %v", err)
	}
	if strings.Contains(err.Error(), "121") {
		t.Errorf("refusal tells the requester the column's cardinality: %v", err)
	}
}
