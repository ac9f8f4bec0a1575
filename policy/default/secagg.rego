# Secure aggregation
#
# A site may require that the coordinator learn only the sum of the sites'
# model updates, never this site's own (docs/secure-aggregation.md):
# data.federa.require_secure_aggregation_for is "all", or a list of
# classifications (a training job reading a column of one must set
# privacy.secure_aggregation) that may contain "all". The default data
# asks for none. A query sends no model update and is not affected.
package federa

default secagg_for := []

secagg_for := data.federa.require_secure_aggregation_for

secagg_required if secagg_for == "all"

secagg_required if "all" in secagg_for

secagg_required if {
	some name in used_columns
	classification[name] in secagg_for
}

deny contains "this site requires secure aggregation for this job (data.federa.require_secure_aggregation_for); set privacy.secure_aggregation: true in the job spec" if {
	secagg_required
	object.get(input, ["job", "type"], "") != "query"
	object.get(input, ["job", "privacy", "secure_aggregation"], false) != true
}

config_errors contains sprintf("data.federa.require_secure_aggregation_for must be \"all\" or a list of classifications (%s) and \"all\", got %v", [concat(", ", classifications), secagg_for]) if {
	secagg_for != "all"
	not valid_approval_list(secagg_for)
}
