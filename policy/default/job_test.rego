package federa_test

import data.federa

test_unsupported_version_denied if {
	d := federa.admission with input as object.union(base, {"version": "v2"})
	not d.allow
	"input version \"v2\" is not supported; this policy reads version \"v1\"" in d.reasons
}

test_missing_version_denied if {
	d := federa.admission with input as json.remove(base, ["version"])
	reason_with(d, "input version \"\" is not supported")
}

test_input_sections_required if {
	d := federa.admission with input as {"version": "v1"}
	not d.allow
	"the input has no job object" in d.reasons
	"the input has no site object" in d.reasons
	"the input has no destination object" in d.reasons
}

test_query_job_allowed if {
	d := federa.admission with input as with_job(base, {"type": "query", "label": ""})
	d.allow
}

test_other_job_type_denied if {
	d := federa.admission with input as with_job(base, {"type": "export"})
	not d.allow
	d.reasons == ["job \"job-1\" has type \"export\"; only train and query jobs may run here, and nothing leaves this site raw"]
}

test_dataset_mismatch_denied if {
	d := federa.admission with input as with_job(base, {"dataset": "claims"})
	not d.allow
	"job \"job-1\" asks for dataset \"claims\" but this site described dataset \"admissions\"" in d.reasons
}

test_rounds_limit if {
	capped := object.union(limits, {"max_rounds": 5})
	d := federa.admission with input as base with data.federa.limits as capped
	d.reasons == ["job \"job-1\" asks for 10 rounds; this site allows at most 5"]
	e := federa.admission with input as with_job(base, {"rounds": 5}) with data.federa.limits as capped
	e.allow
}
