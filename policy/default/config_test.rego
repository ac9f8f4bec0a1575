package federa_test

import data.federa

test_default_data_is_valid if {
	count(federa.config_errors) == 0
}

test_rank_orders_classifications if {
	federa.rank.public < federa.rank.internal
	federa.rank.internal < federa.rank.personal
	federa.rank.personal < federa.rank.special_category
}

test_limits_must_be_an_object if {
	"data.federa.limits must be an object" in federa.config_errors with data.federa.limits as "8"
}

test_limits_required_keys if {
	"data.federa.limits.max_epsilon is required" in federa.config_errors with data.federa.limits as {"min_records": 10}
}

test_limits_unknown_key if {
	errs := federa.config_errors with data.federa.limits as object.union(limits, {"max_epsion": 1})
	some e in errs
	startswith(e, "data.federa.limits has unknown key \"max_epsion\"")
}

test_limits_positive_numbers if {
	errs := federa.config_errors with data.federa.limits as object.union(limits, {"max_epsilon": "8", "max_delta": 0})
	"data.federa.limits.max_epsilon must be a number greater than 0, got 8" in errs
	"data.federa.limits.max_delta must be a number greater than 0, got 0" in errs
}

test_limits_whole_numbers if {
	errs := federa.config_errors with data.federa.limits as object.union(limits, {"min_records": 2.5, "max_rounds": -1})
	"data.federa.limits.min_records must be a whole number of at least 0, got 2.5" in errs
	"data.federa.limits.max_rounds must be a whole number of at least 0, got -1" in errs
}

test_adequacy_must_be_an_object if {
	some e in federa.config_errors with data.federa.adequacy as ["eu"]
	startswith(e, "data.federa.adequacy must be an object")
}

test_adequacy_lists if {
	"data.federa.adequacy.eu must be a list of jurisdictions" in federa.config_errors with data.federa.adequacy as {"eu": "uk"}
}

test_string_lists if {
	errs := federa.config_errors with data.federa.allowed_roles as "data-scientist"
		with data.federa.allowed_projects as [1]
		with data.federa.never_use_tags as {"direct_identifier": true}
	"data.federa.allowed_roles must be a list of strings" in errs
	"data.federa.allowed_projects must be a list of strings" in errs
	"data.federa.never_use_tags must be a list of strings" in errs
}

test_approval_setting if {
	count(federa.config_errors) == 0 with data.federa.require_approval_for as "all"
	count(federa.config_errors) == 0 with data.federa.require_approval_for as ["all", "personal"]
	some e in federa.config_errors with data.federa.require_approval_for as ["secret"]
	startswith(e, "data.federa.require_approval_for must be")
	some f in federa.config_errors with data.federa.require_approval_for as "some"
	startswith(f, "data.federa.require_approval_for must be")
}

test_classification_hints if {
	errs := federa.config_errors with data.federa.classification_hints as {"names": {"ssn": "secret"}, "tags": []}
	some n in errs
	startswith(n, "data.federa.classification_hints.names must be an object mapping a lower-case column name")
	some t in errs
	startswith(t, "data.federa.classification_hints.tags must be an object mapping a tag")
}

test_invalid_data_denies_admission if {
	d := federa.admission with input as base with data.federa.limits as "8"
	not d.allow
	"data.federa.limits must be an object" in d.reasons
}
