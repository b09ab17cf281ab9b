"""Serving: the home of the future gateway that puts a policy's guardrails in front of a deployed model.

Nothing is served from here yet. The OpenAI-compatible test server that used to live here is now
`raipipe.testing.upstream`."""
