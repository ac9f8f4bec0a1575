# Admission
#
# data.federa.admission: may the site run this job, and on what terms.
# Every other file adds reasons to deny; the job is allowed when there are
# none (and the site's data is valid). Obligations are what the site must
# enforce while the job runs; a site that cannot enforce one refuses.
package federa

admission := {
	"allow": allow,
	"reasons": sort(config_errors | deny),
	"obligations": obligations,
	"require_approval": require_approval,
}

default allow := false

allow if {
	count(config_errors) == 0
	count(deny) == 0
}

# min_record_floors are the minimums that apply: the site's, the job's own
# min_count, and the higher one for special-category data.
min_record_floors contains site_limits.min_records

min_record_floors contains n if {
	n := input.job.privacy.min_count
	is_number(n)
}

min_record_floors contains site_limits.special_category_min_records if count(special_used) > 0

# required_min_records is the fewest records any contribution may rest on.
required_min_records := max(min_record_floors)

obligation["min_records"] := required_min_records if required_min_records > 0

obligation["require_dp"] if dp_required

obligation["max_epsilon"] := site_limits.max_epsilon if dp_required

# Every DP release about a dataset, across jobs, queries and restarts,
# composes (Rényi DP) within this lifetime budget, which the site checks
# and charges in one step before anything leaves.
obligation["privacy_budget"] := {"epsilon": site_limits.max_epsilon, "delta": site_limits.max_delta} if dp_on

obligation["max_rounds"] := site_limits.max_rounds

obligation["drop_columns"] := sort(forbidden_columns) if count(forbidden_columns) > 0

# obligations is an object even when nothing is obliged.
obligations := {k: v | some k, v in obligation}
