package federa_test

import data.federa

test_special_category_without_dp_denied if {
	d := federa.admission with input as features(["ward", "diagnosis"])
	not d.allow
	d.reasons == ["column \"diagnosis\" is special-category data and may only be used with differential privacy (epsilon <= 8)"]
}

test_special_category_label_without_dp_denied if {
	d := federa.admission with input as with_job(base, {"label": "diagnosis"})
	reason_with(d, "column \"diagnosis\" is special-category data")
}

test_special_category_with_dp_allowed_with_obligations if {
	d := federa.admission with input as with_dp(features(["ward", "diagnosis"]))
	d.allow
	d.obligations == {"min_records": 10, "require_dp": true, "max_epsilon": 8, "drop_columns": ["patient_name"], "privacy_budget": {"epsilon": 8, "delta": 1e-05}}
}

test_special_category_epsilon_above_limit_denied if {
	doc := object.union(with_dp(features(["diagnosis"])), {"job": {"privacy": {"dp": {"epsilon": 9}}}})
	d := federa.admission with input as doc
	not d.allow
	d.reasons == ["differential privacy epsilon 9 exceeds this site's limit of 8 for columns diagnosis"]
}

test_special_category_delta_above_limit_denied if {
	doc := object.union(with_dp(features(["diagnosis"])), {"job": {"privacy": {"dp": {"delta": 0.001}}}})
	d := federa.admission with input as doc
	d.reasons == ["differential privacy delta 0.001 exceeds this site's limit of 1e-05 for columns diagnosis"]
}

test_personal_to_adequate_jurisdiction_allowed if {
	d := federa.admission with input as to(features(["age"]), "uk")
	d.allow
	not d.obligations.require_dp
}

test_personal_within_jurisdiction_allowed if {
	d := federa.admission with input as features(["age"])
	d.allow
}

test_personal_to_non_adequate_jurisdiction_denied if {
	d := federa.admission with input as to(features(["age"]), "us")
	not d.allow
	d.reasons == ["column \"age\" is personal data and destination \"spiffe://example.org/coordinator\" is in jurisdiction \"us\", which is not on the adequacy list of jurisdiction \"eu\"; use differential privacy or an adequate destination"]
}

test_personal_to_non_adequate_jurisdiction_with_dp_allowed if {
	d := federa.admission with input as with_dp(to(features(["age"]), "us"))
	d.allow
	d.obligations.require_dp
	d.obligations.max_epsilon == 8
}

test_jurisdictions_compare_case_insensitively if {
	doc := object.union(to(features(["age"]), "UK"), {"site": {"jurisdiction": "EU"}})
	federa.adequate with input as doc
}

test_site_without_jurisdiction_denied if {
	d := federa.admission with input as object.union(base, {"site": {"jurisdiction": ""}})
	"the site declares no jurisdiction" in d.reasons
	not federa.adequate with input as object.union(base, {"site": {"jurisdiction": ""}, "destination": {"jurisdiction": ""}})
}

test_destination_without_jurisdiction_denied if {
	d := federa.admission with input as to(base, "")
	"destination \"spiffe://example.org/coordinator\" declares no jurisdiction" in d.reasons
}

test_invalid_dp_parameters_denied if {
	doc := object.union(base, {"job": {"privacy": {"dp": {"epsilon": 0, "delta": 1, "clip_norm": "1"}}}})
	d := federa.admission with input as doc
	d.reasons == [
		"differential privacy clip_norm must be a number greater than 0, got 1",
		"differential privacy delta must be a number in [0, 1), got 1",
		"differential privacy epsilon must be a number greater than 0, got 0",
	]
}

test_missing_dp_parameters_denied if {
	d := federa.admission with input as object.union(base, {"job": {"privacy": {"dp": {}}}})
	d.reasons == [
		"differential privacy clip_norm must be a number greater than 0, got null",
		"differential privacy delta must be a number in [0, 1), got null",
		"differential privacy epsilon must be a number greater than 0, got null",
	]
}

test_dp_on_public_data_obliges_nothing_more if {
	d := federa.admission with input as with_dp(base)
	d.allow
	not d.obligations.require_dp
}
