# Caracal platform decision contract, version 2026-07-12.
#
# This module owns data.caracal.authz.result. The tenant modules of a policy-set version
# only supply the data documents app_ids, grants, confinement, restrict, risk and
# approval_tiers; this module reads them as data.caracal.authz.<name> and decides. It
# never defines one of those six names, and tenants cannot define the helper rules below
# (the static validator allows no other rule names in tenant content).
#
# Interpreters run with strict built-in errors, so every built-in call on tenant data or
# input is guarded by a type check. Iterating a scalar yields no members, which is exactly
# the "members" notion of the specification. The decision is one else-chain: the paths it
# tries are mutually exclusive, so the order only decides how much is evaluated, and a
# separate definition makes the one allowed overlap (bootstrap + workload) a conflict.
package caracal.authz

import rego.v1

default result := {
	"decision": "deny",
	"evaluation_status": "complete",
	"determining_policies": [],
	"diagnostics": [{"reason": "no_rule_matched"}],
}

# ---------------------------------------------------------------------------------------
# Result shapes

deny(reason) := {
	"decision": "deny",
	"evaluation_status": "complete",
	"determining_policies": [],
	"diagnostics": [{"reason": reason}],
}

allow(policy, diagnostics) := {
	"decision": "allow",
	"evaluation_status": "complete",
	"determining_policies": [{"policy": policy}],
	"diagnostics": diagnostics,
}

# ---------------------------------------------------------------------------------------
# Input views (always defined; an absent or scalar field has no members)

requested := [s | some s in input.context.requested_scopes]

requested_set := {s | some s in input.context.requested_scopes}

presented_scopes := {p |
	scope := input.context.subject_claims.scope
	is_string(scope)
	some p in split(scope, " ")
	p != ""
}

# ---------------------------------------------------------------------------------------
# Ownership: the grant of the requested resource, and whether one of the application keys
# bound to the caller's id owns it (aliases of one id are one identity).
#
# Bundles built from JSON data carry the object documents looked up by key (grants,
# app_ids) as an index under data.caracal.platform.index, bucketed by the first two hex
# digits of the key's MD5, with {} left in their place: rego-cpp scans object keys one by
# one (milliseconds at thousands of keys). Bundles of Rego modules have no index, and
# these second definitions of grant and owns are then simply undefined. (The bucket is
# computed inline: destructuring it from an array makes rego-cpp scan the index.)

grant := g if {
	grants_doc := data.caracal.authz.grants
	is_object(grants_doc)
	g := grants_doc[input.resource.identifier]
}

grant := g if {
	key := input.resource.identifier
	is_string(key)
	digest := crypto.md5(key)
	g := data.caracal.platform.index.grants[substring(digest, 0, 1)][substring(digest, 1, 1)][key]
}

owns if {
	app := grant.application
	ids := data.caracal.authz.app_ids
	not is_set(ids)
	ids[app] == input.principal.id
}

owns if {
	app := grant.application
	is_string(app)
	digest := crypto.md5(app)
	ids := data.caracal.platform.index.app_ids
	ids[substring(digest, 0, 1)][substring(digest, 1, 1)][app] == input.principal.id
}

role_covers(scopes) if {
	some label in input.principal.labels
	role := grant.roles[label]
	count(scopes - {s | some s in role}) == 0
}

# ---------------------------------------------------------------------------------------
# Request shapes

bootstrap if {
	requested_set == {"agent:lifecycle"}
	not input.context.subject_claims
	not input.delegation_edge
	not input.context.agent_session_id
}

delegated_request if {
	input.delegation_edge.id
	input.context.agent_session_id
	not input.context.subject_claims
	count(requested) > 0
	not "agent:lifecycle" in requested_set
}

narrowed if count(requested_set - {s | some s in input.delegation_edge.scopes}) == 0

confinement_breached if {
	some rule in data.caracal.authz.confinement
	prefix := rule.label_prefix
	is_string(prefix)
	some label in input.principal.labels
	is_string(label)
	startswith(label, prefix)
	some s in requested
	not s in {a | some a in rule.scopes}
}

