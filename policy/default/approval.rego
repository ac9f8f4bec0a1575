# Operator approval
#
# A site may ask for an operator's approval before a job runs:
# data.federa.require_approval_for is "all", or a list of classifications
# (a job reading a column of one needs approval) that may contain "all".
# The default data asks for none.
package federa

default require_approval := false

require_approval if approval_for == "all"

require_approval if "all" in approval_for

require_approval if {
	some name in used_columns
	classification[name] in approval_for
}
