# Label
#
# A classifier releases its label's values: every distinct value leaves the
# site as a class name in the model, so `label: mean_area` would send the
# column itself. The label is judged as a release (its classification
# already counts as a used column in columns.rego):
# - at most limits.max_classes distinct values (default 20);
# - a numeric label with more than limits.max_numeric_label_classes
#   distinct values (default 10) is a measurement, not a class, and is
#   refused for classification;
# - every value must rest on at least the job's min_records rows here.
# A regression model (input.job.model.task == "regression", e.g. linreg)
# predicts the label as a number and releases none of its values, so these
# rules judge classifiers only; its label still counts as a used column.
# The site computes input.site.dataset.label from its whole file before the
# job touches anything. Reasons never say how many values or rows there
# are: the requester learns only that a limit was crossed.
package federa

default max_label_classes := 20

max_label_classes := site_limits.max_classes

default max_numeric_label_classes := 10

max_numeric_label_classes := site_limits.max_numeric_label_classes

label_profile := input.site.dataset.label

# Anything but a declared regression is judged as a classifier.
releases_label_values if not input.job.model.task == "regression"

deny contains sprintf("label %q has more distinct values than the %d classes this site allows (limits.max_classes); a classifier releases every value of its label", [label_profile.column, max_label_classes]) if {
	releases_label_values
	label_profile.classes > max_label_classes
}

deny contains sprintf("label %q is numeric with more than %d distinct values: a measurement, not a class; a classifier would release its values", [label_profile.column, max_numeric_label_classes]) if {
	releases_label_values
	label_profile.numeric
	label_profile.classes > max_numeric_label_classes
}

deny contains sprintf("label %q has a value held by fewer than %d rows at this site (min_records); every class a model names must rest on at least that many", [label_profile.column, required_min_records]) if {
	releases_label_values
	label_profile.smallest_class < required_min_records
}
