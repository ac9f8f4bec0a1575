package federa_test

import data.federa

# base asks for secure aggregation; clear is the same job without it.
clear(doc) := object.union(doc, {"job": {"privacy": {"secure_aggregation": false}}})

secagg_reason := "this site requires secure aggregation for this job (data.federa.require_secure_aggregation_for); set privacy.secure_aggregation: true in the job spec"

test_no_secure_aggregation_required_by_default if {
	d := federa.admission with input as clear(base)
	not secagg_reason in d.reasons
}

test_secure_aggregation_for_all if {
	d := federa.admission with input as clear(base) with data.federa.require_secure_aggregation_for as "all"
	secagg_reason in d.reasons
	d.allow == false
	ok := federa.admission with input as base with data.federa.require_secure_aggregation_for as ["all"]
	not secagg_reason in ok.reasons
}

test_secure_aggregation_by_classification if {
	d := federa.admission with input as clear(with_dp(features(["diagnosis"])))
		with data.federa.require_secure_aggregation_for as ["special_category"]
	secagg_reason in d.reasons
	ok := federa.admission with input as clear(base) with data.federa.require_secure_aggregation_for as ["special_category"]
	not secagg_reason in ok.reasons
}

test_queries_need_no_secure_aggregation if {
	q := object.union(clear(base), {"job": {"type": "query"}})
	d := federa.admission with input as q with data.federa.require_secure_aggregation_for as "all"
	not secagg_reason in d.reasons
}

test_secure_aggregation_setting_must_be_valid if {
	errs := federa.config_errors with data.federa.require_secure_aggregation_for as ["secret"]
	some e in errs
	startswith(e, "data.federa.require_secure_aggregation_for must be")
}
