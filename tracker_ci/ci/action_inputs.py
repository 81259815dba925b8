"""The GitHub Action's input vocabulary shared by the action and its generated files.

``tracker_ci.ci.github_action`` translates inputs and ``tracker_ci.ci.action_files`` writes
the composite action from ``action.yml``; both read the upstream spellings here, so neither
imports the other.
"""

from __future__ import annotations

__all__ = ["OUR_DEFAULTS", "UPSTREAM_ALIASES", "UPSTREAM_DEFAULTS", "UPSTREAM_ONLY"]

#: bananaops/tracker-action's inputs (over its history) and the input of ours each means.
UPSTREAM_ALIASES = {
    "host": "server-url",
    "tracker_host": "server-url",
    "lock_enable": "lock-enable",
    "related_id": "event-id",
    "github_token": "github-token",
}
#: Inputs only upstream's workflows use: one of them given means an upstream workflow.
UPSTREAM_ONLY = (*UPSTREAM_ALIASES, "lock-enable")
#: The defaults of inputs both actions have, or of what upstream sent without an input:
#: upstream's in an upstream workflow (P4; no environment, which does not share
#: `production`'s lock), ours otherwise. A value given in the workflow wins over both.
UPSTREAM_DEFAULTS = {"priority": "P4", "environment": "ENVIRONMENT_UNSPECIFIED"}
OUR_DEFAULTS = {"priority": "P3", "environment": "production"}
