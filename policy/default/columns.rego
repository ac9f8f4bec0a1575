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
# strictest, also across columns listed twice under one name). A complete
# object, so it is computed once per decision, not once per lookup.
# col_ranks pairs each declared column with its strictest candidate rank,
# computed once per column; a column listed twice takes the strictest.
col_ranks := [[c.name, r] |
	some c in input.site.dataset.columns
	r := max({rank[x] | some x in candidates(c)})
]

classification := {name: classifications[max({r | some [n, r] in col_ranks; n == name})] |
	some name in declared_columns
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

undescribed_columns := {name |
	some name in used_columns
	not name in declared_columns
}

deny contains sprintf("%s not described in the metadata of dataset %q, so %s classification is unknown", [column_phrase(undescribed_columns), object.get(input, ["site", "dataset", "name"], ""), its(undescribed_columns)]) if {
	count(undescribed_columns) > 0
}

# column_phrase(names) is `column "a" is`, `columns "a", "b" are` or, past
# max_named_columns, `31 columns ("a", "b" and 29 more) are`: one
# reason per rule reads better than one per column, and a reason naming
# every column of a wide dataset (2 KB a site) is not read at all.
max_named_columns := 2

column_phrase(names) := sprintf("column %s is", [quoted(names)]) if count(names) == 1

column_phrase(names) := sprintf("columns %s are", [quoted(names)]) if {
	count(names) > 1
	count(names) <= max_named_columns
}

column_phrase(names) := sprintf("%d columns (%s and %d more) are", [count(names), quoted(array.slice(sort(names), 0, max_named_columns)), count(names) - max_named_columns]) if {
	count(names) > max_named_columns
}

quoted(names) := concat(", ", [sprintf("%q", [n]) | some n in sort(names)])

its(names) := "its" if count(names) == 1

its(names) := "their" if count(names) > 1

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
