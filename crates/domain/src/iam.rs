//! An IAM policy evaluator: identity and resource policies, Allow and Deny, wildcards,
//! NotAction and NotResource, conditions, and AWS's evaluation rules.
