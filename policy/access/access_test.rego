package federa.access_test

import data.federa.access

alice := {"id": "spiffe://td/user/alice", "kind": "user", "roles": ["data-scientist"], "admin_of": []}

bob := {"id": "spiffe://td/user/bob", "kind": "user", "roles": ["data-scientist"], "admin_of": []}

ops := {"id": "spiffe://td/user/ops", "kind": "user", "roles": ["operator"], "admin_of": []}

auditor := {"id": "spiffe://td/user/auditor", "kind": "user", "roles": ["auditor"], "admin_of": []}

admin_paris := {"id": "spiffe://td/user/admin-eu-paris", "kind": "user", "roles": ["site-admin:eu/paris"], "admin_of": ["eu/paris"]}

mallory := {"id": "spiffe://td/user/mallory", "kind": "user", "roles": [], "admin_of": []}

paris := {"id": "spiffe://td/site/eu/paris", "kind": "site", "site": "eu/paris", "listed": true}

boston := {"id": "spiffe://td/site/us/boston", "kind": "site", "site": "us/boston", "listed": true}

stranger_site := {"id": "spiffe://td/site/eu/rogue", "kind": "site", "site": "eu/rogue", "listed": false}

alices_job := {"job_owner": "spiffe://td/user/alice"}

decide(c, rpc, res) := d if {
	d := access.decision with input as {"caller": c, "rpc": rpc, "resource": res}
}

allowed(c, rpc, res) if decide(c, rpc, res).allow

denied_because(c, rpc, res, fragment) if {
	d := decide(c, rpc, res)
	not d.allow
	some r in d.reasons
	contains(r, fragment)
}

test_data_scientist_submits if allowed(alice, "JobService.SubmitJob", {})

test_others_may_not_submit if {
	every c in [ops, auditor, admin_paris, mallory, paris] {
		denied_because(c, "JobService.SubmitJob", {}, "needs the data-scientist role")
	}
}

test_list_jobs if {
	allowed(alice, "JobService.ListJobs", {})
	allowed(ops, "JobService.ListJobs", {})
	denied_because(auditor, "JobService.ListJobs", {}, "data-scientist or operator")
	denied_because(mallory, "JobService.ListJobs", {}, "data-scientist or operator")
}

test_owner_reads_and_cancels_own_job if {
	every rpc in ["JobService.GetJob", "JobService.WatchJob", "JobService.GetModel", "JobService.ListDecisions", "JobService.ListRounds", "JobService.ListFeatures", "JobService.ListJobSites", "JobService.CancelJob"] {
		allowed(alice, rpc, alices_job)
	}
}

test_other_data_scientist_may_not_touch_the_job if {
	every rpc in ["JobService.GetJob", "JobService.WatchJob", "JobService.GetModel", "JobService.ListDecisions", "JobService.ListRounds", "JobService.ListFeatures", "JobService.ListJobSites", "JobService.CancelJob"] {
		denied_because(bob, rpc, alices_job, "job belongs to spiffe://td/user/alice")
	}
}

test_operator_acts_on_any_job if {
	every rpc in ["JobService.GetJob", "JobService.WatchJob", "JobService.GetModel", "JobService.ListDecisions", "JobService.ListRounds", "JobService.ListFeatures", "JobService.ListJobSites", "JobService.CancelJob"] {
		allowed(ops, rpc, alices_job)
	}
}

test_auditor_and_admins_read_no_jobs if {
	every c in [auditor, admin_paris, mallory] {
		denied_because(c, "JobService.GetJob", alices_job, "or the operator role")
	}
}

test_job_without_owner_is_nobodys if {
	not allowed({"id": "", "kind": "user", "roles": ["data-scientist"]}, "JobService.GetJob", {"job_owner": ""})
}

test_auditor_reads_audit_data if {
	every rpc in ["AuditService.Checkpoint", "AuditService.Export", "AuditService.Proof"] {
		allowed(auditor, rpc, {})
		denied_because(alice, rpc, {}, "needs the auditor role")
		denied_because(ops, rpc, {}, "needs the auditor role")
		denied_because(paris, rpc, {}, "needs the auditor role")
	}
}

test_site_admin_decides_at_own_site_only if {
	every rpc in ["ApprovalService.ListPending", "ApprovalService.Decide"] {
		allowed(admin_paris, rpc, {"site": "eu/paris"})
		denied_because(admin_paris, rpc, {"site": "us/boston"}, "site-admin:us/boston (coordinator config users[].roles); it is site-admin of eu/paris only")
		denied_because(alice, rpc, {"site": "eu/paris"}, "needs the role site-admin:eu/paris (coordinator config users[].roles)")
	}
}

test_site_admin_role_is_not_a_site if {
	not allowed(paris, "ApprovalService.Decide", {"site": "eu/paris"})
}

test_site_opens_own_stream if allowed(paris, "SiteService.Connect", {"site": "eu/paris"})

test_site_may_not_open_another_sites_stream if {
	denied_because(paris, "SiteService.Connect", {"site": "us/boston"}, "only its own stream; this one is for us/boston")
}

test_unlisted_site_and_users_may_not_connect if {
	denied_because(stranger_site, "SiteService.Connect", {"site": "eu/rogue"}, "only a site listed")
	denied_because(alice, "SiteService.Connect", {"site": "eu/paris"}, "only a site listed")
	denied_because(stranger_site, "SiteService.AnswerTask", {"task_site": "eu/rogue"}, "only a site listed")
}

test_site_answers_only_its_tasks if {
	allowed(boston, "SiteService.AnswerTask", {"task_site": "us/boston"})
	denied_because(boston, "SiteService.AnswerTask", {"task_site": "eu/paris"}, "task was sent to eu/paris")
}

test_unknown_rpc_is_denied if {
	every c in [alice, ops, auditor, admin_paris, paris] {
		denied_because(c, "JobService.DeleteEverything", {}, "not an RPC this access policy knows")
	}
}

test_no_reasons_when_allowed if {
	d := decide(alice, "JobService.SubmitJob", {})
	d.reasons == []
}

test_empty_input_is_denied if {
	d := access.decision with input as {}
	not d.allow
}

test_data_scientist_submits_queries if allowed(alice, "QueryService.SubmitQuery", {})

test_others_may_not_submit_queries if {
	every c in [ops, auditor, admin_paris, mallory, paris] {
		denied_because(c, "QueryService.SubmitQuery", {}, "needs the data-scientist role")
	}
}

test_list_queries if {
	allowed(alice, "QueryService.ListQueries", {})
	allowed(ops, "QueryService.ListQueries", {})
	denied_because(auditor, "QueryService.ListQueries", {}, "data-scientist or operator")
	denied_because(mallory, "QueryService.ListQueries", {}, "data-scientist or operator")
}

test_query_owner_and_operator_read_the_query if {
	allowed(alice, "QueryService.GetQuery", alices_job)
	allowed(ops, "QueryService.GetQuery", alices_job)
	denied_because(bob, "QueryService.GetQuery", alices_job, "belongs to spiffe://td/user/alice")
	denied_because(mallory, "QueryService.GetQuery", alices_job, "data-scientist role (for its own jobs) or the operator role")
}
