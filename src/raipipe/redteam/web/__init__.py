"""Human red teaming: a web page where a person chats with a target, flags a turn that breaks a policy
with a note, and the finding joins the red-team findings dataset with "human red team" provenance.

`raipipe redteam web --target SPEC --out DIR` serves it; `raipipe redteam promote --run DIR` promotes
its findings as it does an automated run's. `HumanRun` holds the storage (usable without the page),
`create_app` the FastAPI app over it."""

from raipipe.redteam.web.app import create_app, serve
from raipipe.redteam.web.flags import Flag, flag_record, parse_flag, seeds_of
from raipipe.redteam.web.human_run import AlreadyFlaggedError, Conversation, HumanRun, NotYoursError

__all__ = [
    "AlreadyFlaggedError",
    "Conversation",
    "Flag",
    "HumanRun",
    "NotYoursError",
    "create_app",
    "flag_record",
    "parse_flag",
    "seeds_of",
    "serve",
]
