# Inputs shared by the tests of the default policy.
package federa_test

# base is a job the default policy admits: an internal feature and a public
# label, from an EU site to an EU destination, without DP.
base := {
	"version": "v1",
	"job": {
		"id": "job-1",
		"type": "train",
		"requester": {"id": "spiffe://example.org/user/alice", "role": "data-scientist"},
		"project": "readmission",
		"dataset": "admissions",
		"features": ["ward"],
		"label": "readmitted",
		"model": {"type": "logreg", "task": "classification", "params": {"local_epochs": 1}},
		"rounds": 10,
		"privacy": {"secure_aggregation": true, "min_count": 0},
	},
	"site": {
		"name": "eu/paris",
		"jurisdiction": "eu",
		"dataset": {
			"name": "admissions",
			"columns": [
				{"name": "patient_name", "classification": "personal", "tags": ["direct_identifier"]},
				{"name": "age", "classification": "personal"},
				{"name": "ward", "classification": "internal"},
				{"name": "diagnosis", "classification": "special_category", "tags": ["health"]},
				{"name": "notes", "classification": "internal", "tags": ["health"]},
				{"name": "readmitted", "classification": "public"},
			],
		},
	},
	"destination": {"id": "spiffe://example.org/coordinator", "jurisdiction": "eu"},
}

dp := {"epsilon": 4, "delta": 0.00001, "clip_norm": 1}

noise := {"mechanism": "gaussian", "sigma": 1.1, "clip_norm": 1}

message := {"kind": "model_update", "bytes": 100, "max_bytes": 1000, "records": 50, "epsilon_spent": 0.5}

limits := data.federa.limits

with_job(doc, patch) := object.union(doc, {"job": patch})

features(fs) := with_job(base, {"features": fs})

with_dp(doc) := object.union(doc, {"job": {"privacy": {"dp": dp}}})

to(doc, jurisdiction) := object.union(doc, {"destination": {"jurisdiction": jurisdiction}})

egress_of(doc, patch) := object.union(doc, {"egress": object.union(message, patch)})

# reason_with(decision, text) holds when a reason of decision contains text.
reason_with(decision, text) if {
	some r in decision.reasons
	contains(r, text)
}
