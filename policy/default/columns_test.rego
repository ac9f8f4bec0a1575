package federa_test

import data.federa

test_used_columns_are_features_and_label if {
	federa.used_columns == {"ward", "readmitted"} with input as base
}

test_empty_label_is_not_a_column if {
	federa.used_columns == {"ward"} with input as with_job(base, {"label": ""})
}

test_undescribed_column_denied if {
	d := federa.admission with input as features(["ward", "salary"])
	not d.allow
	d.reasons == ["column \"salary\" is not described in the metadata of dataset \"admissions\", so its classification is unknown"]
}

# A wide dataset's refusal names a few columns and counts the rest, so it
# stays readable (31 columns once made a 2 KB line per site).
test_column_phrase_caps_the_names if {
	federa.column_phrase({"a"}) == "column \"a\" is"
	federa.column_phrase({"b", "a"}) == "columns \"a\", \"b\" are"
	federa.column_phrase({"e", "d", "c", "b", "a"}) == "5 columns (\"a\", \"b\" and 3 more) are"
}

test_undescribed_columns_named_in_one_reason if {
	d := federa.admission with input as features(["ward", "salary", "bonus"])
	not d.allow
	d.reasons == ["columns \"bonus\", \"salary\" are not described in the metadata of dataset \"admissions\", so their classification is unknown"]
}

test_unknown_classification_denied if {
	doc := object.union(with_job(base, {"features": ["bed"], "label": ""}), {"site": {"dataset": {"columns": [{"name": "bed", "classification": "secret"}]}}})
	d := federa.admission with input as doc
	not d.allow
	d.reasons == ["column \"bed\" has classification \"secret\"; valid classifications are public, internal, personal, special_category"]
}

test_column_without_classification_denied if {
	doc := object.union(with_job(base, {"features": ["bed"], "label": ""}), {"site": {"dataset": {"columns": [{"name": "bed"}]}}})
	d := federa.admission with input as doc
	not d.allow
	d.reasons == ["column \"bed\" has classification \"\"; valid classifications are public, internal, personal, special_category"]
}

test_tag_hint_raises_classification if {
	# "notes" is declared internal but tagged health.
	federa.classification.notes == "special_category" with input as base
	d := federa.admission with input as features(["notes"])
	reason_with(d, "column \"notes\" is special-category data")
}

test_name_hint_raises_classification if {
	doc := object.union(features(["ICD10"]), {"site": {"dataset": {"columns": [{"name": "ICD10", "classification": "internal"}]}}})
	hints := {"names": {"icd10": "special_category"}, "tags": {}}
	federa.classification.ICD10 == "special_category" with input as doc with data.federa.classification_hints as hints
}

test_hint_never_lowers_classification if {
	hints := {"names": {"diagnosis": "public"}, "tags": {}}
	federa.classification.diagnosis == "special_category" with input as base with data.federa.classification_hints as hints
}

test_column_listed_twice_takes_the_strictest if {
	doc := object.union(features(["bed"]), {"site": {"dataset": {"columns": [
		{"name": "bed", "classification": "public"},
		{"name": "bed", "classification": "personal"},
	]}}})
	federa.classification.bed == "personal" with input as doc
}

test_forbidden_column_denied if {
	d := federa.admission with input as features(["patient_name"])
	not d.allow
	"column \"patient_name\" is tagged \"direct_identifier\" and may never be used by a job" in d.reasons
}

test_forbidden_columns_are_dropped if {
	d := federa.admission with input as base
	d.obligations.drop_columns == ["patient_name"]
}
