# Requester
#
# Who may submit: only the roles of data.federa.allowed_roles (by default
# "data-scientist"), and, when data.federa.allowed_projects is not empty,
# only for those projects.
package federa

requester := object.get(input, ["job", "requester", "id"], "")

role := object.get(input, ["job", "requester", "role"], "")

project := object.get(input, ["job", "project"], "")

deny contains "the job names no requester" if requester == ""

deny contains sprintf("requester %q has role %q; only %s may submit jobs to this site", [requester, role, concat(", ", allowed_role_list)]) if {
	not role in allowed_role_list
}

deny contains sprintf("requester %q may not submit for %s: this site accepts only projects %s", [requester, project_phrase, concat(", ", project_list)]) if {
	count(project_list) > 0
	not project in project_list
}

project_phrase := sprintf("project %q", [project]) if project != ""

else := "no project"