workload if {
	input.principal.type == "Workload"
	input.action.id == "CredentialInjection"
	not input.context.subject_claims
	not input.delegation_edge
	not input.context.agent_session_id
}

mandate_presented if {
	input.context.subject_claims.delegation_edge_id != ""
	count(requested) == 0
	count(presented_scopes) > 0
}

mandate_use if {
	mandate_presented
	some target in input.context.subject_claims.target
	target == input.resource.identifier
}

# ---------------------------------------------------------------------------------------
# Restriction, risk tiers and approval declarations

restricted if {
	some _ in data.caracal.authz.restrict
}

malformed_risk if {
	doc := data.caracal.authz.risk
	not is_array(doc)
}

malformed_risk if {
	some rule in data.caracal.authz.risk
	not valid_risk_rule(rule)
}

valid_risk_rule(rule) if {
	is_object(rule)
	is_string(rule.scope)
	rule.scope != ""
	is_string(rule.tier)
	rule.tier != ""
}

malformed_approval if {
	doc := data.caracal.authz.approval_tiers
	not is_array(doc)
}

malformed_approval if {
	some decl in data.caracal.authz.approval_tiers
	not valid_declaration(decl)
}

valid_declaration(decl) if {
	is_object(decl)
	is_string(decl.tier)
	decl.tier != ""
	object.get(decl, "approver", "operator") in {"operator", "subject", "any"}
	object.get(decl, "privacy", "identified") in {"identified", "pseudonymous", "anonymous"}
	ttl := object.get(decl, "ttl_seconds", 1800)
	is_number(ttl)
	floor(ttl) == ttl
	ttl > 0
}

malformed if malformed_risk

malformed if malformed_approval

# One tier per scope: two rules giving a requested scope different tiers make the
# evaluation fail (a conflict is never a decision).
tier(s) := t if {
	some rule in data.caracal.authz.risk
	rule.scope == s
	t := rule.tier
}

requested_risk := [{"scope": s, "tier": tier(s)} | some s in sort(requested); is_string(tier(s))]

matched_tiers := sort({decl |
	some decl in data.caracal.authz.approval_tiers
	some s in requested
	tier(s) == decl.tier
})

mint_diagnostics := array.concat(
	[d | count(matched_tiers) > 0; d := {"step_up_required": {"type": "human_approval", "tiers": matched_tiers}}],
	[d | count(requested_risk) > 0; d := {"risk": requested_risk}],
)

# ---------------------------------------------------------------------------------------
# The decision

result := deny("restriction_active") if {
	restricted
} else := allow("caracal-bootstrap", []) if {
	bootstrap
	owns
} else := allow("caracal-workload-mint", mint_diagnostics) if {
	workload
	not malformed
} else := deny("malformed_risk_data") if {
	not bootstrap
	workload
	malformed_risk
} else := deny("malformed_approval_data") if {
	not bootstrap
	workload
	malformed_approval
} else := delegated_result if {
	delegated_request
} else := mandate_result if {
	mandate_presented
}

# An input on both the bootstrap and the workload allow path: a second, different value
# for result, so the evaluation fails instead of picking one.
result := allow("caracal-workload-mint", mint_diagnostics) if {
	bootstrap
	owns
	workload
	not restricted
	not malformed
}

delegated_result := deny("malformed_risk_data") if {
	malformed_risk
} else := deny("malformed_approval_data") if {
	malformed_approval
} else := deny("resource_not_granted") if {
	not owns
} else := deny("delegation_scope_exceeded") if {
	not narrowed
} else := deny("confinement_violation") if {
	confinement_breached
} else := deny("role_scope_mismatch") if {
	not role_covers(requested_set)
} else := allow(sprintf("caracal-%s-mint", [grant.application]), mint_diagnostics)

mandate_result := deny("mandate_target_mismatch") if {
	not mandate_use
} else := deny("resource_not_granted") if {
	not owns
} else := deny("role_scope_mismatch") if {
	not role_covers(presented_scopes)
} else := allow(sprintf("caracal-%s-use", [grant.application]), [])
