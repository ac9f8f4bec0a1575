package federa_test

import data.federa

with_label(doc, profile) := object.union(doc, {"site": {"dataset": {"label": object.union(
	{"column": "readmitted", "classes": 2, "numeric": false, "smallest_class": 400},
	profile,
)}}})

test_a_few_well_populated_classes_pass if {
	d := federa.admission with input as with_label(base, {})
	d.allow
}

test_too_many_classes_are_refused if {
	d := federa.admission with input as with_label(base, {"classes": 21})
	not d.allow
	reason_with(d, `label "readmitted" has more distinct values than the 20 classes`)
}

test_max_classes_is_the_sites if {
	d := federa.admission with input as with_label(base, {"classes": 21}) with data.federa.limits as object.union(limits, {"max_classes": 50})
	d.allow
	e := federa.admission with input as with_label(base, {"classes": 6}) with data.federa.limits as object.union(limits, {"max_classes": 5})
	reason_with(e, "than the 5 classes")
}

test_numeric_high_cardinality_label_is_refused if {
	d := federa.admission with input as with_label(base, {"classes": 11, "numeric": true})
	not d.allow
	reason_with(d, `label "readmitted" is numeric with more than 10 distinct values`)
}

test_numeric_label_with_few_values_passes if {
	d := federa.admission with input as with_label(base, {"classes": 3, "numeric": true})
	d.allow
}

test_max_numeric_label_classes_is_the_sites if {
	d := federa.admission with input as with_label(base, {"classes": 4, "numeric": true}) with data.federa.limits as object.union(limits, {"max_numeric_label_classes": 3})
	reason_with(d, "numeric with more than 3 distinct values")
}

test_rare_class_is_refused if {
	d := federa.admission with input as with_label(base, {"smallest_class": 9})
	not d.allow
	reason_with(d, "has a value held by fewer than 10 rows at this site")
}

test_rare_class_follows_the_jobs_min_count if {
	d := federa.admission with input as with_job(with_label(base, {"smallest_class": 20}), {"privacy": {"min_count": 25}})
	reason_with(d, "fewer than 25 rows")
}

test_reasons_say_no_counts if {
	d := federa.admission with input as with_label(base, {"classes": 121, "numeric": true, "smallest_class": 1})
	every r in d.reasons {
		not contains(r, "121")
	}
}

test_a_regression_releases_no_label_values if {
	measurement := with_job(with_label(base, {"classes": 400, "numeric": true, "smallest_class": 1}), {"model": {"type": "linreg", "task": "regression"}})
	d := federa.admission with input as measurement
	d.allow
	e := federa.admission with input as with_job(measurement, {"model": {"type": "logreg", "task": "classification"}})
	not e.allow
	reason_with(e, "numeric with more than 10 distinct values")
}

test_an_undeclared_task_is_judged_as_a_classifier if {
	d := federa.admission with input as with_job(with_label(base, {"classes": 400, "numeric": true}), {"model": {"type": "somethingnew", "task": ""}})
	not d.allow
	no_task := json.remove(with_label(base, {"classes": 400, "numeric": true}), ["job/model/task"])
	e := federa.admission with input as no_task
	not e.allow
}
