package federa_test

import data.federa

test_admission_has_every_field if {
	d := federa.admission with input as base
	object.keys(d) == {"allow", "reasons", "obligations", "require_approval"}
}

test_admission_denies_without_input if {
	not federa.admission.allow
}

test_min_records_obligation_from_site if {
	d := federa.admission with input as base
	d.obligations.min_records == 10
}

test_min_records_obligation_from_job if {
	d := federa.admission with input as with_job(base, {"privacy": {"min_count": 25}})
	d.obligations.min_records == 25
}

test_min_records_obligation_for_special_category if {
	higher := object.union(limits, {"special_category_min_records": 20})
	d := federa.admission with input as with_dp(features(["diagnosis"])) with data.federa.limits as higher
	d.obligations.min_records == 20
}

test_max_rounds_obligation if {
	d := federa.admission with input as base with data.federa.limits as object.union(limits, {"max_rounds": 50})
	d.obligations.max_rounds == 50
}

test_no_obligations_is_an_empty_object if {
	d := federa.admission with input as base
		with data.federa.limits as {"max_epsilon": 8, "min_records": 0}
		with data.federa.never_use_tags as []
	d.allow
	d.obligations == {}
}
