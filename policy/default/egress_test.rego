package federa_test

import data.federa

test_aggregates_may_leave if {
	every kind in ["model_update", "statistics", "metrics"] {
		d := federa.egress with input as egress_of(base, {"kind": kind})
		d == {"allow": true, "reasons": []}
	}
}

test_other_kinds_denied if {
	d := federa.egress with input as egress_of(base, {"kind": "raw_rows"})
	d.reasons == ["egress of kind \"raw_rows\" is denied: only aggregates (model_update, statistics, metrics) may leave this site, never raw records"]
}

test_egress_needs_a_message if {
	d := federa.egress with input as base
	d.reasons == ["the input has no egress section describing the outgoing message"]
}

test_size_bound if {
	d := federa.egress with input as egress_of(base, {"bytes": 1001})
	d.reasons == ["the model_update is 1001 bytes, more than the 1000 bytes the declared model can need"]
	e := federa.egress with input as egress_of(base, {"bytes": 0, "max_bytes": 0})
	e.reasons == ["the model_update has no size bound: max_bytes must be greater than 0, got 0"]
}

test_min_records if {
	d := federa.egress with input as egress_of(base, {"records": 9})
	d.reasons == ["the model_update rests on 9 records; at least 10 are required"]
	e := federa.egress with input as egress_of(with_job(base, {"privacy": {"min_count": 100}}), {})
	e.reasons == ["the model_update rests on 50 records; at least 100 are required"]
}

test_dp_noise_required if {
	doc := with_dp(features(["diagnosis"]))
	d := federa.egress with input as egress_of(doc, {})
	d.reasons == ["differential privacy is required for this job at this site, but the model_update carries no noise"]
	e := federa.egress with input as egress_of(doc, {"noise": noise})
	e.allow
	every kind in ["statistics", "metrics"] {
		m := federa.egress with input as egress_of(doc, {"kind": kind})
		m.allow
	}
}

test_egress_uses_the_admission_passed_in if {
	# The site's admission for this revision says DP and 40 records.
	passed := {"allow": true, "reasons": [], "min_records": 40, "require_dp": true}
	doc := object.union(egress_of(base, {}), {"admission": passed})
	d := federa.egress with input as doc
	reason_with(d, "differential privacy is required for this job at this site")
	denied := object.union(egress_of(base, {}), {"admission": {"allow": false, "reasons": ["suspended"], "min_records": 10, "require_dp": false}})
	e := federa.egress with input as denied
	e.reasons == ["the job is not admitted by this site's policy in force: suspended"]
}

test_noise_must_be_real if {
	doc := with_dp(features(["diagnosis"]))
	d := federa.egress with input as egress_of(doc, {"noise": object.union(noise, {"sigma": 0})})
	not d.allow
	reason_with(d, "the noise on the model_update must have a mechanism, a sigma greater than 0 and a clip_norm greater than 0")
}

test_privacy_budget if {
	doc := with_dp(features(["diagnosis"]))
	d := federa.egress with input as egress_of(doc, {"noise": noise, "epsilon_spent": 5, "dataset_epsilon_spent": 5})
	d.reasons == ["the job's privacy budget is spent: epsilon 5 would exceed the 4 the job declared"]
	e := federa.egress with input as egress_of(doc, {"noise": noise, "epsilon_spent": 3, "dataset_epsilon_spent": 9})
	e.reasons == ["the dataset's privacy budget is spent: its lifetime epsilon would reach 9, over this site's limit of 8"]
	f := federa.egress with input as egress_of(doc, {"noise": noise, "epsilon_spent": 4, "dataset_epsilon_spent": 8})
	f.allow
}

test_egress_requires_admission_now if {
	d := federa.egress with input as egress_of(with_job(base, {"requester": {"role": "analyst"}}), {})
	not d.allow
	reason_with(d, "the job is not admitted by this site's policy in force: requester")
}

test_egress_denied_on_invalid_data if {
	d := federa.egress with input as egress_of(base, {}) with data.federa.limits as "8"
	not d.allow
	reason_with(d, "data.federa.limits must be an object")
}
