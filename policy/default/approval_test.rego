package federa_test

import data.federa

test_no_approval_by_default if {
	d := federa.admission with input as with_dp(features(["diagnosis"]))
	d.require_approval == false
}

test_approval_for_all if {
	federa.admission.require_approval with input as base with data.federa.require_approval_for as "all"
	federa.admission.require_approval with input as base with data.federa.require_approval_for as ["all"]
}

test_approval_by_classification if {
	federa.admission.require_approval with input as with_dp(features(["diagnosis"]))
		with data.federa.require_approval_for as ["special_category"]
	not federa.admission.require_approval with input as base with data.federa.require_approval_for as ["special_category"]
}
