# Job
#
# What kind of job may run: only input version v1 (with job, site and
# destination objects), only "train" and "query" jobs (both send
# aggregates; nothing leaves a site raw), only on the dataset the site
# described, and at most limits.max_rounds rounds when the site sets that
# limit.
package federa

job_types := ["train", "query"]

job_id := object.get(input, ["job", "id"], "")

# Beware: `not f(input.x)` is false, not true, when input.x is undefined,
# because the undefined argument fails the expression before `not` applies.
# Rules here negate helper rules and functions of defined values only.

default input_version := ""

input_version := input.version

deny contains sprintf("input version %q is not supported; this policy reads version \"v1\"", [input_version]) if {
	input_version != "v1"
}

has_section(name) if is_object(input[name])

deny contains sprintf("the input has no %s object", [name]) if {
	some name in ["job", "site", "destination"]
	not has_section(name)
}

deny contains sprintf("job %q has type %q; only %s jobs may run here, and nothing leaves this site raw", [job_id, job_type, concat(" and ", job_types)]) if {
	job_type := object.get(input, ["job", "type"], "")
	not job_type in job_types
}

deny contains sprintf("job %q asks for dataset %q but this site described dataset %q", [job_id, asked, described]) if {
	asked := object.get(input, ["job", "dataset"], "")
	described := object.get(input, ["site", "dataset", "name"], "")
	asked != described
}

deny contains sprintf("job %q asks for %v rounds; this site allows at most %v", [job_id, rounds, site_limits.max_rounds]) if {
	rounds := object.get(input, ["job", "rounds"], 0)
	rounds > site_limits.max_rounds
}
