# Site configuration
#
# The settings this policy reads from data.federa (data.json beside it),
# the defaults for the optional ones, and config_errors: every setting of
# the wrong type. A non-empty config_errors makes the policy fail to load,
# because Rego orders values of different types instead of failing (a
# limit written as "8" would let every epsilon through).
package federa

# classifications from least to most sensitive.
classifications := ["public", "internal", "personal", "special_category"]

# rank[classification] is its position in classifications.
rank[c] := i if some i, c in classifications

# Rule names differ from the data keys they read: a rule and a data file may
# not both define data.federa.limits.

default site_limits := {}

site_limits := data.federa.limits

default adequacy_lists := {}

adequacy_lists := data.federa.adequacy

default allowed_role_list := ["data-scientist"]

allowed_role_list := data.federa.allowed_roles

# An empty list of projects accepts every project.
default project_list := []

project_list := data.federa.allowed_projects

# A list of classifications (and/or "all"), or "all".
default approval_for := []

approval_for := data.federa.require_approval_for

default forbidden_tags := []

forbidden_tags := data.federa.never_use_tags

default name_hints := {}

name_hints := data.federa.classification_hints.names

default tag_hints := {}

tag_hints := data.federa.classification_hints.tags

required_limits := {"max_epsilon", "min_records"}

positive_limits := {"max_epsilon", "max_delta"}

count_limits := {"min_records", "special_category_min_records", "max_rounds", "max_classes", "max_numeric_label_classes"}

positive_number(x) if {
	is_number(x)
	x > 0
}

whole_number(x) if {
	is_number(x)
	x >= 0
	floor(x) == x
}

string_list(x) if {
	is_array(x)
	every e in x {
		is_string(e)
	}
}

config_errors contains "data.federa.limits must be an object" if not is_object(site_limits)

config_errors contains sprintf("data.federa.limits.%s is required", [key]) if {
	is_object(site_limits)
	some key in required_limits
	not key in object.keys(site_limits)
}

config_errors contains sprintf("data.federa.limits has unknown key %q; known keys are %s", [key, concat(", ", sort(known))]) if {
	known := (positive_limits | count_limits) | required_limits
	some key, _ in site_limits
	not key in known
}

config_errors contains sprintf("data.federa.limits.%s must be a number greater than 0, got %v", [key, value]) if {
	some key, value in site_limits
	key in positive_limits
	not positive_number(value)
}

config_errors contains sprintf("data.federa.limits.%s must be a whole number of at least 0, got %v", [key, value]) if {
	some key, value in site_limits
	key in count_limits
	not whole_number(value)
}

config_errors contains "data.federa.adequacy must be an object mapping a jurisdiction to the jurisdictions adequate for it" if {
	not is_object(adequacy_lists)
}

config_errors contains sprintf("data.federa.adequacy.%s must be a list of jurisdictions", [j]) if {
	some j, list in adequacy_lists
	not string_list(list)
}

config_errors contains sprintf("data.federa.%s must be a list of strings", [key]) if {
	some key, value in {
		"allowed_roles": allowed_role_list,
		"allowed_projects": project_list,
		"never_use_tags": forbidden_tags,
	}
	not string_list(value)
}

config_errors contains sprintf("data.federa.require_approval_for must be \"all\" or a list of classifications (%s) and \"all\", got %v", [concat(", ", classifications), approval_for]) if {
	approval_for != "all"
	not valid_approval_list(approval_for)
}

valid_approval_list(x) if {
	string_list(x)
	every e in x {
		e in array.concat(classifications, ["all"])
	}
}

config_errors contains sprintf("data.federa.classification_hints.%s must be an object mapping a %s to a classification (%s)", [key, what, concat(", ", classifications)]) if {
	some entry in [
		["names", "lower-case column name", name_hints],
		["tags", "tag", tag_hints],
	]
	[key, what, hints] := entry
	not valid_hints(hints)
}

valid_hints(x) if {
	is_object(x)
	every _, c in x {
		c in classifications
	}
}
