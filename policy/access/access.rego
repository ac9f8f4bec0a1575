# The coordinator's access policy: who may call which RPC on what.
#
# The coordinator asks data.federa.access.decision before every RPC (and
# before it accepts a site's answer to a task). Callers are authenticated
# by mTLS before this policy runs; it decides only what an authenticated
# SPIFFE ID may do. Input (docs/identity.md, "Access policy"):
#
#   caller.id        the peer's SPIFFE ID
#   caller.kind      "user", "site", "coordinator" or "other"
#   caller.roles     a user's roles from the coordinator config
#   caller.admin_of  the sites a user is site-admin of ("eu/paris", ...)
#   caller.site      a site's name ("eu/paris"), "" for others
#   caller.listed    a site listed in the coordinator config
#   rpc              "Service.Method", e.g. "JobService.SubmitJob"
#   resource.job_owner  the job's or query's submitter (job and query RPCs)
#   resource.site       the site acted on (approvals, site streams)
#   resource.task_site  the site a task was sent to (SiteService.AnswerTask)
package federa.access

caller := object.get(input, "caller", {})

caller_id := object.get(caller, "id", "")

roles := object.get(caller, "roles", [])

resource := object.get(input, "resource", {})

# The RPCs this policy knows, by what they touch. An RPC missing here is
# denied: a new RPC is closed until someone writes its rule.
# A query is a job as far as access goes: its submitter reads it, an
# operator reads all.
job_reads := {"JobService.GetJob", "JobService.WatchJob", "JobService.GetModel", "JobService.ListDecisions", "JobService.ListRounds", "JobService.ListFeatures", "JobService.ListJobSites", "QueryService.GetQuery"}

job_writes := {"JobService.CancelJob"}

audit_reads := {"AuditService.Checkpoint", "AuditService.Export", "AuditService.Proof"}

approvals := {"ApprovalService.ListPending", "ApprovalService.Decide"}

site_rpcs := {"SiteService.Connect", "SiteService.AnswerTask"}

submits := {"JobService.SubmitJob", "QueryService.SubmitQuery"}

lists := {"JobService.ListJobs", "QueryService.ListQueries"}

known := (((((job_reads | job_writes) | audit_reads) | approvals) | site_rpcs) | submits) | lists

is_user if caller.kind == "user"

is_site if caller.kind == "site"

has_role(r) if {
	is_user
	r in roles
}

owns_job if {
	caller_id != ""
	resource.job_owner == caller_id
}

# --- allow rules --------------------------------------------------------

default allow := false

allow if {
	input.rpc in submits
	has_role("data-scientist")
}

allow if {
	input.rpc in lists
	some r in {"data-scientist", "operator"}
	has_role(r)
}

allow if {
	input.rpc in (job_reads | job_writes)
	has_role("data-scientist")
	owns_job
}

allow if {
	input.rpc in (job_reads | job_writes)
	has_role("operator")
}

allow if {
	input.rpc in audit_reads
	has_role("auditor")
}

allow if {
	input.rpc in approvals
	is_user
	resource.site in object.get(caller, "admin_of", [])
}

allow if {
	input.rpc == "SiteService.Connect"
	is_site
	caller.listed == true
	resource.site == caller.site
}

allow if {
	input.rpc == "SiteService.AnswerTask"
	is_site
	caller.listed == true
	resource.task_site == caller.site
}

# --- why not ------------------------------------------------------------

reasons contains sprintf("%s is not an RPC this access policy knows; it is denied until a rule allows it", [input.rpc]) if {
	not input.rpc in known
}

reasons contains "it needs the data-scientist role (coordinator config users[].roles)" if {
	input.rpc in submits
	not allow
}

reasons contains "it needs the data-scientist or operator role (coordinator config users[].roles)" if {
	input.rpc in lists
	not allow
}

reasons contains sprintf("job belongs to %s; a data scientist reads and cancels only their own jobs (the operator role may act on any)", [resource.job_owner]) if {
	input.rpc in (job_reads | job_writes)
	has_role("data-scientist")
	not allow
}

reasons contains "it needs the data-scientist role (for its own jobs) or the operator role (coordinator config users[].roles)" if {
	input.rpc in (job_reads | job_writes)
	not has_role("data-scientist")
	not allow
}

reasons contains "it needs the auditor role (coordinator config users[].roles)" if {
	input.rpc in audit_reads
	not allow
}

reasons contains sprintf("it needs the role site-admin:%s (coordinator config users[].roles)%s", [resource.site, admin_of_phrase]) if {
	input.rpc in approvals
	not allow
}

admin_of_phrase := sprintf("; it is site-admin of %s only", [concat(", ", sort(caller.admin_of))]) if {
	count(object.get(caller, "admin_of", [])) > 0
} else := ""

reasons contains "only a site listed in the coordinator config may open a site stream" if {
	input.rpc in site_rpcs
	not is_site
}

reasons contains "only a site listed in the coordinator config may open a site stream" if {
	input.rpc in site_rpcs
	is_site
	caller.listed != true
}

reasons contains sprintf("a site may open only its own stream; this one is for %s", [resource.site]) if {
	input.rpc == "SiteService.Connect"
	is_site
	caller.listed == true
	resource.site != caller.site
}

reasons contains sprintf("task was sent to %s; a site answers only tasks addressed to it", [resource.task_site]) if {
	input.rpc == "SiteService.AnswerTask"
	is_site
	caller.listed == true
	resource.task_site != caller.site
}

# The decision the coordinator reads. Every reason above holds only when
# the call is denied.
decision := {"allow": allow, "reasons": sort(reasons)}
