package federa_test

import data.federa

test_data_scientist_allowed if {
	d := federa.admission with input as base
	d.allow
	d.reasons == []
}

test_wrong_role_denied if {
	d := federa.admission with input as with_job(base, {"requester": {"role": "analyst"}})
	not d.allow
	d.reasons == ["requester \"spiffe://example.org/user/alice\" has role \"analyst\"; only data-scientist may submit jobs to this site"]
}

test_missing_requester_denied if {
	d := federa.admission with input as with_job(base, {"requester": {"id": ""}})
	not d.allow
	"the job names no requester" in d.reasons
}

test_roles_from_data if {
	d := federa.admission with input as with_job(base, {"requester": {"role": "analyst"}})
		with data.federa.allowed_roles as ["analyst"]
	d.allow
}

test_listed_project_allowed if {
	d := federa.admission with input as base with data.federa.allowed_projects as ["readmission", "sepsis"]
	d.allow
}

test_other_project_denied if {
	d := federa.admission with input as with_job(base, {"project": "marketing"})
		with data.federa.allowed_projects as ["readmission", "sepsis"]
	not d.allow
	d.reasons == ["requester \"spiffe://example.org/user/alice\" may not submit for project \"marketing\": this site accepts only projects readmission, sepsis"]
}

test_no_project_denied_when_projects_listed if {
	d := federa.admission with input as json.remove(base, ["job/project"])
		with data.federa.allowed_projects as ["readmission"]
	not d.allow
	reason_with(d, "may not submit for no project")
}

test_any_project_when_none_listed if {
	d := federa.admission with input as with_job(base, {"project": "anything"}) with data.federa.allowed_projects as []
	d.allow
}
