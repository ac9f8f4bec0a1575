# Egress
#
# data.federa.egress: may this one message leave the site. Only aggregates
# leave (model_update, statistics, metrics); a message may not exceed the
# size bound the site computed for the declared model; at least
# the admission's min_records must stand behind it; when admission requires
# DP a model update must carry noise and every message must stay within the
# privacy budget (statistics and metrics are counts and moments over at
# least min_records rows; the model update is what DP protects); and the
# job must still be admitted by the policy in force now, so tightening the
# policy stops running jobs at their next message.
#
# The site passes the admission decision this same policy revision made for
# the job as input.admission, so egress does not derive it again for every
# message (that costs as much as an admission); without it, it is derived.
# Data errors (config_errors) are not re-checked here: data only changes by
# a reload, and Load refuses a policy that reports any; a derived admission
# still carries them.
package federa

egress := {
	"allow": egress_allowed,
	"reasons": sort(egress_deny),
}

default egress_allowed := false

egress_allowed if {
	count(egress_deny) == 0
}

aggregate_kinds := ["model_update", "statistics", "metrics"]

passed_admission if is_object(input.admission)

default derived_require_dp := false

derived_require_dp if dp_required

admitted := input.admission if passed_admission

admitted := {
	"allow": allow,
	"reasons": sort(config_errors | deny),
	"min_records": required_min_records,
	"require_dp": derived_require_dp,
} if not passed_admission

egress_dp if admitted.require_dp == true

egress_min_records := object.get(admitted, "min_records", 0)

message := input.egress

kind := object.get(message, "kind", "")

noise := object.get(message, "noise", null)

has_message if is_object(message)

egress_deny contains "the input has no egress section describing the outgoing message" if not has_message

egress_deny contains sprintf("egress of kind %q is denied: only aggregates (%s) may leave this site, never raw records", [kind, concat(", ", aggregate_kinds)]) if {
	has_message
	not kind in aggregate_kinds
}

egress_deny contains sprintf("the %s has no size bound: max_bytes must be greater than 0, got %v", [kind, max_bytes]) if {
	max_bytes := object.get(message, "max_bytes", 0)
	not positive_number(max_bytes)
}

egress_deny contains sprintf("the %s is %v bytes, more than the %v bytes the declared model can need", [kind, size, max_bytes]) if {
	size := object.get(message, "bytes", 0)
	max_bytes := object.get(message, "max_bytes", 0)
	size > max_bytes
}

egress_deny contains sprintf("the %s rests on %v records; at least %v are required", [kind, records, egress_min_records]) if {
	records := object.get(message, "records", 0)
	records < egress_min_records
}

egress_deny contains sprintf("differential privacy is required for this job at this site, but the %s carries no noise", [kind]) if {
	has_message
	egress_dp
	kind == "model_update"
	not is_object(noise)
}

egress_deny contains sprintf("the noise on the %s must have a mechanism, a sigma greater than 0 and a clip_norm greater than 0, got %v", [kind, noise]) if {
	egress_dp
	is_object(noise)
	not valid_noise(noise)
}

valid_noise(n) if {
	is_string(n.mechanism)
	n.mechanism != ""
	positive_number(n.sigma)
	positive_number(n.clip_norm)
}

# The dataset's lifetime budget: every DP release about it, across jobs,
# queries and restarts, composed (Rényi DP) by the site's ledger.
egress_deny contains sprintf("the dataset's privacy budget is spent: its lifetime epsilon would reach %v, over this site's limit of %v", [spent, site_limits.max_epsilon]) if {
	egress_dp
	spent := object.get(message, "dataset_epsilon_spent", 0)
	spent > site_limits.max_epsilon
}

# The job's own budget: what this job has spent at this site.
egress_deny contains sprintf("the job's privacy budget is spent: epsilon %v would exceed the %v the job declared", [spent, dp.epsilon]) if {
	dp_on
	spent := object.get(message, "epsilon_spent", 0)
	spent > dp.epsilon
}

egress_deny contains sprintf("the job is not admitted by this site's policy in force: %s", [concat("; ", object.get(admitted, "reasons", []))]) if {
	not admitted.allow
}
