# Egress
#
# data.federa.egress: may this one message leave the site. Only aggregates
# leave (model_update, statistics, metrics); a message may not exceed the
# size bound the site computed for the declared model; at least
# required_min_records records must stand behind it; when the dataset's
# classification requires DP the message must carry noise and stay within
# the privacy budget; and the job must still be admitted by the policy in
# force now, so tightening the policy stops running jobs at their next
# message.
package federa

egress := {
	"allow": egress_allowed,
	"reasons": sort(config_errors | egress_deny),
}

default egress_allowed := false

egress_allowed if {
	count(config_errors) == 0
	count(egress_deny) == 0
}

aggregate_kinds := ["model_update", "statistics", "metrics"]

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

egress_deny contains sprintf("the %s rests on %v records; at least %v are required", [kind, records, required_min_records]) if {
	records := object.get(message, "records", 0)
	records < required_min_records
}

egress_deny contains sprintf("differential privacy is required for columns %s, but the %s carries no noise", [concat(", ", sort(dp_columns)), kind]) if {
	has_message
	dp_required
	not is_object(noise)
}

egress_deny contains sprintf("the noise on the %s must have a mechanism, a sigma greater than 0 and a clip_norm greater than 0, got %v", [kind, noise]) if {
	dp_required
	is_object(noise)
	not valid_noise(noise)
}

valid_noise(n) if {
	is_string(n.mechanism)
	n.mechanism != ""
	positive_number(n.sigma)
	positive_number(n.clip_norm)
}

egress_deny contains sprintf("the privacy budget is spent: epsilon %v would exceed this site's limit of %v", [spent, site_limits.max_epsilon]) if {
	dp_required
	spent := object.get(message, "epsilon_spent", 0)
	spent > site_limits.max_epsilon
}

egress_deny contains sprintf("the privacy budget is spent: epsilon %v would exceed the %v the job declared", [spent, dp.epsilon]) if {
	dp_on
	spent := object.get(message, "epsilon_spent", 0)
	spent > dp.epsilon
}

egress_deny contains sprintf("the job is not admitted by this site's policy in force: %s", [concat("; ", sort(deny))]) if count(deny) > 0
