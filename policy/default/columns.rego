# Columns
#
# Which columns a job reads, how sensitive each is, and the columns that
# may never be used. A column's classification is the strictest of the one
# its dataset metadata declares and those the site's classification hints
# give its name and tags, so a mislabelled "diagnosis" column is still
# treated as health data.
package federa

# used_columns are the columns a job reads: its features and its label.
used_columns contains name if some name in input.job.features

used_columns contains input.job.label if input.job.label != ""

declared_columns contains c.name if some c in input.site.dataset.columns

column_tags(c) := object.get(c, "tags", [])

# candidates(c) are the classifications column c is given: declared, and
# hinted by name and by tag.
candidates(c) := ({c.classification} | {h | h := name_hints[lower(c.name)]}) | {h |
	some t in column_tags(c)
	h := tag_hints[t]
}

# classification[name] is the effective classification of a column (the
# strictest, also across columns listed twice under one name).
classification[name] := classifications[max(ranks)] if {
	some name in declared_columns
	ranks := {rank[x] |
		some c in input.site.dataset.columns
		c.name == name
		some x in candidates(c)
	}
	count(ranks) > 0
}

personal_used := {name |
	some name in used_columns
	classification[name] == "personal"
}

special_used := {name |
	some name in used_columns
	classification[name] == "special_category"
}

# forbidden_columns carry a tag of data.federa.never_use_tags (for example
# direct identifiers): no job may read them, and the site drops them before
# any job code sees the data.
forbidden_columns contains c.name if {
	some c in input.site.dataset.columns
	some tag in column_tags(c)
	tag in forbidden_tags
}

deny contains sprintf("column %q is not described in the metadata of dataset %q, so its classification is unknown", [name, input.site.dataset.name]) if {
	some name in used_columns
	not name in declared_columns
}

deny contains sprintf("column %q has classification %q; valid classifications are %s", [c.name, declared, concat(", ", classifications)]) if {
	some c in input.site.dataset.columns
	c.name in used_columns
	declared := object.get(c, "classification", "")
	not declared in classifications
}

deny contains sprintf("column %q is tagged %q and may never be used by a job", [c.name, tag]) if {
	some c in input.site.dataset.columns
	c.name in used_columns
	some tag in column_tags(c)
	tag in forbidden_tags
}
