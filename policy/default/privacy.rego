# Privacy
#
# Where personal and special-category data may be used.
# - personal columns: only when the destination's jurisdiction is the
#   site's own or on the site's adequacy list (data.federa.adequacy), or
#   with differential privacy;
# - special_category columns (health, genetic, biometric ...): only with
#   differential privacy with epsilon <= limits.max_epsilon, and at least
#   limits.special_category_min_records records behind every contribution.
# Whenever DP is what makes a job acceptable, the site is obliged to
# enforce it (obligations require_dp and max_epsilon).
package federa

site_jurisdiction := lower(object.get(input, ["site", "jurisdiction"], ""))

destination_jurisdiction := lower(object.get(input, ["destination", "jurisdiction"], ""))

destination := object.get(input, ["destination", "id"], "")

dp_on if is_object(input.job.privacy.dp)

dp := input.job.privacy.dp

# adequate: data may go to the destination's jurisdiction without DP.
adequate if {
	site_jurisdiction != ""
	destination_jurisdiction == site_jurisdiction
}

adequate if {
	some j in object.get(adequacy_lists, site_jurisdiction, [])
	lower(j) == destination_jurisdiction
}

# dp_columns are the columns that make differential privacy necessary.
dp_columns := special_used | {name |
	some name in personal_used
	not adequate
}

dp_required if count(dp_columns) > 0

deny contains "the site declares no jurisdiction" if site_jurisdiction == ""

deny contains sprintf("destination %q declares no jurisdiction", [destination]) if destination_jurisdiction == ""

personal_unprotected := {name |
	some name in personal_used
	not adequate
	not dp_on
}

deny contains sprintf("%s personal data and destination %q is in jurisdiction %q, which is not on the adequacy list of jurisdiction %q; use differential privacy or an adequate destination", [column_phrase(personal_unprotected), destination, destination_jurisdiction, site_jurisdiction]) if {
	count(personal_unprotected) > 0
}

special_unprotected := {name |
	some name in special_used
	not dp_on
}

deny contains sprintf("%s special-category data and may only be used with differential privacy (epsilon <= %v)", [column_phrase(special_unprotected), site_limits.max_epsilon]) if {
	count(special_unprotected) > 0
}

deny contains sprintf("differential privacy epsilon %v exceeds this site's limit of %v for columns %s", [dp.epsilon, site_limits.max_epsilon, concat(", ", sort(dp_columns))]) if {
	dp_required
	dp.epsilon > site_limits.max_epsilon
}

deny contains sprintf("differential privacy delta %v exceeds this site's limit of %v for columns %s", [dp.delta, site_limits.max_delta, concat(", ", sort(dp_columns))]) if {
	dp_required
	dp.delta > site_limits.max_delta
}

deny contains sprintf("differential privacy epsilon must be a number greater than 0, got %v", [object.get(dp, "epsilon", null)]) if {
	dp_on
	not positive_number(object.get(dp, "epsilon", null))
}

deny contains sprintf("differential privacy delta must be a number in [0, 1), got %v", [object.get(dp, "delta", null)]) if {
	dp_on
	not valid_delta(object.get(dp, "delta", null))
}

deny contains sprintf("differential privacy clip_norm must be a number greater than 0, got %v", [object.get(dp, "clip_norm", null)]) if {
	dp_on
	not positive_number(object.get(dp, "clip_norm", null))
}

valid_delta(x) if {
	is_number(x)
	x >= 0
	x < 1
}
